package ipam

import (
	"cmp"
	"iter"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// RandomCandidate picks an address uniformly at random among all addresses
// of all pools (each pool weighted by its size), in O(len(pools)) time and
// without enumerating any pool, so it works for /64 and larger pools. The
// pools should not overlap (an overlapped address would be twice as
// likely); malformed pools are ignored. It returns the zero Addr when there
// is no address to pick.
//
// The caller tries to insert the candidate (the database's unique
// (network, ip) constraint arbitrates races) and falls back to FirstFree
// when random picks keep colliding in a nearly full pool.
func RandomCandidate(pools []Pool, rng *rand.Rand) netip.Addr {
	// total-1 = sum(span_i) + (n-1), where span = size-1 always fits in
	// 128 bits; for non-overlapping pools the total fits too.
	var totalMinus1 u128
	n := 0
	saturated := false
	for _, p := range pools {
		d, ok := p.span()
		if !ok {
			continue
		}
		var c1, c2 bool
		if n > 0 {
			totalMinus1, c1 = totalMinus1.add64(1)
		}
		totalMinus1, c2 = totalMinus1.add(d)
		saturated = saturated || c1 || c2
		n++
	}
	if n == 0 {
		return netip.Addr{}
	}
	if saturated {
		totalMinus1 = ones(128)
	}
	r := uniformUpTo(totalMinus1, rng)
	for _, p := range pools {
		d, ok := p.span()
		if !ok {
			continue
		}
		if r.cmp(d) <= 0 {
			a, _ := u128From(p.Start).add(r)
			return a.addr(versionOf(p.Start))
		}
		r, _ = r.sub(d)
		r, _ = r.sub64(1)
	}
	// Only reachable when overlapping pools saturated the total: fall back
	// to the end of the last usable pool.
	for i := len(pools) - 1; ; i-- {
		if _, ok := pools[i].span(); ok {
			return pools[i].End
		}
	}
}

// uniformUpTo returns a uniformly distributed value in [0, m].
func uniformUpTo(m u128, rng *rand.Rand) u128 {
	if m.hi == 0 {
		if m.lo == ^uint64(0) {
			return u128{lo: rng.Uint64()}
		}
		return u128{lo: rng.Uint64N(m.lo + 1)}
	}
	mask := ^uint64(0) >> bits.LeadingZeros64(m.hi)
	for {
		v := u128{hi: rng.Uint64() & mask, lo: rng.Uint64()}
		if v.cmp(m) <= 0 {
			return v
		}
	}
}

// FirstFree returns the lowest address of the pools that is not allocated.
// allocated yields the addresses already allocated in the subnet in
// ascending order (as a database streams them from an index on SortKey,
// typically starting at the first pool's start); entries outside the pools
// or of the other family are skipped, duplicates are harmless. It reads
// allocated only until the first gap, so its cost is O(allocated entries
// before the gap) plus sorting the pools, never O(subnet size). The second
// result is false when every pool address is taken.
func FirstFree(pools []Pool, allocated iter.Seq[netip.Addr]) (netip.Addr, bool) {
	ps := make([]Pool, 0, len(pools))
	for _, p := range pools {
		if _, ok := p.span(); ok {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return netip.Addr{}, false
	}
	slices.SortFunc(ps, func(a, b Pool) int {
		return cmp.Or(a.Start.Compare(b.Start), a.End.Compare(b.End))
	})
	v4 := ps[0].Start.Is4()
	pi := 0
	c := ps[0].Start
	// advance moves c past an allocated address; false when pools run out.
	advance := func() bool {
		next := c.Next()
		if next.IsValid() && next.Compare(ps[pi].End) <= 0 {
			c = next
			return true
		}
		for pi++; pi < len(ps); pi++ {
			if ps[pi].Start.Is4() != v4 {
				continue
			}
			if !next.IsValid() {
				return false
			}
			if ps[pi].End.Compare(next) >= 0 {
				c = ps[pi].Start
				if c.Compare(next) < 0 { // overlapping pools
					c = next
				}
				return true
			}
		}
		return false
	}
	for a := range allocated {
		a = a.WithZone("")
		if a.Is4() != v4 {
			continue
		}
		switch a.Compare(c) {
		case -1:
			continue
		case 0:
			if !advance() {
				return netip.Addr{}, false
			}
		default:
			return c, true
		}
	}
	return c, true
}
