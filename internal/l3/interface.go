package l3

import (
	"context"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// interfaceRequest reads the body of add/remove_router_interface.
func interfaceRequest(body map[string]any, forRemoval bool) (portID, subnetID string, err error) {
	_, byPort := body["port_id"]
	_, bySubnet := body["subnet_id"]
	if !byPort && !bySubnet {
		return "", "", badRequest("router", "Either subnet_id or port_id must be specified")
	}
	for _, k := range []string{"port_id", "subnet_id"} {
		v, ok := body[k]
		if !ok {
			continue
		}
		id, err := resource.UUIDType{}.Convert(v)
		if err != nil {
			return "", "", badRequest("router", "%s", err.Error())
		}
		if k == "port_id" {
			portID = id.(string)
		} else {
			subnetID = id.(string)
		}
	}
	if !forRemoval && byPort && bySubnet {
		return "", "", badRequest("router", "Cannot specify both subnet-id and port-id")
	}
	return portID, subnetID, nil
}

// interfaceInfo is the response of add/remove_router_interface.
func interfaceInfo(router, port resource.Object, subnetID string, subnetIDs []string) map[string]any {
	ids := make([]any, len(subnetIDs))
	for i, s := range subnetIDs {
		ids[i] = s
	}
	return map[string]any{
		"id": router["id"], "tenant_id": port["project_id"], "project_id": port["project_id"],
		"port_id": port["id"], "network_id": port["network_id"],
		"subnet_id": subnetID, "subnet_ids": ids,
	}
}

// touchRouter locks the router and bumps its revision: interface changes
// count as router changes (as in Neutron), and two of them on one router
// are checked one after the other (so two overlapping subnets cannot both
// pass the overlap check).
func (p *Plugin) touchRouter(ctx context.Context, tx *store.Tx, router resource.Object) error {
	if err := p.lockRouter(ctx, tx, str(router["id"])); err != nil {
		return err
	}
	_, err := p.svc.UpdateInTx(ctx, tx, p.routers, router)
	return err
}

// changeInterface serves add_router_interface and remove_router_interface
// (removal): it reads the request, locks the router, has change add or
// remove the port or subnet named, and answers with the interface's info.
// That names one subnet of the port: as in Neutron, the last one added or
// the first one removed.
func (p *Plugin) changeInterface(ctx context.Context, tx *store.Tx, router resource.Object, body map[string]any, removal bool,
	change func(portID, subnetID string) (resource.Object, []resource.Object, error)) (any, error) {
	portID, subnetID, err := interfaceRequest(body, removal)
	if err != nil {
		return nil, err
	}
	if err := p.touchRouter(ctx, tx, router); err != nil {
		return nil, err
	}
	port, subnets, err := change(portID, subnetID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(subnets))
	for i, s := range subnets {
		ids[i] = str(s["id"])
	}
	named := ""
	switch {
	case len(ids) == 0:
	case removal:
		named = ids[0]
	default:
		named = ids[len(ids)-1]
	}
	return interfaceInfo(router, port, named, ids), nil
}

func (p *Plugin) addInterface(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, body map[string]any) (any, error) {
	return p.changeInterface(ctx, tx, router, body, false, func(portID, subnetID string) (resource.Object, []resource.Object, error) {
		if portID != "" {
			return p.addInterfaceByPort(ctx, tx, c, router, portID)
		}
		return p.addInterfaceBySubnet(ctx, tx, c, router, subnetID)
	})
}

// checkAddressMode refuses IPv6 subnets whose addresses come from an
// external router's RAs.
func checkAddressMode(subnet resource.Object) error {
	if v, _ := subnet["ip_version"].(int64); v == 6 && subnet["ipv6_ra_mode"] == nil && subnet["ipv6_address_mode"] != nil {
		return badRequest("router", "IPv6 subnet %v configured to receive RAs from an external router cannot be added to Neutron Router", subnet["id"])
	}
	return nil
}

func (p *Plugin) addInterfaceBySubnet(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, subnetID string) (resource.Object, []resource.Object, error) {
	subnet, err := p.svc.Load(ctx, tx, c, p.subnets, subnetID)
	if err != nil {
		return nil, nil, err
	}
	gw := str(subnet["gateway_ip"])
	if gw == "" {
		return nil, nil, badRequest("router", "Subnet for router interface must have a gateway IP")
	}
	if !c.IsAdmin() && subnet["project_id"] != c.Project {
		// A subnet of another project may be connected only when its
		// network is shared with this project by name, not with everyone.
		n, err := tx.Count(ctx, p.rbac, store.Where{"object_id": {subnet["network_id"]}, "action": {"access_as_shared"}, "target_tenant": {c.Project}})
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, badRequest("router", "Cannot add interface to router because subnet %s is not owned by project making the request", subnetID)
		}
	}
	if err := checkAddressMode(subnet); err != nil {
		return nil, nil, err
	}
	routerID := str(router["id"])
	if err := p.checkDuplicateSubnets(ctx, tx, routerID, []resource.Object{subnet}); err != nil {
		return nil, nil, err
	}
	fixed := map[string]any{"subnet_id": subnetID, "ip_address": gw}
	if v, _ := subnet["ip_version"].(int64); v == 6 {
		// IPv6 prefixes of one network share one router port.
		existing, err := p.ipv6InterfaceOn(ctx, tx, routerID, str(subnet["network_id"]))
		if err != nil {
			return nil, nil, err
		}
		if existing != nil {
			ips := append(fixedIPsValue(fixedIPsOf(existing)), fixed)
			port, err := p.replacePort(ctx, tx, existing, ips)
			return port, []resource.Object{subnet}, err
		}
	}
	port, err := p.createPort(ctx, tx, str(router["project_id"]), map[string]any{
		"network_id": subnet["network_id"], "fixed_ips": []any{fixed}, "admin_state_up": true,
		"device_id": routerID, "device_owner": OwnerRouterInterface, "name": "",
	})
	return port, []resource.Object{subnet}, err
}

// ipv6InterfaceOn finds the router's interface port with an IPv6 address
// on a network, if any.
func (p *Plugin) ipv6InterfaceOn(ctx context.Context, tx *store.Tx, routerID, netID string) (resource.Object, error) {
	ports, err := p.routerPorts(ctx, tx, routerID, OwnerRouterInterface)
	if err != nil {
		return nil, err
	}
	for _, port := range ports {
		if port["network_id"] == netID && hasIPv6(port) {
			return port, nil
		}
	}
	return nil, nil
}

func hasIPv6(port resource.Object) bool {
	for _, ip := range fixedIPsOf(port) {
		if ip.Addr.Is6() {
			return true
		}
	}
	return false
}

func (p *Plugin) addInterfaceByPort(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, portID string) (resource.Object, []resource.Object, error) {
	port, err := p.svc.Load(ctx, tx, c, p.ports, portID)
	if err != nil {
		return nil, nil, err
	}
	if dev := str(port["device_id"]); dev != "" {
		return nil, nil, fault.Conflict("PortInUse", "Unable to complete operation on port %s for network %v. Port already has an attached device %s.", portID, port["network_id"], dev)
	}
	ips := fixedIPsOf(port)
	if len(ips) == 0 {
		return nil, nil, badRequest("router", "Router port must have at least one fixed IP")
	}
	var subnets []resource.Object
	for _, id := range subnetIDsOf(port) {
		s, err := p.getSubnet(ctx, tx, id)
		if err != nil {
			return nil, nil, err
		}
		if err := checkAddressMode(s); err != nil {
			return nil, nil, err
		}
		subnets = append(subnets, s)
	}
	routerID := str(router["id"])
	if hasIPv6(port) {
		existing, err := p.ipv6InterfaceOn(ctx, tx, routerID, str(port["network_id"]))
		if err != nil {
			return nil, nil, err
		}
		if existing != nil {
			return nil, nil, badRequest("router", "Router already contains IPv6 port %v belonging to network id %v. Only one IPv6 port from the same network subnet can be connected to a router", existing["id"], existing["network_id"])
		}
	}
	if err := p.checkDuplicateSubnets(ctx, tx, routerID, subnets); err != nil {
		return nil, nil, err
	}
	v4 := 0
	for _, s := range subnets {
		if v, _ := s["ip_version"].(int64); v == 4 {
			v4++
		}
	}
	if v4 > 1 {
		return nil, nil, badRequest("router", "Cannot have multiple IPv4 subnets on router port")
	}
	if err := checkPortInPools(c, port, subnets); err != nil {
		return nil, nil, err
	}
	port["device_id"], port["device_owner"] = routerID, OwnerRouterInterface
	if _, err := p.svc.UpdateInTx(ctx, tx, p.ports, port); err != nil {
		return nil, nil, err
	}
	return port, subnets, nil
}

// checkPortInPools refuses, for non-admins, a port whose address lies
// outside the allocation pools of a subnet the caller does not own: such
// an address (the gateway, say) is the subnet owner's to give to a router.
func checkPortInPools(c *service.Call, port resource.Object, subnets []resource.Object) error {
	if c.IsAdmin() {
		return nil
	}
	for _, ip := range fixedIPsOf(port) {
		i := slices.IndexFunc(subnets, func(s resource.Object) bool { return s["id"] == ip.SubnetID })
		if i < 0 || subnets[i]["project_id"] == c.Project {
			continue
		}
		inPool := false
		pools, _ := subnets[i]["allocation_pools"].([]any)
		for _, e := range pools {
			m, _ := e.(map[string]any)
			pool, err := ipam.ParsePool(str(m["start"]), str(m["end"]))
			if err == nil && pool.Contains(ip.Addr) {
				inPool = true
				break
			}
		}
		if !inPool {
			return badRequest("router", "Cannot add interface to router because specified port %v has an IP address out of the allocation pool of subnet %s, which is not owned by the project making the request", port["id"], ip.SubnetID)
		}
	}
	return nil
}

func (p *Plugin) removeInterface(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, body map[string]any) (any, error) {
	return p.changeInterface(ctx, tx, router, body, true, func(portID, subnetID string) (resource.Object, []resource.Object, error) {
		if portID != "" {
			return p.removeInterfaceByPort(ctx, tx, router, portID, subnetID)
		}
		return p.removeInterfaceBySubnet(ctx, tx, c, router, subnetID)
	})
}

func (p *Plugin) removeInterfaceByPort(ctx context.Context, tx *store.Tx, router resource.Object, portID, subnetID string) (resource.Object, []resource.Object, error) {
	routerID := str(router["id"])
	ports, err := tx.List(ctx, p.ports, store.Where{"id": {portID}, "device_id": {routerID}, "device_owner": {OwnerRouterInterface}})
	if err != nil {
		return nil, nil, err
	}
	if len(ports) == 0 {
		return nil, nil, fault.NotFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", routerID, portID)
	}
	port := ports[0]
	ids := subnetIDsOf(port)
	if subnetID != "" && !slices.Contains(ids, subnetID) {
		return nil, nil, fault.New(400, "SubnetMismatchForPort", "Subnet on port %s does not match the requested subnet %s.", portID, subnetID)
	}
	var subnets []resource.Object
	for _, id := range ids {
		s, err := p.getSubnet(ctx, tx, id)
		if err != nil {
			if fe, ok := fault.As(err); ok && fe.Status == 404 {
				continue
			}
			return nil, nil, err
		}
		if err := p.checkInterfaceNotInUse(ctx, tx, router, s); err != nil {
			return nil, nil, err
		}
		subnets = append(subnets, s)
	}
	return port, subnets, p.deletePort(ctx, tx, port)
}

func (p *Plugin) removeInterfaceBySubnet(ctx context.Context, tx *store.Tx, c *service.Call, router resource.Object, subnetID string) (resource.Object, []resource.Object, error) {
	subnet, err := p.svc.Load(ctx, tx, c, p.subnets, subnetID)
	if err != nil {
		return nil, nil, err
	}
	routerID := str(router["id"])
	ports, err := tx.List(ctx, p.ports, store.Where{"device_id": {routerID}, "device_owner": {OwnerRouterInterface}, "network_id": {subnet["network_id"]}})
	if err != nil {
		return nil, nil, err
	}
	if len(ports) > 0 {
		if err := p.checkInterfaceNotInUse(ctx, tx, router, subnet); err != nil {
			return nil, nil, err
		}
	}
	for _, port := range ports {
		ids := subnetIDsOf(port)
		if !slices.Contains(ids, subnetID) {
			continue
		}
		if len(ids) > 1 {
			// One prefix of a multi-prefix IPv6 port goes; the port stays
			// with the others.
			var keep []fixedIP
			for _, ip := range fixedIPsOf(port) {
				if ip.SubnetID != subnetID {
					keep = append(keep, ip)
				}
			}
			kept, err := p.replacePort(ctx, tx, port, fixedIPsValue(keep))
			return kept, []resource.Object{subnet}, err
		}
		return port, []resource.Object{subnet}, p.deletePort(ctx, tx, port)
	}
	return nil, nil, fault.NotFound("RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", routerID, subnetID)
}

// checkInterfaceNotInUse refuses to disconnect a router from a subnet that
// floating IPs reach their fixed port through, or that an extra route's
// nexthop lies on.
func (p *Plugin) checkInterfaceNotInUse(ctx context.Context, tx *store.Tx, router, subnet resource.Object) error {
	routerID, subnetID := str(router["id"]), str(subnet["id"])
	cidr := subnetCIDR(subnet)
	fips, err := tx.List(ctx, p.fips, store.Where{"router_id": {routerID}})
	if err != nil {
		return err
	}
	for _, f := range fips {
		addr, err := parseAddr(f["fixed_ip_address"])
		if err != nil || !cidr.Contains(addr) {
			continue
		}
		fixed, err := tx.Get(ctx, p.ports, str(f["port_id"]))
		if err != nil {
			continue
		}
		if slices.Contains(subnetIDsOf(fixed), subnetID) {
			return fault.Conflict("RouterInterfaceInUseByFloatingIP",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", subnetID, routerID)
		}
	}
	routes, _ := router["routes"].([]any)
	for _, r := range routes {
		m, _ := r.(map[string]any)
		if addr, err := parseAddr(m["nexthop"]); err == nil && cidr.Contains(addr) {
			return fault.Conflict("RouterInterfaceInUseByRoute",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", subnetID, routerID)
		}
	}
	return nil
}
