package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

const host = "node-1"

func fixedIP(subnet, ip string) msg.FixedIP { return msg.FixedIP{SubnetID: subnet, IPAddress: ip} }

func vmPort(id, mac string, ips ...msg.FixedIP) msg.Port {
	return msg.Port{ID: id, NetworkID: "net-1", MAC: mac, FixedIPs: ips, AdminStateUp: true, DeviceOwner: "compute:nova"}
}

// testNetwork has two DHCP subnets (one without gateway), one without
// DHCP and an IPv6 one; the DHCP port is on the DHCP subnets.
func testNetwork() msg.DHCPNetwork {
	dhcpPort := msg.Port{ID: "dhcp-port", NetworkID: "net-1", MAC: "fa:16:3e:00:00:02", DeviceOwner: ownerDHCP, Host: host,
		FixedIPs: []msg.FixedIP{fixedIP("sub-a", "10.0.0.2"), fixedIP("sub-b", "10.1.0.2"), fixedIP("sub-6", "2001:db8::2")}}
	return msg.DHCPNetwork{
		ID: "net-1", AdminStateUp: true, MTU: 1450,
		Segment: msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 100},
		Subnets: []msg.Subnet{
			{ID: "sub-a", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1", EnableDHCP: true,
				DNSNameservers: []string{"8.8.8.8", "8.8.4.4"},
				HostRoutes:     []msg.HostRoute{{Destination: "192.168.0.0/16", Nexthop: "10.0.0.254"}}},
			{ID: "sub-b", IPVersion: 4, CIDR: "10.1.0.0/24", EnableDHCP: true},
			{ID: "sub-c", IPVersion: 4, CIDR: "10.2.0.0/24", GatewayIP: "10.2.0.1"},
			{ID: "sub-6", IPVersion: 6, CIDR: "2001:db8::/64", EnableDHCP: true, IPv6AddressMode: "dhcpv6-stateful"},
		},
		DHCPPort: &dhcpPort,
		Ports: []msg.Port{
			dhcpPort,
			vmPort("vm-1", "fa:16:3e:00:00:05", fixedIP("sub-a", "10.0.0.5")),
			vmPort("vm-2", "FA:16:3E:00:00:06", fixedIP("sub-c", "10.2.0.6"), fixedIP("sub-b", "10.1.0.6"), fixedIP("sub-6", "2001:db8::6")),
		},
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func route(dst, via string) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via)}
}

func onlyLease(t *testing.T, tb *Table, mac string) Lease {
	t.Helper()
	ls := tb.Lookup(mustMAC(t, mac))
	if len(ls) != 1 {
		t.Fatalf("%s has %d leases, want 1: %+v", mac, len(ls), ls)
	}
	return ls[0]
}

func TestBuildTableSubnetOptionsAsNeutron(t *testing.T) {
	tb := BuildTable(testNetwork(), testNetwork().DHCPPort, Settings{DomainName: "openstacklocal"})
	if len(tb.Problems) != 0 {
		t.Errorf("problems: %v", tb.Problems)
	}
	if tb.Len() != 2 {
		t.Errorf("table knows %d MACs, want the two VMs (the DHCP port gets no lease)", tb.Len())
	}
	got := onlyLease(t, tb, "fa:16:3e:00:00:05")
	want := Lease{
		PortID: "vm-1", Addr: netip.MustParseAddr("10.0.0.5"), Subnet: netip.MustParsePrefix("10.0.0.0/24"),
		ServerID: netip.MustParseAddr("10.0.0.2"), Routers: addrs("10.0.0.1"), DNS: addrs("8.8.8.8", "8.8.4.4"),
		// On-link routes to the other IPv4 subnets first, then the host
		// routes, then the default route (RFC 3442: option 121 replaces
		// the router option).
		Routes: []Route{
			route("10.1.0.0/24", "0.0.0.0"), route("10.2.0.0/24", "0.0.0.0"),
			route("192.168.0.0/16", "10.0.0.254"), route("0.0.0.0/0", "10.0.0.1"),
		},
		MTU: 1450, DomainName: "openstacklocal", Hostname: "host-10-0-0-5",
		LeaseTime: 86400 * time.Second, Renewal: 43200 * time.Second, Rebinding: 75600 * time.Second,
	}
	checkLease(t, got, want)

	// vm-2: only its address on the DHCP subnet without gateway; no
	// router, no default route, no DNS.
	got = onlyLease(t, tb, "fa:16:3e:00:00:06")
	want = Lease{
		PortID: "vm-2", Addr: netip.MustParseAddr("10.1.0.6"), Subnet: netip.MustParsePrefix("10.1.0.0/24"),
		ServerID: netip.MustParseAddr("10.1.0.2"),
		Routes:   []Route{route("10.0.0.0/24", "0.0.0.0"), route("10.2.0.0/24", "0.0.0.0")},
		MTU:      1450, DomainName: "openstacklocal", Hostname: "host-10-1-0-6",
		LeaseTime: 86400 * time.Second, Renewal: 43200 * time.Second, Rebinding: 75600 * time.Second,
	}
	checkLease(t, got, want)
	for _, a := range []string{"10.0.0.2", "10.1.0.2"} {
		if !tb.IsServer(netip.MustParseAddr(a)) {
			t.Errorf("%s is not a server identifier", a)
		}
	}
	if tb.IsServer(netip.MustParseAddr("10.2.0.1")) {
		t.Error("an address the DHCP port does not have is a server identifier")
	}
}

func checkLease(t *testing.T, got, want Lease) {
	t.Helper()
	want.MAC = got.MAC
	if got.PortID != want.PortID || got.Addr != want.Addr || got.Subnet != want.Subnet || got.ServerID != want.ServerID ||
		!slices.Equal(got.Routers, want.Routers) || !slices.Equal(got.DNS, want.DNS) || !slices.Equal(got.Routes, want.Routes) ||
		got.MTU != want.MTU || got.DomainName != want.DomainName || got.Hostname != want.Hostname ||
		got.LeaseTime != want.LeaseTime || got.Renewal != want.Renewal || got.Rebinding != want.Rebinding ||
		!slices.Equal(got.NTP, want.NTP) || !slices.Equal(got.DomainSearch, want.DomainSearch) ||
		got.TFTPServer != want.TFTPServer || got.BootFile != want.BootFile || got.NextServer != want.NextServer {
		t.Errorf("lease:\n got %+v\nwant %+v", got, want)
	}
}

func TestBuildTableGatewayFromDefaultHostRouteAndDNSAnyAddress(t *testing.T) {
	n := testNetwork()
	n.Subnets = n.Subnets[1:2] // sub-b alone: no gateway
	n.Subnets[0].HostRoutes = []msg.HostRoute{{Destination: "0.0.0.0/0", Nexthop: "10.1.0.254"}}
	n.Subnets[0].DNSNameservers = []string{"0.0.0.0"}
	l := onlyLease(t, BuildTable(n, n.DHCPPort, Settings{}), "fa:16:3e:00:00:06")
	if !slices.Equal(l.Routers, addrs("10.1.0.254")) {
		t.Errorf("routers %v: a default host route stands in for a missing gateway", l.Routers)
	}
	if len(l.Routes) != 0 {
		t.Errorf("routes %v: the default host route is the router, not option 121", l.Routes)
	}
	if len(l.DNS) != 0 {
		t.Errorf("DNS %v: dns_nameservers 0.0.0.0 announces none", l.DNS)
	}
	if l.DomainName != "" {
		t.Errorf("domain %q without a configured one", l.DomainName)
	}
}

func TestBuildTableLeaseTimes(t *testing.T) {
	n := testNetwork()
	l := onlyLease(t, BuildTable(n, n.DHCPPort, Settings{LeaseDuration: -1}), "fa:16:3e:00:00:05")
	if l.LeaseTime >= 0 || l.Renewal != 0 || l.Rebinding != 0 {
		t.Errorf("infinite lease: %v, T1 %v, T2 %v", l.LeaseTime, l.Renewal, l.Rebinding)
	}
	l = onlyLease(t, BuildTable(n, n.DHCPPort, Settings{LeaseDuration: 120 * time.Second}), "fa:16:3e:00:00:05")
	if l.LeaseTime != 120*time.Second || l.Renewal != 60*time.Second || l.Rebinding != 105*time.Second {
		t.Errorf("120 s lease: %v, T1 %v, T2 %v", l.LeaseTime, l.Renewal, l.Rebinding)
	}
}

func TestBuildTableNothingWithoutDHCPPortAddress(t *testing.T) {
	n := testNetwork()
	if tb := BuildTable(n, nil, Settings{}); tb.Len() != 0 {
		t.Errorf("no DHCP port: %d MACs served", tb.Len())
	}
	// The DHCP port lost its address on sub-a: vm-1 is not served there.
	p := *n.DHCPPort
	p.FixedIPs = []msg.FixedIP{fixedIP("sub-b", "10.1.0.2")}
	tb := BuildTable(n, &p, Settings{})
	if ls := tb.Lookup(mustMAC(t, "fa:16:3e:00:00:05")); len(ls) != 0 {
		t.Errorf("vm-1 served on a subnet the DHCP port has no address on: %+v", ls)
	}
	if tb.IsServer(netip.MustParseAddr("10.0.0.2")) {
		t.Error("10.0.0.2 still a server identifier")
	}
}

func TestBuildTableSeveralAddressesOfOnePort(t *testing.T) {
	n := testNetwork()
	n.Ports = append(n.Ports, vmPort("vm-3", "fa:16:3e:00:00:07", fixedIP("sub-b", "10.1.0.7"), fixedIP("sub-a", "10.0.0.7")))
	ls := BuildTable(n, n.DHCPPort, Settings{}).Lookup(mustMAC(t, "fa:16:3e:00:00:07"))
	if len(ls) != 2 || ls[0].Addr.String() != "10.1.0.7" || ls[1].Addr.String() != "10.0.0.7" {
		t.Fatalf("leases %+v: want both addresses, in the port's order", ls)
	}
	if ls[1].ServerID.String() != "10.0.0.2" {
		t.Errorf("server identifier %s on sub-a", ls[1].ServerID)
	}
}

func TestBuildTableExtraDHCPOptions(t *testing.T) {
	n := testNetwork()
	p := vmPort("vm-3", "fa:16:3e:00:00:07", fixedIP("sub-a", "10.0.0.7"))
	p.ExtraDHCPOpts = []msg.DHCPOption{
		{Name: "router", Value: "", IPVersion: 4},
		{Name: "dns-server", Value: "1.1.1.1, 9.9.9.9", IPVersion: 4},
		{Name: "26", Value: "1400", IPVersion: 4},
		{Name: "ntp-server", Value: "10.0.0.123"},
		{Name: "domain-search", Value: "a.example,b.example", IPVersion: 4},
		{Name: "tftp-server", Value: "10.0.0.10", IPVersion: 4},
		{Name: "bootfile-name", Value: "pxelinux.0", IPVersion: 4},
		{Name: "server-ip-address", Value: "10.0.0.10", IPVersion: 4},
		{Name: "classless-static-route", Value: "172.16.0.0/12,10.0.0.253", IPVersion: 4},
		{Name: "T1", Value: "100s", IPVersion: 4},
		{Name: "hostname", Value: "pxe-host", IPVersion: 4},
		{Name: "dns-server", Value: "2001:db8::53", IPVersion: 6},
		{Name: "mtu", Value: "huge", IPVersion: 4},
		{Name: "tag:foo,router", Value: "10.0.0.9", IPVersion: 4},
	}
	n.Ports = append(n.Ports, p)
	tb := BuildTable(n, n.DHCPPort, Settings{})
	got := onlyLease(t, tb, "fa:16:3e:00:00:07")
	want := Lease{
		PortID: "vm-3", Addr: netip.MustParseAddr("10.0.0.7"), Subnet: netip.MustParsePrefix("10.0.0.0/24"),
		ServerID: netip.MustParseAddr("10.0.0.2"), DNS: addrs("1.1.1.1", "9.9.9.9"),
		Routes: []Route{route("172.16.0.0/12", "10.0.0.253")},
		MTU:    1400, Hostname: "pxe-host", NTP: addrs("10.0.0.123"), DomainSearch: []string{"a.example", "b.example"},
		TFTPServer: "10.0.0.10", BootFile: "pxelinux.0", NextServer: netip.MustParseAddr("10.0.0.10"),
		LeaseTime: 86400 * time.Second, Renewal: 100 * time.Second, Rebinding: 75600 * time.Second,
	}
	checkLease(t, got, want)
	if len(tb.Problems) != 2 || !strings.Contains(tb.Problems[0], "mtu") || !strings.Contains(tb.Problems[1], "not supported") {
		t.Errorf("problems %q: want the bad MTU and the tagged option", tb.Problems)
	}
}

// exchange encodes a client message, answers it and decodes the answer,
// as the wire would.
func exchange(t *testing.T, tb *Table, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Reply, bool) {
	t.Helper()
	wire, err := dhcpv4.FromBytes(req.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	r, ok := Respond(tb, wire)
	if !ok {
		return nil, r, false
	}
	back, err := dhcpv4.FromBytes(r.Msg.ToBytes())
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	return back, r, true
}

func discover(t *testing.T, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mustMAC(t, mac), mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func request(t *testing.T, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	return discover(t, mac, append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
}

var bcast = netip.MustParseAddrPort("255.255.255.255:68")

func TestRespondDiscoverAndRequest(t *testing.T) {
	n := testNetwork()
	tb := BuildTable(n, n.DHCPPort, Settings{LeaseDuration: time.Hour, DomainName: "example.org"})
	offer, r, ok := exchange(t, tb, discover(t, "fa:16:3e:00:00:05"))
	if !ok {
		t.Fatal("known MAC got no offer")
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.YourIPAddr.String() != "10.0.0.5" || offer.OpCode != dhcpv4.OpcodeBootReply {
		t.Fatalf("offer: %s", offer.Summary())
	}
	if r.Dst != bcast || r.Src.String() != "10.0.0.2" {
		t.Errorf("offer from %s to %s; want from 10.0.0.2, broadcast", r.Src, r.Dst)
	}
	checkOptions(t, offer)

	// Selecting: the offer's server and address.
	ack, _, ok := exchange(t, tb, request(t, "fa:16:3e:00:00:05",
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.2"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5")))))
	if !ok || ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != "10.0.0.5" {
		t.Fatalf("request: %v %v", ok, ack)
	}
	checkOptions(t, ack)

	// Renewing: unicast, the client's address in ciaddr; the answer goes
	// to that address.
	ack, r, ok = exchange(t, tb, request(t, "fa:16:3e:00:00:05", dhcpv4.WithClientIP(net.ParseIP("10.0.0.5"))))
	if !ok || ack.MessageType() != dhcpv4.MessageTypeAck || r.Dst.String() != "10.0.0.5:68" {
		t.Fatalf("renewal: %v, to %s", ack, r.Dst)
	}
}

// checkOptions checks the options of vm-1's answers as a client decodes them.
func checkOptions(t *testing.T, m *dhcpv4.DHCPv4) {
	t.Helper()
	if got := m.ServerIdentifier().String(); got != "10.0.0.2" {
		t.Errorf("server identifier %s", got)
	}
	if got := net.IP(m.SubnetMask()).String(); got != "255.255.255.0" {
		t.Errorf("mask %s", got)
	}
	if got := m.BroadcastAddress().String(); got != "10.0.0.255" {
		t.Errorf("broadcast %s", got)
	}
	if got := m.Router(); len(got) != 1 || got[0].String() != "10.0.0.1" {
		t.Errorf("router %v", got)
	}
	if got := m.DNS(); len(got) != 2 || got[0].String() != "8.8.8.8" || got[1].String() != "8.8.4.4" {
		t.Errorf("DNS %v", got)
	}
	if got := m.IPAddressLeaseTime(0); got != time.Hour {
		t.Errorf("lease %v", got)
	}
	if t1, t2 := m.IPAddressRenewalTime(0), m.IPAddressRebindingTime(0); t1 != 30*time.Minute || t2 != 52*time.Minute+30*time.Second {
		t.Errorf("T1 %v T2 %v", t1, t2)
	}
	if got := m.Options.Get(dhcpv4.OptionInterfaceMTU); len(got) != 2 || binary.BigEndian.Uint16(got) != 1450 {
		t.Errorf("MTU option %v", got)
	}
	var routes []string
	for _, r := range m.ClasslessStaticRoute() {
		routes = append(routes, r.String())
	}
	want := []string{"route to 10.1.0.0/24 via 0.0.0.0", "route to 10.2.0.0/24 via 0.0.0.0", "route to 192.168.0.0/16 via 10.0.0.254", "route to 0.0.0.0/0 via 10.0.0.1"}
	if !slices.Equal(routes, want) {
		t.Errorf("option 121 %q, want %q", routes, want)
	}
	if ms := m.Options.Get(dhcpv4.GenericOptionCode(optionMSClasslessStaticRoute)); !slices.Equal(ms, m.Options.Get(dhcpv4.OptionClasslessStaticRoute)) {
		t.Errorf("option 249 %v differs from 121", ms)
	}
	if m.DomainName() != "example.org" || m.HostName() != "host-10-0-0-5" {
		t.Errorf("domain %q hostname %q", m.DomainName(), m.HostName())
	}
}

func TestRespondUnknownMACAndOtherServer(t *testing.T) {
	n := testNetwork()
	tb := BuildTable(n, n.DHCPPort, Settings{})
	if _, _, ok := exchange(t, tb, discover(t, "fa:16:3e:99:99:99")); ok {
		t.Error("an unknown MAC got an offer")
	}
	if _, _, ok := exchange(t, tb, request(t, "fa:16:3e:99:99:99", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5"))))); ok {
		t.Error("an unknown MAC got an answer to a request")
	}
	// The client took another DHCP agent's offer: silence, not NAK.
	if _, _, ok := exchange(t, tb, request(t, "fa:16:3e:00:00:05",
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.3"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5"))))); ok {
		t.Error("answered a request meant for another server")
	}
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline} {
		if _, _, ok := exchange(t, tb, discover(t, "fa:16:3e:00:00:05", dhcpv4.WithMessageType(mt))); ok {
			t.Errorf("answered a %s", mt)
		}
	}
	var nilTable *Table
	if _, _, ok := exchange(t, nilTable, discover(t, "fa:16:3e:00:00:05")); ok {
		t.Error("a nil table answered")
	}
}

func TestRespondNAKsWrongAddress(t *testing.T) {
	n := testNetwork()
	tb := BuildTable(n, n.DHCPPort, Settings{})
	for name, req := range map[string]*dhcpv4.DHCPv4{
		"init-reboot": request(t, "fa:16:3e:00:00:05", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.99")))),
		"selecting":   request(t, "fa:16:3e:00:00:05", dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.2"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.99")))),
		"renewing":    request(t, "fa:16:3e:00:00:05", dhcpv4.WithClientIP(net.ParseIP("10.0.0.99"))),
		"other MAC's": request(t, "fa:16:3e:00:00:05", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.1.0.6")))),
	} {
		m, r, ok := exchange(t, tb, req)
		if !ok || m.MessageType() != dhcpv4.MessageTypeNak {
			t.Errorf("%s: %v %v, want NAK", name, ok, m)
			continue
		}
		if r.Dst != bcast || !m.YourIPAddr.IsUnspecified() || m.ServerIdentifier().String() != "10.0.0.2" {
			t.Errorf("%s: NAK to %s, yiaddr %s, server %s", name, r.Dst, m.YourIPAddr, m.ServerIdentifier())
		}
	}
}

func TestRespondDiscoverPrefersRequestedAddress(t *testing.T) {
	n := testNetwork()
	n.Ports = append(n.Ports, vmPort("vm-3", "fa:16:3e:00:00:07", fixedIP("sub-b", "10.1.0.7"), fixedIP("sub-a", "10.0.0.7")))
	tb := BuildTable(n, n.DHCPPort, Settings{})
	m, _, _ := exchange(t, tb, discover(t, "fa:16:3e:00:00:07"))
	if m.YourIPAddr.String() != "10.1.0.7" {
		t.Errorf("offered %s, want the port's first address", m.YourIPAddr)
	}
	m, r, _ := exchange(t, tb, discover(t, "fa:16:3e:00:00:07", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.7")))))
	if m.YourIPAddr.String() != "10.0.0.7" || r.Src.String() != "10.0.0.2" || m.ServerIdentifier().String() != "10.0.0.2" {
		t.Errorf("offered %s from %s: want the requested address from its subnet's server address", m.YourIPAddr, r.Src)
	}
}

func TestRespondInformAndInfiniteLease(t *testing.T) {
	n := testNetwork()
	tb := BuildTable(n, n.DHCPPort, Settings{LeaseDuration: -1})
	m, r, ok := exchange(t, tb, discover(t, "fa:16:3e:00:00:05", dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.0.0.5"))))
	if !ok || m.MessageType() != dhcpv4.MessageTypeAck || !m.YourIPAddr.IsUnspecified() || m.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.Dst.String() != "10.0.0.5:68" {
		t.Fatalf("inform: %v %v to %s", ok, m, r.Dst)
	}
	if got := m.Router(); len(got) != 1 || got[0].String() != "10.0.0.1" {
		t.Errorf("inform answer without the router: %v", got)
	}
	m, _, _ = exchange(t, tb, discover(t, "fa:16:3e:00:00:05"))
	if got := m.Options.Get(dhcpv4.OptionIPAddressLeaseTime); binary.BigEndian.Uint32(got) != 0xffffffff || m.Options.Has(dhcpv4.OptionRenewTimeValue) {
		t.Errorf("infinite lease encoded as %v (T1 sent: %v)", got, m.Options.Has(dhcpv4.OptionRenewTimeValue))
	}
}

func TestBroadcastAddress(t *testing.T) {
	for cidr, want := range map[string]string{"10.0.0.0/24": "10.0.0.255", "10.0.0.0/8": "10.255.255.255", "192.168.1.4/30": "192.168.1.7", "0.0.0.0/0": "255.255.255.255", "10.1.2.3/32": "10.1.2.3"} {
		if got := broadcast(netip.MustParsePrefix(cidr)).String(); got != want {
			t.Errorf("broadcast of %s: %s, want %s", cidr, got, want)
		}
	}
}
