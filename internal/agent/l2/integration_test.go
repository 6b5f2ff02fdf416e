package l2

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The integration tests run the l2 role on the nodes of a test bed
// (internal/testbed): each node a namespace with its own ovsdb-server and
// ovs-vswitchd (userspace datapath), joined by an underlay that carries the
// tunnels and a provider segment that br-physnet1's NIC sits on. VMs are
// namespaces plugged into br-int with a veth, as Nova's VIF driver would.
// Each node's role is driven directly with a hand-built desired state.

const physnet = "physnet1"

// bed is a test bed with an l2 role per node.
type bed struct {
	t     testing.TB
	tb    *testbed.Bed
	nodes []*node
}

type node struct {
	bed    *bed
	tb     *testbed.Node
	tunIP  string
	client *ovs.Client
	status *fakeStatus

	mu     sync.Mutex
	role   *Role
	cancel context.CancelFunc
	state  *msg.HostState
}

type vm struct {
	*testbed.Host
	name, tap   string
	node        *node
	portID, mac string
}

func requireDataplane(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.LookPathOrSkip(t, "ping", "install Debian's iputils-ping")
}

// newBed makes a test bed of n nodes, each with br-physnet1 holding the
// node's provider NIC.
func newBed(t testing.TB, n int) *bed {
	t.Helper()
	requireDataplane(t)
	b := &bed{t: t, tb: testbed.New(t, testbed.Spec{Nodes: n})}
	ctx := context.Background()
	for _, tn := range b.tb.Nodes {
		nd := &node{bed: b, tb: tn, tunIP: tn.TunnelIP.String(), client: tn.OVSDB(t), status: &fakeStatus{}}
		b.must(nd.client.EnsureBridge(ctx, ovs.Bridge{Name: "br-" + physnet, DatapathType: "netdev", FailMode: "secure"}))
		b.must(nd.client.EnsurePort(ctx, "br-"+physnet, ovs.Port{Name: testbed.ProviderNIC}))
		t.Cleanup(nd.stopRole) // before the test bed stops OVS
		b.nodes = append(b.nodes, nd)
	}
	return b
}

func (b *bed) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
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
	r, err := Open(nd.config(), nd.tb.OVS.Instance, slog.Default().With("node", nd.tb.Name))
	nd.bed.must(err)
	ctx, cancel := context.WithCancel(context.Background())
	nd.bed.must(r.Start(ctx, agent.Env{Host: nd.tb.Name, Status: nd.status}))
	nd.mu.Lock()
	nd.role, nd.cancel = r, cancel
	state := nd.state
	nd.mu.Unlock()
	if state != nil {
		r.Sync(ctx, state)
	}
	// VIFs are plugged into br-int once the agent has made it.
	waitFor(t, func() bool { _, err := nd.client.Bridge("br-int"); return err == nil }, nd.tb.Name+": br-int made")
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
	hw, err := net.ParseMAC(mac)
	b.must(err)
	v := &vm{name: name, tap: "tap" + name, node: nd, portID: portID, mac: mac}
	v.Host = b.tb.AddHost(b.t, testbed.HostSpec{
		Name: name, PeerNetns: nd.tb.Netns, PeerName: v.tap,
		Addr: netip.MustParsePrefix(ip), MTU: 1450, MAC: hw,
	})
	b.plug(v)
	return v
}

// plugVMs makes a VM for each port (named after it; every test network
// is a /24) on the node that holds the port, and waits until the nodes
// reported them all up. It returns the VMs by port ID.
func (b *bed) plugVMs(t testing.TB, ports map[*node][]msg.Port) map[string]*vm {
	t.Helper()
	vms := map[string]*vm{}
	for _, nd := range b.nodes { // in node order, for stable names in logs
		for _, p := range ports[nd] {
			vms[p.ID] = b.addVM(nd, p.ID, p.ID, p.MAC, p.FixedIPs[0].IPAddress+"/24")
		}
	}
	for _, v := range vms {
		v.node.waitWired(t, v.portID)
	}
	return vms
}

// startRoles starts the role on every node.
func (b *bed) startRoles() {
	b.t.Helper()
	for _, nd := range b.nodes {
		nd.startRole()
	}
}

func (b *bed) plug(v *vm) {
	b.must(v.node.client.EnsurePort(context.Background(), "br-int", ovs.Port{Name: v.tap, ExternalIDs: map[string]string{
		"iface-id": v.portID, "attached-mac": v.mac, "iface-status": "active",
	}}))
}

func (v *vm) addr() string { return v.IP().String() }

// ping sends count pings to ip and returns how many were answered.
func (v *vm) ping(ip string, count int, interval string) int {
	return v.pingFrom("", ip, count, interval)
}

// pingFrom is ping from source address src ("": the route's).
func (v *vm) pingFrom(src, ip string, count int, interval string) int {
	args := []string{"-n", "-q", "-c", fmt.Sprint(count), "-i", interval, "-W", "1"}
	if src != "" {
		args = append(args, "-I", src)
	}
	out, _ := netns.Command(v.Netns, "ping", append(args, ip)...).CombinedOutput()
	var sent, recv int
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(l), "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	return recv
}

// waitPing pings until one answer arrives or fails the test.
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
	t.Fatalf("%s: port %s never reported up; role stats %+v", nd.tb.Name, portID, nd.role.Stats())
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
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow14", "--no-names", "dump-flows", "--no-stats", "--sort", "unix:"+nd.tb.OVS.BridgeSocket(bridge)).Output()
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s on %s: %w", bridge, nd.tb.Name, err)
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
		s.TunnelEndpoints = append(s.TunnelEndpoints, msg.TunnelEndpoint{Host: other.tb.Name, IP: other.tunIP, TunnelTypes: []string{"vxlan", "gre", "geneve"}})
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
				fdb.Entries = append(fdb.Entries, msg.FDBEntry{MAC: port.MAC, IPs: ips, TunnelIP: other.tunIP, Host: other.tb.Name, PortID: port.ID})
			}
			if has {
				fdb.FloodTo = append(fdb.FloodTo, other.tunIP)
			}
		}
		s.FDB = append(s.FDB, fdb)
	}
	return &msg.HostState{Host: nd.tb.Name, L2: s}
}

// redPair is the smallest placement: one VXLAN network, red-1 on the
// first node and red-2 on the second.
func (b *bed) redPair() placement {
	return placement{
		networks: []msg.Network{network("net-red", "vxlan", 100)},
		ports: map[*node][]msg.Port{
			b.nodes[0]: {port("red-1", "net-red", "fa:16:3e:00:01:01", "10.0.0.1/24")},
			b.nodes[1]: {port("red-2", "net-red", "fa:16:3e:00:01:02", "10.0.0.2/24")},
		},
	}
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
	b.startRoles()
	vms := b.plugVMs(t, p.ports)
	red1, red2, blue1, blue2 := vms["red-1"], vms["red-2"], vms["blue-1"], vms["blue-2"]

	b.waitPing(red1, red2.addr())
	if got := red1.ping(red2.addr(), 5, "0.05"); got != 5 {
		t.Errorf("red: %d of 5 pings across the tunnel answered", got)
	}
	// Blue has the same addresses; its VMs see nothing of red's traffic.
	capture := b.tb.Capture(t, blue2.Netns, "eth0", "")
	red1.ping(red2.addr(), 5, "0.05")
	red2.ping(red1.addr(), 5, "0.05")
	// A blue packet shows the capture was listening.
	b.waitPing(blue1, blue2.addr())
	time.Sleep(200 * time.Millisecond)
	if text := strings.Join(capture.Stop(), "\n"); strings.Contains(text, "fa:16:3e:00:01:") || !strings.Contains(text, "fa:16:3e:00:02:01") {
		t.Errorf("blue-2 saw red's traffic (or nothing at all):\n%s", text)
	}
	// TCP across the tunnel (TX checksum offload off, MTU 1450).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	echo := red2.ServeTCPEcho(t, 5001)
	if err := red1.TCPEcho(ctx, echo, make([]byte, 256<<10)); err != nil {
		t.Errorf("TCP red-1 → red-2: %v", err)
	}
	b.waitPing(blue1, blue2.addr())
	if got := blue2.ping(blue1.addr(), 5, "0.05"); got != 5 {
		t.Errorf("blue: %d of 5 pings answered", got)
	}
	// The ARP answer for red-2's address came from red-2 (or the
	// responder on its behalf), never from blue-2.
	out, _ := netns.Command(red1.Netns, "ip", "neigh", "show", red2.addr()).Output()
	if !strings.Contains(string(out), red2.mac) {
		t.Errorf("red-1's neighbour entry for %s: %q, want %s", red2.addr(), out, red2.mac)
	}
}

func TestIntegrationProviderVLANAndFlat(t *testing.T) {
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
	b.startRoles()
	vms := b.plugVMs(t, p.ports)
	vlan1, vlan2, flat1, flat2 := vms["vlan-1"], vms["vlan-2"], vms["flat-1"], vms["flat-2"]
	// Capture where node 2 meets the provider segment.
	capture := b.tb.Capture(t, b.tb.Fabric, n2.tb.FabricProvider, "icmp")

	b.waitPing(vlan1, vlan2.addr())
	if got := vlan1.ping(vlan2.addr(), 5, "0.05"); got != 5 {
		t.Errorf("vlan: %d of 5 pings answered", got)
	}
	b.waitPing(flat1, flat2.addr())
	if got := flat2.ping(flat1.addr(), 5, "0.05"); got != 5 {
		t.Errorf("flat: %d of 5 pings answered", got)
	}
	time.Sleep(300 * time.Millisecond)
	lines := capture.Stop()
	var vlanTagged, flatUntagged, flatTagged int
	for _, l := range lines {
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
			vlanTagged, flatUntagged, flatTagged, strings.Join(lines, "\n"))
	}
}

func TestIntegrationRestartLosesNoPacketAndConverges(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	p := b.redPair()
	b.apply(p)
	first := n1.startRole()
	n2.startRole()
	vms := b.plugVMs(t, p.ports)
	red1, red2 := vms["red-1"], vms["red-2"]
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
		cookies, err := NewSwitch(n1.tb.OVS.Instance, nil).Cookies(context.Background(), br)
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
	p := b.redPair()
	b.apply(p)
	r := n1.startRole()
	n2.startRole()
	vms := b.plugVMs(t, p.ports)
	red1, red2 := vms["red-1"], vms["red-2"]
	b.waitPing(red1, red2.addr())
	want := n1.settledFlows(t, "br-int")
	pushes := r.Stats().FullPushes
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.must(n1.tb.RestartVSwitchd(ctx))
	waitFor(t, func() bool { return r.Stats().FullPushes >= pushes+3 }, "flows pushed again after ovs-vswitchd restarted")
	if got := n1.flows(t, "br-int"); !slices.Equal(got, want) {
		t.Errorf("br-int after ovs-vswitchd restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b.waitPing(red1, red2.addr())
}

func TestIntegrationDeletingPortAndNetworkLeavesNothing(t *testing.T) {
	b := newBed(t, 2)
	n1 := b.nodes[0]
	b.startRoles()
	// Base flows only: what an empty node has.
	b.apply(placement{})
	empty := map[string][]string{}
	for _, br := range []string{"br-int", "br-tun"} {
		empty[br] = n1.settledFlows(t, br)
	}
	p := b.redPair()
	b.apply(p)
	vms := b.plugVMs(t, p.ports)
	red1, red2 := vms["red-1"], vms["red-2"]
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
	b.startRoles()
	// One subtest per network (in the order of p.networks), with the VMs
	// of its two ports.
	for i, n := range p.networks {
		typ := n.Segment.NetworkType
		t.Run(typ, func(t *testing.T) {
			p1, p2 := p.ports[n1][i], p.ports[n2][i]
			vms := b.plugVMs(t, map[*node][]msg.Port{n1: {p1}, n2: {p2}})
			a, z := vms[p1.ID], vms[p2.ID]
			b.waitPing(a, z.addr())
			if got := a.ping(z.addr(), 5, "0.05"); got != 5 {
				t.Errorf("%s: %d of 5 pings answered", typ, got)
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
