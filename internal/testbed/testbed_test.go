package testbed_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var tenantBridge = ovs.Bridge{
	Name: "br-int", DatapathType: "netdev", FailMode: "secure",
	Protocols: []string{"OpenFlow13", "OpenFlow14"},
}

// Two nodes, each with its own OVS: br-int with a VXLAN port to the other
// node and an endpoint on a veth, a learning switch programmed through an
// OpenFlow bundle. The endpoints ping and talk TCP across the tunnel, and
// the tunnel packets cross the fabric between the nodes' tunnel IPs.
func TestTwoNodesVXLAN(t *testing.T) {
	var prefix, dir string
	var pids []int
	t.Run("traffic", func(t *testing.T) {
		bed := testbed.New(t, testbed.Spec{Nodes: 2})
		prefix, dir = bed.Prefix, bed.Dir
		ctx := ctxFor(t)
		subnet := netip.MustParsePrefix("10.10.0.0/24")
		var hosts []*testbed.Host
		for i, n := range bed.Nodes {
			db := n.OVSDB(t)
			must(t, db.EnsureBridge(ctx, tenantBridge))
			other := bed.Nodes[1-i]
			must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: "vxlan0", Type: "vxlan", Options: map[string]string{
				"remote_ip": other.TunnelIP.String(), "local_ip": n.TunnelIP.String(), "key": "100",
			}}))
			h := bed.AddHost(t, testbed.HostSpec{
				Name: "vm" + n.Name[4:], PeerNetns: n.Netns, PeerName: "tap-vm",
				Addr: netip.PrefixFrom(netip.MustParseAddr("10.10.0."+n.Name[4:]), subnet.Bits()), MTU: 1450,
			})
			hosts = append(hosts, h)
			must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: "tap-vm", ExternalIDs: map[string]string{
				"iface-id": "port-" + n.Name, "attached-mac": h.MAC.String(),
			}}))
			must(t, db.WaitVSwitchd(ctx))
			for _, port := range []string{"vxlan0", "tap-vm"} {
				if _, err := db.WaitOfport(ctx, port); err != nil {
					t.Fatal(err)
				}
			}
			must(t, n.OVS.OpenFlow("br-int").ReplaceCookie(ctx, 1, []ovs.Flow{{Priority: 0, Actions: "NORMAL"}}))
			dbPID, vsPID := n.OVS.PIDs()
			pids = append(pids, dbPID, vsPID)
		}

		underlay := bed.Capture(t, bed.Fabric, bed.Nodes[0].FabricUnderlay, "udp port 4789")
		must(t, hosts[0].Ping(ctx, hosts[1].IP(), 3))
		must(t, hosts[1].Ping(ctx, hosts[0].IP(), 3))
		if _, err := underlay.Wait(ctx, bed.Nodes[0].TunnelIP.String()+"."); err != nil {
			t.Fatalf("no VXLAN packet from node1's tunnel IP on the fabric: %v\n%s", err, strings.Join(underlay.Lines(), "\n"))
		}
		lines := underlay.Stop()
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "> "+bed.Nodes[1].TunnelIP.String()+".4789") && strings.Contains(l, "VXLAN")
		}) {
			t.Fatalf("no VXLAN packet towards node2 in the capture:\n%s", strings.Join(lines, "\n"))
		}

		// TCP through the tunnel: a payload of many full-size segments, which
		// needs TX checksum offload off on the veths to arrive.
		payload := make([]byte, 512<<10)
		rand.Read(payload)
		echo := hosts[1].ServeTCPEcho(t, 7)
		must(t, hosts[0].TCPEcho(ctx, echo, payload))
		echo = hosts[0].ServeTCPEcho(t, 7)
		must(t, hosts[1].TCPEcho(ctx, echo, payload))

		// ovs-vswitchd restarts: br-int (fail_mode secure) drops everything
		// until its flows are pushed again; the underlay comes back by itself.
		n1 := bed.Nodes[0]
		must(t, n1.RestartVSwitchd(ctx))
		if err := hosts[0].Ping(ctx, hosts[1].IP(), 1); err == nil {
			t.Fatal("ping crossed a br-int without flows")
		}
		if addrs, err := n1.Links(t).Addrs(testbed.UnderlayBridge); err != nil || !slices.Contains(addrs, netip.PrefixFrom(n1.TunnelIP, 24)) {
			t.Fatalf("tunnel IP after the restart: %v, %v", addrs, err)
		}
		must(t, n1.OVS.OpenFlow("br-int").ReplaceCookie(ctx, 1, []ovs.Flow{{Priority: 0, Actions: "NORMAL"}}))
		must(t, hosts[0].Ping(ctx, hosts[1].IP(), 2))
		must(t, hosts[0].TCPEcho(ctx, netip.AddrPortFrom(hosts[1].IP(), 7), payload))

		// Nothing reaches an address no endpoint has.
		if err := hosts[0].Ping(ctx, netip.MustParseAddr("10.10.0.99"), 1); err == nil {
			t.Fatal("ping to an unused address answered")
		}
	})
	if prefix == "" {
		return // skipped
	}
	// Everything the bed made is gone.
	names, err := netns.List()
	must(t, err)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("OVS process %d left running: %v", pid, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s left behind: %v", dir, err)
	}
}

// The provider segment carries 802.1Q frames between nodes as they are, and
// the outside host answers on the external network.
func TestProviderVLANAndExternal(t *testing.T) {
	bed := testbed.New(t, testbed.Spec{Nodes: 2})
	ctx := ctxFor(t)
	const vlan = 1234
	var hosts []*testbed.Host
	for _, n := range bed.Nodes {
		db := n.OVSDB(t)
		// A provider bridge as the agent's bridge_mappings would make it,
		// here a plain learning switch with the endpoint as an access port.
		must(t, db.EnsureBridge(ctx, ovs.Bridge{Name: "br-physnet1", DatapathType: "netdev", FailMode: "standalone"}))
		must(t, db.EnsurePort(ctx, "br-physnet1", ovs.Port{Name: testbed.ProviderNIC}))
		h := n.AddEndpoint(t, "p"+n.Name[4:], netip.MustParsePrefix("192.168.50."+n.Name[4:]+"/24"))
		hosts = append(hosts, h)
		must(t, db.EnsurePort(ctx, "br-physnet1", ovs.Port{Name: h.PeerName, Tag: vlan}))
		must(t, db.WaitVSwitchd(ctx))
	}
	tagged := bed.Capture(t, bed.Fabric, bed.Nodes[0].FabricProvider, "vlan "+"1234")
	must(t, hosts[0].Ping(ctx, hosts[1].IP(), 2))
	line, err := tagged.Wait(ctx, "ICMP echo request")
	if err != nil {
		t.Fatalf("%v\ncaptured:\n%s", err, strings.Join(tagged.Lines(), "\n"))
	}
	if !strings.Contains(line, "802.1Q") || !strings.Contains(line, "vlan 1234") {
		t.Fatalf("echo request on the provider segment without its tag: %s", line)
	}

	// External network: a node-side endpoint on external0 reaches the
	// outside host and, through it, the "internet" address.
	n := bed.Nodes[1]
	db := n.OVSDB(t)
	must(t, db.EnsureBridge(ctx, ovs.Bridge{Name: "br-ex", DatapathType: "netdev", FailMode: "standalone"}))
	must(t, db.EnsurePort(ctx, "br-ex", ovs.Port{Name: testbed.ExternalNIC}))
	gw := bed.AddHost(t, testbed.HostSpec{
		Name: "gw", PeerNetns: n.Netns, PeerName: "ep-gw",
		Addr: netip.MustParsePrefix("203.0.113.10/24"), Gateway: testbed.OutsideAddr,
	})
	must(t, db.EnsurePort(ctx, "br-ex", ovs.Port{Name: "ep-gw"}))
	must(t, db.WaitVSwitchd(ctx))
	must(t, gw.Ping(ctx, testbed.OutsideAddr, 2))
	must(t, gw.Ping(ctx, testbed.InternetAddr, 2))
	echo := bed.Outside.ServeTCPEcho(t, 80)
	must(t, gw.TCPEcho(ctx, echo, []byte("hello from the external network")))
}

// Geneve and GRE tunnels carry the same traffic in the userspace datapath;
// the tunnel port changes type in place.
func TestTwoNodesGeneveAndGRE(t *testing.T) {
	bed := testbed.New(t, testbed.Spec{Nodes: 2})
	ctx := ctxFor(t)
	var hosts []*testbed.Host
	for _, n := range bed.Nodes {
		db := n.OVSDB(t)
		must(t, db.EnsureBridge(ctx, tenantBridge))
		// GRE's overhead differs from VXLAN's: 1400 suits both.
		h := bed.AddHost(t, testbed.HostSpec{
			Name: "vm" + n.Name[4:], PeerNetns: n.Netns, PeerName: "tap-vm", MTU: 1400,
			Addr: netip.MustParsePrefix("10.20.0." + n.Name[4:] + "/24"),
		})
		hosts = append(hosts, h)
		must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: h.PeerName}))
		must(t, n.OVS.OpenFlow("br-int").ReplaceCookie(ctx, 1, []ovs.Flow{{Priority: 0, Actions: "NORMAL"}}))
	}
	payload := make([]byte, 256<<10)
	rand.Read(payload)
	echo := hosts[1].ServeTCPEcho(t, 7)
	for _, tc := range []struct{ typ, filter, marker string }{
		{"geneve", "udp port 6081", "Geneve"},
		{"gre", "proto gre", "GRE"},
	} {
		for i, n := range bed.Nodes {
			db := n.OVSDB(t)
			must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: "tun0", Type: tc.typ, Options: map[string]string{
				"remote_ip": bed.Nodes[1-i].TunnelIP.String(), "local_ip": n.TunnelIP.String(), "key": "100",
			}}))
			must(t, db.WaitVSwitchd(ctx))
		}
		capture := bed.Capture(t, bed.Fabric, bed.Nodes[0].FabricUnderlay, tc.filter)
		if err := hosts[0].Ping(ctx, hosts[1].IP(), 2); err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if err := hosts[0].TCPEcho(ctx, echo, payload); err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if _, err := capture.Wait(ctx, tc.marker); err != nil {
			t.Fatalf("%s: %v\n%s", tc.typ, err, strings.Join(capture.Lines(), "\n"))
		}
		capture.Stop()
	}
}
