package ipam

import (
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

func TestParseCIDR(t *testing.T) {
	for _, tc := range []struct {
		in, want, msg, masked string
	}{
		{in: "10.0.0.0/24", want: "10.0.0.0/24"},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "192.168.1.7/32", want: "192.168.1.7/32"},
		{in: "2001:db8::/64", want: "2001:db8::/64"},
		{in: "2001:0DB8:0:0::/64", want: "2001:db8::/64"},
		{in: "fe80:0:0:0:0:0:0:0/128", want: "fe80::/128"},
		{in: "10.0.0.1/24", msg: "'10.0.0.1/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended", masked: "10.0.0.0/24"},
		{in: "2001:db8::1/64", msg: "'2001:db8::1/64' isn't a recognized IP subnet cidr, '2001:db8::/64' is recommended", masked: "2001:db8::/64"},
		{in: "10.0.2.0", msg: "'10.0.2.0' is not a valid IP subnet"},
		{in: "fe80::", msg: "'fe80::' is not a valid IP subnet"},
		{in: "10/24", msg: "'10/24' is not a valid IP subnet"},
		{in: "invalid", msg: "'invalid' is not a valid IP subnet"},
		{in: "10.0.2.0/24\r", msg: "'10.0.2.0/24\r' is not a valid IP subnet"},
		{in: "10.0.0.0/33", msg: "'10.0.0.0/33' is not a valid IP subnet"},
		{in: "010.0.0.0/24", msg: "'010.0.0.0/24' is not a valid IP subnet"},
		{in: "fe80::%eth0/64", msg: "'fe80::%eth0/64' is not a valid IP subnet"},
		{in: "", msg: "'' is not a valid IP subnet"},
	} {
		p, err := ParseCIDR(tc.in)
		if tc.msg != "" {
			wantErr(t, err, TypeBadRequest, tc.msg)
		} else if err != nil || p.String() != tc.want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
		m, err := ParseCIDRMasked(tc.in)
		want := tc.want
		if tc.masked != "" {
			want = tc.masked
		}
		if want == "" {
			wantErr(t, err, TypeBadRequest, tc.msg)
		} else if err != nil || m.String() != want {
			t.Errorf("ParseCIDRMasked(%q) = %v, %v; want %s", tc.in, m, err, want)
		}
	}
}

func TestParseRouteCIDR(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{in: "10.0.0.0/8"},
		{in: "192.168.1.1/32"},
		{in: "0.0.0.0/0"},
		{in: "::/0"},
		{in: "126.0.0.0/7"},
		{in: "192.168.1.1/8", msg: "'192.168.1.1/8' is not a valid CIDR"},
		{in: "10.0.0.1", msg: "'10.0.0.1' is not a valid CIDR"},
		{in: "invalid", msg: "'invalid' is not a valid CIDR"},
		{in: "127.0.0.0/8", msg: "'127.0.0.0/8' is not a routable CIDR"},
		{in: "127.0.0.1/32", msg: "'127.0.0.1/32' is not a routable CIDR"},
		{in: "::1/128", msg: "'::1/128' is not a routable CIDR"},
	} {
		_, err := ParseRouteCIDR(tc.in)
		if tc.msg == "" {
			wantErr(t, err, "", "")
		} else {
			wantErr(t, err, TypeBadRequest, tc.msg)
		}
	}
}

func TestValidateSubnetCIDR(t *testing.T) {
	const dhcp = "Subnet has a prefix length that is incompatible with DHCP service enabled"
	for _, tc := range []struct {
		cidr     string
		dhcp, pd bool
		msg      string
	}{
		{cidr: "10.0.0.0/24", dhcp: true},
		{cidr: "10.0.0.0/30", dhcp: true},
		{cidr: "10.0.0.0/31", dhcp: true, msg: dhcp},
		{cidr: "10.0.0.0/32", dhcp: true, msg: dhcp},
		{cidr: "10.0.0.0/31"},
		{cidr: "2001:db8::/126", dhcp: true},
		{cidr: "2001:db8::/127", dhcp: true, msg: dhcp},
		{cidr: "224.0.0.0/24", dhcp: true, msg: "Multicast IP subnet is not supported if enable_dhcp is True"},
		{cidr: "224.0.0.0/24"},
		{cidr: "224.0.0.0/3", dhcp: true},
		{cidr: "ff02::/64", dhcp: true, msg: "Multicast IP subnet is not supported if enable_dhcp is True"},
		{cidr: "127.0.0.0/8", dhcp: true, msg: "Loopback IP subnet is not supported if enable_dhcp is True"},
		{cidr: "0.0.0.0/8", dhcp: true, msg: "First IP '0.0.0.0' of network is not supported if enable_dhcp is True."},
		{cidr: "0.0.0.0/8"},
		{cidr: "::/64", msg: "IPv6 subnet '::' is not supported"},
		{cidr: "::/64", pd: true},
		{cidr: "::/0", dhcp: true, msg: "IPv6 subnet '::' is not supported"},
	} {
		err := ValidateSubnetCIDR(prefix(tc.cidr), tc.dhcp, tc.pd)
		if tc.msg == "" {
			wantErr(t, err, "", "")
		} else {
			wantErr(t, err, TypeInvalidInput, "Invalid input for operation: "+tc.msg+".")
		}
	}
}

func TestDefaultGateway(t *testing.T) {
	for _, tc := range []struct{ cidr, gw, poolGW string }{
		{"10.0.0.0/24", "10.0.0.1", "10.0.0.1"},
		{"10.0.0.0/8", "10.0.0.1", "10.0.0.1"},
		{"192.168.0.0/31", "192.168.0.1", "192.168.0.1"},
		{"192.168.0.5/32", "192.168.0.6", "192.168.0.6"},
		{"255.255.255.255/32", "", ""},
		{"2001:db8::/64", "2001:db8::", "2001:db8::1"},
		{"2001:db8:1::/48", "2001:db8:1::", "2001:db8:1::1"},
	} {
		g := DefaultGateway(prefix(tc.cidr))
		if (tc.gw == "" && g.IsValid()) || (tc.gw != "" && g != addr(tc.gw)) {
			t.Errorf("DefaultGateway(%s) = %v, want %q", tc.cidr, g, tc.gw)
		}
		g = PoolSubnetGateway(prefix(tc.cidr))
		if (tc.poolGW == "" && g.IsValid()) || (tc.poolGW != "" && g != addr(tc.poolGW)) {
			t.Errorf("PoolSubnetGateway(%s) = %v, want %q", tc.cidr, g, tc.poolGW)
		}
	}
}

func TestValidateGateway(t *testing.T) {
	const bad = "Invalid input for operation: Gateway is not valid on subnet."
	for _, tc := range []struct {
		cidr, gw string
		ok       bool
	}{
		{"10.0.0.0/24", "10.0.0.1", true},
		{"10.0.0.0/24", "10.0.0.254", true},
		{"10.0.0.0/24", "10.0.0.0", false},
		{"10.0.0.0/24", "10.0.0.255", false},
		{"10.0.0.0/24", "10.0.1.1", true}, // outside: on-link, accepted
		{"10.0.0.0/31", "10.0.0.0", false},
		{"10.0.0.0/31", "10.0.0.1", false},
		{"10.0.0.0/32", "10.0.0.0", false},
		{"2001:db8::/64", "2001:db8::", true},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", true},
	} {
		err := ValidateGateway(prefix(tc.cidr), addr(tc.gw))
		if tc.ok {
			wantErr(t, err, "", "")
		} else {
			wantErr(t, err, TypeInvalidInput, bad)
		}
	}
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.0/8", "10.1.2.0/24", true},
		{"10.1.2.0/24", "10.0.0.0/8", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.0/25", "10.0.0.128/25", false},
		{"0.0.0.0/0", "192.168.0.0/16", true},
		{"2001:db8::/64", "2001:db8::/48", true},
		{"2001:db8::/64", "2001:db8:0:1::/64", false},
		{"::/0", "0.0.0.0/0", false},
		{"::ffff:0:0/96", "10.0.0.0/8", false},
	} {
		if got := Overlaps(prefix(tc.a), prefix(tc.b)); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestOverlapsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		n := bitLen(v4)
		a := netip.PrefixFrom(genAddr(t, v4, "a"), rapid.IntRange(0, n).Draw(t, "abits")).Masked()
		b := netip.PrefixFrom(genAddr(t, v4, "b"), rapid.IntRange(0, n).Draw(t, "bbits")).Masked()
		af, al := prefixRange(a)
		bf, bl := prefixRange(b)
		want := af.cmp(bl) <= 0 && bf.cmp(al) <= 0
		if Overlaps(a, b) != want || Overlaps(b, a) != want {
			t.Fatalf("Overlaps(%s, %s) != %v", a, b, want)
		}
	})
}

func TestValidIPForSubnet(t *testing.T) {
	for _, tc := range []struct {
		cidr, ip, owner string
		want            bool
	}{
		{"10.0.0.0/24", "10.0.0.5", "compute:nova", true},
		{"10.0.0.0/24", "10.0.0.0", "compute:nova", false},
		{"10.0.0.0/24", "10.0.0.255", "network:router_interface", false},
		{"10.0.0.0/24", "10.0.1.5", "", false},
		{"10.0.0.0/24", "::ffff:10.0.0.5", "", false},
		{"2001:db8::/64", "2001:db8::", "compute:nova", false},
		{"2001:db8::/64", "2001:db8::", "network:router_gateway", true},
		{"2001:db8::/64", "2001:db8::", "network:router_interface_distributed", true},
		{"2001:db8::/64", "2001:db8::", "", true},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", "compute:nova", true},
		{"2001:db8::/64", "2001:db9::1", "", false},
	} {
		if got := ValidIPForSubnet(prefix(tc.cidr), addr(tc.ip), tc.owner); got != tc.want {
			t.Errorf("ValidIPForSubnet(%s, %s, %q) = %v", tc.cidr, tc.ip, tc.owner, got)
		}
	}
}
