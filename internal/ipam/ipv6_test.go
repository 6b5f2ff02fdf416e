package ipam

import (
	"net"
	"net/netip"
	"testing"
)

func TestIsAutoAddressSubnet(t *testing.T) {
	for _, tc := range []struct {
		addrMode, raMode string
		want             bool
	}{
		{"", "", false},
		{IPv6SLAAC, IPv6SLAAC, true},
		{DHCPv6Stateless, DHCPv6Stateless, true},
		{DHCPv6Stateful, DHCPv6Stateful, false},
		{IPv6SLAAC, "", true},
		{"", IPv6SLAAC, true},
		{"", DHCPv6Stateless, true},
		{DHCPv6Stateful, "", false},
		{"", DHCPv6Stateful, false},
	} {
		if got := IsAutoAddressSubnet(tc.addrMode, tc.raMode); got != tc.want {
			t.Errorf("IsAutoAddressSubnet(%q, %q) = %v", tc.addrMode, tc.raMode, got)
		}
	}
}

func TestValidateIPv6Mode(t *testing.T) {
	for _, m := range []string{"", IPv6SLAAC, DHCPv6Stateful, DHCPv6Stateless} {
		wantErr(t, ValidateIPv6Mode(m), "", "")
	}
	wantErr(t, ValidateIPv6Mode("foo"), TypeBadRequest, "foo is not in valid_values")
}

func TestValidateIPv6Modes(t *testing.T) {
	const pre = "Invalid input for operation: "
	v6 := prefix("2001:db8::/64")
	for _, tc := range []struct {
		name         string
		ver          int
		ra, addrMode string
		dhcp         bool
		cidr         netip.Prefix
		msg          string
	}{
		{name: "v4 plain", ver: 4, dhcp: true, cidr: prefix("10.0.0.0/24")},
		{name: "v4 ra", ver: 4, ra: IPv6SLAAC, dhcp: true, msg: "ipv6_ra_mode is not valid when ip_version is 4"},
		{name: "v4 addr", ver: 4, addrMode: IPv6SLAAC, dhcp: true, msg: "ipv6_address_mode is not valid when ip_version is 4"},
		{name: "v6 none", ver: 6, cidr: prefix("2001:db8::/80")},
		{name: "v6 slaac", ver: 6, ra: IPv6SLAAC, addrMode: IPv6SLAAC, dhcp: true, cidr: v6},
		{name: "v6 stateful /80", ver: 6, ra: DHCPv6Stateful, addrMode: DHCPv6Stateful, dhcp: true, cidr: prefix("2001:db8::/80")},
		{name: "v6 ra only", ver: 6, ra: DHCPv6Stateless, dhcp: true, cidr: v6},
		{name: "v6 addr only", ver: 6, addrMode: DHCPv6Stateful, dhcp: true, cidr: v6},
		{name: "v6 no dhcp", ver: 6, ra: IPv6SLAAC, addrMode: IPv6SLAAC, cidr: v6,
			msg: "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False"},
		{name: "v6 mismatch", ver: 6, ra: IPv6SLAAC, addrMode: DHCPv6Stateful, dhcp: true, cidr: v6,
			msg: "ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not valid. If both attributes are set, they must be the same value"},
		{name: "v6 slaac /80", ver: 6, ra: IPv6SLAAC, addrMode: IPv6SLAAC, dhcp: true, cidr: prefix("fe80::/80"),
			msg: "Invalid CIDR fe80::/80 for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"},
		{name: "v6 stateless ra only /48", ver: 6, ra: DHCPv6Stateless, dhcp: true, cidr: prefix("2001:db8::/48"),
			msg: "Invalid CIDR 2001:db8::/48 for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"},
		{name: "v6 slaac no cidr", ver: 6, ra: IPv6SLAAC, addrMode: IPv6SLAAC, dhcp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateIPv6Modes(tc.ver, tc.ra, tc.addrMode, tc.dhcp, tc.cidr)
			if tc.msg == "" {
				wantErr(t, err, "", "")
			} else {
				wantErr(t, err, TypeInvalidInput, pre+tc.msg+".")
			}
		})
	}
	wantErr(t, ValidateIPv6DHCPUpdate(true, IPv6SLAAC, IPv6SLAAC), "", "")
	wantErr(t, ValidateIPv6DHCPUpdate(false, "", ""), "", "")
	wantErr(t, ValidateIPv6DHCPUpdate(false, "", DHCPv6Stateful), TypeInvalidInput,
		pre+"Cannot disable enable_dhcp with ipv6 attributes set.")
}

func TestEUI64(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		prefix, mac, want string
	}{
		// Worked examples: ff:fe inserted, universal/local bit flipped.
		{"2001:db8::/64", "00:16:3e:33:44:55", "2001:db8::216:3eff:fe33:4455"},
		{"fe80::/64", "fa:16:3e:00:00:01", "fe80::f816:3eff:fe00:1"},
		{"2001:db8:1:2::/64", "02:00:00:00:00:00", "2001:db8:1:2::ff:fe00:0"},
		{"2001:db8::5/64", "00:16:3e:33:44:55", "2001:db8::216:3eff:fe33:4455"}, // host bits ignored
		{"2001:db8::/48", "00:16:3e:33:44:55", "2001:db8::216:3eff:fe33:4455"},
		{"2001:db8::/64", "00:16:3e:ff:fe:33:44:55", "2001:db8::216:3eff:fe33:4455"}, // EUI-64 MAC
	} {
		got, err := EUI64(prefix(tc.prefix), mac(tc.mac))
		if err != nil || got != addr(tc.want) {
			t.Errorf("EUI64(%s, %s) = %v, %v; want %s", tc.prefix, tc.mac, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		prefix netip.Prefix
		mac    net.HardwareAddr
	}{
		{prefix("10.0.0.0/24"), mac("00:16:3e:33:44:55")},
		{netip.Prefix{}, mac("00:16:3e:33:44:55")},
		{prefix("2001:db8::/80"), mac("00:16:3e:33:44:55")},
		{prefix("2001:db8::/64"), net.HardwareAddr{1, 2, 3}},
	} {
		if a, err := EUI64(tc.prefix, tc.mac); err == nil {
			t.Errorf("EUI64(%v, %v) = %v, want error", tc.prefix, tc.mac, a)
		}
	}
}
