package ipam

import "net/netip"

// Neutron's defaults for the max_dns_nameservers and
// max_subnet_host_routes options.
const (
	DefaultMaxDNSNameservers = 5
	DefaultMaxHostRoutes     = 20
)

// HostRoute is one entry of a subnet's host_routes.
type HostRoute struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

func (r HostRoute) dictString() string {
	return "{'destination': '" + r.Destination.String() + "', 'nexthop': '" + r.NextHop.String() + "'}"
}

// ParseHostRoute parses one host route as Neutron's hostroutes validator:
// the destination with ParseRouteCIDR, the nexthop with ParseIP. Errors
// are attribute-level.
func ParseHostRoute(destination, nexthop string) (HostRoute, error) {
	d, err := ParseRouteCIDR(destination)
	if err != nil {
		return HostRoute{}, err
	}
	n, err := ParseIP(nexthop)
	if err != nil {
		return HostRoute{}, err
	}
	return HostRoute{Destination: d, NextHop: n}, nil
}

// ValidateHostRoutes checks a subnet's parsed host routes in Neutron's
// order: no duplicates (attribute-level "Duplicate hostroute '...'"), at
// most maxRoutes of them (HostRoutesExhausted; a negative maxRoutes means
// no limit), and nexthop and destination both of ipVersion (InvalidInput).
// subnetID names the subnet in the exhausted message; "" means a subnet
// being created ("new subnet").
func ValidateHostRoutes(routes []HostRoute, ipVersion, maxRoutes int, subnetID string) error {
	seen := make(map[HostRoute]bool, len(routes))
	for _, r := range routes {
		k := HostRoute{r.Destination.Masked(), r.NextHop.WithZone("")}
		if seen[k] {
			return badAttr("Duplicate hostroute '%s'", r.dictString())
		}
		seen[k] = true
	}
	if maxRoutes >= 0 && len(routes) > maxRoutes {
		return newError(TypeHostRoutesExhausted,
			"Unable to complete operation for %s. The number of host routes exceeds the limit %d.",
			subnetName(subnetID), maxRoutes)
	}
	for _, r := range routes {
		if versionOf(r.NextHop) != ipVersion {
			return invalidInput("nexthop '%s' does not match the ip_version '%d'", r.NextHop, ipVersion)
		}
		if versionOf(r.Destination.Addr()) != ipVersion {
			return invalidInput("destination '%s' does not match the ip_version '%d'", r.Destination, ipVersion)
		}
	}
	return nil
}

// ParseNameserver parses one dns_nameservers entry as Neutron's
// nameservers validator: "'x' is not a valid nameserver. <reason>" with
// the reason from ParseIP. The error is attribute-level.
func ParseNameserver(s string) (netip.Addr, error) {
	a, err := ParseIP(s)
	if err != nil {
		return netip.Addr{}, badAttr("'%s' is not a valid nameserver. %s", s, err.Error())
	}
	return a, nil
}

// ValidateNameservers checks a subnet's parsed DNS name servers in
// Neutron's order: no duplicates (attribute-level "Duplicate nameserver
// 'x'"; Neutron compares the strings, this compares addresses), at most
// maxServers (DNSNameServersExhausted; negative means no limit), and each
// of ipVersion (InvalidInput "dns_nameserver 'x' does not match the
// ip_version 'n'"). subnetID as for ValidateHostRoutes.
func ValidateNameservers(servers []netip.Addr, ipVersion, maxServers int, subnetID string) error {
	seen := make(map[netip.Addr]bool, len(servers))
	for _, s := range servers {
		k := s.WithZone("")
		if seen[k] {
			return badAttr("Duplicate nameserver '%s'", s)
		}
		seen[k] = true
	}
	if maxServers >= 0 && len(servers) > maxServers {
		return newError(TypeDNSNameServersExhausted,
			"Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.",
			subnetName(subnetID), maxServers)
	}
	for _, s := range servers {
		if versionOf(s) != ipVersion {
			return invalidInput("dns_nameserver '%s' does not match the ip_version '%d'", s, ipVersion)
		}
	}
	return nil
}

func subnetName(id string) string {
	if id == "" {
		return "new subnet"
	}
	return id
}
