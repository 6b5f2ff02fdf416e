package l3

import (
	"context"
	"errors"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// l3Owners are the device owners of ports only routers and floating IPs
// may remove (Neutron's router_device_owners).
var l3Owners = []string{OwnerRouterInterface, ownerHAReplicatedIntf, OwnerRouterGateway, OwnerFloatingIP}

// ownedByL3 tells whether a port belongs to a router or floating IP that
// still exists.
func (p *Plugin) ownedByL3(ctx context.Context, tx *store.Tx, port resource.Object) (bool, error) {
	owner := str(port["device_owner"])
	if !slices.Contains(l3Owners, owner) {
		return false, nil
	}
	r := p.routers
	if owner == OwnerFloatingIP {
		r = p.fips
	}
	n, err := tx.Count(ctx, r, store.Where{"id": {port["device_id"]}})
	return n > 0, err
}

// portPreDelete keeps the ports API from deleting router and floating IP
// ports, and disassociates the floating IPs of a port that goes.
func (p *Plugin) portPreDelete(ctx context.Context, tx *store.Tx, c *service.Call, port resource.Object) error {
	id := str(port["id"])
	if !releasing(ctx, id) {
		owned, err := p.ownedByL3(ctx, tx, port)
		if err != nil {
			return err
		}
		if owned {
			return fault.Conflict("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %v.", id, port["device_owner"])
		}
	}
	return p.disassociatePort(ctx, tx, c, id)
}

// disassociatePort clears the floating IPs associated with a port.
func (p *Plugin) disassociatePort(ctx context.Context, tx *store.Tx, c *service.Call, portID string) error {
	fips, err := tx.List(ctx, p.fips, store.Where{"port_id": {portID}})
	if err != nil {
		return err
	}
	for _, f := range fips {
		// A project may not undo what an admin set up for another project.
		if !c.IsAdmin() && f["project_id"] != c.Project {
			return fault.Conflict("FipAssociated", "Unable to complete the operation on port %s because the port still has an associated floating IP.", portID)
		}
	}
	for _, f := range fips {
		f["port_id"], f["fixed_ip_address"], f["router_id"] = nil, nil, nil
		if _, err := p.svc.UpdateInTx(ctx, tx, p.fips, f); err != nil {
			return err
		}
	}
	return nil
}

// checkRouterDevice refuses, for non-admins, a router interface port whose
// device_id names another project's router.
func (p *Plugin) checkRouterDevice(ctx context.Context, tx *store.Tx, c *service.Call, port resource.Object) error {
	dev := str(port["device_id"])
	if c.IsAdmin() || dev == "" || !slices.Contains(interfaceOwners, str(port["device_owner"])) {
		return nil
	}
	r, err := tx.Get(ctx, p.routers, dev)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r["project_id"] != port["project_id"] {
		return fault.Conflict("DeviceIDNotOwnedByTenant", "The following device_id %s is not owned by your project or matches another project router.", dev)
	}
	return nil
}

func (p *Plugin) portPreCreate(ctx context.Context, tx *store.Tx, c *service.Call, port resource.Object, _ map[string]bool) error {
	return p.checkRouterDevice(ctx, tx, c, port)
}

// portPreUpdate keeps router and floating IP ports attached to their
// owner, and keeps the fixed IP a floating IP is associated with.
func (p *Plugin) portPreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, port, changes resource.Object) error {
	id := str(old["id"])
	if port["device_owner"] != old["device_owner"] || port["device_id"] != old["device_id"] {
		owned, err := p.ownedByL3(ctx, tx, old)
		if err != nil {
			return err
		}
		if owned {
			return fault.Conflict("PortInUse", "Unable to complete operation on port %s for network %v. Port already has an attached device %v.", id, old["network_id"], old["device_id"])
		}
		if err := p.checkRouterDevice(ctx, tx, c, port); err != nil {
			return err
		}
	}
	if want, ok := changes["fixed_ips"].([]any); ok {
		fips, err := tx.List(ctx, p.fips, store.Where{"port_id": {id}})
		if err != nil {
			return err
		}
		for _, f := range fips {
			internal := str(f["fixed_ip_address"])
			kept := false
			for _, e := range want {
				m, _ := e.(map[string]any)
				if internal == "" || str(m["ip_address"]) == internal {
					kept = true
				}
			}
			if !kept {
				return badRequest("port", "Cannot update the fixed_ips of the port %s, because its original fixed_ip has been associated to a floating ip", id)
			}
		}
	}
	return nil
}

// portPostUpdate keeps a router's external_gateway_info in step with its
// gateway port's addresses when an admin changes them through the ports API.
func (p *Plugin) portPostUpdate(ctx context.Context, tx *store.Tx, _ *service.Call, old, port resource.Object) error {
	if port["device_owner"] != OwnerRouterGateway {
		return nil
	}
	router, err := tx.Get(ctx, p.routers, str(port["device_id"]))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	info, _ := router["external_gateway_info"].(map[string]any)
	if info == nil || router["gw_port_id"] != port["id"] {
		return nil
	}
	ips := fixedIPsValue(fixedIPsOf(port))
	if sameFixedIPs(info["external_fixed_ips"], ips) {
		return nil
	}
	info["external_fixed_ips"] = ips
	_, err = p.svc.UpdateInTx(ctx, tx, p.routers, router)
	return err
}

func sameFixedIPs(a any, b []any) bool {
	l, _ := a.([]any)
	if len(l) != len(b) {
		return false
	}
	for i := range l {
		x, _ := l[i].(map[string]any)
		y, _ := b[i].(map[string]any)
		if x["subnet_id"] != y["subnet_id"] || x["ip_address"] != y["ip_address"] {
			return false
		}
	}
	return true
}

func (p *Plugin) networkPreDelete(ctx context.Context, tx *store.Tx, _ *service.Call, net resource.Object) error {
	return p.DeleteDisassociatedFloatingIPs(ctx, tx, str(net["id"]))
}

// DeleteDisassociatedFloatingIPs deletes the floating IPs of an external
// network that are not associated with a port, with their floating ports:
// Neutron lets such a network be deleted. The network's own delete check
// must run it before it counts the network's ports.
func (p *Plugin) DeleteDisassociatedFloatingIPs(ctx context.Context, tx *store.Tx, netID string) error {
	fips, err := tx.List(ctx, p.fips, store.Where{"floating_network_id": {netID}, "port_id": {nil}})
	if err != nil {
		return err
	}
	for _, f := range fips {
		if _, err := p.svc.DeleteInTx(ctx, tx, p.fips, f); err != nil {
			return err
		}
	}
	return nil
}
