package port

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Random candidates tried before falling back to a gap search: with the
// pool half full the chance that all of them collide is 1 in 256, so the
// search runs only on nearly full pools.
const randomTries = 8

// gapSearchTries bounds how often a free address found by the gap search
// may be taken by a concurrent writer before giving up.
const gapSearchTries = 16

// Subnet is what address allocation needs to know about a stored subnet.
type Subnet struct {
	ID, NetworkID string
	CIDR          netip.Prefix
	// Gateway is the zero Addr when the subnet has no gateway.
	Gateway             netip.Addr
	Pools               []ipam.Pool
	RAMode, AddressMode string
	CreatedAt           string
}

// IPVersion is 4 or 6.
func (s *Subnet) IPVersion() int { return ipam.IPVersion(s.CIDR.Addr()) }

// AutoAddress tells whether ports get their address on this subnet from
// their MAC (SLAAC or DHCPv6-stateless) instead of from the pools.
func (s *Subnet) AutoAddress() bool {
	return s.IPVersion() == 6 && ipam.IsAutoAddressSubnet(s.AddressMode, s.RAMode)
}

// SubnetFromObject reads the address view of a stored subnet document.
func SubnetFromObject(obj resource.Object) (*Subnet, error) {
	s := &Subnet{}
	s.ID, _ = obj["id"].(string)
	s.NetworkID, _ = obj["network_id"].(string)
	s.CreatedAt, _ = obj["created_at"].(string)
	cidr, _ := obj["cidr"].(string)
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("subnet %s: stored cidr %q: %w", s.ID, cidr, err)
	}
	s.CIDR = p.Masked()
	if gw, ok := obj["gateway_ip"].(string); ok && gw != "" {
		if s.Gateway, err = netip.ParseAddr(gw); err != nil {
			return nil, fmt.Errorf("subnet %s: stored gateway %q: %w", s.ID, gw, err)
		}
	}
	pools, _ := obj["allocation_pools"].([]any)
	for _, e := range pools {
		m, _ := e.(map[string]any)
		start, _ := m["start"].(string)
		end, _ := m["end"].(string)
		a, err1 := netip.ParseAddr(start)
		b, err2 := netip.ParseAddr(end)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("subnet %s: stored pool %v: %w", s.ID, m, err)
		}
		s.Pools = append(s.Pools, ipam.Pool{Start: a, End: b})
	}
	s.RAMode, _ = obj["ipv6_ra_mode"].(string)
	s.AddressMode, _ = obj["ipv6_address_mode"].(string)
	return s, nil
}

// NetworkSubnets loads the subnets of a network, oldest first (the order
// in which default allocation tries them).
func (p *Plugin) NetworkSubnets(ctx context.Context, tx *store.Tx, netID string) ([]*Subnet, error) {
	objs, err := tx.List(ctx, p.subnets, store.Where{"network_id": {netID}})
	if err != nil {
		return nil, fmt.Errorf("list subnets of network %s: %w", netID, err)
	}
	out := make([]*Subnet, 0, len(objs))
	for _, o := range objs {
		s, err := SubnetFromObject(o)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b *Subnet) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })
	return out, nil
}

// FixedIP is one address of a port, as its fixed_ips list shows it.
type FixedIP struct {
	SubnetID string
	IP       netip.Addr
}

func (f FixedIP) object() map[string]any {
	return map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IP.String()}
}

func fixedIPsValue(ips []FixedIP) []any {
	out := make([]any, 0, len(ips))
	for _, f := range ips {
		out = append(out, f.object())
	}
	return out
}

// FixedIPsOf reads a port document's fixed_ips.
func FixedIPsOf(port resource.Object) []FixedIP {
	l, _ := port["fixed_ips"].([]any)
	out := make([]FixedIP, 0, len(l))
	for _, e := range l {
		m, _ := e.(map[string]any)
		sid, _ := m["subnet_id"].(string)
		s, _ := m["ip_address"].(string)
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		out = append(out, FixedIP{SubnetID: sid, IP: a})
	}
	return out
}

// request is one address a port asks for: a specific IP on one subnet,
// the EUI-64 address on an auto-address subnet, or any free address of
// the first of several subnets that has one.
type request struct {
	subnets  []*Subnet
	ip       netip.Addr
	eui64    bool
	explicit bool // named in fixed_ips (as opposed to added by default)
}

// wanted is one entry of a fixed_ips request body.
type wanted struct {
	subnetID string
	ip       netip.Addr
	hasIP    bool
}

func parseWanted(fixedIPs []any) ([]wanted, error) {
	out := make([]wanted, 0, len(fixedIPs))
	for _, e := range fixedIPs {
		m, _ := e.(map[string]any)
		w := wanted{}
		w.subnetID, _ = m["subnet_id"].(string)
		if s, ok := m["ip_address"].(string); ok {
			a, err := ipam.ParseIP(s)
			if err != nil {
				return nil, ipam.Fault("fixed_ips", err)
			}
			w.ip, w.hasIP = a, true
		}
		out = append(out, w)
	}
	return out, nil
}

// AllocateIPs gives a stored port its addresses and returns its fixed_ips
// list. fixedIPs is the request body's fixed_ips: nil asks for Neutron's
// default (one IPv4 address, one stateful IPv6 address, and the EUI-64
// address on every SLAAC or DHCPv6-stateless subnet of the network); a
// non-nil list asks for exactly those entries (plus the auto-addresses).
// An explicit ip_address may be any valid host address of its subnet, in
// or out of the allocation pools (a router interface takes the subnet's
// gateway address this way). The port row must exist; allocations are
// removed with it.
func (p *Plugin) AllocateIPs(ctx context.Context, tx *store.Tx, port resource.Object, fixedIPs []any) ([]any, error) {
	netID, _ := port["network_id"].(string)
	subnets, err := p.NetworkSubnets(ctx, tx, netID)
	if err != nil {
		return nil, err
	}
	var reqs []request
	if fixedIPs == nil {
		reqs = defaultRequests(subnets)
	} else {
		ws, err := parseWanted(fixedIPs)
		if err != nil {
			return nil, err
		}
		if reqs, err = p.explicitRequests(ctx, tx, port, subnets, ws); err != nil {
			return nil, err
		}
	}
	reqs = append(reqs, autoRequests(port, subnets, reqs)...)
	got, err := p.allocate(ctx, tx, port, reqs)
	if err != nil {
		return nil, err
	}
	return fixedIPsValue(got), nil
}

// defaultRequests is Neutron's allocation for a port without fixed_ips:
// one address from the IPv4 subnets and one from the stateful IPv6
// subnets, each group tried subnet by subnet.
func defaultRequests(subnets []*Subnet) []request {
	var v4, v6 []*Subnet
	for _, s := range subnets {
		switch {
		case s.IPVersion() == 4:
			v4 = append(v4, s)
		case !s.AutoAddress():
			v6 = append(v6, s)
		}
	}
	var out []request
	for _, group := range [][]*Subnet{v4, v6} {
		if len(group) > 0 {
			out = append(out, request{subnets: group})
		}
	}
	return out
}

// autoRequests adds the EUI-64 address of every auto-address subnet not
// already handled; router interfaces get none (they take explicit ones).
func autoRequests(port resource.Object, subnets []*Subnet, have []request) []request {
	if isRouterInterfaceOrSNAT(deviceOwner(port)) {
		return nil
	}
	handled := map[string]bool{}
	for _, r := range have {
		if len(r.subnets) == 1 {
			handled[r.subnets[0].ID] = true
		}
	}
	var out []request
	for _, s := range subnets {
		if s.AutoAddress() && !handled[s.ID] {
			out = append(out, request{subnets: []*Subnet{s}, eui64: true})
		}
	}
	return out
}

// explicitRequests validates fixed_ips entries as Neutron does and turns
// them into requests.
func (p *Plugin) explicitRequests(ctx context.Context, tx *store.Tx, port resource.Object, subnets []*Subnet, ws []wanted) ([]request, error) {
	netID, _ := port["network_id"].(string)
	owner := deviceOwner(port)
	if len(ws) > 0 && len(subnets) == 0 {
		return nil, fault.InvalidInput("IP allocation requires subnets for network.")
	}
	var out []request
	for _, w := range ws {
		s, err := p.subnetForFixedIP(ctx, tx, netID, owner, subnets, w)
		if err != nil {
			return nil, err
		}
		switch {
		case w.hasIP:
			if s.AutoAddress() && !IsRouterInterface(owner) {
				mac, _ := port["mac_address"].(string)
				if eui, err := eui64(s, mac); err != nil || eui != w.ip {
					return nil, fault.New(http.StatusBadRequest, "AllocationOnAutoAddressSubnet",
						"IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses", w.ip, s.ID)
				}
			}
			out = append(out, request{subnets: []*Subnet{s}, ip: w.ip, explicit: true})
		case isRouterInterfaceOrSNAT(owner) || !s.AutoAddress():
			out = append(out, request{subnets: []*Subnet{s}, explicit: true})
		default:
			// A subnet_id alone on an auto-address subnet gets its EUI-64
			// address from autoRequests.
		}
	}
	return out, nil
}

func (p *Plugin) subnetForFixedIP(ctx context.Context, tx *store.Tx, netID, owner string, subnets []*Subnet, w wanted) (*Subnet, error) {
	if w.subnetID != "" {
		i := slices.IndexFunc(subnets, func(s *Subnet) bool { return s.ID == w.subnetID })
		if i < 0 {
			if _, err := tx.Get(ctx, p.subnets, w.subnetID); errors.Is(err, store.ErrNotFound) {
				return nil, service.NotFound(p.subnets, w.subnetID)
			} else if err != nil {
				return nil, err
			}
			return nil, fault.InvalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s.", netID, w.subnetID)
		}
		s := subnets[i]
		if w.hasIP && !ipam.ValidIPForSubnet(s.CIDR, w.ip, owner) {
			return nil, fault.New(http.StatusBadRequest, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", w.ip)
		}
		return s, nil
	}
	if !w.hasIP {
		return nil, fault.InvalidInput("IP allocation requires subnet_id or ip_address.")
	}
	for _, s := range subnets {
		if ipam.ValidIPForSubnet(s.CIDR, w.ip, owner) {
			return s, nil
		}
	}
	return nil, fault.New(http.StatusBadRequest, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", w.ip)
}

func eui64(s *Subnet, mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("port MAC %q: %w", mac, err)
	}
	return ipam.EUI64(s.CIDR, hw)
}

// allocate claims the requested addresses, specific ones first so that an
// automatic pick cannot take an address another entry asks for.
func (p *Plugin) allocate(ctx context.Context, tx *store.Tx, port resource.Object, reqs []request) ([]FixedIP, error) {
	slices.SortStableFunc(reqs, func(a, b request) int {
		return cmp.Compare(boolRank(!a.ip.IsValid()), boolRank(!b.ip.IsValid()))
	})
	portID, _ := port["id"].(string)
	netID, _ := port["network_id"].(string)
	mac, _ := port["mac_address"].(string)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	out := make([]FixedIP, 0, len(reqs))
	for _, r := range reqs {
		switch {
		case r.ip.IsValid() || r.eui64:
			s := r.subnets[0]
			a := r.ip
			if r.eui64 {
				var err error
				if a, err = eui64(s, mac); err != nil {
					return nil, fmt.Errorf("port %s: %w", portID, err)
				}
			}
			if err := p.claim(ctx, tx, s, portID, a); err != nil {
				return nil, err
			}
			out = append(out, FixedIP{SubnetID: s.ID, IP: a})
		default:
			f, err := p.allocateAny(ctx, tx, netID, portID, r.subnets, rng)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
	}
	return out, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// claim allocates one specific address to the port.
func (p *Plugin) claim(ctx context.Context, tx *store.Tx, s *Subnet, portID string, a netip.Addr) error {
	taken, err := insertAllocation(ctx, tx, s, portID, a)
	if err != nil {
		return err
	}
	if taken {
		return fault.Conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", a, s.ID)
	}
	return nil
}

// allocateAny allocates a free pool address of the first subnet that has
// one, or fails with IpAddressGenerationFailure.
func (p *Plugin) allocateAny(ctx context.Context, tx *store.Tx, netID, portID string, subnets []*Subnet, rng *rand.Rand) (FixedIP, error) {
	for _, s := range subnets {
		a, ok, err := p.allocateFrom(ctx, tx, s, portID, rng)
		if err != nil {
			return FixedIP{}, err
		}
		if ok {
			return FixedIP{SubnetID: s.ID, IP: a}, nil
		}
	}
	return FixedIP{}, fault.Conflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", netID)
}

// allocateFrom picks a free address of the subnet's pools without scanning
// the subnet: random candidates first, each guarded by the allocation
// table's primary key, then a search for the first gap among the allocated
// addresses in address order. It returns false when the pools are full.
func (p *Plugin) allocateFrom(ctx context.Context, tx *store.Tx, s *Subnet, portID string, rng *rand.Rand) (netip.Addr, bool, error) {
	for range randomTries {
		a := ipam.RandomCandidate(s.Pools, rng)
		if !a.IsValid() {
			return netip.Addr{}, false, nil
		}
		taken, err := insertAllocation(ctx, tx, s, portID, a)
		if err != nil {
			return netip.Addr{}, false, err
		}
		if !taken {
			return a, true, nil
		}
	}
	for range gapSearchTries {
		a, ok, err := firstFree(ctx, tx, s)
		if err != nil || !ok {
			return netip.Addr{}, false, err
		}
		taken, err := insertAllocation(ctx, tx, s, portID, a)
		if err != nil {
			return netip.Addr{}, false, err
		}
		if !taken {
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// firstFree finds the lowest free pool address by streaming the subnet's
// allocations in address order from the lowest pool start, stopping at the
// first gap.
func firstFree(ctx context.Context, tx *store.Tx, s *Subnet) (netip.Addr, bool, error) {
	if len(s.Pools) == 0 {
		return netip.Addr{}, false, nil
	}
	low := s.Pools[0].Start
	for _, pl := range s.Pools[1:] {
		if pl.Start.Less(low) {
			low = pl.Start
		}
	}
	rows, err := tx.Query(ctx, `SELECT ip_sort FROM ipallocations WHERE subnet_id = ? AND ip_sort >= ? ORDER BY ip_sort`, s.ID, ipam.SortKey(low))
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("read allocations of subnet %s: %w", s.ID, err)
	}
	defer rows.Close()
	var scanErr error
	allocated := iter.Seq[netip.Addr](func(yield func(netip.Addr) bool) {
		for rows.Next() {
			var key string
			if scanErr = rows.Scan(&key); scanErr != nil {
				return
			}
			a, err := ipam.ParseSortKey(key)
			if err != nil {
				scanErr = err
				return
			}
			if !yield(a) {
				return
			}
		}
		scanErr = rows.Err()
	})
	a, ok := ipam.FirstFree(s.Pools, allocated)
	if scanErr != nil {
		return netip.Addr{}, false, fmt.Errorf("read allocations of subnet %s: %w", s.ID, scanErr)
	}
	return a, ok, nil
}

// insertAllocation records that the port holds address a; taken reports
// that another port already holds it (the primary key arbitrates, also
// between transactions on different server replicas).
func insertAllocation(ctx context.Context, tx *store.Tx, s *Subnet, portID string, a netip.Addr) (taken bool, err error) {
	err = tx.Savepoint(ctx, func() error {
		_, err := tx.Exec(ctx, `INSERT INTO ipallocations (network_id, ip_address, ip_sort, subnet_id, port_id) VALUES (?, ?, ?, ?, ?)`,
			s.NetworkID, a.String(), ipam.SortKey(a), s.ID, portID)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("allocate %s on subnet %s: %w", a, s.ID, err)
	}
	return false, nil
}

// releaseIP frees one address of a port.
func releaseIP(ctx context.Context, tx *store.Tx, netID, portID string, a netip.Addr) error {
	if _, err := tx.Exec(ctx, `DELETE FROM ipallocations WHERE network_id = ? AND ip_address = ? AND port_id = ?`, netID, a.String(), portID); err != nil {
		return fmt.Errorf("release %s of port %s: %w", a, portID, err)
	}
	return nil
}
