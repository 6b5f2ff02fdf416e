package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
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

// The role tests run one test-bed node with its own Open vSwitch, the l2
// role and the dhcp role on it, both fed a hand-made desired state, and a
// VM namespace plugged into br-int as Nova's VIF driver would, running
// udhcpc.

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

// node is a test-bed node running the l2 role and dhcp roles.
type node struct {
	t      *testing.T
	bed    *testbed.Bed
	n      *testbed.Node
	db     *ovs.Client
	status *testbed.Status
	l2     *l2.Role
	cfg    Config
}

func newNode(t *testing.T) *node {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.LookPathOrSkip(t, "busybox", "install Debian's busybox (scripts/install-deps.sh); its udhcpc is the test's DHCP client")
	bed := testbed.New(t, testbed.Spec{Nodes: 1})
	nd := &node{t: t, bed: bed, n: bed.Nodes[0], status: &testbed.Status{}}
	nd.db = nd.n.OVSDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := l2.Open(l2.Config{
		IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
		LocalIP: nd.n.TunnelIP.String(), TunnelTypes: []string{msg.NetworkTypeVXLAN}, ARPResponder: true,
	}, nd.n.OVS.Instance, slog.Default())
	must(t, err)
	must(t, r.Start(ctx, agent.Env{Host: host, Status: nd.status}))
	nd.l2 = r
	nd.cfg = Config{
		Settings: Settings{LeaseDuration: time.Hour}, OVS: nd.n.OVS.Instance,
		BridgeNetns: nd.n.Netns, NamespacePrefix: bed.Prefix + "-qdhcp-",
	}
	return nd
}

// startDHCP starts a dhcp role on the node, stopped when the test ends or
// when the returned function is called.
func (nd *node) startDHCP(state *msg.HostState) (*Role, func()) {
	t := nd.t
	t.Helper()
	r, err := New(nd.cfg, slog.Default())
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	must(t, r.Start(ctx, agent.Env{Host: host}))
	must(t, r.Sync(ctx, state))
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-r.Stopped()
		})
	}
	t.Cleanup(func() {
		stop()
		// Nothing may stay behind, also when the test failed midway.
		if err := Cleanup(context.Background(), nd.cfg, slog.Default()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return r, stop
}

// roleNetwork is a VXLAN network whose DHCP port is on this host.
func roleNetwork() (msg.Network, msg.DHCPNetwork) {
	n := serverNetwork("fa:16:3e:00:00:05")
	n.Segment = msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 100}
	for i := range n.Ports {
		n.Ports[i].Host, n.Ports[i].AdminStateUp, n.Ports[i].VIFType, n.Ports[i].Status = host, true, "ovs", msg.StatusDown
	}
	*n.DHCPPort = n.Ports[0]
	return msg.Network{ID: n.ID, AdminStateUp: true, MTU: n.MTU, Segment: n.Segment}, n
}

func (nd *node) syncL2(net msg.Network, ports []msg.Port) {
	must(nd.t, nd.l2.Sync(context.Background(), &msg.HostState{L2: &msg.L2State{Networks: []msg.Network{net}, Ports: ports}}))
}

// plugVM makes a VM namespace with eth0 (mac, MTU 1450, no address)
// plugged into br-int for port portID.
func (nd *node) plugVM(name, portID, mac string) *testbed.Host {
	t := nd.t
	t.Helper()
	tap := "tap" + shortID(portID)
	vm := nd.bed.AddHost(t, testbed.HostSpec{Name: name, PeerNetns: nd.n.Netns, PeerName: tap, MTU: 1450, MAC: mustMAC(t, mac)})
	must(t, nd.db.EnsurePort(context.Background(), "br-int", ovs.Port{Name: tap, ExternalIDs: map[string]string{
		"iface-id": portID, "attached-mac": mac, "iface-status": "active",
	}}))
	return vm
}

func TestRoleServesThroughBrIntWithL2Role(t *testing.T) {
	nd := newNode(t)
	l2net, dn := roleNetwork()
	nd.syncL2(l2net, dn.Ports)
	waitFor(t, func() bool { _, err := nd.db.Bridge("br-int"); return err == nil }, "br-int made by the l2 role")
	state := &msg.HostState{DHCP: &msg.DHCPState{Networks: []msg.DHCPNetwork{dn}}}
	r, stop := nd.startDHCP(state)

	// The DHCP port is plugged like a VM's: the l2 role wires it.
	ns := nd.cfg.NamespacePrefix + dn.ID
	waitFor(t, func() bool { return nd.status.PortUp("dhcp-port") }, "DHCP port reported up by the l2 role")
	iface, err := nd.db.Interface(tapName("dhcp-port"))
	must(t, err)
	if iface.Bridge != "br-int" || iface.IfaceID != "dhcp-port" || iface.AttachedMAC != "fa:16:3e:00:00:02" || iface.ExternalIDs["iface-status"] != "active" {
		t.Errorf("DHCP port's OVS interface: %+v", iface)
	}
	var devIndex int
	withLinks(t, ns, func(h *link.Handle) error {
		info, err := h.Get(devName("dhcp-port"))
		if err != nil {
			return err
		}
		addrs, err := h.Addrs(info.Name)
		if err != nil {
			return err
		}
		csum, err := h.TXChecksum(info.Name)
		if err != nil {
			return err
		}
		lo, err := h.Get("lo")
		if err != nil {
			return err
		}
		devIndex = info.Index
		if info.MAC.String() != "fa:16:3e:00:00:02" || info.MTU != 1450 || !info.Up || csum || !lo.Up ||
			!slices.Equal(addrs, []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24")}) {
			t.Errorf("DHCP interface in %s: %+v, addresses %v, TX checksum offload %v, lo up %v", ns, info, addrs, csum, lo.Up)
		}
		return nil
	})

	// A VM on br-int gets its address over the l2 role's flows.
	vm := nd.plugVM("vm1", "vm-1", "fa:16:3e:00:00:05")
	waitFor(t, func() bool { return nd.status.PortUp("vm-1") }, "VM port wired")
	c := startClient(t, vm.Netns)
	ev, seen := c.waitEvent(0, eventIs("bound"), "lease through br-int")
	if ev["ip"] != "10.0.0.5" || ev["router"] != "10.0.0.1" || ev["mtu"] != "1450" || ev["serverid"] != "10.0.0.2" || ev["lease"] != "3600" {
		t.Errorf("lease through br-int: %v", ev)
	}
	waitFor(t, func() bool {
		conf := r.Report().Configurations
		return conf["networks"] == float64(1) && conf["subnets"] == float64(1) && conf["ports"] == float64(1)
	}, "state report counts the network")
	if conf := r.Report().Configurations; conf["dhcp_lease_duration"] != float64(3600) || conf["dhcp_driver"] != Driver {
		t.Errorf("state report configurations %v", conf)
	}

	// A notification changes the VM's address: the renewal is NAKed and
	// the VM takes the new one.
	newPort := dn.Ports[1]
	newPort.FixedIPs = []msg.FixedIP{fixedIP("sub-a", "10.0.0.50")}
	must(t, r.Apply(context.Background(), &msg.Notification{DHCP: &msg.DHCPUpdate{Ports: []msg.Port{newPort}}}))
	waitFor(t, func() bool {
		ls := r.serverOf(dn.ID).Table().Lookup(mustMAC(t, "fa:16:3e:00:00:05"))
		return len(ls) == 1 && ls[0].Addr.String() == "10.0.0.50"
	}, "table swapped")
	c.renew()
	ev, _ = c.waitEvent(seen, eventIs("bound"), "new address after the port changed")
	if ev["ip"] != "10.0.0.50" {
		t.Errorf("after the change the VM got %s", ev["ip"])
	}

	// A restarted role adopts what is there: same interface, no new veth.
	stop()
	dn.Ports[1] = newPort
	state = &msg.HostState{DHCP: &msg.DHCPState{Networks: []msg.DHCPNetwork{dn}}}
	r, stop = nd.startDHCP(state)
	waitFor(t, func() bool { s := r.serverOf(dn.ID); return s != nil && s.Table().Len() == 1 }, "restarted role serving")
	withLinks(t, ns, func(h *link.Handle) error {
		info, err := h.Get(devName("dhcp-port"))
		if err == nil && info.Index != devIndex {
			t.Errorf("restart recreated the DHCP interface (index %d, was %d)", info.Index, devIndex)
		}
		return err
	})
	c.renew()
	ev, _ = c.waitEvent(seen, func(ev map[string]string) bool { return ev["event"] == "renew" && ev["ip"] == "10.0.0.50" }, "renewal answered by the restarted role")

	// The network leaves this agent: namespace, veth, OVS port and server go.
	must(t, r.Apply(context.Background(), &msg.Notification{DHCP: &msg.DHCPUpdate{DeletedNetworks: []string{dn.ID}}}))
	waitFor(t, func() bool { return !netns.Exists(ns) }, "namespace removed")
	if _, err := nd.db.Interface(tapName("dhcp-port")); !errors.Is(err, ovs.ErrNotFound) {
		t.Errorf("OVS interface of the DHCP port left: %v", err)
	}
	if nd.n.Links(t).Exists(tapName("dhcp-port")) {
		t.Error("the DHCP port's veth is left in the node")
	}
	if s := r.serverOf(dn.ID); s != nil {
		t.Error("server of a removed network still runs")
	}
	if conf := r.Report().Configurations; conf["networks"] != float64(0) {
		t.Errorf("state report after removal: %v", conf)
	}
	stop()
}

func TestRoleRemovesStaleAndAdminDownNetworks(t *testing.T) {
	nd := newNode(t)
	l2net, dn := roleNetwork()
	nd.syncL2(l2net, dn.Ports)
	waitFor(t, func() bool { _, err := nd.db.Bridge("br-int"); return err == nil }, "br-int made by the l2 role")
	ns := nd.cfg.NamespacePrefix + dn.ID
	_, stop := nd.startDHCP(&msg.HostState{DHCP: &msg.DHCPState{Networks: []msg.DHCPNetwork{dn}}})
	waitFor(t, func() bool { return nd.status.PortUp("dhcp-port") }, "DHCP port wired")
	stop()

	// The role restarts to a state without the network (it was moved
	// to another agent meanwhile): what the last run left goes.
	r, stop := nd.startDHCP(&msg.HostState{DHCP: &msg.DHCPState{}})
	waitFor(t, func() bool { return !netns.Exists(ns) }, "stale namespace removed")
	if _, err := nd.db.Interface(tapName("dhcp-port")); !errors.Is(err, ovs.ErrNotFound) {
		t.Errorf("stale OVS interface left: %v", err)
	}

	// An administratively down network is not served; up again, it is.
	must(t, r.Apply(context.Background(), &msg.Notification{DHCP: &msg.DHCPUpdate{Networks: []msg.DHCPNetwork{dn}}}))
	waitFor(t, func() bool { return netns.Exists(ns) && r.serverOf(dn.ID) != nil }, "network served")
	down := dn
	down.AdminStateUp = false
	must(t, r.Apply(context.Background(), &msg.Notification{DHCP: &msg.DHCPUpdate{Networks: []msg.DHCPNetwork{down}}}))
	waitFor(t, func() bool { return !netns.Exists(ns) && r.serverOf(dn.ID) == nil }, "administratively down network no longer served")
	if _, err := nd.db.Interface(tapName("dhcp-port")); !errors.Is(err, ovs.ErrNotFound) {
		t.Errorf("OVS interface of an administratively down network left: %v", err)
	}
	must(t, r.Apply(context.Background(), &msg.Notification{DHCP: &msg.DHCPUpdate{Networks: []msg.DHCPNetwork{dn}}}))
	waitFor(t, func() bool { return netns.Exists(ns) && r.serverOf(dn.ID) != nil }, "network served once up again")
	stop()
}

// serverOf returns the server of a network, nil if none runs.
func (r *Role) serverOf(networkID string) *Server {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	if s := r.nets[networkID]; s != nil {
		return s.server
	}
	return nil
}
