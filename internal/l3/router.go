package l3

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// gatewayRequest is a requested external_gateway_info.
type gatewayRequest struct {
	NetworkID string
	// EnableSNAT is nil when the caller left it out: Neutron then applies
	// the default (true), also on update.
	EnableSNAT *bool
	// ExternalIPs are the requested {subnet_id, ip_address} entries.
	ExternalIPs []any
	given       map[string]bool
}

// parseGateway reads external_gateway_info; nil or {} means no gateway.
func parseGateway(v any) (*gatewayRequest, error) {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil, nil
	}
	g := &gatewayRequest{given: map[string]bool{}}
	for k := range m {
		g.given[k] = true
	}
	g.NetworkID = str(m["network_id"])
	if g.NetworkID == "" {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fault.BadRequest("Invalid input for external_gateway_info. Reason: Validation of dictionary's keys failed. Expected keys: network_id, provided keys: %s.", strings.Join(keys, ", "))
	}
	if b, ok := m["enable_snat"].(bool); ok {
		g.EnableSNAT = &b
	}
	g.ExternalIPs, _ = m["external_fixed_ips"].([]any)
	return g, nil
}

// checkGatewayPolicy refuses the admin-only parts of a gateway to others,
// as Neutron's policy does for enable_snat and external_fixed_ips.
func checkGatewayPolicy(c *service.Call, action string, g *gatewayRequest) error {
	if g == nil || c.IsAdmin() {
		return nil
	}
	for _, k := range []string{"enable_snat", "external_fixed_ips"} {
		if g.given[k] {
			return fault.PolicyNotAuthorized(action + "_router:external_gateway_info:" + k)
		}
	}
	return nil
}

func (p *Plugin) routerPreCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, _ map[string]bool) error {
	obj["status"] = "ACTIVE"
	obj["routes"] = []any{}
	obj["gw_port_id"] = nil
	g, err := parseGateway(obj["external_gateway_info"])
	if err != nil {
		return err
	}
	obj["external_gateway_info"] = nil
	if g == nil {
		return nil
	}
	if err := checkGatewayPolicy(c, "create", g); err != nil {
		return err
	}
	return p.applyGateway(ctx, tx, c, obj, g)
}

func (p *Plugin) routerPreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	_, gwChanged := changes["external_gateway_info"]
	_, routesChanged := changes["routes"]
	if !gwChanged && !routesChanged {
		return nil
	}
	if err := p.lockRouter(ctx, tx, str(old["id"])); err != nil {
		return err
	}
	if gwChanged {
		obj["external_gateway_info"] = old["external_gateway_info"]
		g, err := parseGateway(changes["external_gateway_info"])
		if err != nil {
			return err
		}
		if err := checkGatewayPolicy(c, "update", g); err != nil {
			return err
		}
		if err := p.applyGateway(ctx, tx, c, obj, g); err != nil {
			return err
		}
	}
	// Every route must stay reachable through the router's ports as they
	// are now (a removed gateway may strand a nexthop).
	return p.validateRoutes(ctx, tx, obj)
}

// applyGateway moves router to the requested gateway (nil: none),
// replacing, creating or removing its gateway port, and records the result
// in external_gateway_info and gw_port_id.
func (p *Plugin) applyGateway(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, g *gatewayRequest) error {
	routerID, project := str(router["id"]), str(router["project_id"])
	var cur resource.Object
	if id := str(router["gw_port_id"]); id != "" {
		var err error
		if cur, err = tx.Get(ctx, p.ports, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if g == nil {
		if cur != nil {
			if err := p.removeGatewayPort(ctx, tx, router, cur); err != nil {
				return err
			}
		}
		router["gw_port_id"], router["external_gateway_info"] = nil, nil
		return nil
	}
	net, external, err := p.externalNetwork(ctx, tx, c, g.NetworkID, project)
	if err != nil {
		return err
	}
	if !external {
		return badRequest("router", "Network %s is not an external network", g.NetworkID)
	}
	gwSubnets, err := p.networkSubnets(ctx, tx, g.NetworkID)
	if err != nil {
		return err
	}
	for _, e := range g.ExternalIPs {
		ip := str(e.(map[string]any)["ip_address"])
		for _, s := range gwSubnets {
			if ip != "" && ip == str(s["gateway_ip"]) {
				return badRequest("router", "External IP %s is the same as the gateway IP", ip)
			}
		}
	}
	port := cur
	switch {
	case cur != nil && cur["network_id"] == net["id"]:
		if externalIPsChange(cur, g.ExternalIPs) {
			// The port keeps no address it is not asked for, as Neutron's
			// port update with the new fixed_ips; it is replaced so that
			// IPAM runs for the new addresses.
			if port, err = p.replacePort(ctx, tx, cur, g.ExternalIPs); err != nil {
				return err
			}
		}
	default:
		if cur != nil {
			if err := p.removeGatewayPort(ctx, tx, router, cur); err != nil {
				return err
			}
		}
		if err := p.checkDuplicateSubnets(ctx, tx, routerID, gwSubnets); err != nil {
			return err
		}
		body := map[string]any{
			"network_id": g.NetworkID, "device_id": routerID, "device_owner": OwnerRouterGateway,
			"admin_state_up": true, "name": "",
		}
		if len(g.ExternalIPs) > 0 {
			body["fixed_ips"] = g.ExternalIPs
		}
		// The gateway port belongs to no project: it is hidden from users.
		if port, err = p.createPort(ctx, tx, "", body); err != nil {
			return err
		}
	}
	snat := true
	if g.EnableSNAT != nil {
		snat = *g.EnableSNAT
	}
	router["gw_port_id"] = port["id"]
	router["external_gateway_info"] = map[string]any{
		"network_id": g.NetworkID, "enable_snat": snat,
		"external_fixed_ips": fixedIPsValue(fixedIPsOf(port)),
	}
	return nil
}

// externalIPsChange tells whether requested external IPs differ from the
// gateway port's addresses (subnets or addresses), as Neutron decides
// whether to touch the port.
func externalIPsChange(port resource.Object, want []any) bool {
	if len(want) == 0 {
		return false
	}
	have := fixedIPsOf(port)
	subnets, addrs := map[string]bool{}, map[string]bool{}
	for _, ip := range have {
		subnets[ip.SubnetID] = true
		addrs[ip.Addr.String()] = true
	}
	wantSubnets, wantAddrs := map[string]bool{}, map[string]bool{}
	for _, e := range want {
		m := e.(map[string]any)
		if s := str(m["subnet_id"]); s != "" {
			wantSubnets[s] = true
		}
		if a := str(m["ip_address"]); a != "" {
			wantAddrs[a] = true
		}
	}
	return !sameSet(subnets, wantSubnets) || !sameSet(addrs, wantAddrs)
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// removeGatewayPort deletes a router's gateway port unless floating IPs
// go through it.
func (p *Plugin) removeGatewayPort(ctx context.Context, tx *store.Tx, router, port resource.Object) error {
	n, err := tx.Count(ctx, p.fips, store.Where{"router_id": {router["id"]}})
	if err != nil {
		return err
	}
	if n > 0 {
		return fault.Conflict("RouterExternalGatewayInUseByFloatingIp",
			"Gateway cannot be updated for router %v, since a gateway to external network %v is required by one or more floating IPs.",
			router["id"], port["network_id"])
	}
	return p.deletePort(ctx, tx, port)
}

// replacePort swaps a port l3 owns for one like it with other fixed IPs:
// the old one goes first so that its addresses and MAC may be reused.
func (p *Plugin) replacePort(ctx context.Context, tx *store.Tx, old resource.Object, fixedIPs []any) (resource.Object, error) {
	if err := p.deletePort(ctx, tx, old); err != nil {
		return nil, err
	}
	body := map[string]any{
		"network_id": old["network_id"], "device_id": old["device_id"], "device_owner": old["device_owner"],
		"admin_state_up": old["admin_state_up"], "name": old["name"], "fixed_ips": fixedIPs,
	}
	if mac, ok := old["mac_address"].(string); ok && mac != "" {
		body["mac_address"] = mac
	}
	return p.createPort(ctx, tx, str(old["project_id"]), body)
}

func (p *Plugin) routerPreDelete(ctx context.Context, tx *store.Tx, _ *service.Call, router resource.Object) error {
	id := str(router["id"])
	if err := p.lockRouter(ctx, tx, id); err != nil {
		return err
	}
	intfs, err := p.routerPorts(ctx, tx, id, interfaceOwners...)
	if err != nil {
		return err
	}
	if len(intfs) > 0 {
		ids := make([]string, len(intfs))
		for i, port := range intfs {
			ids[i] = str(port["id"])
		}
		return fault.Conflict("RouterInUse", "Router %s has ports still attached: %s", id, strings.Join(ids, ", "))
	}
	ports, err := p.routerPorts(ctx, tx, id, OwnerRouterGateway)
	if err != nil {
		return err
	}
	for _, port := range ports {
		if err := p.removeGatewayPort(ctx, tx, router, port); err != nil {
			return err
		}
	}
	return nil
}

// checkDuplicateSubnets refuses to connect a router to subnets it already
// has a port on, or that overlap the subnets it is connected to (for its
// gateway: every subnet of the external network).
func (p *Plugin) checkDuplicateSubnets(ctx context.Context, tx *store.Tx, routerID string, newSubnets []resource.Object) error {
	ports, err := p.routerPorts(ctx, tx, routerID)
	if err != nil {
		return err
	}
	newIDs := map[string]bool{}
	for _, s := range newSubnets {
		newIDs[str(s["id"])] = true
	}
	var connected []string
	for _, port := range ports {
		for _, ip := range fixedIPsOf(port) {
			if newIDs[ip.SubnetID] {
				return badRequest("router", "Router already has a port on subnet %s", ip.SubnetID)
			}
			if port["device_owner"] != OwnerRouterGateway {
				connected = append(connected, ip.SubnetID)
			}
		}
		if port["device_owner"] == OwnerRouterGateway {
			subs, err := p.networkSubnets(ctx, tx, str(port["network_id"]))
			if err != nil {
				return err
			}
			for _, s := range subs {
				connected = append(connected, str(s["id"]))
			}
		}
	}
	slices.Sort(connected)
	for _, id := range slices.Compact(connected) {
		sub, err := p.getSubnet(ctx, tx, id)
		if err != nil {
			if fe, ok := fault.As(err); ok && fe.Status == 404 {
				continue
			}
			return err
		}
		for _, s := range newSubnets {
			a, b := subnetCIDR(sub), subnetCIDR(s)
			if a.IsValid() && b.IsValid() && ipam.Overlaps(a, b) {
				return badRequest("router", "Cidr %s of subnet %s overlaps with cidr %s of subnet %s", s["cidr"], s["id"], sub["cidr"], sub["id"])
			}
		}
	}
	return nil
}

// routeString renders routes as Neutron's messages show them.
func routeString(routes []any) string {
	parts := make([]string, 0, len(routes))
	for _, r := range routes {
		m, _ := r.(map[string]any)
		parts = append(parts, fmt.Sprintf("{'destination': '%v', 'nexthop': '%v'}", m["destination"], m["nexthop"]))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
