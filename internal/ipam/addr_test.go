package ipam

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseIP(t *testing.T) {
	for _, tc := range []struct {
		in, want, msg string
	}{
		{in: "10.0.0.1", want: "10.0.0.1"},
		{in: "2001:db8::1", want: "2001:db8::1"},
		{in: "2001:0db8:0000::0001", want: "2001:db8::1"},
		{in: "::ffff:10.0.0.1", want: "::ffff:10.0.0.1"},
		{in: "010.0.0.1", msg: "'010.0.0.1' is not an accepted IP address, '10.0.0.1' is recommended"},
		{in: "10.0.0.001", msg: "'10.0.0.001' is not an accepted IP address, '10.0.0.1' is recommended"},
		{in: "10.0.0.256", msg: "'10.0.0.256' is not a valid IP address"},
		{in: "10.0.1", msg: "'10.0.1' is not a valid IP address"},
		{in: " 10.0.0.1", msg: "' 10.0.0.1' is not a valid IP address"},
		{in: "10.0.0.1\n", msg: "'10.0.0.1\n' is not a valid IP address"},
		{in: "fe80::1%eth0", msg: "'fe80::1%eth0' is not a valid IP address"},
		{in: "", msg: "'' is not a valid IP address"},
		{in: "10.0.0.0/24", msg: "'10.0.0.0/24' is not a valid IP address"},
	} {
		a, err := ParseIP(tc.in)
		if tc.msg != "" {
			wantErr(t, err, TypeBadRequest, tc.msg)
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("ParseIP(%q) = %v, %v; want %s", tc.in, a, err, tc.want)
		}
	}
}

func TestValidateIPVersion(t *testing.T) {
	wantErr(t, ValidateIPVersion("gateway_ip", "10.0.0.1", 4), "", "")
	wantErr(t, ValidateIPVersion("cidr", "2001:db8::/64", 6), "", "")
	wantErr(t, ValidateIPVersion("cidr", "10.0.0.0/24", 6), TypeInvalidInput,
		"Invalid input for operation: cidr '10.0.0.0/24' does not match the ip_version '6'.")
	wantErr(t, ValidateIPVersion("gateway_ip", "::1", 4), TypeInvalidInput,
		"Invalid input for operation: gateway_ip '::1' does not match the ip_version '4'.")
	if IPVersion(addr("::ffff:1.2.3.4")) != 6 || IPVersion(addr("1.2.3.4")) != 4 {
		t.Fatal("IPVersion")
	}
}

func TestSortKey(t *testing.T) {
	for _, tc := range []struct{ in, key string }{
		{"0.0.0.0", "00000000"},
		{"10.0.0.1", "0a000001"},
		{"255.255.255.255", "ffffffff"},
		{"::", "00000000000000000000000000000000"},
		{"2001:db8::ff", "20010db80000000000000000000000ff"},
		{"::ffff:10.0.0.1", "00000000000000000000ffff0a000001"},
	} {
		if got := SortKey(addr(tc.in)); got != tc.key {
			t.Errorf("SortKey(%s) = %s, want %s", tc.in, got, tc.key)
		}
		back, err := ParseSortKey(tc.key)
		if err != nil || back != addr(tc.in) {
			t.Errorf("ParseSortKey(%s) = %v, %v", tc.key, back, err)
		}
	}
	for _, bad := range []string{"", "0a00001", "0A000001", "0a00000g", "0a0000010", strings.Repeat("0", 31)} {
		if _, err := ParseSortKey(bad); err == nil {
			t.Errorf("ParseSortKey(%q) succeeded", bad)
		}
	}
}

func TestSortKeyProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		a, b := genAddr(t, v4, "a"), genAddr(t, v4, "b")
		ka, kb := SortKey(a), SortKey(b)
		if len(ka) != bitLen(v4)/4 {
			t.Fatalf("key %q has wrong width", ka)
		}
		if got, want := strings.Compare(ka, kb), a.Compare(b); got != want {
			t.Fatalf("order of %s, %s: keys %d, addrs %d", a, b, got, want)
		}
		back, err := ParseSortKey(ka)
		if err != nil || back != a {
			t.Fatalf("round trip %s: %v %v", a, back, err)
		}
	})
}

func TestU128Properties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		a, b := genAddr(t, v4, "a"), genAddr(t, v4, "b")
		ua, ub := u128From(a), u128From(b)
		if ua.addr(versionOf(a)) != a {
			t.Fatalf("round trip %s", a)
		}
		if ua.cmp(ub) != a.Compare(b) {
			t.Fatalf("cmp %s %s", a, b)
		}
		sum, carry := ua.add(ub)
		want := new(big.Int).Add(ua.big(), ub.big())
		if carry {
			want.Sub(want, new(big.Int).Lsh(big.NewInt(1), 128))
		}
		if sum.big().Cmp(want) != 0 {
			t.Fatalf("add %s %s", a, b)
		}
		diff, borrow := ua.sub(ub)
		if borrow != (ua.cmp(ub) < 0) {
			t.Fatalf("borrow %s %s", a, b)
		}
		if back, _ := diff.add(ub); back != ua {
			t.Fatalf("sub %s %s", a, b)
		}
	})
}

func TestPrefixRange(t *testing.T) {
	f, l := prefixRange(prefix("10.0.0.0/24"))
	if f.addr(4) != addr("10.0.0.0") || l.addr(4) != addr("10.0.0.255") {
		t.Fatal("v4")
	}
	f, l = prefixRange(prefix("::/0"))
	if !f.isZero() || l != ones(128) {
		t.Fatal("v6 all")
	}
	_ = netip.Addr{}
}
