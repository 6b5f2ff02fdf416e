package ipam

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Values of ipv6_ra_mode and ipv6_address_mode.
const (
	IPv6SLAAC       = "slaac"
	DHCPv6Stateful  = "dhcpv6-stateful"
	DHCPv6Stateless = "dhcpv6-stateless"
)

// IsAutoAddressSubnet reports whether ports on a subnet with these modes
// get their address computed from the MAC (EUI-64) instead of allocated:
// true when either mode is slaac or dhcpv6-stateless. An empty string
// means the mode is not set.
func IsAutoAddressSubnet(ipv6AddressMode, ipv6RAMode string) bool {
	auto := func(m string) bool { return m == IPv6SLAAC || m == DHCPv6Stateless }
	return auto(ipv6AddressMode) || auto(ipv6RAMode)
}

// ValidateIPv6Mode checks one ipv6_ra_mode or ipv6_address_mode value
// ("" means unset) as Neutron's values validator: "x is not in
// valid_values" (attribute-level).
func ValidateIPv6Mode(mode string) error {
	switch mode {
	case "", IPv6SLAAC, DHCPv6Stateful, DHCPv6Stateless:
		return nil
	}
	return badAttr("%s is not in valid_values", mode)
}

// ValidateIPv6Modes applies Neutron's create-time rules for ipv6_ra_mode
// and ipv6_address_mode ("" means unset; values are assumed to have passed
// ValidateIPv6Mode). For ip_version 4 neither may be set. For ip_version 6:
// setting either requires enable_dhcp; when both are set they must be
// equal; and an auto-address subnet (slaac or dhcpv6-stateless) must be a
// /64, because addresses are EUI-64 — this last check is skipped when cidr
// is the zero Prefix (subnet pool request without a cidr). Errors are
// InvalidInput with Neutron's messages.
func ValidateIPv6Modes(ipVersion int, raMode, addressMode string, enableDHCP bool, cidr netip.Prefix) error {
	if ipVersion == 4 {
		if raMode != "" {
			return invalidInput("ipv6_ra_mode is not valid when ip_version is 4")
		}
		if addressMode != "" {
			return invalidInput("ipv6_address_mode is not valid when ip_version is 4")
		}
		return nil
	}
	if ipVersion != 6 {
		return nil
	}
	if (raMode != "" || addressMode != "") && !enableDHCP {
		return invalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
	}
	if raMode != "" && addressMode != "" && raMode != addressMode {
		return invalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. "+
			"If both attributes are set, they must be the same value", raMode, addressMode)
	}
	if cidr.IsValid() && IsAutoAddressSubnet(addressMode, raMode) && cidr.Bits() != 64 {
		return invalidInput("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, "+
			"which requires the prefix to be /64", cidr)
	}
	return nil
}

// ValidateIPv6DHCPUpdate is Neutron's update-time rule: enable_dhcp cannot
// be turned off on a subnet that has ipv6_ra_mode or ipv6_address_mode set
// (the modes themselves cannot be updated). Call it when the update sets
// enable_dhcp, with the subnet's stored modes.
func ValidateIPv6DHCPUpdate(enableDHCP bool, raMode, addressMode string) error {
	if !enableDHCP && (raMode != "" || addressMode != "") {
		return invalidInput("Cannot disable enable_dhcp with ipv6 attributes set")
	}
	return nil
}

// EUI64 computes the modified EUI-64 address (RFC 4291 appendix A) of a
// port on an IPv6 prefix: the MAC's 48 bits with ff:fe inserted in the
// middle (an 8-byte EUI-64 is used as is) and the universal/local bit
// inverted, placed in the low 64 bits of the prefix. It is how Neutron
// computes the fixed IP of a port on a slaac or dhcpv6-stateless subnet.
// The prefix must be IPv6 and at most /64 long.
func EUI64(prefix netip.Prefix, mac net.HardwareAddr) (netip.Addr, error) {
	if !prefix.IsValid() || prefix.Addr().Is4() {
		return netip.Addr{}, errors.New("ipam: unable to generate IP address by EUI64 for IPv4 prefix")
	}
	if prefix.Bits() > 64 {
		return netip.Addr{}, fmt.Errorf("ipam: EUI-64 needs a prefix of at most /64, got %s", prefix)
	}
	var iid [8]byte
	switch len(mac) {
	case 6:
		iid = [8]byte{mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}
	case 8:
		copy(iid[:], mac)
	default:
		return netip.Addr{}, fmt.Errorf("ipam: bad MAC for generating IPv6 address by EUI-64: %s", mac)
	}
	iid[0] ^= 0x02
	b := prefix.Masked().Addr().As16()
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b), nil
}
