package ipam

import (
	"math/big"
	"net/netip"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestDefaultPools(t *testing.T) {
	for _, tc := range []struct {
		cidr, gw string
		want     []Pool
	}{
		{"10.0.0.0/24", "10.0.0.1", []Pool{pool("10.0.0.2", "10.0.0.254")}},
		{"10.0.0.0/24", "10.0.0.254", []Pool{pool("10.0.0.1", "10.0.0.253")}},
		{"10.0.0.0/24", "10.0.0.100", []Pool{pool("10.0.0.1", "10.0.0.99"), pool("10.0.0.101", "10.0.0.254")}},
		{"10.0.0.0/24", "", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"10.0.0.0/24", "10.0.0.0", []Pool{pool("10.0.0.1", "10.0.0.254")}}, // not a host address
		{"10.0.0.0/24", "192.168.0.1", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"10.0.0.0/24", "2001:db8::1", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"10.0.0.0/30", "10.0.0.1", []Pool{pool("10.0.0.2", "10.0.0.2")}},
		{"10.0.0.0/30", "10.0.0.2", []Pool{pool("10.0.0.1", "10.0.0.1")}},
		{"10.0.0.0/31", "10.0.0.1", []Pool{pool("10.0.0.0", "10.0.0.0")}},
		{"10.0.0.0/31", "", []Pool{pool("10.0.0.0", "10.0.0.1")}},
		{"10.0.0.5/32", "10.0.0.6", []Pool{pool("10.0.0.5", "10.0.0.5")}},
		{"10.0.0.5/32", "10.0.0.5", []Pool{pool("10.0.0.5", "10.0.0.5")}},
		{"0.0.0.0/0", "0.0.0.1", []Pool{pool("0.0.0.2", "255.255.255.254")}},
		{"2001:db8::/64", "2001:db8::", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"2001:db8::/64", "2001:db8::1", []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:fffe")}},
		{"2001:db8::/64", "", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"2001:db8::/127", "2001:db8::", []Pool{pool("2001:db8::1", "2001:db8::1")}},
		{"2001:db8::/127", "2001:db8::1", nil},
		{"2001:db8::1/128", "", []Pool{pool("2001:db8::1", "2001:db8::1")}},
		{"::/0", "::1", []Pool{pool("::2", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}},
	} {
		var gw netip.Addr
		if tc.gw != "" {
			gw = addr(tc.gw)
		}
		got := DefaultPools(prefix(tc.cidr), gw)
		if !slices.Equal(got, tc.want) {
			t.Errorf("DefaultPools(%s, %s) = %v, want %v", tc.cidr, tc.gw, got, tc.want)
		}
		if err := ValidatePools(got, prefix(tc.cidr), gw); err != nil && prefix(tc.cidr).Bits() != 32 && prefix(tc.cidr).Bits() != 128 {
			t.Errorf("default pools of %s do not validate: %v", tc.cidr, err)
		}
	}
}

func TestPoolSizes(t *testing.T) {
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	for _, tc := range []struct {
		p    Pool
		want *big.Int
	}{
		{pool("10.0.0.2", "10.0.0.254"), big.NewInt(253)},
		{pool("10.0.0.2", "10.0.0.2"), big.NewInt(1)},
		{pool("10.0.0.3", "10.0.0.2"), big.NewInt(0)},
		{pool("10.0.0.3", "::1"), big.NewInt(0)},
		{pool("0.0.0.0", "255.255.255.255"), big.NewInt(1 << 32)},
		{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff"), new(big.Int).Sub(two64, big.NewInt(2))},
		{pool("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), new(big.Int).Lsh(big.NewInt(1), 128)},
	} {
		if got := tc.p.Size(); got.Cmp(tc.want) != 0 {
			t.Errorf("%v.Size() = %v, want %v", tc.p, got, tc.want)
		}
	}
	// network-ip-availability: a /64 subnet with default pools.
	cidr := prefix("2001:db8::/64")
	got := TotalIPs(cidr, DefaultPools(cidr, DefaultGateway(cidr)))
	if got.String() != "18446744073709551615" {
		t.Errorf("TotalIPs /64 = %v", got)
	}
	got = TotalIPs(prefix("10.0.0.0/24"), DefaultPools(prefix("10.0.0.0/24"), addr("10.0.0.100")))
	if got.Int64() != 253 {
		t.Errorf("TotalIPs split v4 = %v", got)
	}
	if got := TotalIPs(prefix("2001:db8::/48"), nil); got.String() != "1208925819614629174706176" {
		t.Errorf("TotalIPs /48 without pools = %v", got)
	}
	if got := PrefixSize(prefix("10.0.0.0/31")); got.Int64() != 2 {
		t.Errorf("PrefixSize /31 = %v", got)
	}
	if pool("10.0.0.1", "10.0.0.9").String() != "10.0.0.1-10.0.0.9" {
		t.Error("Pool.String")
	}
}

func TestParsePool(t *testing.T) {
	p, err := ParsePool("10.0.0.2", "10.0.0.9")
	if err != nil || p != pool("10.0.0.2", "10.0.0.9") {
		t.Fatalf("ParsePool = %v, %v", p, err)
	}
	_, err = ParsePool("10.0.0.9", "10.0.0.2")
	wantErr(t, err, TypeInvalidAllocationPool, "The allocation pool {'start': '10.0.0.9', 'end': '10.0.0.2'} is not valid.")
	_, err = ParsePool("10.0.0.9", "2001:db8::1")
	wantErr(t, err, TypeInvalidAllocationPool, "The allocation pool {'start': '10.0.0.9', 'end': '2001:db8::1'} is not valid.")
	_, err = ParsePool("10.0.0.x", "10.0.0.2")
	wantErr(t, err, TypeBadRequest, "'10.0.0.x' is not a valid IP address")
	_, err = ParsePool("10.0.0.2", "10.0.0.09")
	wantErr(t, err, TypeBadRequest, "'10.0.0.09' is not an accepted IP address, '10.0.0.9' is recommended")
}

func TestValidatePools(t *testing.T) {
	v4 := prefix("10.0.0.0/24")
	v6 := prefix("2001:db8::/64")
	for _, tc := range []struct {
		name  string
		cidr  netip.Prefix
		gw    string
		pools []Pool
		typ   string
		msg   string
	}{
		{name: "ok", cidr: v4, gw: "10.0.0.1", pools: []Pool{pool("10.0.0.2", "10.0.0.100"), pool("10.0.0.101", "10.0.0.254")}},
		{name: "ok no gateway", cidr: v4, pools: []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{name: "ok none", cidr: v4, gw: "10.0.0.1"},
		{name: "gateway outside pools", cidr: v4, gw: "10.0.0.50", pools: []Pool{pool("10.0.0.2", "10.0.0.49"), pool("10.0.0.51", "10.0.0.60")}},
		{name: "reversed", cidr: v4, pools: []Pool{pool("10.0.0.2", "10.0.0.9"), pool("10.0.0.20", "10.0.0.10")},
			typ: TypeInvalidAllocationPool, msg: "The allocation pool {'start': '10.0.0.20', 'end': '10.0.0.10'} is not valid."},
		{name: "wrong family", cidr: v4, pools: []Pool{pool("2001:db8::2", "2001:db8::9")},
			typ: TypeInvalidAllocationPool, msg: "The allocation pool 2001:db8::2-2001:db8::9 is not valid."},
		{name: "network address", cidr: v4, pools: []Pool{pool("10.0.0.0", "10.0.0.9")},
			typ: TypeOutOfBoundsAllocationPool, msg: "The allocation pool 10.0.0.0-10.0.0.9 spans beyond the subnet cidr 10.0.0.0/24."},
		{name: "broadcast", cidr: v4, pools: []Pool{pool("10.0.0.200", "10.0.0.255")},
			typ: TypeOutOfBoundsAllocationPool, msg: "The allocation pool 10.0.0.200-10.0.0.255 spans beyond the subnet cidr 10.0.0.0/24."},
		{name: "outside", cidr: v4, pools: []Pool{pool("10.0.1.2", "10.0.1.9")},
			typ: TypeOutOfBoundsAllocationPool, msg: "The allocation pool 10.0.1.2-10.0.1.9 spans beyond the subnet cidr 10.0.0.0/24."},
		{name: "/31 whole", cidr: prefix("10.0.0.0/31"), pools: []Pool{pool("10.0.0.0", "10.0.0.1")}},
		{name: "/32 whole", cidr: prefix("10.0.0.7/32"), pools: []Pool{pool("10.0.0.7", "10.0.0.7")}},
		{name: "v6 network address", cidr: v6, pools: []Pool{pool("2001:db8::", "2001:db8::9")},
			typ: TypeOutOfBoundsAllocationPool, msg: "The allocation pool 2001:db8::-2001:db8::9 spans beyond the subnet cidr 2001:db8::/64."},
		{name: "v6 last ok", cidr: v6, gw: "2001:db8::1", pools: []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}},
		{name: "overlap", cidr: v4, pools: []Pool{pool("10.0.0.2", "10.0.0.50"), pool("10.0.0.40", "10.0.0.60")},
			typ: TypeOverlappingAllocationPools, msg: "Found overlapping allocation pools: 10.0.0.2-10.0.0.50 10.0.0.40-10.0.0.60 for subnet 10.0.0.0/24."},
		{name: "overlap touching", cidr: v4, pools: []Pool{pool("10.0.0.2", "10.0.0.50"), pool("10.0.0.50", "10.0.0.60")},
			typ: TypeOverlappingAllocationPools, msg: "Found overlapping allocation pools: 10.0.0.2-10.0.0.50 10.0.0.50-10.0.0.60 for subnet 10.0.0.0/24."},
		{name: "overlap first pair in input order", cidr: v4, pools: []Pool{
			pool("10.0.0.100", "10.0.0.110"), pool("10.0.0.2", "10.0.0.3"), pool("10.0.0.105", "10.0.0.106"), pool("10.0.0.3", "10.0.0.4")},
			typ: TypeOverlappingAllocationPools, msg: "Found overlapping allocation pools: 10.0.0.100-10.0.0.110 10.0.0.105-10.0.0.106 for subnet 10.0.0.0/24."},
		{name: "nested", cidr: v4, pools: []Pool{pool("10.0.0.20", "10.0.0.30"), pool("10.0.0.2", "10.0.0.200")},
			typ: TypeOverlappingAllocationPools, msg: "Found overlapping allocation pools: 10.0.0.20-10.0.0.30 10.0.0.2-10.0.0.200 for subnet 10.0.0.0/24."},
		{name: "gateway in pool", cidr: v4, gw: "10.0.0.1", pools: []Pool{pool("10.0.0.1", "10.0.0.254")},
			typ: TypeGatewayConflictWithAllocationPools, msg: "Gateway ip 10.0.0.1 conflicts with allocation pool 10.0.0.1-10.0.0.254."},
		{name: "v6 gateway in pool", cidr: v6, gw: "2001:db8::5", pools: []Pool{pool("2001:db8::2", "2001:db8::9")},
			typ: TypeGatewayConflictWithAllocationPools, msg: "Gateway ip 2001:db8::5 conflicts with allocation pool 2001:db8::2-2001:db8::9."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gw netip.Addr
			if tc.gw != "" {
				gw = addr(tc.gw)
			}
			wantErr(t, ValidatePools(tc.pools, tc.cidr, gw), tc.typ, tc.msg)
		})
	}
}

// The O(n log n) overlap search must report the same pair as Neutron's
// O(n^2) loop.
func TestFirstOverlapMatchesPairwise(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 12).Draw(t, "n")
		pools := make([]Pool, n)
		for i := range pools {
			s := rapid.IntRange(1, 60).Draw(t, "s")
			e := s + rapid.IntRange(0, 8).Draw(t, "len")
			pools[i] = Pool{netip.AddrFrom4([4]byte{10, 0, 0, byte(s)}), netip.AddrFrom4([4]byte{10, 0, 0, byte(e)})}
		}
		wi, wj, wok := 0, 0, false
	outer:
		for i := range pools {
			for j := i + 1; j < n; j++ {
				if pools[i].Start.Compare(pools[j].End) <= 0 && pools[j].Start.Compare(pools[i].End) <= 0 {
					wi, wj, wok = i, j, true
					break outer
				}
			}
		}
		i, j, ok := firstOverlap(pools)
		if ok != wok || i != wi || j != wj {
			t.Fatalf("firstOverlap(%v) = %d,%d,%v; want %d,%d,%v", pools, i, j, ok, wi, wj, wok)
		}
	})
}

// Default pools cover exactly the usable host range minus the gateway.
func TestDefaultPoolsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		n := bitLen(v4)
		bitsLen := rapid.IntRange(n-12, n).Draw(t, "bits")
		cidr := netip.PrefixFrom(genAddr(t, v4, "net"), bitsLen).Masked()
		var gw netip.Addr
		if rapid.Bool().Draw(t, "hasgw") {
			first, _ := prefixRange(cidr)
			off := rapid.Uint64Range(0, 1<<uint(n-bitsLen)-1).Draw(t, "gwoff")
			g, _ := first.add64(off)
			gw = g.addr(versionOf(cidr.Addr()))
		}
		pools := DefaultPools(cidr, gw)
		single := bitsLen == n
		if !single {
			if err := ValidatePools(pools, cidr, gw); err != nil {
				t.Fatalf("DefaultPools(%s, %v) = %v: %v", cidr, gw, pools, err)
			}
		}
		total := new(big.Int)
		for _, p := range pools {
			total.Add(total, p.Size())
		}
		want := big.NewInt(1)
		if !single {
			lo, hi := hostRange(cidr)
			d, _ := hi.sub(lo)
			want = new(big.Int).Add(d.big(), big.NewInt(1))
			if gw.IsValid() {
				if g := u128From(gw); g.cmp(lo) >= 0 && g.cmp(hi) <= 0 {
					want.Sub(want, big.NewInt(1))
					for _, p := range pools {
						if p.Contains(gw) {
							t.Fatalf("gateway %s in pool %s", gw, p)
						}
					}
				}
			}
		}
		if total.Cmp(want) != 0 {
			t.Fatalf("DefaultPools(%s, %v) = %v: %v addresses, want %v", cidr, gw, pools, total, want)
		}
	})
}
