package l3

import (
	"context"
	"net/netip"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
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
			return ipam.Fault("routes", err)
		}
		v := ipam.IPVersion(hr.Destination.Addr())
		byVersion[v] = append(byVersion[v], hr)
		parsed = append(parsed, hr)
	}
	for v, group := range byVersion {
		if err := ipam.ValidateHostRoutes(group, v, -1, ""); err != nil {
			return ipam.Fault("routes", err)
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

// routesKey identifies a route for the atomic add and remove.
func routesKey(r any) [2]string {
	m, _ := r.(map[string]any)
	return [2]string{str(m["destination"]), str(m["nexthop"])}
}

// routesBody reads {"router": {"routes": [...]}} of add/remove_extraroutes.
func (p *Plugin) routesBody(body map[string]any) ([]any, error) {
	rb, _ := body["router"].(map[string]any)
	raw, ok := rb["routes"]
	if !ok {
		return nil, fault.BadRequest("Invalid input for routes. Reason: a body {\"router\": {\"routes\": [...]}} is required.")
	}
	v, err := p.routers.Attr("routes").Type.Convert(raw)
	if err != nil {
		return nil, fault.BadRequest("Invalid input for routes. Reason: %v.", err)
	}
	return v.([]any), nil
}

// addExtraRoutes adds routes to a router's routes in one step
// (extraroute-atomic): routes it already has are kept once.
func (p *Plugin) addExtraRoutes(ctx context.Context, tx *store.Tx, _ *service.Call, router resource.Object, body map[string]any) (any, error) {
	add, err := p.routesBody(body)
	if err != nil {
		return nil, err
	}
	return p.editRoutes(ctx, tx, router, func(old []any) []any {
		seen := map[[2]string]bool{}
		out := make([]any, 0, len(old)+len(add))
		for _, r := range append(append([]any{}, old...), add...) {
			if k := routesKey(r); !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
		return out
	})
}

// removeExtraRoutes removes routes from a router's routes in one step;
// routes it does not have are ignored.
func (p *Plugin) removeExtraRoutes(ctx context.Context, tx *store.Tx, _ *service.Call, router resource.Object, body map[string]any) (any, error) {
	remove, err := p.routesBody(body)
	if err != nil {
		return nil, err
	}
	return p.editRoutes(ctx, tx, router, func(old []any) []any {
		gone := map[[2]string]bool{}
		for _, r := range remove {
			gone[routesKey(r)] = true
		}
		out := make([]any, 0, len(old))
		for _, r := range old {
			if !gone[routesKey(r)] {
				out = append(out, r)
			}
		}
		return out
	})
}

// editRoutes applies edit to the router's routes as they are once the
// router is held, validates and stores the result, and returns the router
// as the API shows it.
func (p *Plugin) editRoutes(ctx context.Context, tx *store.Tx, router resource.Object, edit func(old []any) []any) (any, error) {
	id := str(router["id"])
	if err := p.lockRouter(ctx, tx, id); err != nil {
		return nil, err
	}
	cur, err := tx.Get(ctx, p.routers, id)
	if err != nil {
		return nil, err
	}
	old, _ := cur["routes"].([]any)
	cur["routes"] = edit(old)
	if err := p.validateRoutes(ctx, tx, cur); err != nil {
		return nil, err
	}
	if _, err := p.svc.UpdateInTx(ctx, tx, p.routers, cur); err != nil {
		return nil, err
	}
	shown := resource.Clone(cur)
	for _, a := range p.routers.Attrs {
		if a.Hidden {
			delete(shown, a.Name)
		}
	}
	return map[string]any{"router": shown}, nil
}
