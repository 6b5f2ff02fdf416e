package l3

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/l2"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// TestIntegrationWithServer runs the real agent loop against a real
// server on two test-bed nodes, a network node (l2 and l3 roles, br-ex on
// the external network) and a compute node (l2) holding the VMs, so router
// traffic crosses VXLAN; everything is made through the API: two projects
// with the same CIDR and VM address behind their own routers reach the
// outside through SNAT and are reached through their floating IPs, which
// go ACTIVE; disassociating one stops it; deleting a router removes its
// namespace.
func TestIntegrationWithServer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.LookPathOrSkip(t, "ping", "install Debian's iputils-ping")
	bed := testbed.New(t, testbed.Spec{Nodes: 2})
	network, compute := bed.Nodes[0], bed.Nodes[1]
	netDB, db := network.OVSDB(t), compute.OVSDB(t)
	ctx := context.Background()
	must(t, netDB.EnsureBridge(ctx, ovs.Bridge{Name: "br-ex", DatapathType: "netdev", FailMode: "secure"}))
	must(t, netDB.EnsurePort(ctx, "br-ex", ovs.Port{Name: testbed.ExternalNIC}))

	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{OVS: network.OVS.Instance, BridgeNetns: network.Netns, NamespacePrefix: bed.Prefix + "-qrouter-"}
	for _, node := range bed.Nodes {
		conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "agent-"+node.Name, quiet)
		must(t, err)
		l2cfg := l2.Config{
			IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
			LocalIP: node.TunnelIP.String(), TunnelTypes: []string{msg.NetworkTypeVXLAN}, ARPResponder: true,
		}
		if node == network {
			l2cfg.BridgeMappings = map[string]string{extPhysnet: "br-ex"}
		}
		r2, err := l2.Open(l2cfg, node.OVS.Instance, quiet)
		must(t, err)
		roles := []agent.Role{r2}
		var r3 *Role
		if node == network {
			r3, err = New(cfg, quiet)
			must(t, err)
			roles = append(roles, r3)
		}
		a, err := agent.New(conn, agent.Options{Host: node.Name, Roles: roles, ReportInterval: time.Second, Log: quiet})
		must(t, err)
		actx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(actx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			if r3 != nil {
				<-r3.Stopped()
			}
			conn.Close()
			if r3 != nil {
				if err := Cleanup(context.Background(), cfg, quiet); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		})
	}
	testbed.WaitFor(t, "the l2 and l3 agents alive", func() error {
		alive := map[string]int{}
		for _, ag := range admin.Do("GET", "/v2.0/agents", nil).Items("agents") {
			if ag["alive"] == true {
				alive[apitest.S(ag["agent_type"])]++
			}
		}
		if alive[msg.AgentTypeOVS] != 2 || alive[msg.AgentTypeL3] != 1 {
			return errorf("agents alive: %v", alive)
		}
		return nil
	})
	for _, c := range []*ovs.Client{netDB, db} {
		testbed.WaitFor(t, "br-int made", func() error { _, err := c.Bridge("br-int"); return err })
	}

	ext := admin.Create("networks", "network", map[string]any{
		"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": extPhysnet,
	})
	extID := apitest.S(ext["id"])
	admin.Create("subnets", "subnet", map[string]any{
		"network_id": extID, "cidr": "203.0.113.0/24", "ip_version": 4, "gateway_ip": "203.0.113.1", "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": "203.0.113.10", "end": "203.0.113.99"}},
	})
	outside := bed.Outside
	testbed.ServeAnswer(t, outside.Netns, netip.AddrPortFrom(internetAddr, peerPort), func(c net.Conn) string {
		return netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().String()
	})
	internet := netip.AddrPortFrom(internetAddr, peerPort)

	type tenant struct {
		vm           *testbed.Host
		router, fip  string
		gateway, fIP netip.Addr
	}
	setUp := func(project, vmName, mac string) tenant {
		c := srv.Client(t, project)
		netID := apitest.S(c.Create("networks", "network", map[string]any{"name": "net"})["id"])
		subID := apitest.S(c.Create("subnets", "subnet", map[string]any{
			"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": false,
		})["id"])
		router := c.Create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": extID}})
		routerID := apitest.S(router["id"])
		c.Must(200, "PUT", apitest.Path("routers", routerID, "add_router_interface"), map[string]any{"subnet_id": subID})
		gwInfo := c.Do("GET", apitest.Path("routers", routerID), nil).Item("router")["external_gateway_info"].(map[string]any)
		gw := netip.MustParseAddr(apitest.S(gwInfo["external_fixed_ips"].([]any)[0].(map[string]any)["ip_address"]))
		port := admin.Create("ports", "port", map[string]any{
			"network_id": netID, "project_id": project, "mac_address": mac, "port_security_enabled": false,
			"fixed_ips":       []any{map[string]any{"subnet_id": subID, "ip_address": "10.0.0.5"}},
			"binding:host_id": compute.Name, "device_owner": "compute:nova", "device_id": vmName,
		})
		portID := apitest.S(port["id"])
		tap := "tap" + portID[:11]
		vm := bed.AddHost(t, testbed.HostSpec{
			Name: vmName, PeerNetns: compute.Netns, PeerName: tap, Addr: netip.MustParsePrefix("10.0.0.5/24"),
			Gateway: netip.MustParseAddr("10.0.0.1"), MTU: 1450, MAC: mustMAC(t, mac),
		})
		must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: tap, ExternalIDs: map[string]string{
			"iface-id": portID, "attached-mac": mac, "iface-status": "active",
		}}))
		testbed.ServeAnswer(t, vm.Netns, netip.AddrPortFrom(netip.IPv4Unspecified(), whoPort), func(net.Conn) string { return vmName })
		fip := c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "port_id": portID})
		return tenant{vm: vm, router: routerID, fip: apitest.S(fip["id"]), gateway: gw,
			fIP: netip.MustParseAddr(apitest.S(fip["floating_ip_address"]))}
	}
	ta := setUp("project-a", "vma", "fa:16:3e:aa:00:05")
	tb := setUp("project-b", "vmb", "fa:16:3e:bb:00:05")

	for _, tn := range []tenant{ta, tb} {
		// Reached through its own floating IP, and leaving from it.
		waitAnswer(t, outside.Netns, netip.AddrPortFrom(tn.fIP, whoPort), tn.vm.Name)
		waitAnswer(t, tn.vm.Netns, internet, tn.fIP.String())
		testbed.WaitFor(t, "floating IP "+tn.fip+" ACTIVE", func() error {
			if s := apitest.S(admin.Do("GET", apitest.Path("floatingips", tn.fip), nil).Item("floatingip")["status"]); s != "ACTIVE" {
				return errorf("status %s", s)
			}
			return nil
		})
	}

	// Disassociated: unreachable, and the VM leaves through SNAT again.
	admin.Must(200, "PUT", apitest.Path("floatingips", ta.fip), map[string]any{"floatingip": map[string]any{"port_id": nil}})
	testbed.WaitFor(t, "disassociated floating IP unreachable", func() error {
		if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(ta.fIP, whoPort)); err == nil {
			return errorf("still answers %q", got)
		}
		return nil
	})
	waitAnswer(t, ta.vm.Netns, internet, ta.gateway.String())
	if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(tb.fIP, whoPort)); err != nil || got != "vmb" {
		t.Errorf("project B's floating IP: %q, %v", got, err)
	}

	// Deleting project B's router (interfaces first, as Neutron requires)
	// removes its namespace.
	c := srv.Client(t, "project-b")
	c.Must(200, "PUT", apitest.Path("floatingips", tb.fip), map[string]any{"floatingip": map[string]any{"port_id": nil}})
	ifaces := admin.Do("GET", "/v2.0/ports?device_owner=network:router_interface&device_id="+tb.router, nil).Items("ports")
	for _, p := range ifaces {
		c.Must(200, "PUT", apitest.Path("routers", tb.router, "remove_router_interface"), map[string]any{"port_id": p["id"]})
	}
	c.Must(204, "DELETE", apitest.Path("routers", tb.router), nil)
	nsB := cfg.NamespacePrefix + tb.router
	testbed.WaitFor(t, "router B's namespace removed", func() error {
		if netns.Exists(nsB) {
			return errorf("%s still there", nsB)
		}
		for _, iface := range netDB.Interfaces() {
			if iface.ExternalIDs[NetnsExternalID] == nsB {
				return errorf("OVS interface %s still there", iface.Name)
			}
		}
		return nil
	})
	// Router A still works.
	waitAnswer(t, ta.vm.Netns, internet, ta.gateway.String())
}
