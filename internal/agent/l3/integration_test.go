package l3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/l2"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The integration tests run one test-bed node as a network node: its own
// Open vSwitch with br-ex holding the node's NIC on the bed's external
// network (where the outside host 203.0.113.1, with 198.51.100.1 behind
// it, lives), the l2 role wiring br-int, br-tun and br-ex, and the l3 role,
// both fed a hand-built desired state. VMs are namespaces plugged into
// br-int as Nova's VIF driver would.
//
// Two projects have the same CIDR 10.0.0.0/24 and a VM at 10.0.0.5 each,
// behind their own routers (gateways 203.0.113.10 and .11, floating IPs
// .20 and .21); project A has a second subnet 10.0.1.0/24 with a VM at
// 10.0.1.5 on the same router.

const (
	extPhysnet = "extnet"
	whoPort    = 7000 // the VMs' "who are you" server
	peerPort   = 7001 // the outside host's "who am I talking to" server
	echoPort   = 7002 // the VMs' echo server
)

var (
	internetAddr = testbed.InternetAddr
	gwA          = netip.MustParseAddr("203.0.113.10")
	gwB          = netip.MustParseAddr("203.0.113.11")
	fipA         = netip.MustParseAddr("203.0.113.20")
	fipB         = netip.MustParseAddr("203.0.113.21")
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// netNode is the network node with both roles.
type netNode struct {
	t      testing.TB
	bed    *testbed.Bed
	node   *testbed.Node
	db     *ovs.Client
	status *testbed.Status
	l2     *l2.Role
	l3     *Role
	// l3cancel stops l3.
	l3cancel context.CancelFunc
	cfg      Config
	ctx      context.Context
}

func newNetNode(t testing.TB) *netNode {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.LookPathOrSkip(t, "ping", "install Debian's iputils-ping")
	bed := testbed.New(t, testbed.Spec{Nodes: 1})
	nn := &netNode{t: t, bed: bed, node: bed.Nodes[0], status: &testbed.Status{}}
	nn.db = nn.node.OVSDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	nn.ctx = ctx
	must(t, nn.db.EnsureBridge(ctx, ovs.Bridge{Name: "br-ex", DatapathType: "netdev", FailMode: "secure"}))
	must(t, nn.db.EnsurePort(ctx, "br-ex", ovs.Port{Name: testbed.ExternalNIC}))

	r2, err := l2.Open(l2.Config{
		IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
		LocalIP: nn.node.TunnelIP.String(), TunnelTypes: []string{msg.NetworkTypeVXLAN}, ARPResponder: true,
		BridgeMappings: map[string]string{extPhysnet: "br-ex"},
	}, nn.node.OVS.Instance, slog.Default())
	must(t, err)
	l2ctx, l2cancel := context.WithCancel(context.Background())
	must(t, r2.Start(l2ctx, agent.Env{Host: nn.node.Name, Status: nn.status}))
	nn.l2 = r2

	nn.cfg = Config{OVS: nn.node.OVS.Instance, BridgeNetns: nn.node.Netns, NamespacePrefix: bed.Prefix + "-qrouter-"}
	nn.startL3()
	t.Cleanup(func() {
		cancel()
		nn.stopL3()
		// Nothing may stay behind, also when the test failed midway.
		if err := Cleanup(context.Background(), nn.cfg, slog.Default()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		l2cancel()
	})
	testbed.WaitFor(t, "the l2 role made br-int", func() error { _, err := nn.db.Bridge("br-int"); return err })
	return nn
}

// startL3 starts an l3 role on the node.
func (nn *netNode) startL3() {
	nn.t.Helper()
	r, err := New(nn.cfg, slog.Default())
	must(nn.t, err)
	ctx, cancel := context.WithCancel(nn.ctx)
	must(nn.t, r.Start(ctx, agent.Env{Host: nn.node.Name, Status: nn.status}))
	nn.l3, nn.l3cancel = r, cancel
}

// stopL3 stops the l3 role as an agent that exits does; the routers stay.
func (nn *netNode) stopL3() {
	if nn.l3cancel != nil {
		nn.l3cancel()
		<-nn.l3.Stopped()
		nn.l3cancel = nil
	}
}

// The desired state of the scenario.

func network(id string, seg msg.Segment, mtu int) msg.Network {
	return msg.Network{ID: id, AdminStateUp: true, MTU: mtu, Segment: seg}
}

var (
	extSeg = msg.Segment{NetworkType: msg.NetworkTypeFlat, PhysicalNetwork: extPhysnet}
	netA   = network("net-a", msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 100}, 1450)
	netA2  = network("net-a2", msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 102}, 1450)
	netB   = network("net-b", msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 101}, 1450)
	extNet = network("ext-net", extSeg, 1500)
)

type subnet struct{ id, cidr, gateway string }

var (
	subExt = subnet{"sub-ext", "203.0.113.0/24", "203.0.113.1"}
	subA   = subnet{"sub-a", "10.0.0.0/24", "10.0.0.1"}
	subA2  = subnet{"sub-a2", "10.0.1.0/24", "10.0.1.1"}
	subB   = subnet{"sub-b", "10.0.0.0/24", "10.0.0.1"}
)

func routerPort(id, mac string, n msg.Network, s subnet, ip string) msg.RouterPort {
	return msg.RouterPort{
		ID: id, MAC: mac, AdminStateUp: true, NetworkID: n.ID, MTU: n.MTU, Segment: n.Segment,
		FixedIPs: []msg.RouterIP{{SubnetID: s.id, IPAddress: ip, CIDR: s.cidr, IPVersion: 4, GatewayIP: s.gateway}},
	}
}

func l2Port(host string, n msg.Network, id, mac string, s subnet, ip string) msg.Port {
	return msg.Port{
		ID: id, NetworkID: n.ID, MAC: mac, AdminStateUp: true, Host: host, VIFType: "ovs",
		FixedIPs: []msg.FixedIP{{SubnetID: s.id, IPAddress: ip}}, Status: msg.StatusDown,
	}
}

func routerA() msg.Router {
	return msg.Router{
		ID: "router-a", ProjectID: "project-a", AdminStateUp: true, EnableSNAT: true,
		Gateway: ptr(routerPort("rgw-a", "fa:16:3e:0a:00:01", extNet, subExt, gwA.String())),
		Interfaces: []msg.RouterPort{
			routerPort("rif-a", "fa:16:3e:0a:00:02", netA, subA, "10.0.0.1"),
			routerPort("rif-a2", "fa:16:3e:0a:00:03", netA2, subA2, "10.0.1.1"),
		},
	}
}

func routerB() msg.Router {
	return msg.Router{
		ID: "router-b", ProjectID: "project-b", AdminStateUp: true, EnableSNAT: true,
		Gateway:    ptr(routerPort("rgw-b", "fa:16:3e:0b:00:01", extNet, subExt, gwB.String())),
		Interfaces: []msg.RouterPort{routerPort("rif-b", "fa:16:3e:0b:00:02", netB, subB, "10.0.0.1")},
	}
}

func ptr[T any](v T) *T { return &v }

func withFIP(r msg.Router, id string, fip netip.Addr, fixed, port string) msg.Router {
	r.FloatingIPs = append(slices.Clone(r.FloatingIPs), msg.FloatingIP{
		ID: id, FloatingIPAddress: fip.String(), FixedIPAddress: fixed, PortID: port, FloatingNetworkID: extNet.ID, Status: msg.StatusDown,
	})
	return r
}

// l2State wires every VM port and every router port on the node.
func (nn *netNode) l2State(routers ...msg.Router) *msg.HostState {
	host := nn.node.Name
	ports := []msg.Port{
		l2Port(host, netA, "port-vm-a", "fa:16:3e:aa:00:05", subA, "10.0.0.5"),
		l2Port(host, netA2, "port-vm-a2", "fa:16:3e:a2:00:05", subA2, "10.0.1.5"),
		l2Port(host, netB, "port-vm-b", "fa:16:3e:bb:00:05", subB, "10.0.0.5"),
		l2Port(host, netA, "port-vm-a3", "fa:16:3e:a3:00:06", subA, "10.0.0.6"),
	}
	for _, r := range routers {
		rps := slices.Clone(r.Interfaces)
		if r.Gateway != nil {
			rps = append(rps, *r.Gateway)
		}
		for _, rp := range rps {
			p := msg.Port{ID: rp.ID, NetworkID: rp.NetworkID, MAC: rp.MAC, AdminStateUp: true, Host: host, VIFType: "ovs",
				DeviceOwner: "network:router_interface", DeviceID: r.ID, Status: msg.StatusDown}
			for _, ip := range rp.FixedIPs {
				p.FixedIPs = append(p.FixedIPs, msg.FixedIP{SubnetID: ip.SubnetID, IPAddress: ip.IPAddress})
			}
			ports = append(ports, p)
		}
	}
	slices.SortFunc(ports, func(a, b msg.Port) int { return strings.Compare(a.ID, b.ID) })
	return &msg.HostState{L2: &msg.L2State{Networks: []msg.Network{extNet, netA, netA2, netB}, Ports: ports}}
}

// setRouters gives both roles the state with these routers and waits
// until the l3 role applied it.
func (nn *netNode) setRouters(routers ...msg.Router) {
	nn.t.Helper()
	must(nn.t, nn.l2.Sync(nn.ctx, nn.l2State(routers...)))
	must(nn.t, nn.l3.Sync(nn.ctx, &msg.HostState{L3: &msg.L3State{Routers: routers}}))
	must(nn.t, nn.l3.Reconcile(nn.ctx))
}

// addVM makes a VM namespace plugged into br-int for port id, with a
// "who are you" server answering name and an echo server.
func (nn *netNode) addVM(name, portID, mac, ip, gateway string) *testbed.Host {
	t := nn.t
	t.Helper()
	hw, err := net.ParseMAC(mac)
	must(t, err)
	vm := nn.bed.AddHost(t, testbed.HostSpec{
		Name: name, PeerNetns: nn.node.Netns, PeerName: "tap" + portID[:min(len(portID), 11)],
		Addr: netip.MustParsePrefix(ip + "/24"), Gateway: netip.MustParseAddr(gateway), MTU: 1450, MAC: hw,
	})
	must(t, nn.db.EnsurePort(nn.ctx, "br-int", ovs.Port{Name: "tap" + portID[:min(len(portID), 11)], ExternalIDs: map[string]string{
		"iface-id": portID, "attached-mac": mac, "iface-status": "active",
	}}))
	testbed.ServeAnswer(t, vm.Netns, netip.AddrPortFrom(netip.IPv4Unspecified(), whoPort), func(net.Conn) string { return name })
	testbed.ServeTCPEcho(t, vm.Netns, netip.AddrPortFrom(netip.IPv4Unspecified(), echoPort))
	return vm
}

// dialIn connects from inside ns to addr over TCP.
func dialIn(t testing.TB, ns, addr string) net.Conn {
	t.Helper()
	var conn net.Conn
	must(t, netns.Do(ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	}))
	return conn
}

// echoOn sends s on a connection to an echo server and reads it back.
func echoOn(conn net.Conn, s string) error {
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(s)); err != nil {
		return err
	}
	buf := make([]byte, len(s))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != s {
		return fmt.Errorf("echo %q for %q", buf, s)
	}
	return nil
}

func must2(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return b
	}
}

// waitAnswer waits until asking addr from ns gets want.
func waitAnswer(t testing.TB, ns string, addr netip.AddrPort, want string) {
	t.Helper()
	testbed.WaitFor(t, fmt.Sprintf("%s answers %q to %s", addr, want, ns), func() error {
		got, err := testbed.Ask(t.Context(), ns, addr)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answered %q", got)
		}
		return nil
	})
}

func TestRoutersSNATFloatingIPsAndTeardown(t *testing.T) {
	nn := newNetNode(t)
	outside := nn.bed.Outside
	testbed.ServeAnswer(t, outside.Netns, netip.AddrPortFrom(internetAddr, peerPort), func(c net.Conn) string {
		return netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().String()
	})
	vmA := nn.addVM("vma", "port-vm-a", "fa:16:3e:aa:00:05", "10.0.0.5", "10.0.0.1")
	vmA2 := nn.addVM("vma2", "port-vm-a2", "fa:16:3e:a2:00:05", "10.0.1.5", "10.0.1.1")
	vmB := nn.addVM("vmb", "port-vm-b", "fa:16:3e:bb:00:05", "10.0.0.5", "10.0.0.1")
	vmA3 := nn.addVM("vma3", "port-vm-a3", "fa:16:3e:a3:00:06", "10.0.0.6", "10.0.0.1")
	internet := netip.AddrPortFrom(internetAddr, peerPort)

	// SNAT: each VM reaches the outside, which sees its router's gateway.
	nn.setRouters(routerA(), routerB())
	waitAnswer(t, vmA.Netns, internet, gwA.String())
	waitAnswer(t, vmB.Netns, internet, gwB.String())
	if err := vmA.Ping(nn.ctx, internetAddr, 2); err != nil {
		t.Error(err)
	}
	for id, router := range map[string]string{"rgw-a": "router-a", "rif-a": "router-a", "rif-a2": "router-a", "rgw-b": "router-b", "rif-b": "router-b"} {
		iface, err := nn.db.Interface("tap" + id)
		if err != nil || iface.Bridge != "br-int" || iface.IfaceID != id || iface.ExternalIDs[NetnsExternalID] != nn.cfg.NamespacePrefix+router {
			t.Errorf("router port %s on OVS: %+v, %v", id, iface, err)
		}
	}

	// East-west: VMs on two subnets behind router A reach each other.
	if err := vmA.Ping(nn.ctx, vmA2.IP(), 2); err != nil {
		t.Errorf("east-west: %v", err)
	}
	if err := vmA2.TCPEcho(nn.ctx, netip.AddrPortFrom(vmA.IP(), echoPort), []byte("east-west")); err != nil {
		t.Errorf("east-west: %v", err)
	}
	// The outside host cannot reach the tenants' private addresses.
	if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(vmA.IP(), whoPort)); err == nil {
		t.Errorf("the outside host reached 10.0.0.5 directly: %q", got)
	}

	// A connection SNATed through router A, which survives the rebuild of
	// router A's table below.
	outsideEcho := testbed.ServeTCPEcho(t, outside.Netns, netip.AddrPortFrom(internetAddr, echoPort))
	kept := dialIn(t, vmA2.Netns, outsideEcho.String())
	defer kept.Close()
	must(t, echoOn(kept, "before the rebuild"))
	rebuilds := nn.l3.Stats().NATRebuilds

	// Floating IPs: the outside host reaches each VM through its own, and
	// each VM's traffic leaves from it.
	a, b := withFIP(routerA(), "fip-a", fipA, "10.0.0.5", "port-vm-a"), withFIP(routerB(), "fip-b", fipB, "10.0.0.5", "port-vm-b")
	nn.setRouters(a, b)
	if got := nn.l3.Stats().NATRebuilds - rebuilds; got != 2 {
		t.Errorf("%d router tables rebuilt for two routers' changes", got)
	}
	if err := echoOn(kept, "after the rebuild"); err != nil {
		t.Errorf("an established SNAT connection broke when its router's table was rebuilt: %v", err)
	}
	if _, err := exec.LookPath("nft"); err == nil { // nft only reads the table back
		out := string(must2(t)(netns.Command(nn.cfg.NamespacePrefix+"router-a", "nft", "list", "table", "ip", TableName).CombinedOutput()))
		for _, want := range []string{
			"ip daddr 203.0.113.20 dnat to 10.0.0.5",
			`oifname "qg-rgw-a" ip saddr 10.0.0.5 snat to 203.0.113.20`,
			`oifname "qg-rgw-a" ip saddr 10.0.0.0/24 snat to 203.0.113.10`,
			`oifname "qg-rgw-a" ip saddr 10.0.1.0/24 snat to 203.0.113.10`,
			`iifname != "qg-rgw-a" ct status dnat snat to 203.0.113.10`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("router A's table lacks %q:\n%s", want, out)
			}
		}
	}
	waitAnswer(t, outside.Netns, netip.AddrPortFrom(fipA, whoPort), "vma")
	waitAnswer(t, outside.Netns, netip.AddrPortFrom(fipB, whoPort), "vmb")
	if err := outside.Ping(nn.ctx, fipA, 2); err != nil {
		t.Error(err)
	}
	waitAnswer(t, vmA.Netns, internet, fipA.String())
	waitAnswer(t, vmB.Netns, internet, fipB.String())
	// Hairpin: a neighbour on the same subnet reaches VM A through its
	// floating IP (the answer comes back through the router).
	if got, err := testbed.Ask(t.Context(), vmA3.Netns, netip.AddrPortFrom(fipA, whoPort)); err != nil || got != "vma" {
		t.Errorf("hairpin through the floating IP: %q, %v", got, err)
	}
	// East-west traffic is not translated.
	if got, err := testbed.Ask(t.Context(), vmA2.Netns, netip.AddrPortFrom(vmA.IP(), whoPort)); err != nil || got != "vma" {
		t.Errorf("east-west with a floating IP: %q, %v", got, err)
	}
	if s := nn.status.FloatingIP("fip-a"); s != msg.StatusActive {
		t.Errorf("fip-a reported %q; want ACTIVE", s)
	}
	if st := nn.l3.Stats(); st.Routers != 2 || st.FloatingIPs != 2 || st.GatewayPorts != 2 || st.Interfaces != 3 || st.GARPs < 2 {
		t.Errorf("stats %+v", st)
	}

	// Disassociating stops it at once, established connections included.
	conn := dialIn(t, outside.Netns, netip.AddrPortFrom(fipA, echoPort).String())
	defer conn.Close()
	must(t, echoOn(conn, "before"))
	nn.setRouters(routerA(), b)
	if err := echoOn(conn, "after"); err == nil {
		t.Error("an established connection through a disassociated floating IP still works")
	}
	if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(fipA, whoPort)); err == nil {
		t.Errorf("a disassociated floating IP still reaches %q", got)
	}
	if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(fipB, whoPort)); err != nil || got != "vmb" {
		t.Errorf("the other project's floating IP: %q, %v", got, err)
	}
	waitAnswer(t, vmA.Netns, internet, gwA.String())

	// Extra routes: 192.168.50.0/24 behind VM a2.
	vmA2.Run(t, "ip", "addr", "add", "192.168.50.1/32", "dev", "lo")
	withRoute := routerA()
	withRoute.Routes = []msg.HostRoute{{Destination: "192.168.50.0/24", Nexthop: "10.0.1.5"}}
	nn.setRouters(withRoute, b)
	if err := vmA.Ping(nn.ctx, netip.MustParseAddr("192.168.50.1"), 2); err != nil {
		t.Errorf("extra route: %v", err)
	}

	// Deleting router B leaves nothing of it; router A keeps working.
	nn.setRouters(withRoute)
	nsB := nn.cfg.NamespacePrefix + "router-b"
	if netns.Exists(nsB) {
		t.Errorf("namespace %s left", nsB)
	}
	hostLinks := nn.node.Links(t)
	for _, id := range []string{"rgw-b", "rif-b"} {
		if _, err := nn.db.Interface("tap" + id); !errors.Is(err, ovs.ErrNotFound) {
			t.Errorf("OVS port tap%s left: %v", id, err)
		}
		if hostLinks.Exists("tap" + id) {
			t.Errorf("veth tap%s left", id)
		}
	}
	if err := vmA.Ping(nn.ctx, internetAddr, 1); err != nil {
		t.Errorf("router A after deleting router B: %v", err)
	}

	// An empty state removes every router.
	nn.setRouters()
	names, err := netns.List()
	must(t, err)
	for _, n := range names {
		if strings.HasPrefix(n, nn.cfg.NamespacePrefix) {
			t.Errorf("namespace %s left", n)
		}
	}
	for _, iface := range nn.db.Interfaces() {
		if iface.ExternalIDs[NetnsExternalID] != "" {
			t.Errorf("OVS interface %s left", iface.Name)
		}
	}
	if _, err := link.Open(nn.cfg.NamespacePrefix + "router-a"); err == nil {
		t.Error("router A's namespace can still be opened")
	}
}

func TestRoleAdoptsRoutersAndRepairsTables(t *testing.T) {
	nn := newNetNode(t)
	outside := nn.bed.Outside
	nn.addVM("vma", "port-vm-a", "fa:16:3e:aa:00:05", "10.0.0.5", "10.0.0.1")
	a := withFIP(routerA(), "fip-a", fipA, "10.0.0.5", "port-vm-a")
	nn.setRouters(a)
	waitAnswer(t, outside.Netns, netip.AddrPortFrom(fipA, whoPort), "vma")
	ns := nn.cfg.NamespacePrefix + "router-a"
	gwIndex := func() int {
		h, err := link.Open(ns)
		must(t, err)
		defer h.Close()
		info, err := h.Get(gatewayDev("rgw-a"))
		must(t, err)
		return info.Index
	}
	before := gwIndex()
	conn := dialIn(t, outside.Netns, netip.AddrPortFrom(fipA, echoPort).String())
	defer conn.Close()
	must(t, echoOn(conn, "before"))

	// The same state again changes nothing.
	rebuilds := nn.l3.Stats().NATRebuilds
	nn.setRouters(a)
	if got := nn.l3.Stats().NATRebuilds; got != rebuilds {
		t.Errorf("a full sync of an unchanged router rebuilt its table (%d → %d)", rebuilds, got)
	}

	// A restarted role adopts the router: same interfaces, connections
	// through the floating IP carry on.
	nn.stopL3()
	nn.startL3()
	nn.setRouters(a)
	if after := gwIndex(); after != before {
		t.Errorf("restart recreated the gateway interface (index %d, was %d)", after, before)
	}
	if err := echoOn(conn, "after a restart"); err != nil {
		t.Errorf("a connection through the floating IP broke over a restart: %v", err)
	}

	// A table someone removed is put back by the next full sync.
	if _, err := exec.LookPath("nft"); err == nil {
		must2(t)(netns.Command(ns, "nft", "delete", "table", "ip", TableName).CombinedOutput())
		rebuilds := nn.l3.Stats().NATRebuilds
		nn.setRouters(a)
		if got := nn.l3.Stats().NATRebuilds; got != rebuilds+1 {
			t.Errorf("a removed table was not rebuilt by a full sync (%d rebuilds, had %d)", got, rebuilds)
		}
		waitAnswer(t, outside.Netns, netip.AddrPortFrom(fipA, whoPort), "vma")
	}

	// A sync without an l3 part (a server that does not know the role)
	// keeps the routers.
	must(t, nn.l3.Sync(nn.ctx, &msg.HostState{}))
	must(t, nn.l3.Reconcile(nn.ctx))
	if !netns.Exists(ns) {
		t.Error("a state without an l3 part removed the router")
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	must(t, err)
	return hw
}

func TestFloatingIPMoveIsAnnounced(t *testing.T) {
	nn := newNetNode(t)
	outside := nn.bed.Outside
	nn.addVM("vma", "port-vm-a", "fa:16:3e:aa:00:05", "10.0.0.5", "10.0.0.1")
	nn.addVM("vmb", "port-vm-b", "fa:16:3e:bb:00:05", "10.0.0.5", "10.0.0.1")
	moving := netip.MustParseAddr("203.0.113.30")
	nn.setRouters(withFIP(routerA(), "fip-m", moving, "10.0.0.5", "port-vm-a"), routerB())
	waitAnswer(t, outside.Netns, netip.AddrPortFrom(moving, whoPort), "vma")
	neighbour := func() string {
		return outside.Run(t, "ip", "neigh", "show", moving.String())
	}
	if n := neighbour(); !strings.Contains(n, routerA().Gateway.MAC) {
		t.Fatalf("the outside host's neighbour entry: %q; want router A's gateway MAC", n)
	}
	// Neighbours ignore a new address within a second of the last update
	// (locktime).
	time.Sleep(1100 * time.Millisecond)

	// The floating IP moves to project B's router: its gratuitous ARP
	// updates the outside host's entry at once.
	nn.setRouters(routerA(), withFIP(routerB(), "fip-m", moving, "10.0.0.5", "port-vm-b"))
	testbed.WaitFor(t, "the outside host's entry names router B", func() error {
		if n := neighbour(); !strings.Contains(n, routerB().Gateway.MAC) {
			return errorf("neighbour entry %q", n)
		}
		return nil
	})
	if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(moving, whoPort)); err != nil || got != "vmb" {
		t.Errorf("after the move: %q, %v", got, err)
	}
}
