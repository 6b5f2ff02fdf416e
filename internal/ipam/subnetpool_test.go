package ipam

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, prefix(x))
	}
	return out
}

func ip(n int) *int { return &n }

func TestResolvePrefixLens(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ver           int
		min, max, def *int
		want          PrefixLens
		typ, msg      string
	}{
		{name: "v4 defaults", ver: 4, want: PrefixLens{8, 32, 8}},
		{name: "v6 defaults", ver: 6, want: PrefixLens{64, 128, 64}},
		{name: "min sets default", ver: 4, min: ip(24), want: PrefixLens{24, 32, 24}},
		{name: "all set", ver: 4, min: ip(16), max: ip(28), def: ip(24), want: PrefixLens{16, 28, 24}},
		{name: "negative min", ver: 4, min: ip(-1), typ: TypeUnsupportedMinSubnetPoolPrefix, msg: "Prefix '-1' not supported in IPv4 pool."},
		{name: "min > max", ver: 4, min: ip(30), max: ip(24), typ: TypeIllegalSubnetPoolPrefixBounds,
			msg: "Illegal prefix bounds: min_prefixlen=30, max_prefixlen=24."},
		{name: "max too long", ver: 4, max: ip(33), typ: TypeIllegalSubnetPoolPrefixBounds,
			msg: "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32."},
		{name: "v6 max too long", ver: 6, max: ip(129), typ: TypeIllegalSubnetPoolPrefixBounds,
			msg: "Illegal prefix bounds: max_prefixlen=129, ip_version_max=128."},
		{name: "default < min", ver: 4, min: ip(16), def: ip(8), typ: TypeIllegalSubnetPoolPrefixBounds,
			msg: "Illegal prefix bounds: default_prefixlen=8, min_prefixlen=16."},
		{name: "default > max", ver: 4, max: ip(24), def: ip(26), typ: TypeIllegalSubnetPoolPrefixBounds,
			msg: "Illegal prefix bounds: default_prefixlen=26, max_prefixlen=24."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvePrefixLens(tc.ver, tc.min, tc.max, tc.def)
			wantErr(t, err, tc.typ, tc.msg)
			if tc.typ == "" && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidateRequestedPrefixLen(t *testing.T) {
	l := PrefixLens{Min: 16, Max: 28, Default: 24}
	wantErr(t, ValidateRequestedPrefixLen(24, l), "", "")
	wantErr(t, ValidateRequestedPrefixLen(16, l), "", "")
	wantErr(t, ValidateRequestedPrefixLen(28, l), "", "")
	wantErr(t, ValidateRequestedPrefixLen(29, l), TypeMaxPrefixSubnetAllocationError,
		"Unable to allocate subnet with prefix length 29, maximum allowed prefix is 28.")
	wantErr(t, ValidateRequestedPrefixLen(8, l), TypeMinPrefixSubnetAllocationError,
		"Unable to allocate subnet with prefix length 8, minimum allowed prefix is 16.")
}

func TestNextFreePrefix(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pool, used []netip.Prefix
		plen       int
		want, best string
	}{
		{name: "empty pool", pool: prefixes("10.0.0.0/16"), plen: 24, want: "10.0.0.0/24"},
		{name: "skip used", pool: prefixes("10.0.0.0/16"), used: prefixes("10.0.0.0/24", "10.0.1.0/24"), plen: 24, want: "10.0.2.0/24"},
		{name: "align past small used", pool: prefixes("10.0.0.0/16"), used: prefixes("10.0.0.0/26"), plen: 24,
			want: "10.0.1.0/24", best: "10.0.1.0/24"},
		{name: "first fit vs best fit", pool: prefixes("10.0.0.0/16"), used: prefixes("10.0.0.0/25", "10.0.1.0/26"), plen: 26,
			want: "10.0.0.128/26", best: "10.0.1.64/26"},
		{name: "used covering pool start", pool: prefixes("10.1.0.0/16"), used: prefixes("10.0.0.0/8"), plen: 24, want: ""},
		{name: "used outside pool", pool: prefixes("10.1.0.0/16"), used: prefixes("10.2.0.0/16", "2001:db8::/64"), plen: 24, want: "10.1.0.0/24"},
		{name: "second pool prefix", pool: prefixes("10.0.0.0/24", "192.168.0.0/16"), used: prefixes("10.0.0.0/24"), plen: 24, want: "192.168.0.0/24"},
		{name: "unsorted pool prefixes", pool: prefixes("192.168.0.0/16", "10.0.0.0/24"), plen: 24, want: "10.0.0.0/24"},
		{name: "adjacent prefixes merge", pool: prefixes("10.0.0.0/25", "10.0.0.128/25"), plen: 24, want: "10.0.0.0/24"},
		{name: "unaligned adjacent do not fit", pool: prefixes("10.0.0.128/25", "10.0.1.0/25"), plen: 24, want: ""},
		{name: "full", pool: prefixes("10.0.0.0/24"), used: prefixes("10.0.0.0/25", "10.0.0.128/25"), plen: 28, want: ""},
		{name: "too big", pool: prefixes("10.0.0.0/24"), plen: 23, want: ""},
		{name: "whole pool", pool: prefixes("10.0.0.0/24"), plen: 24, want: "10.0.0.0/24"},
		{name: "host route size", pool: prefixes("10.0.0.0/30"), used: prefixes("10.0.0.0/32", "10.0.0.1/32"), plen: 32, want: "10.0.0.2/32"},
		{name: "whole v4 space", pool: prefixes("0.0.0.0/0"), used: prefixes("0.0.0.0/1"), plen: 1, want: "128.0.0.0/1"},
		{name: "end of v4 space", pool: prefixes("255.255.255.0/24"), used: prefixes("255.255.255.0/25"), plen: 25, want: "255.255.255.128/25"},
		{name: "v6", pool: prefixes("2001:db8::/48"), used: prefixes("2001:db8::/64", "2001:db8:0:1::/64"), plen: 64, want: "2001:db8:0:2::/64"},
		{name: "v6 whole space", pool: prefixes("::/0"), used: prefixes("::/1"), plen: 64, want: "8000::/64"},
		{name: "v6 end of space full", pool: prefixes("ffff::/16"), used: prefixes("ffff::/16"), plen: 64, want: ""},
		{name: "v6 big pool many used", pool: prefixes("2001:db8::/32"), used: prefixes("2001:db8::/33"), plen: 48, want: "2001:db8:8000::/48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextFreePrefix(tc.pool, tc.used, tc.plen)
			best, berr := BestFitPrefix(tc.pool, tc.used, tc.plen)
			if tc.want == "" {
				msg := "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /" + strconv.Itoa(tc.plen) + "."
				wantErr(t, err, TypeSubnetAllocationError, msg)
				wantErr(t, berr, TypeSubnetAllocationError, msg)
				return
			}
			if err != nil || got != prefix(tc.want) {
				t.Fatalf("NextFreePrefix = %v, %v; want %s", got, err, tc.want)
			}
			wantBest := tc.best
			if wantBest == "" {
				wantBest = tc.want
			}
			if berr != nil || best != prefix(wantBest) {
				t.Fatalf("BestFitPrefix = %v, %v; want %s", best, berr, wantBest)
			}
		})
	}
	_, err := NextFreePrefix(nil, nil, 24)
	wantErr(t, err, TypeEmptySubnetPoolPrefixList, "Empty subnet pool prefix list.")
	_, err = BestFitPrefix(prefixes("10.0.0.0/8", "2001:db8::/32"), nil, 24)
	wantErr(t, err, TypePrefixVersionMismatch, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
	_, err = NextFreePrefix(prefixes("10.0.0.0/8"), nil, 33)
	wantErr(t, err, TypeSubnetAllocationError, "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /33.")
}

// A pool with thousands of used prefixes is searched by stepping over
// them, and the answer is the first hole.
func TestNextFreePrefixManyUsed(t *testing.T) {
	pool := prefixes("2001:db8::/32")
	var used []netip.Prefix
	p := prefix("2001:db8::/64")
	for i := 0; i < 20000; i++ {
		if i != 12345 {
			used = append(used, p)
		}
		last := p.Addr().As16()
		last[7]++
		if last[7] == 0 {
			last[6]++
			if last[6] == 0 {
				last[5]++
			}
		}
		p = netip.PrefixFrom(netip.AddrFrom16(last), 64)
	}
	slices.Reverse(used)
	got, err := NextFreePrefix(pool, used, 64)
	if err != nil || got != prefix("2001:db8:0:3039::/64") {
		t.Fatalf("got %v, %v", got, err)
	}
}

// Results lie in the pool, are aligned, avoid used prefixes, and first fit
// is the lowest such prefix (checked by brute force on small pools).
func TestNextFreePrefixProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := netip.MustParseAddr("10.0.0.0")
		gen := func(label string) netip.Prefix {
			bits := rapid.IntRange(24, 32).Draw(t, label+"bits")
			off := rapid.IntRange(0, 255).Draw(t, label+"off")
			b := base.As4()
			b[3] = byte(off)
			return netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()
		}
		var pool, used []netip.Prefix
		for range rapid.IntRange(1, 4).Draw(t, "npool") {
			pool = append(pool, gen("pool"))
		}
		for range rapid.IntRange(0, 6).Draw(t, "nused") {
			used = append(used, gen("used"))
		}
		plen := rapid.IntRange(24, 32).Draw(t, "plen")
		free := func(c netip.Prefix) bool {
			f, l := prefixRange(c)
			for a := f; a.cmp(l) <= 0; a, _ = a.add64(1) {
				ad := a.addr(4)
				if !slices.ContainsFunc(pool, func(p netip.Prefix) bool { return p.Contains(ad) }) ||
					slices.ContainsFunc(used, func(p netip.Prefix) bool { return p.Contains(ad) }) {
					return false
				}
			}
			return true
		}
		var want netip.Prefix
		var candidates []netip.Prefix
		step := 1 << (32 - plen)
		for off := 0; off < 256; off += step {
			b := base.As4()
			b[3] = byte(off)
			c := netip.PrefixFrom(netip.AddrFrom4(b), plen)
			if free(c) {
				candidates = append(candidates, c)
				if !want.IsValid() {
					want = c
				}
			}
		}
		got, err := NextFreePrefix(pool, used, plen)
		if want.IsValid() != (err == nil) || (err == nil && got != want) {
			t.Fatalf("NextFreePrefix(%v, %v, %d) = %v, %v; want %v", pool, used, plen, got, err, want)
		}
		best, err := BestFitPrefix(pool, used, plen)
		if want.IsValid() != (err == nil) || (err == nil && !slices.Contains(candidates, best)) {
			t.Fatalf("BestFitPrefix(%v, %v, %d) = %v, %v; candidates %v", pool, used, plen, best, err, candidates)
		}
		for _, c := range candidates {
			werr := CheckSpecificPrefix(pool, used, c)
			if werr != nil {
				t.Fatalf("CheckSpecificPrefix(%v) = %v", c, werr)
			}
		}
		w := gen("specific")
		if (CheckSpecificPrefix(pool, used, w) == nil) != free(w) {
			t.Fatalf("CheckSpecificPrefix(%v, %v, %v) disagrees with brute force", pool, used, w)
		}
	})
}

func TestCheckSpecificPrefix(t *testing.T) {
	const msg = "Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes."
	pool := prefixes("10.0.0.0/16")
	used := prefixes("10.0.1.0/24")
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.0.0.0/24")), "", "")
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.0.2.0/23")), "", "")
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.0.1.0/24")), TypeSubnetAllocationError, msg)
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.0.1.128/25")), TypeSubnetAllocationError, msg)
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.0.0.0/22")), TypeSubnetAllocationError, msg)
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("10.1.0.0/24")), TypeSubnetAllocationError, msg)
	wantErr(t, CheckSpecificPrefix(pool, used, prefix("2001:db8::/64")), TypeSubnetAllocationError, msg)
	wantErr(t, CheckSpecificPrefix(nil, used, prefix("10.0.0.0/24")), TypeEmptySubnetPoolPrefixList, "Empty subnet pool prefix list.")
}

func TestCompactPrefixes(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/24"}},
		{[]string{"10.0.0.128/25", "10.0.0.0/25"}, []string{"10.0.0.0/24"}},
		{[]string{"10.0.0.0/24", "10.0.0.0/16"}, []string{"10.0.0.0/16"}},
		{[]string{"10.0.0.128/25", "10.0.1.0/25"}, []string{"10.0.0.128/25", "10.0.1.0/25"}},
		{[]string{"10.0.1.0/24", "10.0.2.0/24"}, []string{"10.0.1.0/24", "10.0.2.0/24"}},
		{[]string{"10.0.1.0/24", "10.0.2.0/23", "10.0.0.0/24"}, []string{"10.0.0.0/22"}},
		{[]string{"2001:db8::/33", "2001:db8:8000::/33", "10.0.0.0/8"}, []string{"10.0.0.0/8", "2001:db8::/32"}},
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, []string{"0.0.0.0/0"}},
		{[]string{"::/1", "8000::/1"}, []string{"::/0"}},
		{[]string{"10.0.0.5/24"}, []string{"10.0.0.0/24"}},
	} {
		got := CompactPrefixes(prefixes(tc.in...))
		if !slices.Equal(got, prefixes(tc.want...)) {
			t.Errorf("CompactPrefixes(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// rangeCIDRs covers its range exactly with maximal aligned blocks.
func TestRangeCIDRsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		a, b := genAddr(t, v4, "a"), genAddr(t, v4, "b")
		if b.Less(a) {
			a, b = b, a
		}
		n := bitLen(v4)
		cs := rangeCIDRs(span128{u128From(a), u128From(b)}, n)
		next := u128From(a)
		for i, c := range cs {
			if c.lo != next {
				t.Fatalf("block %d starts at %v, want %v", i, c.lo, next)
			}
			host := n - c.bits
			if c.lo.and(ones(host)) != (u128{}) {
				t.Fatalf("block %d unaligned", i)
			}
			end := c.lo.or(ones(host))
			if end.cmp(u128From(b)) > 0 {
				t.Fatalf("block %d past end", i)
			}
			// Maximal: the doubled block would be unaligned or overrun.
			if host < n {
				if c.lo.and(ones(host + 1)).isZero() {
					if e2 := c.lo.or(ones(host + 1)); e2.cmp(u128From(b)) <= 0 {
						t.Fatalf("block %d not maximal", i)
					}
				}
			}
			next, _ = end.add64(1)
		}
		if len(cs) > 2*n {
			t.Fatalf("%d blocks", len(cs))
		}
	})
}
