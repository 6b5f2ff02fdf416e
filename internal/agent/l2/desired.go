package l2

import (
	"maps"
	"slices"
	"sort"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// desiredState is the l2 part of the host's desired state, indexed.
type desiredState struct {
	ports     map[string]msg.Port
	networks  map[string]msg.Network
	fdb       map[string]msg.NetworkFDB
	endpoints []msg.TunnelEndpoint
	groups    map[string]msg.SecurityGroup
	// remote holds the members of remote groups, by group id.
	remote map[string]msg.RemoteGroup
}

func newDesiredState() *desiredState {
	return &desiredState{
		ports: map[string]msg.Port{}, networks: map[string]msg.Network{}, fdb: map[string]msg.NetworkFDB{},
		groups: map[string]msg.SecurityGroup{}, remote: map[string]msg.RemoteGroup{},
	}
}

// replace makes the state exactly s.
func (d *desiredState) replace(s msg.L2State) {
	*d = *newDesiredState()
	for _, p := range s.Ports {
		d.ports[p.ID] = p
	}
	for _, n := range s.Networks {
		d.networks[n.ID] = n
	}
	for _, f := range s.FDB {
		d.fdb[f.NetworkID] = f
	}
	d.endpoints = slices.Clone(s.TunnelEndpoints)
	for _, g := range s.SecurityGroups {
		d.groups[g.ID] = g
	}
	for _, g := range s.RemoteGroups {
		d.remote[g.ID] = g
	}
}

// update applies a notification's changes.
func (d *desiredState) update(u msg.L2Update) {
	for _, id := range u.DeletedPorts {
		delete(d.ports, id)
	}
	for _, p := range u.Ports {
		d.ports[p.ID] = p
	}
	for _, id := range u.DeletedNetworks {
		delete(d.networks, id)
		delete(d.fdb, id)
	}
	for _, n := range u.Networks {
		d.networks[n.ID] = n
	}
	for _, f := range u.FDB {
		d.fdb[f.NetworkID] = f
	}
	for _, id := range u.DeletedSecurityGroups {
		delete(d.groups, id)
	}
	for _, g := range u.SecurityGroups {
		d.groups[g.ID] = g
	}
	for _, id := range u.DeletedRemoteGroups {
		delete(d.remote, id)
	}
	for _, g := range u.RemoteGroups {
		d.remote[g.ID] = g
	}
	if u.TunnelEndpointsChanged || u.TunnelEndpoints != nil {
		d.endpoints = slices.Clone(u.TunnelEndpoints)
	}
}

// clone copies the indexes (the values are not changed in place).
func (d *desiredState) clone() *desiredState {
	return &desiredState{
		ports:     maps.Clone(d.ports),
		networks:  maps.Clone(d.networks),
		fdb:       maps.Clone(d.fdb),
		endpoints: slices.Clone(d.endpoints),
		groups:    maps.Clone(d.groups),
		remote:    maps.Clone(d.remote),
	}
}

// tunnels returns the tunnel ports this node needs: one per tunnel type it
// serves to every other endpoint that serves the type too, and to any
// endpoint l2 population names for a network of that type.
func (d *desiredState) tunnels(cfg Config) []TunnelKey {
	set := map[TunnelKey]bool{}
	for _, e := range d.endpoints {
		if e.IP == "" || e.IP == cfg.LocalIP {
			continue
		}
		for _, t := range e.TunnelTypes {
			if slices.Contains(cfg.TunnelTypes, t) {
				set[TunnelKey{t, e.IP}] = true
			}
		}
	}
	for _, f := range d.fdb {
		t := f.Segment.NetworkType
		if n, ok := d.networks[f.NetworkID]; ok {
			t = n.Segment.NetworkType
		}
		if !slices.Contains(cfg.TunnelTypes, t) {
			continue
		}
		for _, ip := range f.FloodTo {
			if ip != "" && ip != cfg.LocalIP {
				set[TunnelKey{t, ip}] = true
			}
		}
		for _, e := range f.Entries {
			if e.TunnelIP != "" && e.TunnelIP != cfg.LocalIP {
				set[TunnelKey{t, e.TunnelIP}] = true
			}
		}
	}
	out := make([]TunnelKey, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].RemoteIP < out[j].RemoteIP
	})
	return out
}
