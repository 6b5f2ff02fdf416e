package multinode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// createVMInGroups runs `neutrino vm create --network NET --security-group
// G… NAME` on the node.
func (nd *node) createVMInGroups(network, name string, groups ...string) vm.VM {
	nd.c.t.Helper()
	name = nd.c.bed.Prefix + "-" + name
	nd.vms = append(nd.vms, name)
	args := []string{"--network", network}
	for _, g := range groups {
		args = append(args, "--security-group", g)
	}
	nd.vmRun("create", append(args, name)...)
	return nd.vm(name)
}

// pingsFrom tells whether the VM gets an answer from dst within a second,
// sending from src when it is valid.
func pingsFrom(v vm.VM, src, dst netip.Addr) bool {
	args := []string{"-n", "-c", "2", "-i", "0.2", "-W", "1"}
	if src.IsValid() {
		args = append(args, "-I", src.String())
	}
	return netns.Command(v.Namespace, "ping", append(args, dst.String())...).Run() == nil
}

func tcpReaches(ctx context.Context, from vm.VM, to netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return testbed.TCPEcho(ctx, from.Namespace, to, []byte("sg")) == nil
}

// TestSecurityGroupsAcrossNodes runs the real binary on three nodes and
// checks security groups and port security as a user sees them through
// the API and `neutrino vm`.
func TestSecurityGroupsAcrossNodes(t *testing.T) {
	c := newCluster(t, defaultSpec())
	n2, n3 := c.nodes[1], c.nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	net := c.network("sg", "10.80.0.0/24", nil)
	web := c.api.Create("security-groups", "security_group", map[string]any{"name": c.bed.Prefix + "-web"})
	webID := apitest.S(web["id"])
	t.Cleanup(func() { c.api.Do("DELETE", "/v2.0/security-groups/"+webID, nil) })

	d2, d3 := n2.createVM("sg", "d2"), n3.createVM("sg", "d3") // the default group
	w2 := n2.createVMInGroups("sg", "w2", webID)
	d2IP, d3IP, w2IP := checkLease(t, c, d2), checkLease(t, c, d3), checkLease(t, c, w2)
	dhcpPorts := c.api.Must(200, "GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+apitest.S(net["id"]), nil)["ports"].([]any)
	if len(dhcpPorts) == 0 {
		t.Fatal("no DHCP port")
	}
	dhcpIP := netip.MustParseAddr(apitest.S(dhcpPorts[0].(map[string]any)["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]))

	t.Run("default group", func(t *testing.T) {
		// Same-group VMs on two nodes talk, ping and TCP.
		if err := testbed.Ping(ctx, d2.Namespace, d3IP, 3); err != nil {
			t.Fatal(err)
		}
		echo := testbed.ServeTCPEcho(t, d3.Namespace, netip.AddrPortFrom(d3IP, 7100))
		if !tcpReaches(ctx, d2, echo) {
			t.Error("TCP d2 → d3 (both in default) failed")
		}
		// A VM in another group reaches neither, and they do not reach it
		// (web has no ingress rule yet).
		for _, dst := range []netip.Addr{d2IP, d3IP} {
			if pingsFrom(w2, netip.Addr{}, dst) {
				t.Errorf("w2 (web) pinged %s in default", dst)
			}
		}
		if pingsFrom(d3, netip.Addr{}, w2IP) {
			t.Error("d3 (default) pinged w2 (web, no ingress rule)")
		}
		// Egress to a port outside the group works and its replies come back.
		if !pingsFrom(d2, netip.Addr{}, dhcpIP) {
			t.Errorf("d2 cannot ping the DHCP port %s", dhcpIP)
		}
	})

	t.Run("a rule opens a TCP port; removing it closes it", func(t *testing.T) {
		open := testbed.ServeTCPEcho(t, w2.Namespace, netip.AddrPortFrom(w2IP, 7200))
		closed := testbed.ServeTCPEcho(t, w2.Namespace, netip.AddrPortFrom(w2IP, 7201))
		if tcpReaches(ctx, d3, open) {
			t.Fatal("d3 reached w2:7200 before any rule")
		}
		rule := c.api.Create("security-group-rules", "security_group_rule", map[string]any{
			"security_group_id": webID, "direction": "ingress", "ethertype": "IPv4",
			"protocol": "tcp", "port_range_min": 7200, "port_range_max": 7200, "remote_ip_prefix": "0.0.0.0/0",
		})
		testenv.Eventually(t, 10*time.Second, "w2:7200 reachable after the rule", func() bool { return tcpReaches(ctx, d3, open) })
		if tcpReaches(ctx, d3, closed) {
			t.Error("d3 reached w2:7201, which no rule opens")
		}
		c.api.Must(204, "DELETE", "/v2.0/security-group-rules/"+apitest.S(rule["id"]), nil)
		testenv.Eventually(t, 10*time.Second, "w2:7200 closed after the rule's delete", func() bool { return !tcpReaches(ctx, d3, open) })
	})

	t.Run("remote group membership", func(t *testing.T) {
		c.api.Create("security-group-rules", "security_group_rule", map[string]any{
			"security_group_id": webID, "direction": "ingress", "ethertype": "IPv4", "remote_group_id": webID,
		})
		if pingsFrom(d3, netip.Addr{}, w2IP) {
			t.Fatal("d3 (not in web) pinged w2 with a rule for web's members")
		}
		ports := "/v2.0/ports/" + d3.PortID
		groups := c.api.Must(200, "GET", ports, nil)["port"].(map[string]any)["security_groups"].([]any)
		c.api.Must(200, "PUT", ports, map[string]any{"port": map[string]any{"security_groups": append(groups, webID)}})
		testenv.Eventually(t, 10*time.Second, "d3, now in web, pings w2", func() bool { return pingsFrom(d3, netip.Addr{}, w2IP) })
		c.api.Must(200, "PUT", ports, map[string]any{"port": map[string]any{"security_groups": groups}})
		testenv.Eventually(t, 10*time.Second, "d3, out of web again, cannot ping w2", func() bool { return !pingsFrom(d3, netip.Addr{}, w2IP) })
	})

	t.Run("spoofing and port security off", func(t *testing.T) {
		addAddr := func(v vm.VM, cidr string) {
			if out, err := netns.Command(v.Namespace, "ip", "addr", "add", cidr, "dev", "eth0").CombinedOutput(); err != nil {
				t.Fatalf("%s: ip addr add %s: %v: %s", v.Name, cidr, err, out)
			}
		}
		// Two addresses of the subnet that no port holds: the DHCP port's
		// and the VMs' were given out at random. Seven candidates, four
		// ports: at least three are free.
		held := c.heldAddresses(apitest.S(net["id"]))
		var free []netip.Addr
		for _, a := range []string{"10.80.0.250", "10.80.0.251", "10.80.0.252", "10.80.0.253", "10.80.0.254", "10.80.0.249", "10.80.0.248"} {
			if !held[a] {
				free = append(free, netip.MustParseAddr(a))
			}
		}
		if len(free) < 2 {
			t.Fatalf("no two free addresses among the candidates; held: %v", held)
		}
		// d2 sends from an address that is not its own: dropped, even to
		// the unfiltered DHCP port.
		spoofed := free[0]
		addAddr(d2, spoofed.String()+"/24")
		if pingsFrom(d2, spoofed, dhcpIP) {
			t.Error("d2 reached the DHCP port from a spoofed source")
		}
		// An allowed address pair makes it legitimate.
		c.api.Must(200, "PUT", "/v2.0/ports/"+d2.PortID, map[string]any{"port": map[string]any{
			"allowed_address_pairs": []any{map[string]any{"ip_address": spoofed.String()}},
		}})
		testenv.Eventually(t, 10*time.Second, "d2 reaches the DHCP port from its address pair", func() bool { return pingsFrom(d2, spoofed, dhcpIP) })

		// d3 without port security: anything goes, both ways.
		c.api.Must(200, "PUT", "/v2.0/ports/"+d3.PortID, map[string]any{"port": map[string]any{
			"security_groups": []any{}, "port_security_enabled": false,
		}})
		other := free[1]
		addAddr(d3, other.String()+"/24")
		testenv.Eventually(t, 10*time.Second, "d3 without port security reaches the DHCP port from any address", func() bool { return pingsFrom(d3, other, dhcpIP) })
		if !pingsFrom(w2, netip.Addr{}, d3IP) {
			t.Error("w2 cannot ping d3, which has no port security")
		}
	})
}
