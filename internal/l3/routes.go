package l3

import (
	"context"
	"net/netip"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// validateRoutes checks a router's extra routes (extraroute) in Neutron's
// order: each well formed and none twice, each nexthop on a subnet the
// router is connected to but not one of the router's own addresses, and
// at most maxRoutes of them.
func (p *Plugin) validateRoutes(ctx context.Context, tx *store.Tx, router resource.Object) error {
	routes, _ := router["routes"].([]any)
	if len(routes) == 0 {
		return nil
	}
	parsed := make([]ipam.HostRoute, 0, len(routes))
	byVersion := map[int][]ipam.HostRoute{}
	for _, r := range routes {
		m, _ := r.(map[string]any)
		hr, err := ipam.ParseHostRoute(str(m["destination"]), str(m["nexthop"]))
		if err != nil {
			return ipamError("routes", err)
		}
		v := ipam.IPVersion(hr.Destination.Addr())
		byVersion[v] = append(byVersion[v], hr)
		parsed = append(parsed, hr)
	}
	for v, group := range byVersion {
		if err := ipam.ValidateHostRoutes(group, v, -1, ""); err != nil {
			return ipamError("routes", err)
		}
	}
	cidrs, own, err := p.connected(ctx, tx, str(router["id"]))
	if err != nil {
		return err
	}
	for _, hr := range parsed {
		reachable := false
		for _, c := range cidrs {
			if c.Contains(hr.NextHop) {
				reachable = true
				break
			}
		}
		if !reachable {
			return invalidRoutes(routes, "the nexthop is not connected with router")
		}
		if own[hr.NextHop] {
			return invalidRoutes(routes, "the nexthop is used by router")
		}
	}
	if len(routes) > maxRoutes {
		return fault.Conflict("OverQuota", "Quota exceeded for resources: ['router_route'].")
	}
	return nil
}

func invalidRoutes(routes []any, reason string) error {
	return fault.New(400, "InvalidRoutes", "Invalid format for routes: %s, %s", routeString(routes), reason)
}

// connected returns the CIDRs of the subnets a router has ports on and
// the router's own addresses.
func (p *Plugin) connected(ctx context.Context, tx *store.Tx, routerID string) ([]netip.Prefix, map[netip.Addr]bool, error) {
	ports, err := p.routerPorts(ctx, tx, routerID)
	if err != nil {
		return nil, nil, err
	}
	own := map[netip.Addr]bool{}
	seen := map[string]bool{}
	var cidrs []netip.Prefix
	for _, port := range ports {
		for _, ip := range fixedIPsOf(port) {
			own[ip.Addr] = true
			if seen[ip.SubnetID] {
				continue
			}
			seen[ip.SubnetID] = true
			sub, err := p.getSubnet(ctx, tx, ip.SubnetID)
			if err != nil {
				if fe, ok := fault.As(err); ok && fe.Status == 404 {
					continue
				}
				return nil, nil, err
			}
			if c := subnetCIDR(sub); c.IsValid() {
				cidrs = append(cidrs, c)
			}
		}
	}
	return cidrs, own, nil
}
