// Package subnet owns the semantics of subnets: CIDRs given or allocated
// from subnet pools, overlap within a network, gateways and allocation
// pools with their defaults, DNS name servers and host routes with their
// limits, DHCP and IPv6 address modes, the network's subnets list, and the
// in-use checks on update and delete. Address allocation itself belongs
// to package port.
package subnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// ipv6MinMTU is the smallest MTU IPv6 allows (RFC 8200).
const ipv6MinMTU = 1280

// Options configure the subnet semantics and connect them to subnet pools.
type Options struct {
	// AllocatePrefix carves a prefix out of a subnet pool: the requested
	// cidr ("" for any) or one of prefixLen bits (0 for the pool's
	// default). Nil: subnet pools are unavailable.
	AllocatePrefix func(ctx context.Context, tx *store.Tx, c *service.Call, poolID string, ipVersion int, cidr string, prefixLen int) (netip.Prefix, error)
	// DefaultSubnetPool returns the default pool of an IP version, or ""
	// when there is none. Nil: subnet pools are unavailable.
	DefaultSubnetPool func(ctx context.Context, tx *store.Tx, ipVersion int) (poolID string, err error)
	// MaxDNSNameservers and MaxHostRoutes are Neutron's
	// max_dns_nameservers and max_subnet_host_routes (0 = 5 and 20).
	MaxDNSNameservers, MaxHostRoutes int
}

// Plugin carries the subnet semantics.
type Plugin struct {
	svc                  *service.Service
	ports                *port.Plugin
	opts                 Options
	nets, subnets, pools *resource.Resource
}

// Register installs the subnet hooks, and a network hook that keeps the
// network's subnets list. ports is the port plugin whose addresses the
// subnets hand out.
func Register(svc *service.Service, ports *port.Plugin, opts Options) *Plugin {
	if opts.MaxDNSNameservers <= 0 {
		opts.MaxDNSNameservers = ipam.DefaultMaxDNSNameservers
	}
	if opts.MaxHostRoutes <= 0 {
		opts.MaxHostRoutes = ipam.DefaultMaxHostRoutes
	}
	reg := svc.Registry()
	p := &Plugin{svc: svc, ports: ports, opts: opts,
		nets: reg.ByPlural("networks"), subnets: reg.ByPlural("subnets"), pools: reg.ByPlural("subnetpools")}
	svc.SetHooks("subnets", &service.Hooks{
		Facts:       p.facts,
		PreCreate:   p.preCreate,
		PostCreate:  p.postCreate,
		PreUpdate:   p.preUpdate,
		PreDelete:   p.preDelete,
		PostDelete:  p.postDelete,
		Show:        p.show,
		PrepareList: p.prepareList,
	})
	return p
}

// show computes the hidden shared attribute, for filters: as in Neutron,
// a subnet is shared when its network is shared with the caller.
func (p *Plugin) show(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	netID, _ := obj["network_id"].(string)
	shared, _, err := network.Access(ctx, tx, netID, c.Project)
	if err != nil {
		return err
	}
	obj["shared"] = shared
	return nil
}

// facts are those of the subnet's network, except that, as in Neutron, an
// external network does not expose its subnets: only its owner and the
// projects it is shared with see them. A caller who owns the subnet needs
// nothing more, which spares lookups per listed subnet.
func (p *Plugin) facts(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) (policy.Facts, error) {
	net, err := port.FactsNetwork(ctx, tx, p.nets, c, obj)
	if net == nil || err != nil {
		return policy.Facts{}, err
	}
	f, err := network.Facts(ctx, tx, c, net)
	f.External = false
	return f, err
}

// badRequest is Neutron's BadRequest(resource='subnets', msg=...).
func badRequest(format string, args ...any) error {
	return fault.New(http.StatusBadRequest, "BadRequest", "Bad subnets request: %s.", fmt.Sprintf(format, args...))
}

// invalidInput is Neutron's InvalidInput, whose message ends with a full stop.
func invalidInput(format string, args ...any) error {
	return fault.InvalidInput("%s.", fmt.Sprintf(format, args...))
}

func (p *Plugin) preCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	netID, _ := obj["network_id"].(string)
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return service.NotFound(p.nets, netID)
	}
	if err != nil {
		return err
	}
	if !c.IsAdmin() {
		f, err := network.Facts(ctx, tx, c, net)
		if err != nil {
			return err
		}
		if f.NetworkOwner != c.Project {
			if !f.Shared && !f.External {
				return service.NotFound(p.nets, netID)
			}
			return fault.PolicyNotAuthorized("create_subnet")
		}
	}
	version := int(obj["ip_version"].(int64))
	if version != 4 && version != 6 {
		return fault.BadRequest("Invalid input for ip_version. Reason: %d is not in [4, 6].", version)
	}
	enableDHCP, _ := obj["enable_dhcp"].(bool)
	raMode, _ := obj["ipv6_ra_mode"].(string)
	addrMode, _ := obj["ipv6_address_mode"].(string)

	cidrText, hasCIDR := obj["cidr"].(string)
	hasPrefixLen := given["prefixlen"]
	if hasCIDR && hasPrefixLen {
		return badRequest("cidr and prefixlen must not be supplied together")
	}
	var cidr netip.Prefix
	if hasCIDR {
		if cidr, err = ipam.ParseCIDRMasked(cidrText); err != nil {
			return ipam.Fault("cidr", err)
		}
		if err := ipam.ValidateIPVersion("cidr", cidrText, version); err != nil {
			return ipam.Fault("cidr", err)
		}
	}
	poolID, err := p.subnetPoolID(ctx, tx, obj, given, version)
	if err != nil {
		return err
	}
	if poolID == "" && !hasCIDR {
		return badRequest("a subnetpool must be specified in the absence of a cidr")
	}
	if poolID != "" && !hasCIDR && given["allocation_pools"] {
		return badRequest("allocation_pools allowed only for specific subnet requests.")
	}
	// Checks that do not need the CIDR come before a pool hands one out.
	var gateway netip.Addr
	if gw, ok := obj["gateway_ip"].(string); ok {
		if err := ipam.ValidateIPVersion("gateway_ip", gw, version); err != nil {
			return ipam.Fault("gateway_ip", err)
		}
		gateway = netip.MustParseAddr(gw)
	}
	dns, err := p.nameservers(obj, version, "")
	if err != nil {
		return err
	}
	routes, err := p.hostRoutes(obj, version, "")
	if err != nil {
		return err
	}
	if err := ipam.ValidateIPv6Modes(version, raMode, addrMode, enableDHCP, cidr); err != nil {
		return ipam.Fault("ipv6_address_mode", err)
	}
	if poolID != "" {
		prefixLen := 0
		if n, ok := obj["prefixlen"].(int64); ok {
			prefixLen = int(n)
		}
		if p.opts.AllocatePrefix == nil {
			return subnetPoolsUnavailable()
		}
		req := ""
		if hasCIDR {
			req = cidr.String()
		}
		got, err := p.opts.AllocatePrefix(ctx, tx, c, poolID, version, req, prefixLen)
		if err != nil {
			return ipam.Fault("cidr", err)
		}
		if !hasCIDR {
			cidr = got.Masked()
			if err := ipam.ValidateIPv6Modes(version, raMode, addrMode, enableDHCP, cidr); err != nil {
				return ipam.Fault("ipv6_address_mode", err)
			}
		}
		obj["subnetpool_id"] = poolID
	} else {
		obj["subnetpool_id"] = nil
	}
	if err := validateCIDR(cidr, enableDHCP); err != nil {
		return err
	}
	if !given["gateway_ip"] {
		if hasCIDR {
			gateway = ipam.DefaultGateway(cidr)
		} else {
			gateway = ipam.PoolSubnetGateway(cidr)
		}
	} else if gateway.IsValid() {
		if err := ipam.ValidateGateway(cidr, gateway); err != nil {
			return ipam.Fault("gateway_ip", err)
		}
	}
	var pools []ipam.Pool
	if given["allocation_pools"] {
		if pools, err = parsePools(obj["allocation_pools"]); err != nil {
			return err
		}
		if err := ipam.ValidatePools(pools, cidr, gateway); err != nil {
			return ipam.Fault("allocation_pools", err)
		}
	} else {
		pools = ipam.DefaultPools(cidr, gateway)
	}
	if err := p.checkNetwork(ctx, tx, net, cidr, version, poolID); err != nil {
		return err
	}
	obj["cidr"] = cidr.String()
	obj["gateway_ip"] = addrValue(gateway)
	obj["allocation_pools"] = poolsValue(pools)
	obj["dns_nameservers"] = dns
	obj["host_routes"] = routes
	obj["ipv6_ra_mode"], obj["ipv6_address_mode"] = modeValue(raMode), modeValue(addrMode)
	delete(obj, "prefixlen")
	delete(obj, "use_default_subnetpool")
	return nil
}

func subnetPoolsUnavailable() error {
	return badRequest("subnet pools are not available on this server")
}

// subnetPoolID resolves subnetpool_id and use_default_subnetpool.
func (p *Plugin) subnetPoolID(ctx context.Context, tx *store.Tx, obj resource.Object, given map[string]bool, version int) (string, error) {
	poolID, _ := obj["subnetpool_id"].(string)
	useDefault, _ := obj["use_default_subnetpool"].(bool)
	if useDefault && poolID != "" {
		return "", badRequest("subnetpool_id and use_default_subnetpool cannot both be specified")
	}
	if poolID != "" || !useDefault {
		return poolID, nil
	}
	if p.opts.DefaultSubnetPool == nil {
		return "", subnetPoolsUnavailable()
	}
	id, err := p.opts.DefaultSubnetPool(ctx, tx, version)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", badRequest("No default subnetpool found for IPv%d", version)
	}
	return id, nil
}

// validateCIDR applies Neutron's rules on a subnet's CIDR.
func validateCIDR(cidr netip.Prefix, enableDHCP bool) error {
	if cidr.Bits() == 0 {
		return invalidInput("0 is not allowed as CIDR prefix length")
	}
	return ipam.Fault("cidr", ipam.ValidateSubnetCIDR(cidr, enableDHCP, false))
}

// checkNetwork refuses a CIDR that overlaps another subnet of the network,
// a pool different from the one the network's other subnets of the same
// IP version come from, and IPv6 on a network whose MTU is too small.
func (p *Plugin) checkNetwork(ctx context.Context, tx *store.Tx, net resource.Object, cidr netip.Prefix, version int, poolID string) error {
	netID, _ := net["id"].(string)
	others, err := tx.List(ctx, p.subnets, store.Where{"network_id": {netID}})
	if err != nil {
		return err
	}
	for _, o := range others {
		oc, err := netip.ParsePrefix(fmt.Sprint(o["cidr"]))
		if err != nil {
			return fmt.Errorf("subnet %v: stored cidr: %w", o["id"], err)
		}
		if ipam.Overlaps(oc, cidr) {
			// Neutron does not say which subnet overlaps: it may be
			// another project's.
			return invalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet", cidr, netID)
		}
		if oc.Addr().Is4() == (version == 4) {
			op, _ := o["subnetpool_id"].(string)
			if op != poolID {
				return fault.New(http.StatusBadRequest, "NetworkSubnetPoolAffinityError", "Subnets hosted on the same network must be allocated from the same subnet pool.")
			}
		}
	}
	if mtu, ok := net["mtu"].(int64); ok && version == 6 && mtu < ipv6MinMTU {
		return fault.Conflict("NetworkMTUSubnetConflict", "MTU of %s is not valid, subnet requires a minimum of %d", netID, ipv6MinMTU)
	}
	return nil
}

func (p *Plugin) nameservers(obj resource.Object, version int, subnetID string) ([]any, error) {
	var addrs []netip.Addr
	out := []any{}
	for _, e := range listOf(obj["dns_nameservers"]) {
		s, _ := e.(string)
		a, err := ipam.ParseNameserver(s)
		if err != nil {
			return nil, ipam.Fault("dns_nameservers", err)
		}
		addrs = append(addrs, a)
		out = append(out, a.String())
	}
	if err := ipam.ValidateNameservers(addrs, version, p.opts.MaxDNSNameservers, subnetID); err != nil {
		return nil, ipam.Fault("dns_nameservers", err)
	}
	return out, nil
}

func (p *Plugin) hostRoutes(obj resource.Object, version int, subnetID string) ([]any, error) {
	var routes []ipam.HostRoute
	out := []any{}
	for _, e := range listOf(obj["host_routes"]) {
		m, _ := e.(map[string]any)
		dst, _ := m["destination"].(string)
		hop, _ := m["nexthop"].(string)
		r, err := ipam.ParseHostRoute(dst, hop)
		if err != nil {
			return nil, ipam.Fault("host_routes", err)
		}
		routes = append(routes, r)
		out = append(out, map[string]any{"destination": r.Destination.String(), "nexthop": r.NextHop.String()})
	}
	if err := ipam.ValidateHostRoutes(routes, version, p.opts.MaxHostRoutes, subnetID); err != nil {
		return nil, ipam.Fault("host_routes", err)
	}
	return out, nil
}

func parsePools(v any) ([]ipam.Pool, error) {
	var out []ipam.Pool
	for _, e := range listOf(v) {
		m, _ := e.(map[string]any)
		start, _ := m["start"].(string)
		end, _ := m["end"].(string)
		pl, err := ipam.ParsePool(start, end)
		if err != nil {
			return nil, ipam.Fault("allocation_pools", err)
		}
		out = append(out, pl)
	}
	return out, nil
}

func poolsValue(pools []ipam.Pool) []any {
	out := make([]any, 0, len(pools))
	for _, pl := range pools {
		out = append(out, map[string]any{"start": pl.Start.String(), "end": pl.End.String()})
	}
	return out
}

func addrValue(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.String()
}

func modeValue(m string) any {
	if m == "" {
		return nil
	}
	return m
}

func listOf(v any) []any {
	if l, ok := v.([]any); ok && l != nil {
		return l
	}
	return []any{}
}

func (p *Plugin) postCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	if err := p.ports.AddAutoAddresses(ctx, tx, obj); err != nil {
		return err
	}
	return p.updateNetworkSubnets(ctx, tx, obj, true)
}

// updateNetworkSubnets adds the subnet to, or removes it from, its
// network's subnets list.
func (p *Plugin) updateNetworkSubnets(ctx context.Context, tx *store.Tx, subnet resource.Object, add bool) error {
	netID, _ := subnet["network_id"].(string)
	id, _ := subnet["id"].(string)
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var ids []any
	for _, s := range listOf(net["subnets"]) {
		if s != id {
			ids = append(ids, s)
		}
	}
	if add {
		ids = append(ids, id)
	}
	if ids == nil {
		ids = []any{}
	}
	net["subnets"] = ids
	return tx.Update(ctx, p.nets, net)
}

func (p *Plugin) preUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	cur, err := port.SubnetFromObject(old)
	if err != nil {
		return err
	}
	id := cur.ID
	version := cur.IPVersion()
	raMode, _ := old["ipv6_ra_mode"].(string)
	addrMode, _ := old["ipv6_address_mode"].(string)
	if v, ok := changes["enable_dhcp"].(bool); ok {
		if err := ipam.ValidateIPv6DHCPUpdate(v, raMode, addrMode); err != nil {
			return ipam.Fault("enable_dhcp", err)
		}
		if was, _ := old["enable_dhcp"].(bool); v && !was {
			if err := validateCIDR(cur.CIDR, true); err != nil {
				return err
			}
		}
	}
	gateway := cur.Gateway
	if _, ok := changes["gateway_ip"]; ok {
		gateway = netip.Addr{}
		if gw, ok := changes["gateway_ip"].(string); ok {
			if err := ipam.ValidateIPVersion("gateway_ip", gw, version); err != nil {
				return ipam.Fault("gateway_ip", err)
			}
			gateway = netip.MustParseAddr(gw)
			if err := ipam.ValidateGateway(cur.CIDR, gateway); err != nil {
				return ipam.Fault("gateway_ip", err)
			}
		}
		if gateway != cur.Gateway && cur.Gateway.IsValid() {
			holder, owner, err := port.AddressHolder(ctx, tx, cur.NetworkID, cur.Gateway)
			if err != nil {
				return err
			}
			if holder != "" && port.IsRouterPort(owner) {
				return fault.Conflict("GatewayIpInUse", "Current gateway ip %s already in use by port %s. Unable to update.", cur.Gateway, holder)
			}
		}
		obj["gateway_ip"] = addrValue(gateway)
	}
	pools := cur.Pools
	_, poolsGiven := changes["allocation_pools"]
	if poolsGiven {
		if pools, err = parsePools(changes["allocation_pools"]); err != nil {
			return err
		}
		// Like Neutron, new pools may leave out addresses already in use:
		// those ports keep them.
		if err := ipam.ValidatePools(pools, cur.CIDR, netip.Addr{}); err != nil {
			return ipam.Fault("allocation_pools", err)
		}
		obj["allocation_pools"] = poolsValue(pools)
	}
	if gateway.IsValid() && (poolsGiven || gateway != cur.Gateway) {
		if i := slices.IndexFunc(pools, func(pl ipam.Pool) bool { return pl.Contains(gateway) }); i >= 0 {
			return fault.Conflict(ipam.TypeGatewayConflictWithAllocationPools, "Gateway ip %s conflicts with allocation pool %s.", gateway, pools[i])
		}
	}
	if _, ok := changes["dns_nameservers"]; ok {
		if obj["dns_nameservers"], err = p.nameservers(obj, version, id); err != nil {
			return err
		}
	}
	if _, ok := changes["host_routes"]; ok {
		if obj["host_routes"], err = p.hostRoutes(obj, version, id); err != nil {
			return err
		}
	}
	return nil
}

// preDelete refuses to delete a subnet a router interface uses, or, unless
// it is an auto-address subnet, one where ports other than DHCP ports hold
// addresses; then it frees the remaining addresses.
func (p *Plugin) preDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	s, err := port.SubnetFromObject(obj)
	if err != nil {
		return err
	}
	inUse := func() error {
		return fault.Conflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", s.ID)
	}
	holder, err := port.SubnetHolder(ctx, tx, s.ID, port.RouterInterfaceOwners(), true)
	if err != nil {
		return err
	}
	if holder != "" {
		return inUse()
	}
	if !s.AutoAddress() {
		holder, err := port.SubnetHolder(ctx, tx, s.ID, port.AutoDeletedOwners(), false)
		if err != nil {
			return err
		}
		if holder != "" {
			return inUse()
		}
	}
	return p.ports.ReleaseSubnet(ctx, tx, s.ID)
}

func (p *Plugin) postDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.updateNetworkSubnets(ctx, tx, obj, false)
}
