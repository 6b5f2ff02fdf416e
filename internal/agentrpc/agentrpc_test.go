package agentrpc_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/store"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// reportAt records a state report whose heartbeat is offset from now, to
// make an agent alive for good (positive) or long dead (negative).
func (r *rig) reportAt(agentType, host string, conf map[string]any, offset time.Duration) {
	r.t.Helper()
	err := agentapi.ReportState(context.Background(), r.srv.Srv.Service, agentapi.Report{
		AgentType: agentType, Binary: "test", Host: host, Configurations: conf, Time: time.Now().Add(offset),
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func TestStateReportsShowAgentsAlive(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.mustCall(msg.MethodReportState, msg.ReportState{Version: msg.Version, AgentType: msg.AgentTypeDHCP,
		Binary: msg.BinaryDHCP, Topic: msg.TopicDHCP, Host: "node1", Configurations: msg.DHCPConfigurations{DHCPDriver: "neutrino"}.Map()}, nil)
	agents := r.admin.Do("GET", "/v2.0/agents?host=node1", nil).Items("agents")
	if len(agents) != 2 {
		t.Fatalf("agents of node1: %v", agents)
	}
	for _, a := range agents {
		if a["alive"] != true {
			t.Errorf("agent %v is not alive right after reporting", a["agent_type"])
		}
		if a["agent_type"] == msg.AgentTypeOVS {
			conf := a["configurations"].(map[string]any)
			if conf["tunneling_ip"] != "192.0.2.1" || conf["datapath_type"] != "netdev" || a["binary"] != msg.BinaryOVS {
				t.Errorf("OVS agent shows %v", a)
			}
		}
	}
	// A newer message version is refused, not misread.
	err := r.call(msg.MethodReportState, msg.ReportState{Version: msg.Version + 1, AgentType: msg.AgentTypeOVS, Host: "node2"}, nil)
	var re *bus.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("a report from the future: %v", err)
	}
	if n := len(r.admin.Do("GET", "/v2.0/agents?host=node2", nil).Items("agents")); n != 0 {
		t.Errorf("the refused report registered %d agents", n)
	}
}

func TestBindingAndPortStatus(t *testing.T) {
	r := newRig(t)
	notes := r.listen("node1")
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	netID := r.network(nil)
	r.subnet(netID, "10.0.0.0/24", nil)

	p := r.port(netID, map[string]any{"binding:host_id": "node1"})
	id := apitest.S(p["id"])
	details, _ := p["binding:vif_details"].(map[string]any)
	if p["binding:vif_type"] != "ovs" || p["status"] != "DOWN" || details["bridge_name"] != "br-int" ||
		details["datapath_type"] != "netdev" || details["port_filter"] != true || details["ovs_hybrid_plug"] != false || details["connectivity"] != "l2" {
		t.Fatalf("bound port: %v", p)
	}
	// The host hears of its port with its network's segment.
	n := notes.waitFor(t, "the port's notification", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		_, ok := hasPort(n.L2.Ports, id)
		return ok
	})
	if len(n.L2.Networks) != 1 || n.L2.Networks[0].Segment.NetworkType != "vxlan" || n.L2.Networks[0].MTU != 1450 || n.Seq == 0 || n.Epoch == "" {
		t.Fatalf("notification %+v", n)
	}

	// The full state says the same, numbered at least as far.
	var st msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: "node1"}, &st)
	sp, ok := hasPort(st.L2.Ports, id)
	if !ok || st.Seq < n.Seq || st.Epoch != n.Epoch || sp.MAC != p["mac_address"] || len(sp.FixedIPs) != 1 || st.DHCP == nil {
		t.Fatalf("sync: %+v", st)
	}

	rev := p["revision_number"]
	var rep msg.PortStatusReply
	r.mustCall(msg.MethodPortStatus, msg.PortStatus{Version: msg.Version, Host: "node1", Up: []string{id}}, &rep)
	got := r.getPort(id)
	if got["status"] != "ACTIVE" || apitest.S(got["revision_number"]) == apitest.S(rev) || len(rep.Unknown) != 0 {
		t.Fatalf("after wired: %v (reply %+v)", got, rep)
	}
	// Another host cannot change it; an unknown port is reported back.
	r.mustCall(msg.MethodPortStatus, msg.PortStatus{Version: msg.Version, Host: "node2", Down: []string{id, "nope"}}, &rep)
	if r.getPort(id)["status"] != "ACTIVE" || !slices.Equal(rep.Unknown, []string{id, "nope"}) {
		t.Fatalf("a report from the wrong host: %v, reply %+v", r.getPort(id)["status"], rep)
	}
	r.mustCall(msg.MethodPortStatus, msg.PortStatus{Version: msg.Version, Host: "node1", Down: []string{id}}, &rep)
	if r.getPort(id)["status"] != "DOWN" {
		t.Fatalf("after unplugged: %v", r.getPort(id))
	}

	// Deleting the port tells the host to drop it and the network.
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+id, nil)
	notes.waitFor(t, "the deletion", func(n msg.Notification) bool {
		return n.L2 != nil && slices.Contains(n.L2.DeletedPorts, id) && slices.Contains(n.L2.DeletedNetworks, netID)
	})
	assertNumbered(t, notes.all())
}

// assertNumbered checks that a host's notifications count up by one.
func assertNumbered(t *testing.T, ns []msg.Notification) {
	t.Helper()
	for i := 1; i < len(ns); i++ {
		if ns[i].Epoch != ns[0].Epoch || ns[i].Seq != ns[i-1].Seq+1 {
			seqs := []uint64{}
			for _, n := range ns {
				seqs = append(seqs, n.Seq)
			}
			t.Fatalf("notifications numbered %v", seqs)
		}
	}
}

func TestBindingDecisions(t *testing.T) {
	r := newRig(t)
	vx := r.network(nil)
	flat1 := r.network(map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet1"})
	flat2 := r.network(map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet2"})
	vlan := r.network(map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100})
	for _, n := range []string{vx, flat1, flat2, vlan} {
		r.subnet(n, "10.1.0.0/24", nil)
	}
	vifType := func(netID, host string) string {
		t.Helper()
		return apitest.S(r.port(netID, map[string]any{"binding:host_id": host})["binding:vif_type"])
	}
	// No agent on the host.
	if vt := vifType(vx, "ghost"); vt != "binding_failed" {
		t.Errorf("no agent: %s", vt)
	}
	// A dead agent binds nothing.
	r.reportAt(msg.AgentTypeOVS, "dead", vxlanAgent("192.0.2.9").Map(), deadLongAgo)
	if vt := vifType(vx, "dead"); vt != "binding_failed" {
		t.Errorf("dead agent: %s", vt)
	}
	// An agent without tunnels reaches only its mapped physical networks.
	r.reportAt(msg.AgentTypeOVS, "provider", msg.L2Configurations{BridgeMappings: map[string]string{"physnet1": "br-physnet1"}}.Map(), aliveForever)
	for net, want := range map[string]string{vx: "binding_failed", flat1: "ovs", flat2: "binding_failed", vlan: "ovs"} {
		if vt := vifType(net, "provider"); vt != want {
			t.Errorf("provider-only agent on network %s: %s, want %s", net, vt, want)
		}
	}
	// Tunnels need the type and a tunnel IP.
	r.reportAt(msg.AgentTypeOVS, "gre-only", msg.L2Configurations{TunnelTypes: []string{"gre"}, TunnelingIP: "192.0.2.3"}.Map(), aliveForever)
	if vt := vifType(vx, "gre-only"); vt != "binding_failed" {
		t.Errorf("GRE agent on VXLAN: %s", vt)
	}
	// Unbinding.
	p := r.port(vx, map[string]any{"binding:host_id": "provider"})
	if p = r.updatePort(apitest.S(p["id"]), map[string]any{"binding:host_id": ""}); p["binding:vif_type"] != "unbound" || p["status"] != "DOWN" {
		t.Errorf("unbound port: %v", p)
	}
}

func TestFailedBindingsAreRetried(t *testing.T) {
	r := newRig(t)
	netID := r.network(nil)
	r.subnet(netID, "10.2.0.0/24", nil)
	early := r.port(netID, map[string]any{"binding:host_id": "late"})
	touched := r.port(netID, map[string]any{"binding:host_id": "late2"})
	if early["binding:vif_type"] != "binding_failed" || touched["binding:vif_type"] != "binding_failed" {
		t.Fatalf("ports before their agents: %v, %v", early, touched)
	}
	// The agent's first report rebinds the host's failed ports.
	r.reportL2("late", vxlanAgent("192.0.2.5"))
	got := r.getPort(apitest.S(early["id"]))
	if got["binding:vif_type"] != "ovs" || got["status"] != "DOWN" {
		t.Fatalf("after the agent reported: %v", got)
	}
	// Any update retries, as in Neutron (here the agent appeared while
	// nothing listened: a heartbeat in the future binds at once).
	r.reportAt(msg.AgentTypeOVS, "late2", vxlanAgent("192.0.2.6").Map(), aliveForever)
	id := apitest.S(touched["id"])
	if p := r.updatePort(id, map[string]any{"name": "renamed"}); p["binding:vif_type"] != "ovs" {
		t.Fatalf("after an update: %v", p)
	}
	// Moving a wired port to another host takes it DOWN until wired there.
	r.mustCall(msg.MethodPortStatus, msg.PortStatus{Version: msg.Version, Host: "late2", Up: []string{id}}, nil)
	if p := r.updatePort(id, map[string]any{"binding:host_id": "late"}); p["status"] != "DOWN" || p["binding:vif_type"] != "ovs" {
		t.Fatalf("after moving: %v", p)
	}
}

func TestL2PopulationAcrossHosts(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.reportL2("node2", vxlanAgent("192.0.2.2"))
	notes1 := r.listen("node1")
	netID := r.network(nil)
	r.subnet(netID, "10.3.0.0/24", nil)
	p1 := r.port(netID, map[string]any{"binding:host_id": "node1"})
	p2 := r.port(netID, map[string]any{"binding:host_id": "node2"})

	// node1 learns where node2's port lives.
	n := notes1.waitFor(t, "node2's port in node1's FDB", func(n msg.Notification) bool {
		return n.L2 != nil && len(n.L2.FDB) == 1 && len(n.L2.FDB[0].Entries) == 1
	})
	fdb := n.L2.FDB[0]
	e := fdb.Entries[0]
	ip2 := p2["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]
	if e.MAC != p2["mac_address"] || e.TunnelIP != "192.0.2.2" || e.Host != "node2" || len(e.IPs) != 1 || e.IPs[0] != ip2 ||
		!slices.Equal(fdb.FloodTo, []string{"192.0.2.2"}) || fdb.Segment.NetworkType != "vxlan" || fdb.Segment.SegmentationID == 0 {
		t.Fatalf("FDB of node1: %+v", fdb)
	}
	var st msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: "node2", Roles: []string{msg.RoleL2}}, &st)
	if st.DHCP != nil || len(st.L2.FDB) != 1 || st.L2.FDB[0].Entries[0].MAC != p1["mac_address"] ||
		len(st.L2.TunnelEndpoints) != 1 || st.L2.TunnelEndpoints[0].IP != "192.0.2.1" {
		t.Fatalf("node2's state: %+v", st.L2)
	}

	// A third host's tunnel endpoint reaches the others.
	r.reportL2("node3", vxlanAgent("192.0.2.3"))
	notes1.waitFor(t, "node3's endpoint", func(n msg.Notification) bool {
		return n.L2 != nil && n.L2.TunnelEndpointsChanged && len(n.L2.TunnelEndpoints) == 2
	})
	// node2's port leaving empties node1's FDB of the network.
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(p2["id"]), nil)
	notes1.waitFor(t, "an empty FDB", func(n msg.Notification) bool {
		return n.L2 != nil && len(n.L2.FDB) == 1 && len(n.L2.FDB[0].Entries) == 0 && len(n.L2.FDB[0].FloodTo) == 0
	})
	assertNumbered(t, notes1.all())
}

func TestNothingIsLostWhenAServerDiesBeforePublishing(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	notes := r.listen("node1")
	netID := r.network(nil)
	r.subnet(netID, "10.4.0.0/24", nil)
	r.port(netID, map[string]any{"binding:host_id": "node1"})
	first := notes.waitFor(t, "a first notification", func(msg.Notification) bool { return true })

	// Another replica claims and numbers node1's next change, then dies
	// before publishing it.
	ctx := context.Background()
	db := r.srv.Srv.DB
	var claimed []outbox.Batch
	err := db.Tx(ctx, func(tx *store.Tx) error {
		if err := outbox.Add(ctx, tx, outbox.Entry{Host: "node1", Kind: outbox.KindNetwork, NetworkID: netID}); err != nil {
			return err
		}
		var err error
		claimed, err = outbox.Claim(ctx, tx, 100)
		return err
	})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %+v", err, claimed)
	}
	// The next notification shows the gap, which tells the agent to resync.
	r.port(netID, map[string]any{"binding:host_id": "node1"})
	last := notes.waitFor(t, "the next notification", func(n msg.Notification) bool { return n.Seq > claimed[0].Seq })
	if claimed[0].Seq <= first.Seq || last.Seq != claimed[0].Seq+1 {
		t.Fatalf("first %d, lost %d, next %d", first.Seq, claimed[0].Seq, last.Seq)
	}
	// A committed change's entry is never dropped: none is left behind.
	testenv.Eventually(t, 10*time.Second, "an empty outbox", func() bool {
		var n int
		_ = db.View(ctx, func(tx *store.Tx) error { n, _ = outbox.Pending(ctx, tx); return nil })
		return n == 0
	})
}

func TestDHCPState(t *testing.T) {
	r := newRig(t)
	notes := r.listen("node1")
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.mustCall(msg.MethodReportState, msg.ReportState{Version: msg.Version, AgentType: msg.AgentTypeDHCP,
		Binary: msg.BinaryDHCP, Topic: msg.TopicDHCP, Host: "node1", Configurations: msg.DHCPConfigurations{}.Map()}, nil)
	netID := r.network(nil)
	sub := r.subnet(netID, "10.5.0.0/24", map[string]any{"dns_nameservers": []any{"192.0.2.53"},
		"host_routes": []any{map[string]any{"destination": "198.51.100.0/24", "nexthop": "10.5.0.254"}}})
	vm := r.port(netID, map[string]any{"extra_dhcp_opts": []any{map[string]any{"opt_name": "mtu", "opt_value": "1400"}}})

	var st msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: "node1", Roles: []string{msg.RoleDHCP}}, &st)
	if st.L2 != nil || len(st.DHCP.Networks) != 1 {
		t.Fatalf("DHCP state: %+v", st)
	}
	dn := st.DHCP.Networks[0]
	s := dn.Subnets[0]
	if dn.ID != netID || dn.MTU != 1450 || s.ID != sub["id"] || s.CIDR != "10.5.0.0/24" || s.GatewayIP != "10.5.0.1" || !s.EnableDHCP ||
		s.IPVersion != 4 || !slices.Equal(s.DNSNameservers, []string{"192.0.2.53"}) || len(s.HostRoutes) != 1 || s.HostRoutes[0].Nexthop != "10.5.0.254" {
		t.Fatalf("DHCP network: %+v", dn)
	}
	if dn.DHCPPort == nil || dn.DHCPPort.DeviceOwner != "network:dhcp" || dn.DHCPPort.Host != "node1" || len(dn.DHCPPort.FixedIPs) != 1 {
		t.Fatalf("DHCP port: %+v", dn.DHCPPort)
	}
	p, ok := hasPort(dn.Ports, apitest.S(vm["id"]))
	if !ok || len(dn.Ports) != 2 || len(p.ExtraDHCPOpts) != 1 || p.ExtraDHCPOpts[0] != (msg.DHCPOption{Name: "mtu", Value: "1400", IPVersion: 4}) {
		t.Fatalf("ports: %+v", dn.Ports)
	}

	// A new port reaches the DHCP agent, alone or — when other changes of
	// its network are drained in the same batch — inside the whole
	// network; a subnet change sends the network whole.
	vm2 := apitest.S(r.port(netID, nil)["id"])
	notes.waitFor(t, "the new port in the DHCP view", func(n msg.Notification) bool {
		if n.DHCP == nil {
			return false
		}
		if _, ok := hasPort(n.DHCP.Ports, vm2); ok {
			return true
		}
		for _, net := range n.DHCP.Networks {
			if _, ok := hasPort(net.Ports, vm2); ok {
				return true
			}
		}
		return false
	})
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/subnets/"+apitest.S(sub["id"]), map[string]any{"subnet": map[string]any{"dns_nameservers": []any{}}})
	notes.waitFor(t, "the network with its changed subnet", func(n msg.Notification) bool {
		return n.DHCP != nil && len(n.DHCP.Networks) == 1 && len(n.DHCP.Networks[0].Subnets) == 1 && len(n.DHCP.Networks[0].Subnets[0].DNSNameservers) == 0
	})
	// Taken off the agent, the network is removed from its view.
	agentID := apitest.S(r.admin.Do("GET", "/v2.0/agents?agent_type=DHCP+agent", nil).Items("agents")[0]["id"])
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/agents/"+agentID+"/dhcp-networks/"+netID, nil)
	notes.waitFor(t, "the network gone from the DHCP view", func(n msg.Notification) bool {
		return n.DHCP != nil && slices.Contains(n.DHCP.DeletedNetworks, netID)
	})
	assertNumbered(t, notes.all())
}
