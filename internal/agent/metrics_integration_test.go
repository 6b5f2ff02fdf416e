package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/dhcp"
	"github.com/neutrino-sdn/neutrino/internal/agent/l2"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// TestMetricsOfARealAgent runs the agent with the real l2 and dhcp roles
// on a test-bed node against a real server, its metrics endpoint on as
// `neutrino agent` has it, and scrapes what an operator graphs: once a VM
// got its address over DHCP, the lease and reply counters, the roles'
// reconcile passes, the ports wired and the networks served.
func TestMetricsOfARealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	testenv.LookPathOrSkip(t, "busybox", "install Debian's busybox (scripts/install-deps.sh); its udhcpc is the VM's DHCP client")
	bed := testbed.New(t, testbed.Spec{Nodes: 1})
	node := bed.Nodes[0]
	db := node.OVSDB(t)
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "agent-"+node.Name, quiet)
	must(t, err)
	r2, err := l2.Open(l2.Config{
		IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
		LocalIP: node.TunnelIP.String(), TunnelTypes: []string{msg.NetworkTypeVXLAN}, ARPResponder: true,
	}, node.OVS.Instance, quiet)
	must(t, err)
	dcfg := dhcp.Config{OVS: node.OVS.Instance, BridgeNetns: node.Netns, NamespacePrefix: bed.Prefix + "-qdhcp-"}
	rd, err := dhcp.New(dcfg, quiet)
	must(t, err)
	addr := metricsAddr(t)
	// Runs last: after the agent and the dhcp role's servers stopped.
	t.Cleanup(func() {
		if err := dhcp.Cleanup(context.Background(), dcfg, quiet); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	startAgent(t, conn, agent.Options{
		Host: node.Name, Roles: []agent.Role{r2, rd}, ReportInterval: time.Second, Log: quiet,
		Metrics: prometheus.NewRegistry(), MetricsListen: addr,
	}, func() { <-rd.Stopped() })
	ctx := context.Background()
	base := "http://" + addr
	testbed.WaitFor(t, "/readyz 200", func() error {
		if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	testbed.WaitFor(t, "the l2 and dhcp agents alive", func() error {
		alive := map[string]bool{}
		for _, ag := range admin.Do("GET", "/v2.0/agents", nil).Items("agents") {
			alive[apitest.S(ag["agent_type"])] = ag["alive"] == true
		}
		if !alive[msg.AgentTypeOVS] || !alive[msg.AgentTypeDHCP] {
			return fmt.Errorf("agents alive: %v", alive)
		}
		return nil
	})

	netID := apitest.S(admin.Create("networks", "network", map[string]any{"name": "net"})["id"])
	subID := apitest.S(admin.Create("subnets", "subnet", map[string]any{
		"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": true,
	})["id"])
	const mac = "fa:16:3e:00:00:05"
	portID := apitest.S(admin.Create("ports", "port", map[string]any{
		"network_id": netID, "mac_address": mac, "port_security_enabled": false,
		"fixed_ips":       []any{map[string]any{"subnet_id": subID, "ip_address": "10.0.0.5"}},
		"binding:host_id": node.Name, "device_owner": "compute:nova", "device_id": "vm1",
	})["id"])
	hw, err := net.ParseMAC(mac)
	must(t, err)
	tap := "tap" + portID[:11]
	vm := bed.AddHost(t, testbed.HostSpec{Name: "vm1", PeerNetns: node.Netns, PeerName: tap, MTU: 1450, MAC: hw})
	must(t, db.EnsurePort(ctx, "br-int", ovs.Port{Name: tap, ExternalIDs: map[string]string{
		"iface-id": portID, "attached-mac": mac, "iface-status": "active",
	}}))

	// -q: exit once bound; -n: exit when no lease came; the script does
	// nothing, the lease is all the test wants.
	testbed.WaitFor(t, "the VM's DHCP lease", func() error {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		out, err := netns.CommandContext(cctx, vm.Netns, "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-t", "3", "-T", "1", "-s", "/bin/true").CombinedOutput()
		if err != nil {
			return fmt.Errorf("udhcpc: %v\n%s", err, out)
		}
		return nil
	})

	m := testenv.Scrape(t, base+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"neutrino_dhcp_leases_total", map[string]string{"network": netID}, 1},
		{"neutrino_dhcp_replies_total", map[string]string{"type": "offer"}, 1},
		{"neutrino_dhcp_replies_total", map[string]string{"type": "ack"}, 1},
		{"neutrino_dhcp_networks", nil, 1},
		{"neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": msg.RoleDHCP, "result": "ok"}, 1},
		{"neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": msg.RoleL2, "result": "ok"}, 1},
		{"neutrino_l2_ports_wired", nil, 2}, // the VM's and the DHCP port
		{"neutrino_l2_flows", map[string]string{"bridge": "br-int"}, 1},
		{"neutrino_agent_sync_duration_seconds_count", map[string]string{"result": "ok"}, 1},
		{"neutrino_bus_request_duration_seconds_count", map[string]string{"method": msg.MethodPortStatus, "result": "ok"}, 1},
	} {
		if v, ok := m.Sum(c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (found %v), want ≥ %v", c.name, c.labels, v, ok, c.min)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
