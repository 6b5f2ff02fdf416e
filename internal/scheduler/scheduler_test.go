package scheduler_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/scheduler"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

type rig struct {
	t     *testing.T
	srv   *apitest.Server
	admin *apitest.Client
}

func newRig(t *testing.T, opts ...apitest.Option) *rig {
	srv := apitest.Start(t, opts...)
	return &rig{t: t, srv: srv, admin: srv.Client(t, "admin")}
}

// host reports a DHCP agent and an Open vSwitch agent on host whose
// heartbeats are offset from now: an hour ahead keeps them alive whatever
// agent_down_time is, an hour back makes them dead.
func (r *rig) host(name string, offset time.Duration) string {
	r.t.Helper()
	ovs := msg.L2Configurations{TunnelTypes: []string{"vxlan"}, TunnelingIP: "192.0.2.1", IntegrationBridge: "br-int"}
	for _, rep := range []agentapi.Report{
		{AgentType: msg.AgentTypeOVS, Binary: msg.BinaryOVS, Host: name, Configurations: ovs.Map()},
		{AgentType: msg.AgentTypeDHCP, Binary: msg.BinaryDHCP, Host: name},
	} {
		rep.Time = time.Now().Add(offset)
		if err := agentapi.ReportState(context.Background(), r.srv.Srv.Service, rep); err != nil {
			r.t.Fatal(err)
		}
	}
	agents := r.admin.Do("GET", "/v2.0/agents?agent_type=DHCP+agent&host="+name, nil).Items("agents")
	return apitest.S(agents[0]["id"])
}

func (r *rig) network(name string) string {
	r.t.Helper()
	return apitest.S(r.admin.Create("networks", "network", map[string]any{"name": name})["id"])
}

func (r *rig) subnet(netID, cidr string, dhcp bool) string {
	r.t.Helper()
	return apitest.S(r.admin.Create("subnets", "subnet", map[string]any{
		"network_id": netID, "cidr": cidr, "ip_version": 4, "enable_dhcp": dhcp,
	})["id"])
}

// dhcpHosts lists the hosts of the DHCP agents serving a network.
func (r *rig) dhcpHosts(netID string) []string {
	r.t.Helper()
	var hosts []string
	for _, a := range r.admin.Do("GET", "/v2.0/networks/"+netID+"/dhcp-agents", nil).Items("agents") {
		hosts = append(hosts, apitest.S(a["host"]))
	}
	slices.Sort(hosts)
	return hosts
}

func (r *rig) dhcpPorts(netID string) []map[string]any {
	r.t.Helper()
	return r.admin.Do("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+netID, nil).Items("ports")
}

func addresses(p map[string]any) map[string]string {
	out := map[string]string{}
	for _, e := range p["fixed_ips"].([]any) {
		f := e.(map[string]any)
		out[apitest.S(f["subnet_id"])] = apitest.S(f["ip_address"])
	}
	return out
}

func TestNetworksGoToTheLeastLoadedAgent(t *testing.T) {
	r := newRig(t)
	idA := r.host("hostA", time.Hour)
	r.host("hostB", time.Hour)

	net1, net2, net3 := r.network("n1"), r.network("n2"), r.network("n3")
	sub1 := r.subnet(net1, "10.0.1.0/24", true)
	r.subnet(net2, "10.0.2.0/24", true)
	r.subnet(net3, "10.0.3.0/24", false)
	if h1, h2 := r.dhcpHosts(net1), r.dhcpHosts(net2); !slices.Equal(h1, []string{"hostA"}) || !slices.Equal(h2, []string{"hostB"}) {
		t.Fatalf("net1 on %v, net2 on %v; want one each, hostA first", h1, h2)
	}
	if h := r.dhcpHosts(net3); len(h) != 0 {
		t.Fatalf("a network without DHCP went to %v", h)
	}
	ports := r.dhcpPorts(net1)
	if len(ports) != 1 {
		t.Fatalf("DHCP ports of net1: %v", ports)
	}
	p := ports[0]
	if p["binding:host_id"] != "hostA" || p["binding:vif_type"] != "ovs" || p["device_id"] != scheduler.DeviceID("hostA", net1) ||
		addresses(p)[sub1] == "" || len(p["security_groups"].([]any)) != 0 {
		t.Fatalf("DHCP port: %v", p)
	}
	nets := r.admin.Do("GET", "/v2.0/agents/"+idA+"/dhcp-networks", nil).Items("networks")
	if len(nets) != 1 || nets[0]["id"] != net1 {
		t.Fatalf("networks of hostA's DHCP agent: %v", nets)
	}

	// A second DHCP subnet gives the DHCP port an address on it too;
	// turning DHCP off there takes it away.
	sub12 := r.subnet(net1, "10.0.11.0/24", true)
	if a := addresses(r.dhcpPorts(net1)[0]); a[sub1] != addresses(p)[sub1] || a[sub12] == "" {
		t.Fatalf("DHCP port after a second subnet: %v", a)
	}
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/subnets/"+sub12, map[string]any{"subnet": map[string]any{"enable_dhcp": false}})
	if a := addresses(r.dhcpPorts(net1)[0]); len(a) != 1 || a[sub12] != "" {
		t.Fatalf("DHCP port after DHCP went off on a subnet: %v", a)
	}

	// Without DHCP subnets the network leaves its agent with its port.
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+apitest.S(r.dhcpPorts(net2)[0]["fixed_ips"].([]any)[0].(map[string]any)["subnet_id"]), nil)
	if h, ps := r.dhcpHosts(net2), r.dhcpPorts(net2); len(h) != 0 || len(ps) != 0 {
		t.Fatalf("net2 without subnets: agents %v, DHCP ports %v", h, ps)
	}
	// Deleting a network takes its DHCP port along.
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+net1, nil)
	if n := len(r.admin.Do("GET", "/v2.0/agents/"+idA+"/dhcp-networks", nil).Items("networks")); n != 0 {
		t.Fatalf("hostA still serves %d networks", n)
	}
}

func TestAgentsPerNetwork(t *testing.T) {
	r := newRig(t, func(c *config.Config) { c.DHCPAgentsPerNetwork = 2 })
	r.host("hostA", time.Hour)
	net := r.network("n")
	r.subnet(net, "10.0.4.0/24", true)
	if h := r.dhcpHosts(net); !slices.Equal(h, []string{"hostA"}) {
		t.Fatalf("with one agent: %v", h)
	}
	// A second agent joins the network it is short of.
	r.host("hostB", time.Hour)
	if h := r.dhcpHosts(net); !slices.Equal(h, []string{"hostA", "hostB"}) {
		t.Fatalf("with two agents: %v", h)
	}
	ports := r.dhcpPorts(net)
	if len(ports) != 2 || len(addresses(ports[0])) != 1 || len(addresses(ports[1])) != 1 || ports[0]["binding:host_id"] == ports[1]["binding:host_id"] {
		t.Fatalf("DHCP ports: %v", ports)
	}
}

func TestDeadAgentsNetworksMove(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		c.Agent.ReportInterval = 50 * time.Millisecond // the check interval
		c.AgentDownTime = 200 * time.Millisecond
	})
	r.host("hostA", time.Hour)
	net := r.network("n")
	sub := r.subnet(net, "10.0.5.0/24", true)
	before := r.dhcpPorts(net)[0]

	// hostA stops reporting; nobody can take over yet, so it keeps the network.
	r.host("hostA", -time.Hour)
	time.Sleep(400 * time.Millisecond)
	if h := r.dhcpHosts(net); !slices.Equal(h, []string{"hostA"}) {
		t.Fatalf("with no alive agent the network went to %v", h)
	}
	// hostB appears: the next check moves the network with its port.
	r.host("hostB", time.Hour)
	testenv.Eventually(t, 10*time.Second, "the network on hostB", func() bool { return slices.Equal(r.dhcpHosts(net), []string{"hostB"}) })
	ports := r.dhcpPorts(net)
	if len(ports) != 1 {
		t.Fatalf("DHCP ports after the move: %v", ports)
	}
	after := ports[0]
	if after["id"] != before["id"] || addresses(after)[sub] != addresses(before)[sub] || after["binding:host_id"] != "hostB" ||
		after["device_id"] != scheduler.DeviceID("hostB", net) || after["binding:vif_type"] != "ovs" || after["status"] != "DOWN" {
		t.Fatalf("DHCP port before %v\nafter %v", before, after)
	}
}

func TestSchedulerAPI(t *testing.T) {
	r := newRig(t)
	idA := r.host("hostA", time.Hour)
	idB := r.host("hostB", time.Hour)
	net := r.network("n")
	r.subnet(net, "10.0.6.0/24", true)
	ovs := apitest.S(r.admin.Do("GET", "/v2.0/agents?agent_type=Open+vSwitch+agent&host=hostA", nil).Items("agents")[0]["id"])
	addPath := func(id string) string { return "/v2.0/agents/" + id + "/dhcp-networks" }
	body := map[string]any{"network_id": net}

	for _, c := range []struct {
		method, path string
		body         any
		status       int
		typ          string
	}{
		{"POST", addPath(idA), body, http.StatusConflict, "NetworkHostedByDHCPAgent"},
		{"POST", addPath(ovs), body, http.StatusNotFound, "InvalidDHCPAgent"},
		{"POST", addPath("2b1f0c8e-0000-4000-8000-000000000000"), body, http.StatusNotFound, "AgentNotFound"},
		{"POST", addPath(idB), map[string]any{"network_id": "2b1f0c8e-0000-4000-8000-000000000000"}, http.StatusNotFound, "NetworkNotFound"},
		{"POST", addPath(idB), map[string]any{}, http.StatusBadRequest, "HTTPBadRequest"},
		{"DELETE", addPath(idB) + "/" + net, nil, http.StatusConflict, "NetworkNotHostedByDhcpAgent"},
		{"GET", "/v2.0/networks/2b1f0c8e-0000-4000-8000-000000000000/dhcp-agents", nil, http.StatusNotFound, "NetworkNotFound"},
	} {
		resp := r.admin.Do(c.method, c.path, c.body)
		if resp.Status != c.status || resp.ErrorType() != c.typ {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, resp.Status, resp.Raw, c.status, c.typ)
		}
	}
	// Add the network to hostB by hand: both serve it.
	r.admin.Must(http.StatusCreated, "POST", addPath(idB), body)
	if h := r.dhcpHosts(net); !slices.Equal(h, []string{"hostA", "hostB"}) {
		t.Fatalf("after adding hostB: %v", h)
	}
	// Remove it from hostA: its port is kept for the next agent.
	r.admin.Must(http.StatusNoContent, "DELETE", addPath(idA)+"/"+net, nil)
	if h := r.dhcpHosts(net); !slices.Equal(h, []string{"hostB"}) {
		t.Fatalf("after removing hostA: %v", h)
	}
	reserved := 0
	for _, p := range r.dhcpPorts(net) {
		if p["device_id"] == scheduler.ReservedDHCPPort {
			reserved++
			if p["binding:host_id"] != "" || p["binding:vif_type"] != "unbound" {
				t.Errorf("reserved port still bound: %v", p)
			}
		}
	}
	if reserved != 1 {
		t.Fatalf("reserved DHCP ports: %d", reserved)
	}
	// Adding hostA back takes the reserved port over.
	r.admin.Must(http.StatusCreated, "POST", addPath(idA), body)
	if ps := r.dhcpPorts(net); len(ps) != 2 {
		t.Fatalf("DHCP ports after adding hostA back: %v", ps)
	}
}
