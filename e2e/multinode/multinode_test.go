package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// checkLease fails unless the VM holds by DHCP the address the API shows
// for its port, and its port is ACTIVE.
func checkLease(t *testing.T, c *cluster, v vm.VM) netip.Addr {
	t.Helper()
	p := c.api.Must(200, "GET", "/v2.0/ports/"+v.PortID, nil)["port"].(map[string]any)
	want := apitest.S(p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"])
	if v.Lease == nil || v.Lease.IP() != want {
		t.Fatalf("VM %s: lease %+v; want the port's address %s", v.Name, v.Lease, want)
	}
	if p["status"] != "ACTIVE" {
		t.Errorf("VM %s: port status %v; want ACTIVE", v.Name, p["status"])
	}
	// The address is really on the VM's interface.
	out, err := netns.Command(v.Namespace, "ip", "-4", "-o", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " "+want+"/") {
		t.Fatalf("VM %s: eth0 has %s (%v); want %s", v.Name, out, err, want)
	}
	return netip.MustParseAddr(want)
}

// heldAddresses are the fixed IPs every port of the network holds (VMs,
// the DHCP port, router ports): IPAM gives addresses out at random, so a
// test that picks an address no one holds must step around these.
func (c *cluster) heldAddresses(netID string) map[string]bool {
	c.t.Helper()
	held := map[string]bool{}
	for _, p := range c.api.Do("GET", "/v2.0/ports?network_id="+netID, nil).Items("ports") {
		for _, f := range p["fixed_ips"].([]any) {
			held[apitest.S(f.(map[string]any)["ip_address"])] = true
		}
	}
	return held
}

// TestTenantNetworksAcrossNodes: VMs on one VXLAN network on node2 and
// node3 get their API addresses by DHCP from node1 and reach each other
// with ping and TCP; a second network with the same CIDR is isolated (a
// capture in the first network's VMs sees none of its packets). Deleting a
// VM removes its flows on every node; deleting a network removes its qdhcp
// namespace and its tunnel flows; at the end nothing is left.
func TestTenantNetworksAcrossNodes(t *testing.T) {
	c := newCluster(t, defaultSpec())
	n2, n3 := c.nodes[1], c.nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	red := c.network("red", "10.60.0.0/24", nil)
	blue := c.network("blue", "10.60.0.0/24", nil)
	if red["mtu"] != jsonNumber(1450) {
		t.Errorf("VXLAN network MTU %v; want 1450", red["mtu"])
	}
	r2, r3 := n2.createVM("red", "r2"), n3.createVM("red", "r3")
	b2, b3 := n2.createVM("blue", "b2"), n3.createVM("blue", "b3")
	r2IP, r3IP := checkLease(t, c, r2), checkLease(t, c, r3)
	checkLease(t, c, b2)
	b3IP := checkLease(t, c, b3)
	if r2.Lease.MTU != 1450 {
		t.Errorf("VM %s: DHCP MTU %d; want 1450", r2.Name, r2.Lease.MTU)
	}

	t.Run("ping and TCP across the tunnel", func(t *testing.T) {
		if err := testbed.Ping(ctx, r2.Namespace, r3IP, 3); err != nil {
			t.Fatal(err)
		}
		echo := testbed.ServeTCPEcho(t, r3.Namespace, netip.AddrPortFrom(r3IP, 7000))
		if err := testbed.TCPEcho(ctx, r2.Namespace, echo, []byte(strings.Repeat("neutrino", 2000))); err != nil {
			t.Fatal(err)
		}
		// `neutrino vm exec` passes the exit status through.
		if out, err := n2.vmCommand("exec", r2.Name, "--", "ping", "-c1", "-W2", r3IP.String()).CombinedOutput(); err != nil {
			t.Errorf("neutrino vm exec ping: %v\n%s", err, out)
		}
	})

	t.Run("same CIDR on another network is isolated", func(t *testing.T) {
		caps := []*testbed.Capture{
			c.bed.Capture(t, r2.Namespace, "eth0", "icmp or tcp port 7001"),
			c.bed.Capture(t, r3.Namespace, "eth0", "icmp or tcp port 7001"),
		}
		if err := testbed.Ping(ctx, b2.Namespace, b3IP, 3); err != nil {
			t.Fatalf("blue VMs do not reach each other: %v", err)
		}
		echo := testbed.ServeTCPEcho(t, b3.Namespace, netip.AddrPortFrom(b3IP, 7001))
		if err := testbed.TCPEcho(ctx, b2.Namespace, echo, []byte("blue")); err != nil {
			t.Fatal(err)
		}
		// Addresses that only red VMs hold are unreachable from blue. Any
		// blue port (a VM or the DHCP port) may hold the same address on
		// its own network: those are skipped.
		blueHeld := c.heldAddresses(apitest.S(blue["id"]))
		for _, ip := range []netip.Addr{r2IP, r3IP} {
			if blueHeld[ip.String()] {
				continue
			}
			if err := testbed.Ping(ctx, b2.Namespace, ip, 1); err == nil {
				t.Errorf("blue VM reached %s, a red address", ip)
			}
		}
		for _, cp := range caps {
			if lines := cp.Stop(); len(lines) > 0 {
				t.Errorf("red VM %s saw blue traffic:\n%s", cp.Netns, strings.Join(lines, "\n"))
			}
		}
	})

	t.Run("deleting a VM removes its flows", func(t *testing.T) {
		mac := strings.ToLower(r3.MAC)
		if len(c.flowsWith(mac)) == 0 {
			t.Fatalf("no flow names %s's MAC %s before its delete", r3.Name, mac)
		}
		n3.deleteVM(r3.Name)
		testenv.Eventually(t, 10*time.Second, "no flow naming the deleted VM's MAC", func() bool { return len(c.flowsWith(mac)) == 0 })
		if netns.Exists(r3.Namespace) {
			t.Errorf("VM namespace %s left after delete", r3.Namespace)
		}
		c.api.Must(404, "GET", "/v2.0/ports/"+r3.PortID, nil)
		// The other network's traffic is untouched.
		if err := testbed.Ping(ctx, b2.Namespace, b3IP, 1); err != nil {
			t.Errorf("blue VMs lost connectivity: %v", err)
		}
	})

	t.Run("deleting a network removes its namespace and tunnel flows", func(t *testing.T) {
		id := apitest.S(blue["id"])
		vni := tunnelFlowMarks(blue)
		if len(c.flowsWith(vni...)) == 0 {
			t.Fatalf("no tunnel flow for blue's VNI before the delete")
		}
		if !netns.Exists("qdhcp-" + id) {
			t.Fatalf("no qdhcp-%s namespace before the delete", id)
		}
		n2.deleteVM(b2.Name)
		n3.deleteVM(b3.Name)
		c.api.Must(204, "DELETE", "/v2.0/networks/"+id, nil)
		testenv.Eventually(t, 10*time.Second, "blue's qdhcp namespace removed", func() bool { return !netns.Exists("qdhcp-" + id) })
		testenv.Eventually(t, 10*time.Second, "no flow for blue's VNI", func() bool { return len(c.flowsWith(vni...)) == 0 })
		if err := testbed.Ping(ctx, r2.Namespace, r3IP, 1); err == nil {
			t.Errorf("the deleted VM's address still answers")
		}
	})

	t.Run("nothing left behind", func(t *testing.T) {
		n2.deleteVM(r2.Name)
		c.api.Must(204, "DELETE", "/v2.0/networks/"+apitest.S(red["id"]), nil)
		testenv.Eventually(t, 10*time.Second, "no namespace of the test's VMs and networks", func() bool { return len(c.leftNamespaces()) == 0 })
		for _, nd := range c.nodes {
			ports := nd.tb.Run(t, "ovs-vsctl", "--db="+nd.tb.OVS.DB, "list-ports", "br-int")
			for _, p := range strings.Fields(ports) {
				if !strings.HasPrefix(p, "patch-") && !strings.HasPrefix(p, "int-br-") {
					t.Errorf("%s: port %s left on br-int", nd.tb.Name, p)
				}
			}
		}
		// Only the base pipeline is left: no flow names a MAC of a VM, once
		// the deletes have reached every node.
		var macs []string
		for _, v := range []vm.VM{r2, b2, b3} {
			macs = append(macs, strings.ToLower(v.MAC))
		}
		var left []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if left = c.flowsWith(macs...); len(left) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(left) > 0 {
			t.Errorf("flows of deleted VMs left after 10s:\n%s", strings.Join(left, "\n"))
		}
		if vms := n2.vmRun("list"); strings.Contains(vms, c.bed.Prefix) {
			t.Errorf("neutrino vm list still shows VMs:\n%s", vms)
		}
	})
}

// tunnelFlowMarks are the texts by which flows for a tunnelled network's
// VNI show in ovs-ofctl's output.
func tunnelFlowMarks(n map[string]any) []string {
	vni := apitest.S(n["provider:segmentation_id"])
	var v int
	fmt.Sscan(vni, &v)
	return []string{fmt.Sprintf("tun_id=%#x,", v), fmt.Sprintf("tun_id=%#x ", v), fmt.Sprintf("%#x->tun_id", v)}
}

func jsonNumber(n int) any { return json.Number(fmt.Sprint(n)) }

// TestProviderNetworksAcrossNodes: a flat and a VLAN provider network
// carry traffic between VMs on node2 and node3 over the provider segment;
// a capture on the segment sees VLAN frames tagged with the network's
// segmentation id and flat frames untagged.
func TestProviderNetworksAcrossNodes(t *testing.T) {
	c := newCluster(t, defaultSpec())
	n2, n3 := c.nodes[1], c.nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name  string
		attrs map[string]any
		cidr  string
		// filter selects the ping's frames on the segment.
		filter, want string
	}{
		{"vlan", map[string]any{"provider:network_type": "vlan", "provider:physical_network": physnet, "provider:segmentation_id": 1234}, "10.71.0.0/24", "vlan 1234 and icmp", "vlan 1234"},
		{"flat", map[string]any{"provider:network_type": "flat", "provider:physical_network": physnet}, "10.72.0.0/24", "icmp", "ethertype IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.network(tc.name, tc.cidr, tc.attrs)
			a, z := n2.createVM(tc.name, tc.name+"2"), n3.createVM(tc.name, tc.name+"3")
			checkLease(t, c, a)
			zIP := checkLease(t, c, z)
			capture := c.bed.Capture(t, c.bed.Fabric, n2.tb.FabricProvider, tc.filter)
			if err := testbed.Ping(ctx, a.Namespace, zIP, 3); err != nil {
				t.Fatal(err)
			}
			echo := testbed.ServeTCPEcho(t, z.Namespace, netip.AddrPortFrom(zIP, 7002))
			if err := testbed.TCPEcho(ctx, a.Namespace, echo, []byte(strings.Repeat("p", 5000))); err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			defer wcancel()
			line, err := capture.Wait(wctx, "ICMP echo request")
			if err != nil {
				t.Fatalf("the ping did not cross the provider segment: %v", err)
			}
			lines := capture.Stop()
			if !strings.Contains(line, tc.want) {
				t.Errorf("frame on the segment: %s; want %q", line, tc.want)
			}
			if tc.name == "flat" && slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "802.1Q") }) {
				t.Errorf("flat network frames were tagged:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}

// TestDeadAgentRescheduled: an agent that stops shows alive:false within
// agent_down_time plus one report interval, and the DHCP networks of a
// stopped dhcp agent move to another alive dhcp agent, which then serves
// leases.
//
// Every dhcp agent removes qdhcp- namespaces it does not serve, and on
// this machine all nodes share /run/netns, so node2's dhcp agent starts
// only once node1's has stopped (on real hosts they would coexist).
func TestDeadAgentRescheduled(t *testing.T) {
	c := newCluster(t, defaultSpec())
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	net := c.network("green", "10.80.0.0/24", nil)
	id := apitest.S(net["id"])
	hosts := func() []string {
		var out []string
		for _, a := range c.api.Do("GET", "/v2.0/networks/"+id+"/dhcp-agents", nil).Items("agents") {
			out = append(out, apitest.S(a["host"]))
		}
		return out
	}
	testenv.Eventually(t, 10*time.Second, "green scheduled to node1's dhcp agent", func() bool { return slices.Equal(hosts(), []string{n1.tb.Name}) })
	first := n3.createVM("green", "g1")
	checkLease(t, c, first)

	n1.stopAgent()
	stopped := time.Now()
	n2.roles = []string{"l2", "dhcp"}
	n2.stopAgent()
	n2.writeAgentConfig()
	n2.startAgent()

	alive := func(host, typ string) any {
		for _, a := range c.api.Do("GET", "/v2.0/agents?host="+host, nil).Items("agents") {
			if a["agent_type"] == typ {
				return a["alive"]
			}
		}
		return nil
	}
	testenv.Eventually(t, deadWithin+2*time.Second, "node1's agents alive:false", func() bool { return alive(n1.tb.Name, "DHCP agent") == false })
	took := time.Since(stopped)
	t.Logf("node1's DHCP agent showed alive:false %v after it stopped (agent_down_time %v, report_interval %v)", took.Round(10*time.Millisecond), agentDownTime, agentReport)
	if took > deadWithin+time.Second {
		t.Errorf("alive:false after %v; documented bound %v", took, deadWithin)
	}
	if alive(n1.tb.Name, "Open vSwitch agent") != false {
		t.Errorf("node1's Open vSwitch agent still alive")
	}
	testenv.Eventually(t, 3*agentDownTime, "green rescheduled to node2's dhcp agent", func() bool { return slices.Equal(hosts(), []string{n2.tb.Name}) })
	t.Logf("green rescheduled to %s %v after node1's agent stopped", n2.tb.Name, time.Since(stopped).Round(10*time.Millisecond))
	testenv.Eventually(t, 10*time.Second, "green's qdhcp namespace served again", func() bool { return netns.Exists("qdhcp-" + id) })

	// The new DHCP agent hands out leases: a new VM on node3 gets one, and
	// reaches the first VM.
	second := n3.createVM("green", "g2")
	checkLease(t, c, second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testbed.Ping(ctx, second.Namespace, netip.MustParseAddr(first.IP()), 2); err != nil {
		t.Error(err)
	}
}

// TestL2AgentRestartKeepsTraffic: restarting the l2 agent on a node while
// a continuous ping runs between VMs on two nodes loses no packet, and the
// restarted agent converges to the same flows (cookies aside: each run of
// the agent marks its flows with a cookie of its own).
func TestL2AgentRestartKeepsTraffic(t *testing.T) {
	c := newCluster(t, defaultSpec())
	n2, n3 := c.nodes[1], c.nodes[2]
	c.network("steady", "10.90.0.0/24", nil)
	a, z := n2.createVM("steady", "s2"), n3.createVM("steady", "s3")
	checkLease(t, c, a)
	zIP := checkLease(t, c, z)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := flowsWithoutCookies(ctx, n2)

	// 120 pings 50 ms apart: 6 s, across the restart.
	ping := netns.CommandContext(ctx, a.Namespace, "ping", "-n", "-q", "-i", "0.05", "-c", "120", "-W", "1", zIP.String())
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	n2.stopAgent()
	n2.startAgent()
	testenv.Eventually(t, 10*time.Second, "the restarted agent's full sync", func() bool {
		data, _ := os.ReadFile(n2.agent.logPath)
		return strings.Count(string(data), `msg="full sync done"`) >= 2
	})
	err := ping.Wait()
	t.Logf("ping across the restart: %s", lastLines(out.String(), 2))
	if err != nil || !strings.Contains(out.String(), " 0% packet loss") {
		t.Errorf("packets lost while the l2 agent restarted (%v):\n%s", err, out.String())
	}
	testenv.Eventually(t, 10*time.Second, "the restarted agent's flows to equal the old ones", func() bool {
		return slices.Equal(flowsWithoutCookies(ctx, n2), before)
	})
}

// flowsWithoutCookies are the node's flows, sorted, with cookies and
// statistics left out.
func flowsWithoutCookies(ctx context.Context, nd *node) []string {
	var out []string
	for _, br := range []string{"br-int", "br-tun", "br-" + physnet} {
		fl, err := nd.tb.OVS.OpenFlow(br).DumpFlows(ctx, "")
		if err != nil {
			nd.c.t.Fatalf("%s: %v", nd.tb.Name, err)
		}
		for _, f := range fl {
			f.Cookie, f.Packets, f.Bytes = 0, 0, 0
			out = append(out, br+" "+f.String())
		}
	}
	slices.Sort(out)
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}
