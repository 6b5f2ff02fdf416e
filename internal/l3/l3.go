// Package l3 owns routers and floating IPs as the API and the store see
// them (router, extraroute, extraroute-atomic and ext-gw-mode extensions):
// a router's external gateway and its gateway port, its interfaces
// (router_interface ports added by subnet or by port), its extra routes,
// floating IPs with their floating port and their association to a fixed
// port through a router, and the guards that keep the ports API from
// deleting or repurposing the ports routers and floating IPs own. The
// dataplane is not here.
package l3

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Device owners of the ports routers and floating IPs own, as Neutron
// names them.
const (
	OwnerRouterInterface     = "network:router_interface"
	OwnerRouterGateway       = "network:router_gateway"
	OwnerFloatingIP          = "network:floatingip"
	ownerHAReplicatedIntf    = "network:ha_router_replicated_interface"
	ownerRouterIntfDistribut = "network:router_interface_distributed"
	ownerDHCP                = "network:dhcp"
)

// interfaceOwners are the device owners of a router's internal
// interfaces (Neutron's ROUTER_INTERFACE_OWNERS).
var interfaceOwners = []string{OwnerRouterInterface, ownerHAReplicatedIntf, ownerRouterIntfDistribut}

// maxRoutes is Neutron's default router_route quota: extra routes per router.
const maxRoutes = 30

// NetworkAccess tells whether a network is shared with (access_as_shared)
// or external to (access_as_external) a project; the network area
// provides it.
type NetworkAccess func(ctx context.Context, tx *store.Tx, netID, project string) (shared, external bool, err error)

// Plugin carries the router and floating IP semantics.
type Plugin struct {
	svc    *service.Service
	access NetworkAccess

	routers, fips, ports, subnets, nets, rbac *resource.Resource
}

// Register installs the router and floating IP hooks, the router member
// actions, and the guards on ports and networks.
func Register(svc *service.Service, access NetworkAccess) *Plugin {
	reg := svc.Registry()
	p := &Plugin{
		svc: svc, access: access,
		routers: reg.ByPlural("routers"), fips: reg.ByPlural("floatingips"),
		ports: reg.ByPlural("ports"), subnets: reg.ByPlural("subnets"),
		nets: reg.ByPlural("networks"), rbac: reg.ByPlural("rbac-policies"),
	}
	svc.SetHooks("routers", &service.Hooks{
		PreCreate: p.routerPreCreate,
		PreUpdate: p.routerPreUpdate,
		PreDelete: p.routerPreDelete,
		Actions: map[string]service.Action{
			"add_router_interface":    p.addInterface,
			"remove_router_interface": p.removeInterface,
			"add_extraroutes":         p.addExtraRoutes,
			"remove_extraroutes":      p.removeExtraRoutes,
		},
	})
	svc.SetHooks("floatingips", &service.Hooks{
		PreCreate:  p.fipPreCreate,
		PreUpdate:  p.fipPreUpdate,
		PostDelete: p.fipPostDelete,
	})
	svc.SetHooks("ports", &service.Hooks{
		PreCreate:  p.portPreCreate,
		PreUpdate:  p.portPreUpdate,
		PostUpdate: p.portPostUpdate,
		PreDelete:  p.portPreDelete,
	})
	svc.SetHooks("networks", &service.Hooks{
		PreDelete: p.networkPreDelete,
	})
	return p
}

// releaseKey marks, in a context, the port l3 itself is removing, so the
// ports guard lets that one deletion through.
type releaseKey struct{}

// deletePort removes a port l3 owns, with all the ports hooks.
func (p *Plugin) deletePort(ctx context.Context, tx *store.Tx, port resource.Object) error {
	ctx = context.WithValue(ctx, releaseKey{}, port["id"])
	if _, err := p.svc.DeleteInTx(ctx, tx, p.ports, port); err != nil {
		return fmt.Errorf("delete port %v: %w", port["id"], err)
	}
	return nil
}

// releasing reports whether l3 itself is deleting the port.
func releasing(ctx context.Context, portID any) bool {
	id := ctx.Value(releaseKey{})
	return id != nil && id == portID
}

// lockRouter holds the router's row until the transaction ends, so that
// changes to a router's gateway, interfaces and routes, and the floating
// IPs routed through it, are checked one after another even on several
// server replicas (PostgreSQL: a later statement sees what the holder
// committed; SQLite runs write transactions one at a time anyway).
func (p *Plugin) lockRouter(ctx context.Context, tx *store.Tx, id string) error {
	if _, err := tx.Exec(ctx, "UPDATE routers SET revision_number = revision_number WHERE id = ?", id); err != nil {
		return fmt.Errorf("lock router %s: %w", id, err)
	}
	return nil
}

// createPort creates a port on behalf of l3, with all the ports hooks (IPAM).
func (p *Plugin) createPort(ctx context.Context, tx *store.Tx, project string, body map[string]any) (resource.Object, error) {
	port, _, err := p.svc.CreateInTx(ctx, tx, p.ports, project, body)
	return port, err
}

// badRequest is Neutron's BadRequest for a resource ("Bad router request: …").
func badRequest(res, format string, args ...any) *fault.Error {
	return fault.New(400, "BadRequest", "Bad %s request: %s.", res, fmt.Sprintf(format, args...))
}

// fixedIP is one entry of a port's fixed_ips.
type fixedIP struct {
	SubnetID string
	Addr     netip.Addr
}

// fixedIPsOf reads a port's fixed_ips; entries without a valid address
// (not allocated yet) are skipped.
func fixedIPsOf(port resource.Object) []fixedIP {
	l, _ := port["fixed_ips"].([]any)
	out := make([]fixedIP, 0, len(l))
	for _, e := range l {
		m, _ := e.(map[string]any)
		s, _ := m["ip_address"].(string)
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		sub, _ := m["subnet_id"].(string)
		out = append(out, fixedIP{SubnetID: sub, Addr: a})
	}
	return out
}

// fixedIPsValue renders fixed IPs as the API shows them.
func fixedIPsValue(ips []fixedIP) []any {
	out := make([]any, 0, len(ips))
	for _, ip := range ips {
		out = append(out, map[string]any{"subnet_id": ip.SubnetID, "ip_address": ip.Addr.String()})
	}
	return out
}

// subnetIDsOf lists the subnets a port has addresses on, in order, once each.
func subnetIDsOf(port resource.Object) []string {
	var out []string
	for _, ip := range fixedIPsOf(port) {
		if !slices.Contains(out, ip.SubnetID) {
			out = append(out, ip.SubnetID)
		}
	}
	return out
}

// parseAddr parses a stored address value.
func parseAddr(v any) (netip.Addr, error) { return netip.ParseAddr(str(v)) }

func str(v any) string {
	s, _ := v.(string)
	return s
}

// subnetCIDR parses a subnet's cidr; the zero prefix if it has none.
func subnetCIDR(subnet resource.Object) netip.Prefix {
	p, err := netip.ParsePrefix(str(subnet["cidr"]))
	if err != nil {
		return netip.Prefix{}
	}
	return p.Masked()
}

// getSubnet loads a subnet regardless of the caller (server-side lookups).
func (p *Plugin) getSubnet(ctx context.Context, tx *store.Tx, id string) (resource.Object, error) {
	s, err := tx.Get(ctx, p.subnets, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, service.NotFound(p.subnets, id)
	}
	return s, err
}

// getNetwork loads a network regardless of the caller.
func (p *Plugin) getNetwork(ctx context.Context, tx *store.Tx, id string) (resource.Object, error) {
	n, err := tx.Get(ctx, p.nets, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, service.NotFound(p.nets, id)
	}
	return n, err
}

// externalNetwork loads the network a router gateway or floating IP of
// project is to use and tells whether it is external to project. A
// network the caller may not see is reported missing (404). Non-admin
// callers act in their own project, so one RBAC lookup answers both.
func (p *Plugin) externalNetwork(ctx context.Context, tx *store.Tx, c *service.Call, netID, project string) (resource.Object, bool, error) {
	net, err := p.getNetwork(ctx, tx, netID)
	if err != nil {
		return nil, false, err
	}
	shared, external, err := p.access(ctx, tx, netID, project)
	if err != nil {
		return nil, false, err
	}
	if !c.IsAdmin() && net["project_id"] != c.Project && !shared && !external {
		return nil, false, service.NotFound(p.nets, netID)
	}
	return net, external, nil
}

// networkSubnets lists the subnets of a network.
func (p *Plugin) networkSubnets(ctx context.Context, tx *store.Tx, netID string) ([]resource.Object, error) {
	return tx.List(ctx, p.subnets, store.Where{"network_id": {netID}})
}

// routerPorts lists the ports a router owns with one of the given device
// owners (all of its ports if none are given).
func (p *Plugin) routerPorts(ctx context.Context, tx *store.Tx, routerID string, owners ...string) ([]resource.Object, error) {
	w := store.Where{"device_id": {routerID}}
	if len(owners) > 0 {
		w["device_owner"] = anyList(owners)
	}
	return tx.List(ctx, p.ports, w)
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
