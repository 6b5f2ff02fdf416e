// Package port owns the semantics of ports and the store-backed address
// management behind them: MAC addresses unique per network, fixed IPs
// allocated from subnet pools without scanning the subnet (the
// ipallocations table's primary key keeps two ports from sharing an
// address, across server replicas), IPv6 auto-addresses, port security,
// security groups, allowed address pairs, extra DHCP options and port
// binding. Routers, floating IPs and DHCP create their ports through
// svc.CreateInTx, which runs these hooks; subnets use the exported
// allocation helpers.
package port

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Device owners, as neutron-lib names them.
const (
	OwnerDHCP                  = "network:dhcp"
	OwnerDistributed           = "network:distributed"
	OwnerAgentGateway          = "network:floatingip_agent_gateway"
	OwnerRouterInterface       = "network:router_interface"
	OwnerHAReplicatedInterface = "network:ha_router_replicated_interface"
	OwnerDVRInterface          = "network:router_interface_distributed"
	OwnerRouterSNAT            = "network:router_centralized_snat"
	OwnerRouterGateway         = "network:router_gateway"
	OwnerFloatingIP            = "network:floatingip"
	networkOwnerPrefix         = "network:"
)

// Port binding results.
const (
	VIFUnbound       = "unbound"
	VIFBindingFailed = "binding_failed"
)

// Neutron's default max_allowed_address_pair.
const defaultMaxAddressPairs = 10

// macTries bounds the attempts at a MAC not yet used on the network.
const macTries = 16

// IsRouterInterface tells whether owner is one of Neutron's
// ROUTER_INTERFACE_OWNERS.
func IsRouterInterface(owner string) bool {
	switch owner {
	case OwnerRouterInterface, OwnerHAReplicatedInterface, OwnerDVRInterface:
		return true
	}
	return false
}

func isRouterInterfaceOrSNAT(owner string) bool {
	return IsRouterInterface(owner) || owner == OwnerRouterSNAT
}

// IsRouterPort tells whether owner is one of Neutron's ROUTER_PORT_OWNERS.
func IsRouterPort(owner string) bool {
	return isRouterInterfaceOrSNAT(owner) || owner == OwnerRouterGateway
}

// IsAutoDeleted tells whether ports of this owner give way when their
// subnet or network is deleted (Neutron's AUTO_DELETE_PORT_OWNERS).
func IsAutoDeleted(owner string) bool {
	return owner == OwnerDHCP || owner == OwnerDistributed || owner == OwnerAgentGateway
}

// IsNetworkDevice tells whether the port belongs to the network service
// itself (device_owner network:*): such ports get no security groups.
func IsNetworkDevice(owner string) bool { return strings.HasPrefix(owner, networkOwnerPrefix) }

func deviceOwner(port resource.Object) string {
	s, _ := port["device_owner"].(string)
	return s
}

// Options configure the port semantics and connect them to other areas.
type Options struct {
	// BaseMAC is the prefix of generated MAC addresses (Neutron's base_mac).
	BaseMAC string
	// MaxAllowedAddressPairs bounds allowed_address_pairs (0 = Neutron's 10).
	MaxAllowedAddressPairs int
	// DefaultSecurityGroup returns the project's default security group,
	// creating it if needed. Nil: ports get no default group.
	DefaultSecurityGroup func(ctx context.Context, tx *store.Tx, project string) (string, error)
	// CheckSecurityGroups verifies that the groups exist and may be used by
	// the project. Nil: any id is accepted.
	CheckSecurityGroups func(ctx context.Context, tx *store.Tx, c *service.Call, project string, ids []string) error
	// BindPort binds a port whose binding:host_id is set. Nil: every such
	// port is binding_failed.
	BindPort func(ctx context.Context, tx *store.Tx, port resource.Object) (vifType string, vifDetails map[string]any, err error)
}

// Plugin carries the port semantics.
type Plugin struct {
	svc                  *service.Service
	opts                 Options
	nets, subnets, ports *resource.Resource
	maxAddressPairs      int
}

// fixedIPsRequestKey carries the fixed_ips request from PreCreate to
// PostCreate (where the port row exists for the allocations to reference)
// inside the draft document, as the network's draft segment does.
const fixedIPsRequestKey = "_fixed_ips_request"

// Register installs the port hooks.
func Register(svc *service.Service, opts Options) (*Plugin, error) {
	if opts.BaseMAC == "" {
		opts.BaseMAC = ipam.DefaultBaseMAC
	}
	if _, err := ipam.RandomMAC(opts.BaseMAC, rand.New(rand.NewPCG(1, 2))); err != nil {
		return nil, fmt.Errorf("port: base_mac: %w", err)
	}
	reg := svc.Registry()
	p := &Plugin{
		svc: svc, opts: opts,
		nets: reg.ByPlural("networks"), subnets: reg.ByPlural("subnets"), ports: reg.ByPlural("ports"),
		maxAddressPairs: opts.MaxAllowedAddressPairs,
	}
	if p.maxAddressPairs <= 0 {
		p.maxAddressPairs = defaultMaxAddressPairs
	}
	svc.SetHooks("ports", &service.Hooks{
		Facts:       p.facts,
		PreCreate:   p.preCreate,
		PostCreate:  p.postCreate,
		PreUpdate:   p.preUpdate,
		PrepareList: p.prepareList,
	})
	return p, nil
}

// facts tells the policy who owns the port's network.
func (p *Plugin) facts(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) (policy.Facts, error) {
	net, err := FactsNetwork(ctx, tx, p.nets, c, obj)
	if net == nil || err != nil {
		return policy.Facts{}, err
	}
	owner, _ := net["project_id"].(string)
	return policy.Facts{NetworkOwner: owner}, nil
}

// prepareList reads, in one query for the whole list, the owners of the
// networks of the listed ports a non-admin caller does not own, for their
// facts.
func (p *Plugin) prepareList(ctx context.Context, tx *store.Tx, c *service.Call, ports []resource.Object) (service.ListHooks, error) {
	if c.IsAdmin() {
		return service.ListHooks{}, nil // admins see every port without facts
	}
	owned := func(port resource.Object) bool { return c.Project != "" && port["project_id"] == c.Project }
	netIDs := service.DistinctValues(ports, "network_id", func(port resource.Object) bool { return !owned(port) })
	owners, err := tx.Owners(ctx, p.nets, netIDs)
	if err != nil {
		return service.ListHooks{}, err
	}
	// The same facts as facts gives, port by port.
	return service.ListHooks{Facts: func(_ context.Context, _ *store.Tx, _ *service.Call, port resource.Object) (policy.Facts, error) {
		if owned(port) {
			return policy.Facts{}, nil
		}
		id, _ := port["network_id"].(string)
		return policy.Facts{NetworkOwner: owners[id]}, nil // "" when the network is gone
	}}, nil
}

// FactsNetwork returns the network (of the resource nets) of obj, a port
// or a subnet, for the policy facts derived from it; nil when none are
// needed: the caller owns obj, which spares a lookup per listed object, or
// the network is gone.
func FactsNetwork(ctx context.Context, tx *store.Tx, nets *resource.Resource, c *service.Call, obj resource.Object) (resource.Object, error) {
	if c.Project != "" && obj["project_id"] == c.Project {
		return nil, nil
	}
	netID, _ := obj["network_id"].(string)
	net, err := tx.Get(ctx, nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return net, err
}

// loadNetwork returns the port's network as the caller may see it
// (NetworkNotFound otherwise) and whether the caller may act as its owner.
func (p *Plugin) loadNetwork(ctx context.Context, tx *store.Tx, c *service.Call, netID string) (resource.Object, policy.Facts, error) {
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, policy.Facts{}, service.NotFound(p.nets, netID)
	}
	if err != nil {
		return nil, policy.Facts{}, err
	}
	if c.IsAdmin() {
		owner, _ := net["project_id"].(string)
		return net, policy.Facts{NetworkOwner: owner}, nil
	}
	f, err := network.Facts(ctx, tx, c, net)
	if err != nil {
		return nil, f, err
	}
	if f.NetworkOwner != c.Project && !f.Shared && !f.External {
		return nil, f, service.NotFound(p.nets, netID)
	}
	return net, f, nil
}

func actsAsNetworkOwner(c *service.Call, f policy.Facts) bool {
	return c.IsAdmin() || (c.Project != "" && f.NetworkOwner == c.Project)
}

// checkOwnerAttrs refuses what only the network's owner may set on a port
// (Neutron's create_port:* and update_port:* attribute rules).
func checkOwnerAttrs(action string, body resource.Object) error {
	deny := func(attr string) error { return fault.PolicyNotAuthorized(action + "_port:" + attr) }
	if _, ok := body["mac_address"]; ok {
		return deny("mac_address")
	}
	if _, ok := body["port_security_enabled"]; ok {
		return deny("port_security_enabled")
	}
	if pairs, _ := body["allowed_address_pairs"].([]any); len(pairs) > 0 {
		return deny("allowed_address_pairs")
	}
	if IsNetworkDevice(deviceOwner(body)) {
		return deny("device_owner")
	}
	if fixed, ok := body["fixed_ips"].([]any); ok {
		if action == "update" {
			return deny("fixed_ips")
		}
		for _, e := range fixed {
			if m, _ := e.(map[string]any); m != nil {
				if _, ok := m["ip_address"]; ok {
					return deny("fixed_ips:ip_address")
				}
			}
		}
	}
	return nil
}

func (p *Plugin) preCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	netID, _ := obj["network_id"].(string)
	net, f, err := p.loadNetwork(ctx, tx, c, netID)
	if err != nil {
		return err
	}
	if !actsAsNetworkOwner(c, f) {
		if !f.Shared {
			return fault.PolicyNotAuthorized("create_port")
		}
		body := resource.Object{}
		for k := range given {
			body[k] = obj[k]
		}
		if err := checkOwnerAttrs("create", body); err != nil {
			return err
		}
	}
	if err := p.assignMAC(ctx, tx, netID, obj); err != nil {
		return err
	}
	obj["status"] = "DOWN"
	if !given["port_security_enabled"] {
		psec, ok := net["port_security_enabled"].(bool)
		obj["port_security_enabled"] = psec || !ok
	}
	if err := p.checkPairs(obj, true); err != nil {
		return err
	}
	if err := p.checkSecurityGroups(ctx, tx, c, obj, given["security_groups"], true); err != nil {
		return err
	}
	opts, err := mergeDHCPOpts(nil, listOf(obj["extra_dhcp_opts"]))
	if err != nil {
		return err
	}
	obj["extra_dhcp_opts"] = opts
	if given["fixed_ips"] {
		obj[fixedIPsRequestKey] = listOf(obj["fixed_ips"])
	}
	obj["fixed_ips"] = []any{}
	return nil
}

func (p *Plugin) postCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	var requested []any
	if r, ok := obj[fixedIPsRequestKey]; ok {
		requested = listOf(r)
		delete(obj, fixedIPsRequestKey)
	}
	fixed, err := p.AllocateIPs(ctx, tx, obj, requested)
	if err != nil {
		return err
	}
	obj["fixed_ips"] = fixed
	if err := p.bind(ctx, tx, obj); err != nil {
		return err
	}
	return tx.Rewrite(ctx, p.ports, obj)
}

// listOf returns v as a list that is never nil.
func listOf(v any) []any {
	if l, ok := v.([]any); ok && l != nil {
		return l
	}
	return []any{}
}

// assignMAC reserves the requested MAC on the network, or generates one
// from the base MAC that no port of the network uses.
func (p *Plugin) assignMAC(ctx context.Context, tx *store.Tx, netID string, obj resource.Object) error {
	if mac, _ := obj["mac_address"].(string); mac != "" {
		return p.reserveMAC(ctx, tx, netID, mac)
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for range macTries {
		hw, err := ipam.RandomMAC(p.opts.BaseMAC, rng)
		if err != nil {
			return fmt.Errorf("generate MAC: %w", err)
		}
		err = p.reserveMAC(ctx, tx, netID, hw.String())
		if fe, ok := fault.As(err); ok && fe.Type == "MacAddressInUse" {
			continue
		}
		if err != nil {
			return err
		}
		obj["mac_address"] = hw.String()
		return nil
	}
	return fault.New(http.StatusServiceUnavailable, "MacAddressGenerationFailure", "Unable to generate unique mac on network %s.", netID)
}

// reserveMAC fails with MacAddressInUse when a port of the network uses
// mac. It probes the ports table's (network_id, mac_address) unique key
// with a placeholder row inside a savepoint instead of reading: the key
// also sees ports that concurrent transactions are creating (PostgreSQL
// makes the probe wait for them), so two requests cannot both take a MAC.
func (p *Plugin) reserveMAC(ctx context.Context, tx *store.Tx, netID, mac string) error {
	probe := service.NewID()
	err := tx.Savepoint(ctx, func() error {
		if _, err := tx.Exec(ctx, `INSERT INTO ports (id, network_id, mac_address, data) VALUES (?, ?, ?, '{}')`, probe, netID, mac); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM ports WHERE id = ?`, probe)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return fault.Conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", netID, mac)
	}
	if err != nil {
		return fmt.Errorf("check MAC %s on network %s: %w", mac, netID, err)
	}
	return nil
}

// checkSecurityGroups applies port security to the port's groups: with
// port security on, a port gets its project's default group unless it
// names its own or belongs to the network service; with it off, it may
// have none.
func (p *Plugin) checkSecurityGroups(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given, creating bool) error {
	psec, _ := obj["port_security_enabled"].(bool)
	groups := listOf(obj["security_groups"])
	project, _ := obj["project_id"].(string)
	if !psec {
		if given && len(groups) > 0 {
			return fault.New(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups",
				"Port security must be enabled and port must have an IP address in order to use security groups.")
		}
		if !given && len(groups) > 0 {
			return fault.Conflict("PortSecurityPortHasSecurityGroup",
				"Port has security group associated. Cannot disable port security or IP address until security group is removed.")
		}
		obj["security_groups"] = []any{}
		return nil
	}
	if !given {
		if creating {
			obj["security_groups"] = []any{}
			if !IsNetworkDevice(deviceOwner(obj)) && p.opts.DefaultSecurityGroup != nil {
				id, err := p.opts.DefaultSecurityGroup(ctx, tx, project)
				if err != nil {
					return err
				}
				obj["security_groups"] = []any{id}
			}
		}
		return nil
	}
	obj["security_groups"] = groups
	if p.opts.CheckSecurityGroups != nil && len(groups) > 0 {
		ids := make([]string, 0, len(groups))
		for _, g := range groups {
			ids = append(ids, fmt.Sprint(g))
		}
		return p.opts.CheckSecurityGroups(ctx, tx, c, project, ids)
	}
	return nil
}

// bind records the port's binding: unbound without a host, else what
// BindPort decides.
func (p *Plugin) bind(ctx context.Context, tx *store.Tx, obj resource.Object) error {
	host, _ := obj["binding:host_id"].(string)
	vifType, details := VIFUnbound, map[string]any{}
	switch {
	case host == "":
	case p.opts.BindPort == nil:
		vifType = VIFBindingFailed
	default:
		vt, vd, err := p.opts.BindPort(ctx, tx, obj)
		if err != nil {
			return err
		}
		vifType = vt
		if vd != nil {
			details = vd
		}
	}
	obj["binding:vif_type"], obj["binding:vif_details"] = vifType, details
	return nil
}

func isBound(obj resource.Object) bool {
	vt, _ := obj["binding:vif_type"].(string)
	return vt != "" && vt != VIFUnbound && vt != VIFBindingFailed
}

func (p *Plugin) preUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	netID, _ := obj["network_id"].(string)
	portID, _ := obj["id"].(string)
	if !c.IsAdmin() {
		_, f, err := p.loadNetwork(ctx, tx, c, netID)
		if err != nil {
			return err
		}
		if !actsAsNetworkOwner(c, f) {
			if err := checkOwnerAttrs("update", changes); err != nil {
				return err
			}
		}
	}
	owner := deviceOwner(obj)
	macChanged := false
	if mac, ok := changes["mac_address"].(string); ok && mac != old["mac_address"] {
		macChanged = true
		if IsNetworkDevice(owner) {
			return fault.Conflict("UnsupportedPortDeviceOwner", "Operation mac address update is not supported for device_owner %s on port %s.", owner, portID)
		}
		if isBound(old) {
			return fault.Conflict("PortBound", "Unable to complete operation on port %s, port is already bound, port type: %v, old_mac %v, new_mac %s.", portID, old["binding:vif_type"], old["mac_address"], mac)
		}
		if err := p.reserveMAC(ctx, tx, netID, mac); err != nil {
			return err
		}
	}
	if requested, ok := changes["fixed_ips"]; ok || macChanged {
		var req []any
		if ok {
			req = listOf(requested)
		}
		fixed, err := p.updateIPs(ctx, tx, old, obj, req, macChanged)
		if err != nil {
			return err
		}
		obj["fixed_ips"] = fixed
	}
	_, pairsGiven := changes["allowed_address_pairs"]
	if err := p.checkPairs(obj, pairsGiven); err != nil {
		return err
	}
	_, sgGiven := changes["security_groups"]
	if _, psecGiven := changes["port_security_enabled"]; sgGiven || psecGiven {
		if err := p.checkSecurityGroups(ctx, tx, c, obj, sgGiven, false); err != nil {
			return err
		}
	}
	if v, ok := changes["extra_dhcp_opts"]; ok {
		opts, err := mergeDHCPOpts(listOf(old["extra_dhcp_opts"]), listOf(v))
		if err != nil {
			return err
		}
		obj["extra_dhcp_opts"] = opts
	}
	_, hostGiven := changes["binding:host_id"]
	_, vnicGiven := changes["binding:vnic_type"]
	_, profileGiven := changes["binding:profile"]
	if hostGiven || vnicGiven || profileGiven || macChanged {
		return p.bind(ctx, tx, obj)
	}
	return nil
}
