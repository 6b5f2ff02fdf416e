package l2

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The integration tests build two nodes out of network namespaces, each
// with its own ovsdb-server and ovs-vswitchd (userspace datapath): an
// underlay link between them carries tunnels (each node's tunnel IP on the
// internal port of br-ul, the bridge of its underlay NIC), a second link is
// the provider segment of physnet1 (br-physnet1's NIC). VMs are namespaces
// plugged into br-int with a veth, as Nova's VIF driver would. The l2 role
// of each node is driven directly with a hand-built desired state.

const physnet = "physnet1"

// bed is a set of nodes and VMs, removed when the test ends.
type bed struct {
	t      testing.TB
	prefix string
	nodes  []*node
	mu     sync.Mutex
}

type node struct {
	bed     *bed
	index   int
	ns      string
	tunIP   string
	daemons *ovs.Daemons
	client  *ovs.Client
	status  *fakeStatus

	mu     sync.Mutex
	role   *Role
	cancel context.CancelFunc
	state  *msg.HostState
}

type vm struct {
	name, ns, tap string
	node          *node
	portID, mac   string
	ip            netip.Prefix
}

func requireDataplane(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.RequireRoot(t)
	hint := "install Debian's openvswitch-switch (scripts/install-deps.sh)"
	testenv.LookPathOrSkip(t, "ovs-vswitchd", hint)
	testenv.LookPathOrSkip(t, "ovsdb-server", hint)
	testenv.LookPathOrSkip(t, "ovs-ofctl", hint)
	testenv.LookPathOrSkip(t, "ping", "install Debian's iputils-ping")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// newBed makes n nodes joined by an underlay and a provider segment.
func newBed(t testing.TB, n int) *bed {
	t.Helper()
	requireDataplane(t)
	b := &bed{t: t, prefix: "l2t" + randomHex(3)}
	for i := 1; i <= n; i++ {
		b.addNode(i)
	}
	// Point-to-point links between node 1 and each other node: underlay
	// and provider segment. Node 1 bridges them on its own br-ul and
	// br-physnet1, which are plain OVS bridges switching NORMAL for br-ul.
	for i := 2; i <= n; i++ {
		b.join(b.nodes[0], b.nodes[i-1], "ul", "br-ul")
		b.join(b.nodes[0], b.nodes[i-1], "pv", "br-"+physnet)
	}
	for _, nd := range b.nodes {
		// The bridge's internal port is a tap device ovs-vswitchd makes.
		_, err := nd.client.WaitOfport(context.Background(), "br-ul")
		b.must(err)
		b.must(nd.handle(func(h *link.Handle) error {
			if err := h.AddAddr("br-ul", netip.MustParsePrefix(nd.tunIP+"/24")); err != nil {
				return err
			}
			return h.SetUp("br-ul")
		}))
	}
	return b
}

func (b *bed) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
}

func (b *bed) addNode(i int) {
	t := b.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nd := &node{bed: b, index: i, ns: fmt.Sprintf("%s-n%d", b.prefix, i), tunIP: fmt.Sprintf("10.99.0.%d", i), status: &fakeStatus{}}
	b.must(netns.Create(nd.ns))
	t.Cleanup(func() { netns.Delete(nd.ns) })
	b.must(nd.handle(func(h *link.Handle) error { return h.SetUp("lo") }))
	dir, err := os.MkdirTemp("", "l2t")
	b.must(err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	d, err := ovs.StartDaemons(ctx, ovs.Options{Dir: dir, Netns: nd.ns})
	b.must(err)
	nd.daemons = d
	t.Cleanup(func() {
		nd.stopRole()
		if nd.client != nil {
			for _, br := range nd.client.BridgeNames() {
				nd.client.DeleteBridge(context.Background(), br)
			}
			nd.client.Close()
		}
		if err := d.Stop(); err != nil {
			t.Logf("stop OVS of %s: %v", nd.ns, err)
		}
	})
	c, err := ovs.Connect(ctx, d.DB, slog.Default())
	b.must(err)
	nd.client = c
	b.must(c.EnsureBridge(ctx, ovs.Bridge{Name: "br-ul", DatapathType: "netdev"}))
	b.must(c.EnsureBridge(ctx, ovs.Bridge{Name: "br-" + physnet, DatapathType: "netdev", FailMode: "secure"}))
	b.nodes = append(b.nodes, nd)
}

func (nd *node) handle(fn func(h *link.Handle) error) error {
	h, err := link.Open(nd.ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// join links a and b with a veth pair named <kind><index> on each side,
// each end on the named OVS bridge of its node.
func (b *bed) join(a, c *node, kind, bridge string) {
	an, cn := fmt.Sprintf("%s%d", kind, c.index), fmt.Sprintf("%s%d", kind, a.index)
	b.must(a.handle(func(h *link.Handle) error {
		return h.AddVeth(link.Veth{Name: an, PeerName: cn, PeerNetns: c.ns})
	}))
	for _, e := range []struct {
		nd   *node
		name string
	}{{a, an}, {c, cn}} {
		b.must(e.nd.handle(func(h *link.Handle) error {
			if err := h.DisableTXChecksum(e.name); err != nil {
				return err
			}
			return h.SetUp(e.name)
		}))
		b.must(e.nd.client.EnsurePort(context.Background(), bridge, ovs.Port{Name: e.name}))
	}
}

func (nd *node) config() Config {
	return Config{
		IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
		LocalIP: nd.tunIP, TunnelTypes: []string{"vxlan", "gre", "geneve"},
		BridgeMappings: map[string]string{physnet: "br-" + physnet},
		ARPResponder:   true,
	}
}

// startRole starts (or restarts) the node's l2 role on its current state.
func (nd *node) startRole() *Role {
	t := nd.bed.t
	t.Helper()
	nd.stopRole()
	r, err := Open(nd.config(), nd.daemons.Instance, slog.Default().With("node", nd.ns))
	nd.bed.must(err)
	ctx, cancel := context.WithCancel(context.Background())
	nd.bed.must(r.Start(ctx, agent.Env{Host: nd.ns, Status: nd.status}))
	nd.mu.Lock()
	nd.role, nd.cancel = r, cancel
	state := nd.state
	nd.mu.Unlock()
	if state != nil {
		r.Sync(ctx, state)
	}
	// VIFs are plugged into br-int once the agent has made it.
	waitFor(t, func() bool { _, err := nd.client.Bridge("br-int"); return err == nil }, nd.ns+": br-int made")
	return r
}

func (nd *node) stopRole() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cancel != nil {
		nd.cancel()
		nd.cancel, nd.role = nil, nil
	}
}

// sync gives the node's role a new desired state.
func (nd *node) sync(s *msg.HostState) {
	nd.mu.Lock()
	nd.state = s
	r := nd.role
	nd.mu.Unlock()
	if r != nil {
		r.Sync(context.Background(), s)
	}
}

// addVM makes a VM namespace plugged into the node's br-int for port id.
func (b *bed) addVM(nd *node, name, portID, mac, ip string) *vm {
	t := b.t
	v := &vm{name: name, ns: b.prefix + "-" + name, tap: "tap" + name, node: nd, portID: portID, mac: mac, ip: netip.MustParsePrefix(ip)}
	b.must(netns.Create(v.ns))
	t.Cleanup(func() { netns.Delete(v.ns) })
	hw, err := net.ParseMAC(mac)
	b.must(err)
	b.must(nd.handle(func(h *link.Handle) error {
		if err := h.AddVeth(link.Veth{Name: v.tap, PeerName: "eth0", PeerNetns: v.ns, PeerMAC: hw, MTU: 1450}); err != nil {
			return err
		}
		if err := h.DisableTXChecksum(v.tap); err != nil {
			return err
		}
		return h.SetUp(v.tap)
	}))
	// Keep VMs quiet: no IPv6 neighbour discovery in captures.
	b.must(v.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"))
	b.must(v.handle(func(h *link.Handle) error {
		for _, step := range []func() error{
			func() error { return h.SetUp("lo") },
			func() error { return h.DisableTXChecksum("eth0") },
			func() error { return h.AddAddr("eth0", v.ip) },
			func() error { return h.SetUp("eth0") },
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	}))
	b.plug(v)
	return v
}

func (b *bed) plug(v *vm) {
	b.must(v.node.client.EnsurePort(context.Background(), "br-int", ovs.Port{Name: v.tap, ExternalIDs: map[string]string{
		"iface-id": v.portID, "attached-mac": v.mac, "iface-status": "active",
	}}))
}

func (v *vm) handle(fn func(h *link.Handle) error) error {
	h, err := link.Open(v.ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

func (v *vm) run(prog string, args ...string) error {
	out, err := netns.Command(v.ns, prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w: %s", prog, strings.Join(args, " "), v.name, err, out)
	}
	return nil
}

func (v *vm) addr() string { return v.ip.Addr().String() }

// ping sends count pings to ip and returns how many were answered.
func (v *vm) ping(ip string, count int, interval string) int {
	out, _ := netns.Command(v.ns, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", interval, "-W", "1", ip).CombinedOutput()
	var sent, recv int
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(l), "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	return recv
}

// waitPing pings until one answer arrives (the first packets to a cold
// tunnel endpoint are dropped while OVS resolves it) or fails the test.
func (b *bed) waitPing(from *vm, ip string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if from.ping(ip, 1, "0.2") == 1 {
			return
		}
	}
	b.t.Fatalf("%s cannot ping %s", from.name, ip)
}

// waitWired waits until the node reported the port up.
func (nd *node) waitWired(t testing.TB, portID string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		nd.status.mu.Lock()
		up := slices.Contains(nd.status.up, portID)
		nd.status.mu.Unlock()
		if up {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: port %s never reported up; role stats %+v", nd.ns, portID, nd.role.Stats())
}

// flows returns a bridge's flows without cookies and counters, sorted.
func (nd *node) flows(t testing.TB, bridge string) []string {
	t.Helper()
	flows, err := nd.tryFlows(bridge)
	if err != nil {
		t.Fatal(err)
	}
	return flows
}

func (nd *node) tryFlows(bridge string) ([]string, error) {
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "--no-stats", "--sort", "unix:"+nd.daemons.BridgeSocket(bridge)).Output()
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s on %s: %w", bridge, nd.ns, err)
	}
	var flows []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "OFPST") {
			continue
		}
		if i := strings.Index(l, "cookie="); i >= 0 {
			j := strings.Index(l[i:], ", ")
			l = l[:i] + l[i+j+2:]
		}
		flows = append(flows, l)
	}
	slices.Sort(flows)
	return flows, nil
}

// desired builds each node's desired state from the placement of ports.
type placement struct {
	networks []msg.Network
	ports    map[*node][]msg.Port
}

func (p placement) stateFor(b *bed, nd *node) *msg.HostState {
	s := &msg.L2State{Networks: p.networks}
	for _, other := range b.nodes {
		s.TunnelEndpoints = append(s.TunnelEndpoints, msg.TunnelEndpoint{Host: other.ns, IP: other.tunIP, TunnelTypes: []string{"vxlan", "gre", "geneve"}})
	}
	s.Ports = append(s.Ports, p.ports[nd]...)
	for _, n := range p.networks {
		if !msg.IsTunnel(n.Segment.NetworkType) {
			continue
		}
		fdb := msg.NetworkFDB{NetworkID: n.ID, Segment: n.Segment}
		for _, other := range b.nodes {
			if other == nd {
				continue
			}
			has := false
			for _, port := range p.ports[other] {
				if port.NetworkID != n.ID {
					continue
				}
				has = true
				var ips []string
				for _, ip := range port.FixedIPs {
					ips = append(ips, ip.IPAddress)
				}
				fdb.Entries = append(fdb.Entries, msg.FDBEntry{MAC: port.MAC, IPs: ips, TunnelIP: other.tunIP, Host: other.ns, PortID: port.ID})
			}
			if has {
				fdb.FloodTo = append(fdb.FloodTo, other.tunIP)
			}
		}
		s.FDB = append(s.FDB, fdb)
	}
	return &msg.HostState{Host: nd.ns, L2: s}
}

func (b *bed) apply(p placement) {
	for _, nd := range b.nodes {
		nd.sync(p.stateFor(b, nd))
	}
}

func port(id, network, mac, ip string) msg.Port {
	return msg.Port{ID: id, NetworkID: network, MAC: mac, AdminStateUp: true, Status: msg.StatusDown, Revision: 1,
		FixedIPs: []msg.FixedIP{{IPAddress: strings.Split(ip, "/")[0]}}}
}

func network(id, typ string, seg int64) msg.Network {
	n := msg.Network{ID: id, AdminStateUp: true, Segment: msg.Segment{NetworkType: typ, SegmentationID: seg}}
	if typ == msg.NetworkTypeVLAN || typ == msg.NetworkTypeFlat {
		n.Segment.PhysicalNetwork = physnet
	}
	return n
}

func TestIntegrationVXLANAcrossNodesAndSameCIDRIsolated(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := placement{
		networks: []msg.Network{network("net-red", "vxlan", 100), network("net-blue", "vxlan", 200)},
		ports: map[*node][]msg.Port{
			n1: {port("red-1", "net-red", "fa:16:3e:00:01:01", "10.0.0.1/24"), port("blue-1", "net-blue", "fa:16:3e:00:02:01", "10.0.0.1/24")},
			n2: {port("red-2", "net-red", "fa:16:3e:00:01:02", "10.0.0.2/24"), port("blue-2", "net-blue", "fa:16:3e:00:02:02", "10.0.0.2/24")},
		},
	}
	b.apply(p)
	n1.startRole()
	n2.startRole()
	red1 := b.addVM(n1, "r1", "red-1", "fa:16:3e:00:01:01", "10.0.0.1/24")
	red2 := b.addVM(n2, "r2", "red-2", "fa:16:3e:00:01:02", "10.0.0.2/24")
	blue1 := b.addVM(n1, "b1", "blue-1", "fa:16:3e:00:02:01", "10.0.0.1/24")
	blue2 := b.addVM(n2, "b2", "blue-2", "fa:16:3e:00:02:02", "10.0.0.2/24")
	for _, v := range []*vm{red1, red2, blue1, blue2} {
		v.node.waitWired(t, v.portID)
	}

	b.waitPing(red1, red2.addr())
	if got := red1.ping(red2.addr(), 5, "0.05"); got != 5 {
		t.Errorf("red: %d of 5 pings across the tunnel answered", got)
	}
	// Blue has the same addresses; its VMs see nothing of red's traffic.
	capture := netns.Command(blue2.ns, "tcpdump", "-i", "eth0", "-e", "-nn", "-l")
	var captured strings.Builder
	capture.Stdout = &captured
	b.must(capture.Start())
	defer capture.Process.Kill()
	time.Sleep(300 * time.Millisecond) // tcpdump attaches
	red1.ping(red2.addr(), 5, "0.05")
	red2.ping(red1.addr(), 5, "0.05")
	// A blue packet shows the capture was listening.
	b.waitPing(blue1, blue2.addr())
	time.Sleep(200 * time.Millisecond)
	capture.Process.Kill()
	capture.Wait()
	if text := captured.String(); strings.Contains(text, "fa:16:3e:00:01:") || !strings.Contains(text, "fa:16:3e:00:02:01") {
		t.Errorf("blue-2 saw red's traffic (or nothing at all):\n%s", text)
	}
	b.waitPing(blue1, blue2.addr())
	if got := blue2.ping(blue1.addr(), 5, "0.05"); got != 5 {
		t.Errorf("blue: %d of 5 pings answered", got)
	}
	// The ARP answer for red-2's address came from red-2 (or the
	// responder on its behalf), never from blue-2.
	out, _ := netns.Command(red1.ns, "ip", "neigh", "show", red2.addr()).Output()
	if !strings.Contains(string(out), red2.mac) {
		t.Errorf("red-1's neighbour entry for %s: %q, want %s", red2.addr(), out, red2.mac)
	}
}

func TestIntegrationProviderVLANAndFlat(t *testing.T) {
	testenv.LookPathOrSkip(t, "tcpdump", "install Debian's tcpdump")
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := placement{
		networks: []msg.Network{network("net-vlan", "vlan", 1001), network("net-flat", "flat", 0)},
		ports: map[*node][]msg.Port{
			n1: {port("vlan-1", "net-vlan", "fa:16:3e:00:03:01", "10.1.0.1/24"), port("flat-1", "net-flat", "fa:16:3e:00:04:01", "10.2.0.1/24")},
			n2: {port("vlan-2", "net-vlan", "fa:16:3e:00:03:02", "10.1.0.2/24"), port("flat-2", "net-flat", "fa:16:3e:00:04:02", "10.2.0.2/24")},
		},
	}
	b.apply(p)
	n1.startRole()
	n2.startRole()
	vlan1 := b.addVM(n1, "v1", "vlan-1", "fa:16:3e:00:03:01", "10.1.0.1/24")
	vlan2 := b.addVM(n2, "v2", "vlan-2", "fa:16:3e:00:03:02", "10.1.0.2/24")
	flat1 := b.addVM(n1, "f1", "flat-1", "fa:16:3e:00:04:01", "10.2.0.1/24")
	flat2 := b.addVM(n2, "f2", "flat-2", "fa:16:3e:00:04:02", "10.2.0.2/24")
	for _, v := range []*vm{vlan1, vlan2, flat1, flat2} {
		v.node.waitWired(t, v.portID)
	}
	// Capture on node 2's provider NIC, link-level headers shown.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	capture := netns.CommandContext(ctx, n2.ns, "tcpdump", "-i", "pv1", "-e", "-nn", "-l", "-c", "400", "icmp")
	var out strings.Builder
	capture.Stdout = &out
	b.must(capture.Start())
	defer capture.Process.Kill()
	time.Sleep(500 * time.Millisecond) // tcpdump attaches

	b.waitPing(vlan1, vlan2.addr())
	if got := vlan1.ping(vlan2.addr(), 5, "0.05"); got != 5 {
		t.Errorf("vlan: %d of 5 pings answered", got)
	}
	b.waitPing(flat1, flat2.addr())
	if got := flat2.ping(flat1.addr(), 5, "0.05"); got != 5 {
		t.Errorf("flat: %d of 5 pings answered", got)
	}
	time.Sleep(300 * time.Millisecond)
	capture.Process.Kill()
	capture.Wait()
	var vlanTagged, flatUntagged, flatTagged int
	for _, l := range strings.Split(out.String(), "\n") {
		switch {
		case strings.Contains(l, "vlan 1001") && strings.Contains(l, "10.1.0."):
			vlanTagged++
		case strings.Contains(l, "10.1.0."):
			t.Errorf("VLAN network's packet without tag 1001 on the wire: %s", l)
		case strings.Contains(l, "10.2.0.") && strings.Contains(l, "vlan "):
			flatTagged++
		case strings.Contains(l, "10.2.0."):
			flatUntagged++
		}
	}
	if vlanTagged == 0 || flatUntagged == 0 || flatTagged != 0 {
		t.Errorf("on the provider wire: %d VLAN packets tagged 1001, %d flat packets untagged, %d flat packets tagged; capture:\n%s",
			vlanTagged, flatUntagged, flatTagged, out.String())
	}
}

func TestIntegrationRestartLosesNoPacketAndConverges(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := placement{
		networks: []msg.Network{network("net-red", "vxlan", 100)},
		ports: map[*node][]msg.Port{
			n1: {port("red-1", "net-red", "fa:16:3e:00:01:01", "10.0.0.1/24")},
			n2: {port("red-2", "net-red", "fa:16:3e:00:01:02", "10.0.0.2/24")},
		},
	}
	b.apply(p)
	first := n1.startRole()
	n2.startRole()
	red1 := b.addVM(n1, "r1", "red-1", "fa:16:3e:00:01:01", "10.0.0.1/24")
	red2 := b.addVM(n2, "r2", "red-2", "fa:16:3e:00:01:02", "10.0.0.2/24")
	n1.waitWired(t, "red-1")
	n2.waitWired(t, "red-2")
	b.waitPing(red1, red2.addr())
	before := map[string][]string{}
	for _, br := range []string{"br-int", "br-tun", "br-" + physnet} {
		before[br] = n1.settledFlows(t, br)
	}

	// 300 pings, 10 ms apart, while node 1's role restarts twice.
	done := make(chan int)
	go func() { done <- red1.ping(red2.addr(), 300, "0.01") }()
	time.Sleep(500 * time.Millisecond)
	second := n1.startRole()
	waitFor(t, func() bool { return second.Stats().FullPushes >= 3 }, "second run programmed every bridge")
	time.Sleep(500 * time.Millisecond)
	third := n1.startRole()
	waitFor(t, func() bool { return third.Stats().FullPushes >= 3 }, "third run programmed every bridge")
	if got := <-done; got != 300 {
		t.Errorf("%d of 300 pings answered across two agent restarts", got)
	}
	if first.Run() == third.Run() {
		t.Fatal("restart kept the run id")
	}
	// Converged: nothing left to change in OVSDB either.
	third.reconcileMu.Lock()
	view, _ := third.ovsdb.View()
	third.mu.Lock()
	d := third.desired.clone()
	third.mu.Unlock()
	if ch := third.plan(view, d).changes; !ch.Empty() {
		t.Errorf("OVSDB changes still pending after convergence: %+v", ch)
	}
	third.reconcileMu.Unlock()
	for br, want := range before {
		if got := n1.flows(t, br); !slices.Equal(got, want) {
			t.Errorf("%s differs after restart:\nbefore:\n%s\nafter:\n%s", br, strings.Join(want, "\n"), strings.Join(got, "\n"))
		}
	}
	for _, br := range []string{"br-int", "br-tun"} {
		cookies, err := NewSwitch(n1.daemons.Instance, nil).Cookies(context.Background(), br)
		b.must(err)
		for _, c := range cookies {
			if CookieRun(c) != third.Run() {
				t.Errorf("%s: flows of another run (cookie %#x) left", br, c)
			}
		}
	}
}

func TestIntegrationVSwitchdRestartIsRepushed(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := placement{
		networks: []msg.Network{network("net-red", "vxlan", 100)},
		ports: map[*node][]msg.Port{
			n1: {port("red-1", "net-red", "fa:16:3e:00:01:01", "10.0.0.1/24")},
			n2: {port("red-2", "net-red", "fa:16:3e:00:01:02", "10.0.0.2/24")},
		},
	}
	b.apply(p)
	r := n1.startRole()
	n2.startRole()
	red1 := b.addVM(n1, "r1", "red-1", "fa:16:3e:00:01:01", "10.0.0.1/24")
	red2 := b.addVM(n2, "r2", "red-2", "fa:16:3e:00:01:02", "10.0.0.2/24")
	n1.waitWired(t, "red-1")
	n2.waitWired(t, "red-2")
	b.waitPing(red1, red2.addr())
	want := n1.settledFlows(t, "br-int")
	pushes := r.Stats().FullPushes
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.must(n1.daemons.RestartVSwitchd(ctx))
	waitFor(t, func() bool { return r.Stats().FullPushes >= pushes+3 }, "flows pushed again after ovs-vswitchd restarted")
	if got := n1.flows(t, "br-int"); !slices.Equal(got, want) {
		t.Errorf("br-int after ovs-vswitchd restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b.waitPing(red1, red2.addr())
}

func TestIntegrationDeletingPortAndNetworkLeavesNothing(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	n1.startRole()
	n2.startRole()
	// Base flows only: what an empty node has.
	b.apply(placement{})
	empty := map[string][]string{}
	for _, br := range []string{"br-int", "br-tun"} {
		empty[br] = n1.settledFlows(t, br)
	}
	p := placement{
		networks: []msg.Network{network("net-red", "vxlan", 100)},
		ports: map[*node][]msg.Port{
			n1: {port("red-1", "net-red", "fa:16:3e:00:01:01", "10.0.0.1/24")},
			n2: {port("red-2", "net-red", "fa:16:3e:00:01:02", "10.0.0.2/24")},
		},
	}
	b.apply(p)
	red1 := b.addVM(n1, "r1", "red-1", "fa:16:3e:00:01:01", "10.0.0.1/24")
	red2 := b.addVM(n2, "r2", "red-2", "fa:16:3e:00:01:02", "10.0.0.2/24")
	n1.waitWired(t, "red-1")
	b.waitPing(red1, red2.addr())

	// The VM goes: unplugged, its port and (last port) network deleted.
	b.must(n1.client.DeletePort(context.Background(), red1.tap))
	b.apply(placement{})
	waitFor(t, func() bool {
		return slices.Equal(n1.flows(t, "br-int"), empty["br-int"]) && slices.Equal(n1.flows(t, "br-tun"), empty["br-tun"])
	}, "node 1 back to its empty flows")
	br, err := n1.client.Bridge("br-int")
	b.must(err)
	for k := range br.ExternalIDs {
		if strings.HasPrefix(k, localVLANKeyPrefix) {
			t.Errorf("local VLAN record %s left on br-int", k)
		}
	}
}

// TestIntegrationTunnelTypes checks which tunnel types the userspace
// datapath carries (docs/pipeline.md reports the result).
func TestIntegrationTunnelTypes(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := placement{
		networks: []msg.Network{network("net-vx", "vxlan", 100), network("net-gre", "gre", 101), network("net-gnv", "geneve", 102)},
		ports: map[*node][]msg.Port{
			n1: {port("vx-1", "net-vx", "fa:16:3e:00:05:01", "10.5.0.1/24"), port("gre-1", "net-gre", "fa:16:3e:00:06:01", "10.6.0.1/24"), port("gnv-1", "net-gnv", "fa:16:3e:00:07:01", "10.7.0.1/24")},
			n2: {port("vx-2", "net-vx", "fa:16:3e:00:05:02", "10.5.0.2/24"), port("gre-2", "net-gre", "fa:16:3e:00:06:02", "10.6.0.2/24"), port("gnv-2", "net-gnv", "fa:16:3e:00:07:02", "10.7.0.2/24")},
		},
	}
	b.apply(p)
	n1.startRole()
	n2.startRole()
	for _, c := range []struct{ name, typ, n1port, n2port, mac1, mac2, ip1, ip2 string }{
		{"vx", "vxlan", "vx-1", "vx-2", "fa:16:3e:00:05:01", "fa:16:3e:00:05:02", "10.5.0.1/24", "10.5.0.2/24"},
		{"gre", "gre", "gre-1", "gre-2", "fa:16:3e:00:06:01", "fa:16:3e:00:06:02", "10.6.0.1/24", "10.6.0.2/24"},
		{"gnv", "geneve", "gnv-1", "gnv-2", "fa:16:3e:00:07:01", "fa:16:3e:00:07:02", "10.7.0.1/24", "10.7.0.2/24"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			a := b.addVM(n1, c.name+"1", c.n1port, c.mac1, c.ip1)
			z := b.addVM(n2, c.name+"2", c.n2port, c.mac2, c.ip2)
			n1.waitWired(t, c.n1port)
			n2.waitWired(t, c.n2port)
			b.waitPing(a, z.addr())
			if got := a.ping(z.addr(), 5, "0.05"); got != 5 {
				t.Errorf("%s: %d of 5 pings answered", c.typ, got)
			}
		})
	}
}

// settledFlows returns a bridge's flows once they stopped changing.
func (nd *node) settledFlows(t testing.TB, bridge string) []string {
	t.Helper()
	var last []string
	stable := 0
	waitFor(t, func() bool {
		cur, _ := nd.tryFlows(bridge)
		if slices.Equal(cur, last) && len(cur) > 0 {
			stable++
		} else {
			stable = 0
		}
		last = cur
		return stable >= 20
	}, "flows of "+bridge+" settle")
	return last
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}
