// Package testbed builds real multi-node network topologies out of network
// namespaces for integration tests and benchmarks, and removes every
// namespace, link and process it made when the test ends, passed, failed or
// panicked.
//
// A bed has N nodes, each a namespace with its own ovsdb-server and
// ovs-vswitchd, and a fabric namespace joining them with Linux bridges:
//
//	fabric namespace <prefix>-fabric
//	  bridge "underlay"  ── n<N>-underlay ═ underlay0 (node N) on OVS br-underlay
//	  bridge "provider"  ── n<N>-provider ═ provider0 (node N), unattached
//	  bridge "external"  ── n<N>-external ═ external0 (node N), unattached
//	                     └─ outside      ═ eth0 of <prefix>-outside
//
// Address plan:
//
//	underlay   172.30.0.0/24   node N's tunnel IP 172.30.0.N, on the
//	                           internal port of OVS bridge br-underlay, which
//	                           holds underlay0: the userspace datapath sends
//	                           tunnel packets by its own routing and ARP
//	                           through that bridge.
//	provider   no addresses    an L2 segment for flat and VLAN provider
//	                           networks (Linux bridge, no VLAN filtering, so
//	                           802.1Q frames pass as they are); provider0 is
//	                           the NIC for bridge_mappings (br-<physnet>).
//	external   203.0.113.0/24  the outside host is 203.0.113.1 and also holds
//	                           198.51.100.1/32, an "internet" address reachable
//	                           only through it; external0 is the NIC for a
//	                           node's br-ex.
//
// Namespaces are named <prefix>-<role> with a random prefix per bed, so
// parallel tests never clash. IPv6 is off in every namespace the bed makes
// (no router solicitations or MLD in packet captures) unless Spec.IPv6.
// Every veth the bed makes has TX checksum offload off on both ends.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The address plan and the names every bed uses.
var (
	UnderlayPrefix = netip.MustParsePrefix("172.30.0.0/24")
	ExternalPrefix = netip.MustParsePrefix("203.0.113.0/24")
	// OutsideAddr is the outside host's address on the external network,
	// the gateway an external subnet points at.
	OutsideAddr = netip.MustParseAddr("203.0.113.1")
	// InternetAddr is on the outside host's loopback: reaching it proves a
	// packet left through the external network.
	InternetAddr = netip.MustParseAddr("198.51.100.1")
)

const (
	// UnderlayBridge is the OVS bridge in each node holding UnderlayNIC and
	// the node's tunnel IP.
	UnderlayBridge = "br-underlay"
	// UnderlayNIC, ProviderNIC and ExternalNIC are the node ends of the
	// node's veths into the fabric.
	UnderlayNIC = "underlay0"
	ProviderNIC = "provider0"
	ExternalNIC = "external0"
	// Names of the Linux bridges in the fabric namespace.
	FabricUnderlay = "underlay"
	FabricProvider = "provider"
	FabricExternal = "external"
)

// setupTimeout bounds building a bed.
const setupTimeout = 2 * time.Minute

// Spec describes a bed.
type Spec struct {
	// Nodes is the number of nodes, at least 1 and at most 250.
	Nodes int
	// IPv6 leaves IPv6 on in the bed's namespaces.
	IPv6 bool
}

// Bed is a built topology. Its fields are read-only.
type Bed struct {
	// Prefix starts the name of every namespace of this bed.
	Prefix string
	// Fabric is the namespace holding the fabric bridges.
	Fabric string
	// Nodes are node1…nodeN; Nodes[i].Index is i+1.
	Nodes []*Node
	// Outside is the host on the external network.
	Outside *Host
	// Dir holds the nodes' state (OVS databases, sockets, logs).
	Dir string

	spec Spec
}

// Node is one simulated hypervisor or network node.
type Node struct {
	Name  string // "node1"
	Index int    // 1-based
	// Netns is the node's namespace; its OVS runs inside it.
	Netns string
	// Dir is the node's state directory (OVS files live in Dir/ovs).
	Dir string
	// OVS are the node's own Open vSwitch daemons.
	OVS *ovs.Daemons
	// TunnelIP is the node's underlay address (local_ip of its tunnels).
	TunnelIP netip.Addr
	// UnderlayMAC is the MAC of br-underlay's internal port.
	UnderlayMAC net.HardwareAddr
	// FabricUnderlay, FabricProvider and FabricExternal are the fabric
	// ends of this node's veths (in Bed.Fabric), where captures see what
	// the node sends.
	FabricUnderlay, FabricProvider, FabricExternal string

	bed *Bed
}

// New builds a bed and registers its teardown with t.Cleanup. It skips the
// test when not root or when Open vSwitch, ip or tcpdump is missing.
func New(t testing.TB, spec Spec) *Bed {
	t.Helper()
	testenv.RequireOVS(t)
	testenv.LookPathOrSkip(t, "ip", "apt-get install iproute2")
	if spec.Nodes < 1 || spec.Nodes > 250 {
		t.Fatalf("testbed: %d nodes; want 1-250", spec.Nodes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	b := &Bed{Prefix: randomPrefix(), spec: spec}
	// A short directory: OVS's unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", b.Prefix+"-")
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	b.Dir = dir
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testbed %s: removing %s (OVS logs are in <node>/ovs/*.log)", b.Prefix, dir)
		}
		os.RemoveAll(dir)
	})

	b.Fabric = b.newNetns(t, "fabric")
	fabric := b.links(t, b.Fabric)
	for _, br := range []string{FabricUnderlay, FabricProvider, FabricExternal} {
		must(t, fabric.AddBridge(br))
	}

	b.Outside = b.AddHost(t, HostSpec{
		Name: "outside", PeerNetns: b.Fabric, PeerName: "outside", PeerBridge: FabricExternal,
		Addr: netip.PrefixFrom(OutsideAddr, ExternalPrefix.Bits()),
	})
	outside := b.links(t, b.Outside.Netns)
	must(t, outside.AddAddr("lo", netip.PrefixFrom(InternetAddr, 32)))

	for i := 1; i <= spec.Nodes; i++ {
		b.Nodes = append(b.Nodes, b.newNode(ctx, t, i, fabric))
	}
	b.seedTunnelNeighbors(ctx, t)
	return b
}

func randomPrefix() string {
	r := make([]byte, 3)
	rand.Read(r)
	return "tb" + hex.EncodeToString(r)
}

// newNetns creates <prefix>-<role> with loopback up and removes it when the
// test ends (the kernel deletes every link inside with it).
func (b *Bed) newNetns(t testing.TB, role string) string {
	t.Helper()
	name := b.Prefix + "-" + role
	if err := netns.Create(name); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("testbed cleanup: %v", err)
		}
	})
	if !b.spec.IPv6 {
		for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
			must(t, netns.SetSysctl(name, key, "1"))
		}
	}
	must(t, b.links(t, name).SetUp("lo"))
	return name
}

// links opens a link handle on ns, closed when the test ends.
func (b *Bed) links(t testing.TB, ns string) *link.Handle {
	t.Helper()
	h, err := link.Open(ns)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// addFabricVeth joins a node to a fabric bridge: the fabric end, enslaved
// and up, and the node end, up; offload off on both.
func (b *Bed) addFabricVeth(t testing.TB, fabric *link.Handle, fabricEnd, bridge, nodeNetns, nodeEnd string) {
	t.Helper()
	must(t, fabric.AddVeth(link.Veth{Name: fabricEnd, PeerName: nodeEnd, PeerNetns: nodeNetns}))
	must(t, fabric.DisableTXChecksum(fabricEnd))
	must(t, fabric.SetMaster(fabricEnd, bridge))
	must(t, fabric.SetUp(fabricEnd))
	node := b.links(t, nodeNetns)
	must(t, node.DisableTXChecksum(nodeEnd))
	must(t, node.SetUp(nodeEnd))
}

func (b *Bed) newNode(ctx context.Context, t testing.TB, i int, fabric *link.Handle) *Node {
	t.Helper()
	n := &Node{
		Name: fmt.Sprintf("node%d", i), Index: i, bed: b,
		TunnelIP:       nthAddr(UnderlayPrefix, i),
		UnderlayMAC:    net.HardwareAddr{0x02, 0x00, 0xac, 0x1e, 0x00, byte(i)},
		FabricUnderlay: fmt.Sprintf("n%d-underlay", i),
		FabricProvider: fmt.Sprintf("n%d-provider", i),
		FabricExternal: fmt.Sprintf("n%d-external", i),
	}
	n.Netns = b.newNetns(t, n.Name)
	n.Dir = filepath.Join(b.Dir, n.Name)
	b.addFabricVeth(t, fabric, n.FabricUnderlay, FabricUnderlay, n.Netns, UnderlayNIC)
	b.addFabricVeth(t, fabric, n.FabricProvider, FabricProvider, n.Netns, ProviderNIC)
	b.addFabricVeth(t, fabric, n.FabricExternal, FabricExternal, n.Netns, ExternalNIC)

	d, err := ovs.StartDaemons(ctx, ovs.Options{Dir: filepath.Join(n.Dir, "ovs"), Netns: n.Netns})
	if err != nil {
		t.Fatalf("testbed: %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("testbed cleanup: %s: %v", n.Name, err)
		}
	})
	n.OVS = d

	// The underlay: underlay0 on a standalone (learning) bridge whose
	// internal port carries the tunnel IP, with a fixed MAC so that other
	// nodes' neighbor entries can be seeded.
	db := n.OVSDB(t)
	must(t, db.EnsureBridge(ctx, ovs.Bridge{
		Name: UnderlayBridge, DatapathType: "netdev", FailMode: "standalone",
		OtherConfig: map[string]string{"hwaddr": n.UnderlayMAC.String()},
	}))
	must(t, db.EnsurePort(ctx, UnderlayBridge, ovs.Port{Name: UnderlayNIC}))
	must(t, db.WaitVSwitchd(ctx))
	if _, err := db.WaitOfport(ctx, UnderlayNIC); err != nil {
		t.Fatalf("testbed: %s: %v", n.Name, err)
	}
	h := b.links(t, n.Netns)
	must(t, h.AddAddr(UnderlayBridge, netip.PrefixFrom(n.TunnelIP, UnderlayPrefix.Bits())))
	must(t, h.SetUp(UnderlayBridge))
	return n
}

// seedTunnelNeighbors tells each node's OVS the underlay MAC of every
// other node, so the first tunnelled packet is not dropped while OVS ARPs.
func (b *Bed) seedTunnelNeighbors(ctx context.Context, t testing.TB) {
	t.Helper()
	for _, n := range b.Nodes {
		must(t, n.SeedTunnelNeighbors(ctx))
	}
}

// SeedTunnelNeighbors tells this node's ovs-vswitchd the underlay MAC of
// every other node of the bed. New does it once; call it again after
// restarting ovs-vswitchd, which forgets them.
func (n *Node) SeedTunnelNeighbors(ctx context.Context) error {
	for _, other := range n.bed.Nodes {
		if other == n {
			continue
		}
		if _, err := n.OVS.Appctl(ctx, "tnl/neigh/set", UnderlayBridge, other.TunnelIP.String(), other.UnderlayMAC.String()); err != nil {
			return fmt.Errorf("testbed: %s: %w", n.Name, err)
		}
	}
	return nil
}

// RestartVSwitchd restarts the node's ovs-vswitchd, as a crash or upgrade
// would (flows and conntrack state are lost; OVSDB, the bridges' internal
// ports and their addresses stay), and seeds the tunnel neighbors again.
func (n *Node) RestartVSwitchd(ctx context.Context) error {
	if err := n.OVS.RestartVSwitchd(ctx); err != nil {
		return fmt.Errorf("testbed: %s: %w", n.Name, err)
	}
	return n.SeedTunnelNeighbors(ctx)
}

// OVSDB connects a client to the node's ovsdb-server, closed when the test
// ends.
func (n *Node) OVSDB(t testing.TB) *ovs.Client {
	t.Helper()
	c, err := ovs.Connect(context.Background(), n.OVS.DB, nil)
	if err != nil {
		t.Fatalf("testbed: %s: %v", n.Name, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Links opens a link handle on the node's namespace, closed when the test
// ends.
func (n *Node) Links(t testing.TB) *link.Handle {
	t.Helper()
	return n.bed.links(t, n.Netns)
}

// Command returns a command that runs prog inside the node's namespace.
func (n *Node) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return netns.CommandContext(ctx, n.Netns, prog, args...)
}

// Run runs prog inside the node's namespace and returns its combined
// output; it fails the test if prog fails.
func (n *Node) Run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	return run(t, n.Netns, prog, args...)
}

func run(t testing.TB, ns, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := netns.CommandContext(ctx, ns, prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testbed: in %s: %s %s: %v\n%s", ns, prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddEndpoint adds a host namespace <prefix>-<name> joined by a veth to
// the node: eth0 (with addr) in the host, and the returned host's PeerName
// ("ep-<name>", up, not attached to anything) in the node, ready to plug
// into an OVS bridge. name must be at most 12 characters.
func (n *Node) AddEndpoint(t testing.TB, name string, addr netip.Prefix) *Host {
	t.Helper()
	return n.bed.AddHost(t, HostSpec{Name: name, PeerNetns: n.Netns, PeerName: "ep-" + name, Addr: addr})
}

// nthAddr is the i-th address of an IPv4 prefix of /24 or longer.
func nthAddr(p netip.Prefix, i int) netip.Addr {
	a := p.Masked().Addr().As4()
	a[3] += byte(i)
	return netip.AddrFrom4(a)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// WaitFor polls cond until it returns nil, and fails the test with the
// last error if it does not within 20 s.
func WaitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s: %v", what, err)
}
