package dhcp

import (
	"slices"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// desiredNetwork is one network the server wants served, with a
// generation that changes whenever the network, its subnets or its ports
// change, so the reconciler redoes only what changed.
type desiredNetwork struct {
	msg.DHCPNetwork
	gen uint64
}

// desiredState is what the server wants this host's dhcp role to serve.
// Updates replace slices instead of editing them, so a snapshot (a copy of
// the map) stays valid while later updates arrive.
type desiredState struct {
	host     string
	networks map[string]desiredNetwork
	gen      uint64
}

func newDesiredState(host string) *desiredState {
	return &desiredState{host: host, networks: map[string]desiredNetwork{}}
}

func (d *desiredState) put(n msg.DHCPNetwork) {
	d.gen++
	n.Ports = slices.Clone(n.Ports)
	slices.SortFunc(n.Ports, func(a, b msg.Port) int { return strings.Compare(a.ID, b.ID) })
	n.Subnets = slices.Clone(n.Subnets)
	if n.DHCPPort == nil {
		// The server names it once it made it; a later port update may
		// bring it in the network's ports.
		n.DHCPPort = d.ownDHCPPort(n.Ports)
	}
	d.networks[n.ID] = desiredNetwork{DHCPNetwork: n, gen: d.gen}
}

// replace takes a full state.
func (d *desiredState) replace(st *msg.DHCPState) {
	d.networks = map[string]desiredNetwork{}
	if st == nil {
		return
	}
	for _, n := range st.Networks {
		d.put(n)
	}
}

// update applies a notification's changes.
func (d *desiredState) update(u *msg.DHCPUpdate) {
	if u == nil {
		return
	}
	for _, n := range u.Networks {
		d.put(n)
	}
	for _, id := range u.DeletedNetworks {
		delete(d.networks, id)
	}
	for _, p := range u.Ports {
		n, ok := d.networks[p.NetworkID]
		if !ok {
			continue // not served here
		}
		i, found := slices.BinarySearchFunc(n.Ports, p.ID, comparePortID)
		ports := slices.Clone(n.Ports)
		if found {
			ports[i] = p
		} else {
			ports = slices.Insert(ports, i, p)
		}
		n.Ports = ports
		switch {
		case d.isOwnDHCPPort(p):
			own := p
			n.DHCPPort = &own
		case n.DHCPPort != nil && n.DHCPPort.ID == p.ID:
			// No longer ours: unscheduled, or reserved for another agent.
			n.DHCPPort = nil
		}
		d.gen++
		n.gen = d.gen
		d.networks[n.ID] = n
	}
	for _, ref := range u.DeletedPorts {
		n, ok := d.networks[ref.NetworkID]
		if !ok {
			continue
		}
		i, found := slices.BinarySearchFunc(n.Ports, ref.ID, comparePortID)
		if found {
			n.Ports = slices.Delete(slices.Clone(n.Ports), i, i+1)
		}
		if n.DHCPPort != nil && n.DHCPPort.ID == ref.ID {
			n.DHCPPort = nil
		}
		d.gen++
		n.gen = d.gen
		d.networks[n.ID] = n
	}
}

// isOwnDHCPPort tells whether p is this host's DHCP port.
func (d *desiredState) isOwnDHCPPort(p msg.Port) bool {
	return p.DeviceOwner == ownerDHCP && p.Host == d.host
}

func (d *desiredState) ownDHCPPort(ports []msg.Port) *msg.Port {
	for _, p := range ports {
		if d.isOwnDHCPPort(p) {
			own := p
			return &own
		}
	}
	return nil
}

// snapshot returns the networks as they are now.
func (d *desiredState) snapshot() map[string]desiredNetwork {
	out := make(map[string]desiredNetwork, len(d.networks))
	for id, n := range d.networks {
		out[id] = n
	}
	return out
}

func comparePortID(p msg.Port, id string) int { return strings.Compare(p.ID, id) }
