package port

import (
	"context"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// ipChanges is how a port's addresses change on update.
type ipChanges struct {
	add          []wanted
	keep, remove []FixedIP
}

// isEUI64 tells whether an address looks computed from a MAC (ff:fe in
// the middle of its interface identifier), as Neutron's is_eui64_address.
func isEUI64(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	b := a.As16()
	return b[11] == 0xff && b[12] == 0xfe
}

// changedIPs matches a fixed_ips update against the port's addresses the
// way Neutron does: requested addresses it already has are kept, a
// subnet_id alone keeps an address on that subnet, and addresses no longer
// asked for are removed unless they are auto-addresses the subnet assigns
// by itself (required says which must go). dropSubnets lists subnets whose
// addresses go whatever the request says (EUI-64 ones after a MAC change).
func changedIPs(orig []FixedIP, ws []wanted, dropSubnets map[string]bool, required func(FixedIP) bool) ipChanges {
	var ch ipChanges
	ws = slices.DeleteFunc(slices.Clone(ws), func(w wanted) bool { return dropSubnets[w.subnetID] })
	byIP := map[netip.Addr]FixedIP{}
	for _, o := range orig {
		byIP[o.IP] = o
	}
	for _, w := range ws {
		if !w.hasIP {
			continue
		}
		if o, ok := byIP[w.ip]; ok {
			ch.keep = append(ch.keep, o)
			delete(byIP, w.ip)
		} else {
			ch.add = append(ch.add, w)
		}
	}
	var subnetOrder []string
	bySubnet := map[string][]FixedIP{}
	for _, o := range orig {
		if _, left := byIP[o.IP]; !left {
			continue
		}
		if _, seen := bySubnet[o.SubnetID]; !seen {
			subnetOrder = append(subnetOrder, o.SubnetID)
		}
		bySubnet[o.SubnetID] = append(bySubnet[o.SubnetID], o)
	}
	var candidates []FixedIP
	for _, w := range ws {
		if w.hasIP {
			continue
		}
		l := bySubnet[w.subnetID]
		if len(l) == 0 {
			ch.add = append(ch.add, w)
			continue
		}
		o := l[len(l)-1]
		bySubnet[w.subnetID] = l[:len(l)-1]
		if isEUI64(o.IP) {
			// The prefix or MAC may have changed: let allocation compute
			// the address again.
			ch.add = append(ch.add, w)
			candidates = append(candidates, o)
		} else {
			ch.keep = append(ch.keep, o)
		}
	}
	for _, sid := range subnetOrder {
		candidates = append(candidates, bySubnet[sid]...)
	}
	for _, o := range candidates {
		if required(o) || dropSubnets[o.SubnetID] {
			ch.remove = append(ch.remove, o)
		} else {
			ch.keep = append(ch.keep, o)
		}
	}
	return ch
}

// updateIPs applies a fixed_ips update (requested nil: unchanged request,
// as after a MAC change) to a stored port and returns its new fixed_ips.
func (p *Plugin) updateIPs(ctx context.Context, tx *store.Tx, old, obj resource.Object, requested []any, macChanged bool) ([]any, error) {
	netID, _ := obj["network_id"].(string)
	portID, _ := obj["id"].(string)
	owner := deviceOwner(obj)
	orig := FixedIPsOf(old)
	var ws []wanted
	if requested != nil {
		var err error
		if ws, err = parseWanted(requested); err != nil {
			return nil, err
		}
	} else {
		for _, o := range orig {
			ws = append(ws, wanted{subnetID: o.SubnetID, ip: o.IP, hasIP: true})
		}
	}
	dropSubnets := map[string]bool{}
	if macChanged {
		for _, o := range orig {
			if isEUI64(o.IP) {
				dropSubnets[o.SubnetID] = true
			}
		}
	}
	subnets, err := p.NetworkSubnets(ctx, tx, netID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Subnet{}
	for _, s := range subnets {
		byID[s.ID] = s
	}
	required := func(o FixedIP) bool {
		if isRouterInterfaceOrSNAT(owner) {
			return true
		}
		s := byID[o.SubnetID]
		return s == nil || !s.AutoAddress()
	}
	ch := changedIPs(orig, ws, dropSubnets, required)
	reqs, err := p.explicitRequests(ctx, tx, obj, subnets, ch.add)
	if err != nil {
		return nil, err
	}
	for _, o := range ch.remove {
		if err := releaseIP(ctx, tx, netID, portID, o.IP); err != nil {
			return nil, err
		}
	}
	handled := slices.Clone(reqs)
	for _, o := range ch.keep {
		if s := byID[o.SubnetID]; s != nil {
			handled = append(handled, request{subnets: []*Subnet{s}})
		}
	}
	reqs = append(reqs, autoRequests(obj, subnets, handled)...)
	added, err := p.allocate(ctx, tx, obj, reqs)
	if err != nil {
		return nil, err
	}
	return fixedIPsValue(append(ch.keep, added...)), nil
}
