package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent/metadata"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// ownerDHCP is the device_owner of DHCP ports, as Neutron names it.
const ownerDHCP = "network:dhcp"

// DefaultLeaseDuration is Neutron's dhcp_lease_duration default.
const DefaultLeaseDuration = 86400 * time.Second

// Settings are the DHCP settings of the whole role, as Neutron's
// dhcp_lease_duration and dns_domain.
type Settings struct {
	// LeaseDuration is the lease time handed out; 0 means
	// DefaultLeaseDuration and a negative value an infinite lease.
	LeaseDuration time.Duration
	// DomainName is sent as option 15 (domain name) when set.
	DomainName string
	// IsolatedMetadata routes 169.254.169.254 to the DHCP port on
	// networks without a router, where the metadata role listens
	// (enable_isolated_metadata).
	IsolatedMetadata bool
}

// leaseTime is the effective lease time; negative means infinite.
func (s Settings) leaseTime() time.Duration {
	if s.LeaseDuration == 0 {
		return DefaultLeaseDuration
	}
	return s.LeaseDuration
}

// Route is a classless static route (option 121); an unspecified Via
// (0.0.0.0) means the destination is on the link.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// Lease is one address a port gets by DHCP, with every option its replies
// carry.
type Lease struct {
	PortID string
	MAC    net.HardwareAddr
	Addr   netip.Addr
	// Subnet is the address's subnet (mask and broadcast address).
	Subnet netip.Prefix
	// ServerID is the DHCP port's address on the subnet (option 54) and
	// the source of the replies.
	ServerID netip.Addr
	// Routers (option 3) is empty on a subnet without gateway.
	Routers []netip.Addr
	// DNS servers (option 6), none when the subnet names none.
	DNS []netip.Addr
	// Routes are the host routes (options 121 and 249), with the default
	// route through the gateway when there are any, as RFC 3442 requires.
	Routes []Route
	// MTU is the network's MTU (option 26); 0 sends none.
	MTU        int
	DomainName string
	// Hostname (option 12) is host-<address with dashes>, as Neutron names it.
	Hostname string
	// From the port's extra_dhcp_opts:
	NTP          []netip.Addr
	DomainSearch []string
	TFTPServer   string
	BootFile     string
	// NextServer is the BOOTP next server address (siaddr).
	NextServer netip.Addr
	// LeaseTime is negative for an infinite lease; Renewal and Rebinding
	// are T1 and T2 (0 for an infinite lease).
	LeaseTime, Renewal, Rebinding time.Duration
}

// Table answers DHCPv4 for one network: every port's leases by MAC. It is
// immutable once built, so a server swaps a new one in atomically.
type Table struct {
	// Network is the network's id.
	Network string
	leases  map[string][]Lease
	// serverIDs are the DHCP port's IPv4 addresses.
	serverIDs []netip.Addr
	// Problems lists what the table could not honour (extra DHCP options
	// it does not support, malformed addresses), for the log.
	Problems []string
}

// Lookup returns the leases of a MAC, the preferred one first.
func (t *Table) Lookup(mac net.HardwareAddr) []Lease {
	if t == nil {
		return nil
	}
	return t.leases[strings.ToLower(mac.String())]
}

// Len is the number of MACs the table knows.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.leases)
}

// IsServer tells whether addr is one of this server's identifiers.
func (t *Table) IsServer(addr netip.Addr) bool {
	return t != nil && slices.Contains(t.serverIDs, addr)
}

// subnetPlan holds what every lease on one served subnet shares.
type subnetPlan struct {
	id       string
	prefix   netip.Prefix
	serverID netip.Addr
	routers  []netip.Addr
	dns      []netip.Addr
	routes   []Route
}

// BuildTable computes the leases of network n as a DHCP server on its
// DHCP port dhcpPort answers them: one per IPv4 fixed IP of each port on
// a subnet with DHCP enabled on which the DHCP port has an address. DHCP
// ports get none. The options follow Neutron's DHCP agent: router from
// gateway_ip (or a host route to 0.0.0.0/0 when there is no gateway), DNS
// servers from dns_nameservers (none if only 0.0.0.0 is named), option 121
// with on-link routes to the network's other IPv4 subnets, the subnet's
// host routes and then the default route, the network's MTU, then the
// port's extra_dhcp_opts on top (see ExtraOptionNames).
func BuildTable(n msg.DHCPNetwork, dhcpPort *msg.Port, s Settings) *Table {
	t := &Table{Network: n.ID, leases: map[string][]Lease{}}
	if dhcpPort == nil {
		return t
	}
	plans := map[string]*subnetPlan{}
	for _, sub := range n.Subnets {
		plan, err := planSubnet(n, sub, dhcpPort, s)
		if err != nil {
			t.Problems = append(t.Problems, err.Error())
			continue
		}
		if plan != nil {
			plans[sub.ID] = plan
			t.serverIDs = append(t.serverIDs, plan.serverID)
		}
	}
	lease := s.leaseTime()
	for _, p := range n.Ports {
		if p.DeviceOwner == ownerDHCP {
			continue
		}
		mac, err := net.ParseMAC(p.MAC)
		if err != nil || len(mac) != 6 {
			t.Problems = append(t.Problems, fmt.Sprintf("port %s: MAC address %q is not an Ethernet address", p.ID, p.MAC))
			continue
		}
		key := strings.ToLower(mac.String())
		for _, f := range p.FixedIPs {
			plan := plans[f.SubnetID]
			if plan == nil {
				continue
			}
			addr, err := netip.ParseAddr(f.IPAddress)
			if err != nil || !addr.Is4() || !plan.prefix.Contains(addr) {
				t.Problems = append(t.Problems, fmt.Sprintf("port %s: address %q is not on subnet %s", p.ID, f.IPAddress, plan.prefix))
				continue
			}
			l := Lease{
				PortID: p.ID, MAC: mac, Addr: addr, Subnet: plan.prefix, ServerID: plan.serverID,
				Routers: plan.routers, DNS: plan.dns, Routes: plan.routes, MTU: n.MTU,
				DomainName: s.DomainName, Hostname: "host-" + strings.ReplaceAll(addr.String(), ".", "-"),
				LeaseTime: lease,
			}
			if lease > 0 {
				l.Renewal, l.Rebinding = lease/2, lease*7/8
			}
			t.Problems = append(t.Problems, applyExtraOptions(&l, p)...)
			t.leases[key] = append(t.leases[key], l)
		}
	}
	return t
}

// planSubnet returns the shared options of a subnet this server serves,
// or nil if it serves none there.
func planSubnet(n msg.DHCPNetwork, sub msg.Subnet, dhcpPort *msg.Port, s Settings) (*subnetPlan, error) {
	if sub.IPVersion != 4 || !sub.EnableDHCP {
		return nil, nil
	}
	prefix, err := netip.ParsePrefix(sub.CIDR)
	if err != nil || !prefix.Addr().Is4() {
		return nil, fmt.Errorf("subnet %s: CIDR %q is not IPv4", sub.ID, sub.CIDR)
	}
	prefix = prefix.Masked()
	plan := &subnetPlan{id: sub.ID, prefix: prefix}
	for _, f := range dhcpPort.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is4() && prefix.Contains(a) && (f.SubnetID == sub.ID || f.SubnetID == "") {
			plan.serverID = a
			break
		}
	}
	if !plan.serverID.IsValid() {
		// As dnsmasq: no address of ours on the subnet, no DHCP there.
		return nil, nil
	}
	gateway, _ := netip.ParseAddr(sub.GatewayIP)
	var routes []Route
	for _, other := range n.Subnets {
		if other.IPVersion != 4 || other.ID == sub.ID {
			continue
		}
		if p, err := netip.ParsePrefix(other.CIDR); err == nil && p.Masked() != prefix {
			routes = append(routes, Route{Dst: p.Masked(), Via: netip.IPv4Unspecified()})
		}
	}
	for _, hr := range sub.HostRoutes {
		dst, err1 := netip.ParsePrefix(hr.Destination)
		via, err2 := netip.ParseAddr(hr.Nexthop)
		if err1 != nil || err2 != nil || !dst.Addr().Is4() || !via.Is4() {
			return nil, fmt.Errorf("subnet %s: host route %s via %s is not IPv4", sub.ID, hr.Destination, hr.Nexthop)
		}
		if dst.Bits() == 0 {
			if !gateway.IsValid() {
				gateway = via
			}
			continue
		}
		routes = append(routes, Route{Dst: dst.Masked(), Via: via})
	}
	if s.IsolatedMetadata && metadata.IsolatedNetwork(n) {
		routes = append(routes, Route{Dst: netip.MustParsePrefix(metadata.Address + "/32"), Via: plan.serverID})
	}
	if gateway.IsValid() {
		plan.routers = []netip.Addr{gateway}
		if len(routes) > 0 {
			routes = append(routes, Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: gateway})
		}
	}
	plan.routes = routes
	plan.dns = dnsServers(sub.DNSNameservers)
	return plan, nil
}

// dnsServers parses a subnet's IPv4 name servers; naming only 0.0.0.0
// means "announce none", as in Neutron.
func dnsServers(names []string) []netip.Addr {
	var out []netip.Addr
	anyOnly := len(names) > 0
	for _, s := range names {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			continue
		}
		if !a.IsUnspecified() {
			anyOnly = false
			out = append(out, a)
		}
	}
	if anyOnly {
		return nil
	}
	return out
}

// ExtraOptionNames are the extra_dhcp_opts (IPv4) the server honours, by
// dnsmasq's name or option number as Neutron passes them on: router (3),
// dns-server (6), hostname (12), domain-name (15), mtu (26), ntp-server
// (42), T1 (58), T2 (59), tftp-server (66), bootfile-name (67),
// domain-search (119), classless-static-route (121) and server-ip-address
// (the BOOTP next server). Others are reported as problems and ignored.
var ExtraOptionNames = []string{
	"router", "dns-server", "hostname", "domain-name", "mtu", "ntp-server", "T1", "T2",
	"tftp-server", "bootfile-name", "domain-search", "classless-static-route", "server-ip-address",
}

// extraOptionNumbers maps option numbers to ExtraOptionNames.
var extraOptionNumbers = map[string]string{
	"3": "router", "6": "dns-server", "12": "hostname", "15": "domain-name", "26": "mtu",
	"42": "ntp-server", "58": "T1", "59": "T2", "66": "tftp-server", "67": "bootfile-name",
	"119": "domain-search", "121": "classless-static-route",
}

// applyExtraOptions applies a port's IPv4 extra DHCP options to a lease
// and returns what it could not apply.
func applyExtraOptions(l *Lease, p msg.Port) []string {
	var problems []string
	for _, o := range p.ExtraDHCPOpts {
		if o.IPVersion != 0 && o.IPVersion != 4 {
			continue
		}
		name := o.Name
		if canonical, ok := extraOptionNumbers[name]; ok {
			name = canonical
		}
		if err := applyExtraOption(l, name, strings.TrimSpace(o.Value)); err != nil {
			problems = append(problems, fmt.Sprintf("port %s: extra DHCP option %s=%q: %v", p.ID, o.Name, o.Value, err))
		}
	}
	return problems
}

func applyExtraOption(l *Lease, name, value string) error {
	var err error
	switch name {
	case "router":
		l.Routers, err = addrList(value)
	case "dns-server":
		l.DNS, err = addrList(value)
	case "ntp-server":
		l.NTP, err = addrList(value)
	case "hostname":
		l.Hostname = value
	case "domain-name":
		l.DomainName = value
	case "tftp-server":
		l.TFTPServer = value
	case "bootfile-name":
		l.BootFile = value
	case "domain-search":
		l.DomainSearch = nil
		for _, d := range strings.Split(value, ",") {
			if d = strings.TrimSpace(d); d != "" {
				l.DomainSearch = append(l.DomainSearch, d)
			}
		}
	case "mtu":
		var mtu int
		mtu, err = strconv.Atoi(value)
		if err == nil && (mtu < 68 || mtu > 65535) {
			err = fmt.Errorf("MTU out of range 68-65535")
		}
		if err == nil {
			l.MTU = mtu
		}
	case "T1", "T2":
		var d time.Duration
		d, err = seconds(value)
		if err == nil && name == "T1" {
			l.Renewal = d
		} else if err == nil {
			l.Rebinding = d
		}
	case "classless-static-route":
		l.Routes, err = routeList(value)
	case "server-ip-address":
		var a netip.Addr
		a, err = netip.ParseAddr(value)
		if err == nil && !a.Is4() {
			err = fmt.Errorf("not an IPv4 address")
		}
		if err == nil {
			l.NextServer = a
		}
	default:
		return fmt.Errorf("not supported by this DHCP server (supported: %s)", strings.Join(ExtraOptionNames, ", "))
	}
	return err
}

// addrList parses a comma-separated list of IPv4 addresses; blank is none.
func addrList(value string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range strings.Split(value, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", s)
		}
		out = append(out, a)
	}
	return out, nil
}

// routeList parses "destination,nexthop[,destination,nexthop…]", as
// dnsmasq's classless-static-route; blank is none.
func routeList(value string) ([]Route, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	parts := strings.Split(value, ",")
	if len(parts)%2 != 0 {
		return nil, fmt.Errorf("want destination,nexthop pairs")
	}
	var out []Route
	for i := 0; i < len(parts); i += 2 {
		dst, err := netip.ParsePrefix(strings.TrimSpace(parts[i]))
		if err != nil || !dst.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 CIDR", parts[i])
		}
		via, err := netip.ParseAddr(strings.TrimSpace(parts[i+1]))
		if err != nil || !via.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", parts[i+1])
		}
		out = append(out, Route{Dst: dst.Masked(), Via: via})
	}
	return out, nil
}

// seconds parses a time in seconds, optionally suffixed with s, as
// dnsmasq's T1 and T2.
func seconds(value string) (time.Duration, error) {
	n, err := strconv.ParseUint(strings.TrimSuffix(value, "s"), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds", value)
	}
	return time.Duration(n) * time.Second, nil
}
