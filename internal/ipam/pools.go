package ipam

import (
	"cmp"
	"math/big"
	"net/netip"
	"slices"
)

// Pool is an allocation pool: the inclusive address range Start..End.
type Pool struct {
	Start, End netip.Addr
}

// String formats the pool as Neutron prints an IP range: "start-end".
func (p Pool) String() string { return p.Start.String() + "-" + p.End.String() }

// Contains reports whether a lies in the pool (same family, between Start
// and End inclusive).
func (p Pool) Contains(a netip.Addr) bool {
	a = a.WithZone("")
	return a.Is4() == p.Start.Is4() && p.Start.Compare(a) <= 0 && a.Compare(p.End) <= 0
}

// Size is the number of addresses in the pool (0 if End < Start).
func (p Pool) Size() *big.Int {
	d, ok := p.span()
	if !ok {
		return new(big.Int)
	}
	s, carry := d.add64(1)
	if carry {
		return new(big.Int).Lsh(big.NewInt(1), 128)
	}
	return s.big()
}

// span returns End-Start (size minus one) and whether the pool is well
// formed: both ends valid, of one family, and Start <= End.
func (p Pool) span() (u128, bool) {
	if !p.Start.IsValid() || !p.End.IsValid() || p.Start.Is4() != p.End.Is4() {
		return u128{}, false
	}
	d, borrow := u128From(p.End).sub(u128From(p.Start))
	return d, !borrow
}

// dictString formats the pool the way Neutron prints the request dict it
// could not turn into a range.
func (p Pool) dictString() string {
	return "{'start': '" + p.Start.String() + "', 'end': '" + p.End.String() + "'}"
}

// PrefixSize is the number of addresses in p (2^(bits-len)).
func PrefixSize(p netip.Prefix) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
}

// TotalIPs is the total_ips Neutron's network-ip-availability reports for
// a subnet: the sum of its allocation pool sizes, or the size of the whole
// CIDR when it has no pools. Neutron reports the exact integer however
// large (a /64 pool is 18446744073709551614 addresses; a /48 subnet
// exceeds 64 bits), so the result is a big.Int; encoding/json writes it as
// a JSON number.
func TotalIPs(cidr netip.Prefix, pools []Pool) *big.Int {
	if len(pools) == 0 {
		return PrefixSize(cidr)
	}
	t := new(big.Int)
	for _, p := range pools {
		t.Add(t, p.Size())
	}
	return t
}

// hostRange is the range of addresses Neutron lets allocation pools use:
// IPv4 without the network and broadcast addresses (the whole range for
// /31 and /32), IPv6 without the network (subnet-router anycast) address.
func hostRange(cidr netip.Prefix) (first, last u128) {
	first, last = prefixRange(cidr)
	if cidr.Addr().Is4() {
		if cidr.Bits() <= 30 {
			first, _ = first.add64(1)
			last, _ = last.sub64(1)
		}
		return first, last
	}
	if first != last {
		first, _ = first.add64(1)
	}
	return first, last
}

// DefaultPools returns the allocation pools Neutron generates for a subnet
// without explicit pools: every usable host address (see ValidatePools for
// the range) minus the gateway, so a gateway in the middle splits the
// range in two. A single-address subnet (/32, /128) gets that address as
// its pool whatever the gateway. Pass the zero Addr for no gateway.
func DefaultPools(cidr netip.Prefix, gateway netip.Addr) []Pool {
	cidr = cidr.Masked()
	v := versionOf(cidr.Addr())
	first, last := prefixRange(cidr)
	if first == last {
		a := first.addr(v)
		return []Pool{{a, a}}
	}
	lo, hi := hostRange(cidr)
	if lo.cmp(hi) > 0 {
		return nil
	}
	if !gateway.IsValid() || versionOf(gateway) != v {
		return []Pool{{lo.addr(v), hi.addr(v)}}
	}
	g := u128From(gateway)
	if g.cmp(lo) < 0 || g.cmp(hi) > 0 {
		return []Pool{{lo.addr(v), hi.addr(v)}}
	}
	var out []Pool
	if g.cmp(lo) > 0 {
		end, _ := g.sub64(1)
		out = append(out, Pool{lo.addr(v), end.addr(v)})
	}
	if g.cmp(hi) < 0 {
		start, _ := g.add64(1)
		out = append(out, Pool{start.addr(v), hi.addr(v)})
	}
	return out
}

// ParsePool parses one allocation pool given as start and end strings.
// Bad addresses are attribute-level errors (as Neutron's ip_pools
// validator); a start after the end, or ends of different families, is
// InvalidAllocationPool.
func ParsePool(start, end string) (Pool, error) {
	s, err := ParseIP(start)
	if err != nil {
		return Pool{}, err
	}
	e, err := ParseIP(end)
	if err != nil {
		return Pool{}, err
	}
	p := Pool{s, e}
	if _, ok := p.span(); !ok {
		return Pool{}, newError(TypeInvalidAllocationPool, "The allocation pool %s is not valid.", p.dictString())
	}
	return p, nil
}

// ValidatePools checks user-given allocation pools against the subnet the
// way Neutron does, in Neutron's order:
//
//   - each pool must be well formed (start <= end, one family):
//     InvalidAllocationPool;
//   - each pool must be of the subnet's family (InvalidAllocationPool) and
//     inside the usable range (OutOfBoundsAllocationPool): for IPv4 not the
//     network or broadcast address (except /31, /32), for IPv6 not the
//     network address;
//   - no two pools may overlap (OverlappingAllocationPools, naming the
//     first overlapping pair in input order);
//   - if gateway is valid, no pool may contain it
//     (GatewayConflictWithAllocationPools).
//
// Overlap detection sorts the pools, so it costs O(n log n).
func ValidatePools(pools []Pool, cidr netip.Prefix, gateway netip.Addr) error {
	cidr = cidr.Masked()
	for _, p := range pools {
		if _, ok := p.span(); !ok {
			return newError(TypeInvalidAllocationPool, "The allocation pool %s is not valid.", p.dictString())
		}
	}
	lo, hi := hostRange(cidr)
	for _, p := range pools {
		if p.Start.Is4() != cidr.Addr().Is4() {
			return newError(TypeInvalidAllocationPool, "The allocation pool %s is not valid.", p)
		}
		if u128From(p.Start).cmp(lo) < 0 || u128From(p.End).cmp(hi) > 0 {
			return newError(TypeOutOfBoundsAllocationPool,
				"The allocation pool %s spans beyond the subnet cidr %s.", p, cidr)
		}
	}
	if i, j, ok := firstOverlap(pools); ok {
		return newError(TypeOverlappingAllocationPools,
			"Found overlapping allocation pools: %s %s for subnet %s.", pools[i], pools[j], cidr)
	}
	if gateway.IsValid() {
		for _, p := range pools {
			if p.Contains(gateway) {
				return newError(TypeGatewayConflictWithAllocationPools,
					"Gateway ip %s conflicts with allocation pool %s.", gateway.WithZone(""), p)
			}
		}
	}
	return nil
}

// firstOverlap finds the overlapping pair (i, j), i < j, that comes first
// in input order (smallest i, then smallest j), as Neutron's pairwise loop
// reports, in O(n log n). The smallest index taking part in any overlap is
// that i, and all its partners have larger indexes.
func firstOverlap(pools []Pool) (int, int, bool) {
	n := len(pools)
	if n < 2 {
		return 0, 0, false
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(pools[a].Start.Compare(pools[b].Start), cmp.Compare(a, b))
	})
	overlapping := make([]bool, n)
	var maxEnd netip.Addr
	for k, idx := range order {
		p := pools[idx]
		if k > 0 && p.Start.Compare(maxEnd) <= 0 {
			overlapping[idx] = true
		}
		if k+1 < n && pools[order[k+1]].Start.Compare(p.End) <= 0 {
			overlapping[idx] = true
		}
		if k == 0 || p.End.Compare(maxEnd) > 0 {
			maxEnd = p.End
		}
	}
	i := slices.Index(overlapping, true)
	if i < 0 {
		return 0, 0, false
	}
	for j := i + 1; j < n; j++ {
		if pools[i].Start.Compare(pools[j].End) <= 0 && pools[j].Start.Compare(pools[i].End) <= 0 {
			return i, j, true
		}
	}
	return 0, 0, false // unreachable for well-formed pools
}
