package l3

import (
	"context"
	"errors"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// fipStatus is what a floating IP shows: without an l3 agent to set it
// up, Neutron reports DOWN.
const fipStatus = "DOWN"

// roleManager is the project manager role: besides admins, only managers
// may choose a floating IP's address (Neutron's
// create_floatingip:floating_ip_address rule).
const roleManager = "manager"

func (p *Plugin) fipPreCreate(ctx context.Context, tx *store.Tx, c *service.Call, fip resource.Object, given map[string]bool) error {
	if given["floating_ip_address"] && !c.IsAdmin() && !c.ID.HasRole(roleManager) {
		return fault.PolicyNotAuthorized("create_floatingip:floating_ip_address")
	}
	netID := str(fip["floating_network_id"])
	_, external, err := p.externalNetwork(ctx, tx, c, netID, str(fip["project_id"]))
	if err != nil {
		return err
	}
	if !external {
		return badRequest("floatingip", "Network %s is not a valid external network", netID)
	}
	subnets, err := p.networkSubnets(ctx, tx, netID)
	if err != nil {
		return err
	}
	hasV4 := false
	for _, s := range subnets {
		if v, _ := s["ip_version"].(int64); v == 4 {
			hasV4 = true
		}
	}
	if !hasV4 {
		return badRequest("floatingip", "Network %s does not contain any IPv4 subnet", netID)
	}
	// The floating port belongs to no project: users never see it.
	body := map[string]any{
		"network_id": netID, "admin_state_up": true, "name": "",
		"device_id": fip["id"], "device_owner": OwnerFloatingIP,
	}
	want := map[string]any{}
	if s := str(fip["subnet_id"]); s != "" {
		want["subnet_id"] = s
	}
	if a := str(fip["floating_ip_address"]); a != "" {
		want["ip_address"] = a
	}
	if len(want) > 0 {
		body["fixed_ips"] = []any{want}
	}
	delete(fip, "subnet_id")
	port, err := p.createPort(ctx, tx, "", body)
	if err != nil {
		return err
	}
	var addr string
	for _, ip := range fixedIPsOf(port) {
		if ip.Addr.Is4() {
			addr = ip.Addr.String()
			break
		}
	}
	if addr == "" {
		return fault.New(400, "ExternalIpAddressExhausted", "Unable to find any IP address on external network %s.", netID)
	}
	fip["floating_ip_address"] = addr
	fip["floating_port_id"] = port["id"]
	fip["status"] = fipStatus
	return p.associate(ctx, tx, c, fip, "")
}

func (p *Plugin) fipPreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, fip, changes resource.Object) error {
	_, portGiven := changes["port_id"]
	_, ipGiven := changes["fixed_ip_address"]
	if len(changes) == 0 {
		// An empty update disassociates, as Neutron keeps for old
		// clients; any other update leaves the association alone.
		fip["port_id"], fip["fixed_ip_address"] = nil, nil
		return p.associate(ctx, tx, c, fip, str(old["port_id"]))
	}
	if !portGiven && !ipGiven {
		return nil
	}
	if portGiven && !ipGiven {
		// A new association picks its fixed IP afresh.
		fip["fixed_ip_address"] = nil
	}
	return p.associate(ctx, tx, c, fip, str(old["port_id"]))
}

// associate validates the association fip asks for (port_id and
// fixed_ip_address) and completes it with the fixed IP and the router
// that reaches it; current is the port it was associated with.
func (p *Plugin) associate(ctx context.Context, tx *store.Tx, c *service.Call, fip resource.Object, current string) error {
	portID, want := str(fip["port_id"]), str(fip["fixed_ip_address"])
	if portID == "" {
		if want != "" {
			return badRequest("floatingip", "fixed_ip_address cannot be specified without a port_id")
		}
		fip["port_id"], fip["fixed_ip_address"], fip["router_id"] = nil, nil, nil
		return nil
	}
	port, err := p.svc.Load(ctx, tx, c, p.ports, portID)
	if err != nil {
		return err
	}
	if !c.IsAdmin() && port["project_id"] != fip["project_id"] {
		return badRequest("floatingip", "Cannot process floating IP association with Port %s, since that port is owned by a different project", portID)
	}
	if port["device_owner"] == ownerDHCP {
		return badRequest("floatingip", "Port %s is unable to be assigned a floating IP", portID)
	}
	var fixed *fixedIP
	if want != "" {
		a, err := parseAddr(want)
		if err != nil || !a.Is4() {
			return badRequest("floatingip", "Cannot process floating IP association with %s, since that is not an IPv4 address", want)
		}
		for _, ip := range fixedIPsOf(port) {
			if ip.Addr == a {
				fixed = &ip
				break
			}
		}
		if fixed == nil {
			return badRequest("floatingip", "Port %s does not have fixed ip %s", portID, want)
		}
	} else {
		var v4 []fixedIP
		for _, ip := range fixedIPsOf(port) {
			if ip.Addr.Is4() {
				v4 = append(v4, ip)
			}
		}
		switch len(v4) {
		case 0:
			return badRequest("floatingip", "Cannot add floating IP to port %s that has no fixed IPv4 addresses", portID)
		case 1:
			fixed = &v4[0]
		default:
			return badRequest("floatingip", "Port %s has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP", portID)
		}
	}
	subnet, err := p.getSubnet(ctx, tx, fixed.SubnetID)
	if err != nil {
		return err
	}
	netID := str(fip["floating_network_id"])
	routerID, err := p.routerForFloatingIP(ctx, tx, port, subnet, netID)
	if err != nil {
		return err
	}
	// Hold the router, then look again: a concurrent removal of its
	// gateway or interface has either committed (and the router no longer
	// qualifies) or waits and then sees this floating IP.
	for tries := 0; ; tries++ {
		if err := p.lockRouter(ctx, tx, routerID); err != nil {
			return err
		}
		again, err := p.routerForFloatingIP(ctx, tx, port, subnet, netID)
		if err != nil {
			return err
		}
		if again == routerID {
			break
		}
		if tries == 3 {
			return fault.Conflict("Conflict", "The routers between port %s and network %s keep changing; try again.", portID, netID)
		}
		routerID = again
	}
	others, err := tx.List(ctx, p.fips, store.Where{"port_id": {portID}, "fixed_ip_address": {fixed.Addr.String()}, "floating_network_id": {netID}})
	if err != nil {
		return err
	}
	for _, o := range others {
		if o["id"] != fip["id"] {
			return fault.Conflict("FloatingIPPortAlreadyAssociated",
				"Cannot associate floating IP %v (%v) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
				fip["floating_ip_address"], fip["id"], portID, fixed.Addr, netID)
		}
	}
	fip["fixed_ip_address"], fip["router_id"] = fixed.Addr.String(), routerID
	return nil
}

// routerForFloatingIP finds the router that connects the fixed IP's subnet
// to the floating network: one with its gateway on that network and an
// interface on the subnet, preferring the one whose interface is the
// subnet's gateway.
func (p *Plugin) routerForFloatingIP(ctx context.Context, tx *store.Tx, port, subnet resource.Object, extNetID string) (string, error) {
	gws, err := tx.List(ctx, p.ports, store.Where{"network_id": {extNetID}, "device_owner": {OwnerRouterGateway}})
	if err != nil {
		return "", err
	}
	withGateway := map[any]bool{}
	for _, g := range gws {
		withGateway[g["device_id"]] = true
	}
	intfs, err := tx.List(ctx, p.ports, store.Where{"network_id": {port["network_id"]}, "device_owner": anyList(interfaceOwners)})
	if err != nil {
		return "", err
	}
	first := ""
	for _, intf := range intfs {
		if !withGateway[intf["device_id"]] {
			continue
		}
		for _, ip := range fixedIPsOf(intf) {
			if ip.SubnetID != subnet["id"] {
				continue
			}
			if ip.Addr.String() == str(subnet["gateway_ip"]) {
				return str(intf["device_id"]), nil
			}
			if first == "" {
				first = str(intf["device_id"])
			}
		}
	}
	if first != "" {
		return first, nil
	}
	return "", fault.NotFound("ExternalGatewayForFloatingIPNotFound",
		"External network %s is not reachable from subnet %v. Therefore, cannot associate Port %v with a Floating IP.",
		extNetID, subnet["id"], port["id"])
}

// fipPostDelete removes the floating port once the floating IP, which
// references it, is gone.
func (p *Plugin) fipPostDelete(ctx context.Context, tx *store.Tx, _ *service.Call, fip resource.Object) error {
	port, err := tx.Get(ctx, p.ports, str(fip["floating_port_id"]))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.deletePort(ctx, tx, port)
}
