package ipam

import (
	"math/bits"
	"net/netip"
	"slices"
)

// PrefixLens are a subnet pool's min_prefixlen, max_prefixlen and
// default_prefixlen.
type PrefixLens struct {
	Min, Max, Default int
}

// ResolvePrefixLens fills in a subnet pool's unset prefix lengths (nil)
// with Neutron's defaults — min 8 (IPv4) or 64 (IPv6), max 32 or 128,
// default equal to min — and validates the result with ValidatePrefixLens.
func ResolvePrefixLens(ipVersion int, minLen, maxLen, defaultLen *int) (PrefixLens, error) {
	l := PrefixLens{Min: 8, Max: 32}
	if ipVersion == 6 {
		l = PrefixLens{Min: 64, Max: 128}
	}
	if minLen != nil {
		l.Min = *minLen
	}
	if maxLen != nil {
		l.Max = *maxLen
	}
	l.Default = l.Min
	if defaultLen != nil {
		l.Default = *defaultLen
	}
	return l, ValidatePrefixLens(ipVersion, l)
}

// ValidatePrefixLens checks a subnet pool's prefix lengths in Neutron's
// order: min >= 0 (UnsupportedMinSubnetPoolPrefix), min <= max, max <= the
// family's address length, min <= default <= max (all
// IllegalSubnetPoolPrefixBounds).
func ValidatePrefixLens(ipVersion int, l PrefixLens) error {
	bound := func(t string, n int, bt string, bn int) error {
		return newError(TypeIllegalSubnetPoolPrefixBounds, "Illegal prefix bounds: %s=%d, %s=%d.", t, n, bt, bn)
	}
	if l.Min < 0 {
		return newError(TypeUnsupportedMinSubnetPoolPrefix, "Prefix '%d' not supported in IPv%d pool.", l.Min, ipVersion)
	}
	if l.Min > l.Max {
		return bound("min_prefixlen", l.Min, "max_prefixlen", l.Max)
	}
	maxBits := 32
	if ipVersion == 6 {
		maxBits = 128
	}
	if l.Max > maxBits {
		return bound("max_prefixlen", l.Max, "ip_version_max", maxBits)
	}
	if l.Default < l.Min {
		return bound("default_prefixlen", l.Default, "min_prefixlen", l.Min)
	}
	if l.Default > l.Max {
		return bound("default_prefixlen", l.Default, "max_prefixlen", l.Max)
	}
	return nil
}

// ValidateRequestedPrefixLen checks the prefix length of a subnet
// requested from a pool (MaxPrefixSubnetAllocationError,
// MinPrefixSubnetAllocationError).
func ValidateRequestedPrefixLen(prefixLen int, l PrefixLens) error {
	if prefixLen > l.Max {
		return newError(TypeMaxPrefixSubnetAllocationError,
			"Unable to allocate subnet with prefix length %d, maximum allowed prefix is %d.", prefixLen, l.Max)
	}
	if prefixLen < l.Min {
		return newError(TypeMinPrefixSubnetAllocationError,
			"Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d.", prefixLen, l.Min)
	}
	return nil
}

// span128 is an inclusive integer range of addresses.
type span128 struct{ lo, hi u128 }

// mergedRanges turns prefixes of one family into sorted, disjoint,
// non-adjacent ranges; prefixes of the other family are dropped.
func mergedRanges(prefixes []netip.Prefix, v4 bool) []span128 {
	rs := make([]span128, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() || p.Addr().Is4() != v4 {
			continue
		}
		f, l := prefixRange(p)
		rs = append(rs, span128{f, l})
	}
	slices.SortFunc(rs, func(a, b span128) int { return a.lo.cmp(b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			next, carry := last.hi.add64(1)
			if carry || r.lo.cmp(next) <= 0 {
				if r.hi.cmp(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// subtract returns the parts of the sorted disjoint ranges a not covered
// by the sorted disjoint ranges b, in O(len(a)+len(b)).
func subtract(a, b []span128) []span128 {
	var out []span128
	j := 0
	for _, r := range a {
		lo := r.lo
		done := false
		for j < len(b) && b[j].hi.cmp(lo) < 0 {
			j++
		}
		for k := j; k < len(b) && b[k].lo.cmp(r.hi) <= 0; k++ {
			if b[k].lo.cmp(lo) > 0 {
				end, _ := b[k].lo.sub64(1)
				out = append(out, span128{lo, end})
			}
			next, carry := b[k].hi.add64(1)
			if carry || next.cmp(r.hi) > 0 {
				done = true
				break
			}
			lo = next
		}
		if !done {
			out = append(out, span128{lo, r.hi})
		}
	}
	return out
}

// poolFamily checks a subnet pool's prefix list: not empty
// (EmptySubnetPoolPrefixList), one family (PrefixVersionMismatch).
func poolFamily(prefixes []netip.Prefix) (v4 bool, err error) {
	if len(prefixes) == 0 {
		return false, newError(TypeEmptySubnetPoolPrefixList, "Empty subnet pool prefix list.")
	}
	v4 = prefixes[0].Addr().Is4()
	for _, p := range prefixes[1:] {
		if p.Addr().Is4() != v4 {
			return false, newError(TypePrefixVersionMismatch, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
	}
	return v4, nil
}

func freeRanges(poolPrefixes, used []netip.Prefix) ([]span128, bool, error) {
	v4, err := poolFamily(poolPrefixes)
	if err != nil {
		return nil, false, err
	}
	return subtract(mergedRanges(poolPrefixes, v4), mergedRanges(used, v4)), v4, nil
}

func insufficient(prefixLen int) error {
	return newError(TypeSubnetAllocationError,
		"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /%d.", prefixLen)
}

func family(v4 bool) (version, bitLen int) {
	if v4 {
		return 4, 32
	}
	return 6, 128
}

// NextFreePrefix returns the lowest-addressed prefix of length prefixLen
// that lies inside the pool's prefixes (adjacent pool prefixes count as
// one block, as Neutron compacts them) and overlaps none of used. It works
// on ranges — sorting and merging the pool and used prefixes and stepping
// over used blocks — so its cost is O((pool+used) log(pool+used)) whatever
// the pool size. When nothing fits it returns SubnetAllocationError
// "Insufficient prefix space to allocate subnet size /N".
//
// Neutron itself picks best fit rather than first fit; see BestFitPrefix.
func NextFreePrefix(poolPrefixes []netip.Prefix, used []netip.Prefix, prefixLen int) (netip.Prefix, error) {
	free, v4, err := freeRanges(poolPrefixes, used)
	if err != nil {
		return netip.Prefix{}, err
	}
	version, bitLen := family(v4)
	if prefixLen < 0 || prefixLen > bitLen {
		return netip.Prefix{}, insufficient(prefixLen)
	}
	mask := ones(bitLen - prefixLen) // block size - 1
	for _, r := range free {
		start, carry := r.lo.add(mask)
		if carry {
			continue
		}
		start = start.and(mask.not())
		end := start.or(mask)
		if start.cmp(r.lo) >= 0 && end.cmp(r.hi) <= 0 {
			return netip.PrefixFrom(start.addr(version), prefixLen), nil
		}
	}
	return netip.Prefix{}, insufficient(prefixLen)
}

// BestFitPrefix chooses a prefix of length prefixLen exactly as Neutron's
// subnet allocator does: split the free space (pool prefixes minus used)
// into maximal CIDR blocks, take the smallest block that can hold the
// request (lowest address among equals), and return its first prefixLen
// subnet. This keeps big blocks whole. Cost as NextFreePrefix, plus at most
// 2*128 blocks per free range.
func BestFitPrefix(poolPrefixes []netip.Prefix, used []netip.Prefix, prefixLen int) (netip.Prefix, error) {
	free, v4, err := freeRanges(poolPrefixes, used)
	if err != nil {
		return netip.Prefix{}, err
	}
	version, bitLen := family(v4)
	if prefixLen < 0 || prefixLen > bitLen {
		return netip.Prefix{}, insufficient(prefixLen)
	}
	best := netip.Prefix{}
	for _, r := range free {
		for _, c := range rangeCIDRs(r, bitLen) {
			if c.bits <= prefixLen && (!best.IsValid() || c.bits > best.Bits()) {
				best = netip.PrefixFrom(c.lo.addr(version), c.bits)
			}
		}
	}
	if !best.IsValid() {
		return netip.Prefix{}, insufficient(prefixLen)
	}
	return netip.PrefixFrom(best.Addr(), prefixLen), nil
}

// CheckSpecificPrefix checks that a specifically requested subnet lies
// wholly in the pool's free space (pool prefixes minus used), as Neutron
// does for a subnet with a cidr and a subnetpool_id. Failure is
// SubnetAllocationError "Cannot allocate requested subnet from the
// available set of prefixes".
func CheckSpecificPrefix(poolPrefixes []netip.Prefix, used []netip.Prefix, want netip.Prefix) error {
	free, v4, err := freeRanges(poolPrefixes, used)
	if err != nil {
		return err
	}
	if want.IsValid() && want.Addr().Is4() == v4 {
		f, l := prefixRange(want)
		i, _ := slices.BinarySearchFunc(free, f, func(r span128, t u128) int {
			return r.hi.cmp(t)
		})
		if i < len(free) && free[i].lo.cmp(f) <= 0 && l.cmp(free[i].hi) <= 0 {
			return nil
		}
	}
	return newError(TypeSubnetAllocationError,
		"Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes.")
}

// CompactPrefixes merges overlapping and adjacent prefixes into the
// smallest equivalent sorted list of CIDRs (IPv4 first), as Neutron stores
// a subnet pool's prefixes.
func CompactPrefixes(prefixes []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, v4 := range []bool{true, false} {
		version, bitLen := family(v4)
		for _, r := range mergedRanges(prefixes, v4) {
			for _, c := range rangeCIDRs(r, bitLen) {
				out = append(out, netip.PrefixFrom(c.lo.addr(version), c.bits))
			}
		}
	}
	return out
}

type cidr128 struct {
	lo   u128
	bits int
}

// rangeCIDRs splits an inclusive range into maximal aligned CIDR blocks,
// in ascending order.
func rangeCIDRs(r span128, bitLen int) []cidr128 {
	var out []cidr128
	lo := r.lo
	for {
		// Largest block aligned at lo ...
		host := trailingZeros128(lo)
		if host > bitLen {
			host = bitLen
		}
		// ... that does not run past hi.
		for host > 0 {
			end, carry := lo.add(ones(host))
			if !carry && end.cmp(r.hi) <= 0 {
				break
			}
			host--
		}
		out = append(out, cidr128{lo, bitLen - host})
		end := lo.or(ones(host))
		if end.cmp(r.hi) >= 0 {
			return out
		}
		lo, _ = end.add64(1)
	}
}

func trailingZeros128(u u128) int {
	if u.lo != 0 {
		return bits.TrailingZeros64(u.lo)
	}
	if u.hi != 0 {
		return 64 + bits.TrailingZeros64(u.hi)
	}
	return 128
}
