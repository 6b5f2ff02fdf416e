package ipam

import (
	"net/netip"
	"strings"
)

// ParseCIDR parses a subnet CIDR strictly: it must be in CIDR notation
// (address "/" length, no whitespace, no zone, dotted-decimal IPv4 without
// leading zeros) and the host bits must be zero. A CIDR with host bits set
// is refused with "'10.0.0.1/24' isn't a recognized IP subnet cidr,
// '10.0.0.0/24' is recommended"; anything else unparsable gets "'x' is not
// a valid IP subnet". Errors are attribute-level (TypeBadRequest).
//
// Current Neutron accepts host bits and masks them off (see
// ParseCIDRMasked); ParseCIDR is the stricter rule neutrino's design
// chose.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := parseCIDRSyntax(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, badAttr("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, m)
	}
	return p, nil
}

// ParseCIDRMasked parses a subnet CIDR as current Neutron does: the syntax
// rules of ParseCIDR apply, but host bits are accepted and cleared
// ("10.0.0.1/24" becomes 10.0.0.0/24).
func ParseCIDRMasked(s string) (netip.Prefix, error) {
	p, err := parseCIDRSyntax(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

func parseCIDRSyntax(s string) (netip.Prefix, error) {
	if hasSpace(s) || !strings.Contains(s, "/") {
		return netip.Prefix{}, badAttr("'%s' is not a valid IP subnet", s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, badAttr("'%s' is not a valid IP subnet", s)
	}
	return p, nil
}

// ParseRouteCIDR parses a host route destination as Neutron's route_cidr
// validator does: CIDR notation with zero host bits ("'x' is not a valid
// CIDR") that is not a loopback network ("'x' is not a routable CIDR").
func ParseRouteCIDR(s string) (netip.Prefix, error) {
	p, err := parseCIDRSyntax(s)
	if err != nil || p.Masked() != p {
		return netip.Prefix{}, badAttr("'%s' is not a valid CIDR", s)
	}
	if isLoopbackNet(p) {
		return netip.Prefix{}, badAttr("'%s' is not a routable CIDR", s)
	}
	return p, nil
}

// within reports whether prefix p lies entirely inside net.
func within(p, net netip.Prefix) bool {
	return p.Addr().Is4() == net.Addr().Is4() && p.Bits() >= net.Bits() && net.Contains(p.Addr())
}

// isLoopbackNet and isMulticastNet test containment in the well-known
// networks, as netaddr's is_loopback and is_multicast do for a network.
func isLoopbackNet(p netip.Prefix) bool {
	return within(p, netip.PrefixFrom(netip.AddrFrom4([4]byte{127}), 8)) ||
		within(p, netip.PrefixFrom(netip.IPv6Loopback(), 128))
}

func isMulticastNet(p netip.Prefix) bool {
	return within(p, netip.PrefixFrom(netip.AddrFrom4([4]byte{224}), 4)) ||
		within(p, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xff}), 8))
}

// ValidateSubnetCIDR applies the checks Neutron makes on a subnet's CIDR
// when the subnet is created (or DHCP is turned on): the IPv6 network "::"
// is refused unless the subnet comes from prefix delegation, and a subnet
// with DHCP enabled may not be longer than /30 (IPv4) or /126 (IPv6), nor
// multicast, loopback, or an IPv4 network starting at 0.0.0.0. Errors are
// InvalidInput.
func ValidateSubnetCIDR(p netip.Prefix, enableDHCP, prefixDelegation bool) error {
	p = p.Masked()
	v6 := !p.Addr().Is4()
	if v6 && p.Addr().IsUnspecified() && !prefixDelegation {
		return invalidInput("IPv6 subnet '::' is not supported")
	}
	if !enableDHCP {
		return nil
	}
	if (!v6 && p.Bits() > 30) || (v6 && p.Bits() > 126) {
		return invalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
	}
	if isMulticastNet(p) {
		return invalidInput("Multicast IP subnet is not supported if enable_dhcp is True")
	}
	if isLoopbackNet(p) {
		return invalidInput("Loopback IP subnet is not supported if enable_dhcp is True")
	}
	if !v6 && p.Addr().IsUnspecified() {
		// Neutron's message really ends with a full stop of its own.
		return invalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
	}
	return nil
}

// DefaultGateway is the gateway Neutron gives a subnet created with an
// explicit cidr and no gateway_ip: the network address plus one for IPv4
// (x.x.x.1), and for IPv6 the network address itself, the subnet-router
// anycast address (Neutron since Ussuri, bug 1682094; "2001:db8::" for
// 2001:db8::/64). For an IPv4 /32 the result lies outside the subnet, as
// in Neutron, and for 255.255.255.255/32 it is the zero Addr (no gateway).
//
// A subnet allocated from a subnet pool without a cidr gets
// PoolSubnetGateway instead. gateway_ip null in the request means no
// gateway; callers handle that before asking for a default.
func DefaultGateway(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Addr().Is4() {
		return p.Addr().Next()
	}
	return p.Addr()
}

// PoolSubnetGateway is the default gateway Neutron gives a subnet it
// carves out of a subnet pool (no cidr in the request): the network
// address plus one in both families (x.x.x.1, ...::1).
func PoolSubnetGateway(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}

// ValidateGateway checks a user-given gateway against the subnet as
// Neutron does: an IPv4 gateway inside the subnet may not be its network
// or broadcast address (for /31 and /32 too). A gateway outside the
// subnet is accepted (it is assumed on-link), and IPv6 allows any address.
// The IP version is checked separately with ValidateIPVersion.
func ValidateGateway(cidr netip.Prefix, gw netip.Addr) error {
	cidr = cidr.Masked()
	if !gw.Is4() || !cidr.Addr().Is4() || !cidr.Contains(gw) {
		return nil
	}
	first, last := prefixRange(cidr)
	if g := u128From(gw); g == first || g == last {
		return invalidInput("Gateway is not valid on subnet")
	}
	return nil
}

// Overlaps reports whether two prefixes share any address. Prefixes of
// different families never overlap; host bits are ignored.
func Overlaps(a, b netip.Prefix) bool {
	a, b = a.Masked(), b.Masked()
	if a.Addr().Is4() != b.Addr().Is4() {
		return false
	}
	return a.Overlaps(b)
}

// routerPortOwner lists Neutron's ROUTER_PORT_OWNERS.
func routerPortOwner(owner string) bool {
	switch owner {
	case "network:router_interface",
		"network:ha_router_replicated_interface",
		"network:router_interface_distributed",
		"network:router_centralized_snat",
		"network:router_gateway":
		return true
	}
	return false
}

// ValidIPForSubnet reports whether ip may be a fixed IP of a port with the
// given device_owner on the subnet, as Neutron's check_subnet_ip: it must
// be inside the CIDR; in IPv4 it may be neither the network nor the
// broadcast address; in IPv6 the network (subnet-router anycast) address
// is reserved for router ports (and for callers that pass an empty owner).
func ValidIPForSubnet(cidr netip.Prefix, ip netip.Addr, deviceOwner string) bool {
	cidr = cidr.Masked()
	if ip.Is4() != cidr.Addr().Is4() || !cidr.Contains(ip.WithZone("")) {
		return false
	}
	first, last := prefixRange(cidr)
	a := u128From(ip)
	if ip.Is4() {
		return a != first && a != last
	}
	return deviceOwner == "" || routerPortOwner(deviceOwner) || a != first
}
