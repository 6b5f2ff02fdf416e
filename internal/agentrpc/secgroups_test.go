package agentrpc_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

func (r *rig) group(name string) string {
	r.t.Helper()
	return apitest.S(r.admin.Create("security-groups", "security_group", map[string]any{"name": name})["id"])
}

func (r *rig) rule(attrs map[string]any) string {
	r.t.Helper()
	return apitest.S(r.admin.Create("security-group-rules", "security_group_rule", attrs)["id"])
}

func (r *rig) sync(host string) *msg.L2State {
	r.t.Helper()
	var st msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: host, Roles: []string{msg.RoleL2}}, &st)
	return st.L2
}

func firstIP(p map[string]any) string {
	return apitest.S(p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"])
}

func findGroup(gs []msg.SecurityGroup, id string) (msg.SecurityGroup, bool) {
	for _, g := range gs {
		if g.ID == id {
			return g, true
		}
	}
	return msg.SecurityGroup{}, false
}

func findRemote(rs []msg.RemoteGroup, id string) (msg.RemoteGroup, bool) {
	for _, g := range rs {
		if g.ID == id {
			return g, true
		}
	}
	return msg.RemoteGroup{}, false
}

func findRule(g msg.SecurityGroup, id string) (msg.SecurityGroupRule, bool) {
	for _, r := range g.Rules {
		if r.ID == id {
			return r, true
		}
	}
	return msg.SecurityGroupRule{}, false
}

func intIs(p *int, v int) bool { return p != nil && *p == v }

func TestSecurityGroupsInHostState(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.reportL2("node2", vxlanAgent("192.0.2.2"))
	netID := r.network(nil)
	r.subnet(netID, "10.6.0.0/24", nil)
	p1 := r.port(netID, map[string]any{"binding:host_id": "node1"})
	p2 := r.port(netID, map[string]any{"binding:host_id": "node2", "allowed_address_pairs": []any{
		map[string]any{"ip_address": "10.6.1.9/24"}, map[string]any{"ip_address": "10.6.2.7", "mac_address": "fa:16:3e:00:00:01"}}})
	open := r.port(netID, map[string]any{"binding:host_id": "node1", "port_security_enabled": false})
	def := apitest.S(p1["security_groups"].([]any)[0])
	ssh := r.rule(map[string]any{"security_group_id": def, "direction": "ingress", "protocol": "tcp",
		"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.1.2.3/8"})
	ping := r.rule(map[string]any{"security_group_id": def, "direction": "ingress", "ethertype": "IPv6", "protocol": "icmp", "port_range_min": 128})

	st := r.sync("node1")
	sp, _ := hasPort(st.Ports, apitest.S(p1["id"]))
	if !sp.PortSecurityEnabled || !slices.Equal(sp.SecurityGroups, []string{def}) {
		t.Fatalf("port with port security: %+v", sp)
	}
	if op, _ := hasPort(st.Ports, apitest.S(open["id"])); op.PortSecurityEnabled || len(op.SecurityGroups) != 0 {
		t.Fatalf("port without port security: %+v", op)
	}
	if len(st.SecurityGroups) != 1 {
		t.Fatalf("groups of node1: %+v", st.SecurityGroups)
	}
	g := st.SecurityGroups[0]
	if g.ID != def || !g.Stateful || len(g.Rules) != 6 {
		t.Fatalf("default group: %+v", g)
	}
	// Neutron's default rules: egress anywhere, ingress from the group.
	var egress, fromSelf int
	for _, rule := range g.Rules {
		switch {
		case rule.Direction == msg.DirectionEgress && rule.Protocol == nil && rule.RemoteIPPrefix == "" && rule.RemoteGroupID == "":
			egress++
		case rule.Direction == msg.DirectionIngress && rule.RemoteGroupID == def && rule.Protocol == nil:
			fromSelf++
		}
	}
	if egress != 2 || fromSelf != 2 {
		t.Errorf("default rules: %+v", g.Rules)
	}
	if rule, _ := findRule(g, ssh); !intIs(rule.Protocol, 6) || !intIs(rule.PortRangeMin, 22) || !intIs(rule.PortRangeMax, 22) ||
		rule.RemoteIPPrefix != "10.0.0.0/8" || rule.Ethertype != msg.EthertypeIPv4 || rule.Direction != msg.DirectionIngress {
		t.Errorf("TCP 22 rule: %+v", rule)
	}
	if rule, _ := findRule(g, ping); !intIs(rule.Protocol, 58) || !intIs(rule.PortRangeMin, 128) || rule.PortRangeMax != nil {
		t.Errorf("ICMPv6 echo rule: %+v", rule)
	}
	// The remote group's members: every port of the group on any host,
	// fixed IPs and allowed address pairs (a network masked).
	want := []string{firstIP(p1), firstIP(p2), "10.6.1.0/24", "10.6.2.7"}
	slices.Sort(want)
	if len(st.RemoteGroups) != 1 || st.RemoteGroups[0].ID != def || !slices.Equal(st.RemoteGroups[0].IPs, want) {
		t.Fatalf("remote groups: %+v, want members %v", st.RemoteGroups, want)
	}
	pairs := r.sync("node2").Ports[0].AllowedAddressPairs
	if len(pairs) != 2 || pairs[0].MACAddress != p2["mac_address"] || pairs[1] != (msg.AddressPair{IPAddress: "10.6.2.7", MACAddress: "fa:16:3e:00:00:01"}) {
		t.Errorf("allowed address pairs: %+v", pairs)
	}
	// A host without ports has no groups.
	if st := r.sync("node3"); len(st.SecurityGroups) != 0 || len(st.RemoteGroups) != 0 {
		t.Errorf("node3: %+v", st)
	}
}

func TestRuleChangesReachTheHostsOfTheGroup(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.reportL2("node2", vxlanAgent("192.0.2.2"))
	notes1, notes2 := r.listen("node1"), r.listen("node2")
	netID := r.network(nil)
	r.subnet(netID, "10.7.0.0/24", nil)
	web := r.group("web")
	r.port(netID, map[string]any{"binding:host_id": "node1", "security_groups": []any{web}})
	r.port(netID, map[string]any{"binding:host_id": "node2"})

	// node1 learns its port's group with Neutron's two egress rules.
	notes1.waitFor(t, "the web group on node1", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		g, ok := findGroup(n.L2.SecurityGroups, web)
		return ok && len(g.Rules) == 2
	})
	ssh := r.rule(map[string]any{"security_group_id": web, "direction": "ingress", "protocol": "6", "port_range_min": 22, "port_range_max": 22})
	n := notes1.waitFor(t, "the new rule on node1", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		g, ok := findGroup(n.L2.SecurityGroups, web)
		_, has := findRule(g, ssh)
		return ok && has
	})
	g, _ := findGroup(n.L2.SecurityGroups, web)
	if rule, _ := findRule(g, ssh); !intIs(rule.Protocol, 6) || !intIs(rule.PortRangeMin, 22) || len(g.Rules) != 3 {
		t.Fatalf("web after the rule: %+v", g)
	}
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/security-group-rules/"+ssh, nil)
	notes1.waitFor(t, "the rule gone on node1", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		g, ok := findGroup(n.L2.SecurityGroups, web)
		return ok && len(g.Rules) == 2 && g.Revision > 0
	})
	// node2 has no port in web: it never hears of the group. Its own
	// port's notification may still be on its way.
	notes2.waitFor(t, "node2's own port", func(n msg.Notification) bool { return true })
	for _, n := range notes2.all() {
		if n.L2 != nil {
			if _, ok := findGroup(n.L2.SecurityGroups, web); ok {
				t.Fatalf("node2 heard of web: %+v", n.L2)
			}
		}
	}
	assertNumbered(t, notes1.all())
	assertNumbered(t, notes2.all())
}

func TestRemoteGroupMembersReachTheHostsThatNameIt(t *testing.T) {
	r := newRig(t)
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.reportL2("node2", vxlanAgent("192.0.2.2"))
	r.reportL2("node3", vxlanAgent("192.0.2.3"))
	notes1, notes3 := r.listen("node1"), r.listen("node3")
	netID := r.network(nil)
	r.subnet(netID, "10.8.0.0/24", nil)
	db, app, other := r.group("db"), r.group("app"), r.group("other")
	pg := r.rule(map[string]any{"security_group_id": db, "direction": "ingress", "protocol": "tcp",
		"port_range_min": 5432, "port_range_max": 5432, "remote_group_id": app})
	dbPort := r.port(netID, map[string]any{"binding:host_id": "node1", "security_groups": []any{db}})
	r.port(netID, map[string]any{"binding:host_id": "node3", "security_groups": []any{other}})
	if st := r.sync("node1"); len(st.RemoteGroups) != 1 || st.RemoteGroups[0].ID != app || len(st.RemoteGroups[0].IPs) != 0 {
		t.Fatalf("node1 before app has members: %+v", st.RemoteGroups)
	}
	members := func(what string, want ...string) {
		t.Helper()
		slices.Sort(want)
		notes1.waitFor(t, what, func(n msg.Notification) bool {
			if n.L2 == nil {
				return false
			}
			g, ok := findRemote(n.L2.RemoteGroups, app)
			return ok && slices.Equal(g.IPs, want)
		})
	}

	// A new member of app on node2 reaches node1, whose db rule names app.
	a := r.port(netID, map[string]any{"binding:host_id": "node2", "security_groups": []any{app}})
	aID, aIP := apitest.S(a["id"]), firstIP(a)
	members("the new member", aIP)
	// Its allowed address pair is a member address too.
	r.updatePort(aID, map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.8.5.5"}}})
	members("the member's address pair", aIP, "10.8.5.5")
	// An unbound port counts too (addresses, not hosts, are matched).
	b := r.port(netID, map[string]any{"security_groups": []any{app}})
	members("an unbound member", aIP, "10.8.5.5", firstIP(b))
	// Leaving the group (by changing groups, or deletion) takes it out.
	r.updatePort(aID, map[string]any{"security_groups": []any{other}})
	members("the member gone", firstIP(b))
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(b["id"]), nil)
	members("no member left")

	// Deleting the rule lets node1 drop app's members.
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/security-group-rules/"+pg, nil)
	notes1.waitFor(t, "app no longer needed", func(n msg.Notification) bool {
		return n.L2 != nil && slices.Contains(n.L2.DeletedRemoteGroups, app)
	})
	// The db port leaving node1 removes db there.
	r.updatePort(apitest.S(dbPort["id"]), map[string]any{"binding:host_id": "node3"})
	notes1.waitFor(t, "db gone from node1", func(n msg.Notification) bool {
		return n.L2 != nil && slices.Contains(n.L2.DeletedSecurityGroups, db)
	})
	notes3.waitFor(t, "db on node3", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		_, ok := findGroup(n.L2.SecurityGroups, db)
		return ok
	})
	// node3's other group names no remote group: membership changes of app
	// never reached it.
	for _, n := range notes3.all() {
		if n.L2 != nil {
			if _, ok := findRemote(n.L2.RemoteGroups, app); ok {
				t.Fatalf("node3 heard of app's members: %+v", n.L2)
			}
		}
	}
	// Deleting a group other rules name as remote group tells their hosts.
	r.rule(map[string]any{"security_group_id": other, "direction": "ingress", "remote_group_id": app})
	notes3.waitFor(t, "app's members on node3", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		_, ok := findRemote(n.L2.RemoteGroups, app)
		return ok
	})
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+app, nil)
	notes3.waitFor(t, "app gone from node3", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		g, ok := findGroup(n.L2.SecurityGroups, other)
		return ok && len(g.Rules) == 2 && slices.Contains(n.L2.DeletedRemoteGroups, app)
	})
	assertNumbered(t, notes1.all())
	assertNumbered(t, notes3.all())
	if st := r.sync("node3"); len(st.RemoteGroups) != 0 || len(st.SecurityGroups) != 2 {
		t.Fatalf("node3 at the end: groups %+v, remote %+v", st.SecurityGroups, st.RemoteGroups)
	}
}

// BenchmarkSync500 measures the l2 sync of a host with 500 ports of one
// group whose rules name the group itself (Neutron's default group): the
// security part is read in a fixed number of queries, not one per port.
func BenchmarkSync500(b *testing.B) {
	srv := apitest.Start(b)
	admin := srv.Client(b, "admin")
	conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "bench-agent", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	ctx := context.Background()
	if err := conn.Call(ctx, msg.MethodReportState, msg.ReportState{Version: msg.Version, AgentType: msg.AgentTypeOVS,
		Binary: msg.BinaryOVS, Host: "node1", Configurations: vxlanAgent("192.0.2.1").Map()}, nil); err != nil {
		b.Fatal(err)
	}
	netID := apitest.S(admin.Create("networks", "network", map[string]any{"name": "bench"})["id"])
	admin.Create("subnets", "subnet", map[string]any{"network_id": netID, "cidr": "10.200.0.0/16", "ip_version": 4})
	for range 5 {
		ports := make([]any, 100)
		for i := range ports {
			ports[i] = map[string]any{"network_id": netID, "binding:host_id": "node1"}
		}
		admin.Must(http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"ports": ports})
	}
	b.ResetTimer()
	for b.Loop() {
		var st msg.HostState
		if err := conn.Call(ctx, msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: "node1", Roles: []string{msg.RoleL2}}, &st); err != nil {
			b.Fatal(err)
		}
		if len(st.L2.Ports) != 500 || len(st.L2.RemoteGroups) != 1 || len(st.L2.RemoteGroups[0].IPs) != 500 {
			b.Fatalf("state: %d ports, remote groups %d", len(st.L2.Ports), len(st.L2.RemoteGroups))
		}
	}
}

// overlappingNetworks reports the l2 agents of node1 and node2 and makes
// two networks with the same subnet, 10.7.0.0/24.
func (r *rig) overlappingNetworks() (netA, netB string) {
	r.t.Helper()
	r.reportL2("node1", vxlanAgent("192.0.2.1"))
	r.reportL2("node2", vxlanAgent("192.0.2.2"))
	netA, netB = r.network(nil), r.network(nil)
	r.subnet(netA, "10.7.0.0/24", nil)
	r.subnet(netB, "10.7.0.0/24", nil)
	return netA, netB
}

// TestRemoteGroupMembersByNetwork: two networks with the same CIDR, a
// member of the default group on each. The members come by network, each
// with its network's subnets, in a sync and in the notification of a new
// member, so that an agent can tell 10.7.0.x on one from 10.7.0.x on the
// other.
func TestRemoteGroupMembersByNetwork(t *testing.T) {
	r := newRig(t)
	netA, netB := r.overlappingNetworks()
	r.subnet(netB, "fd00:7::/64", map[string]any{"ip_version": 6})
	pa := r.port(netA, map[string]any{"binding:host_id": "node1"})
	pb := r.port(netB, map[string]any{"binding:host_id": "node2"})
	def := apitest.S(pa["security_groups"].([]any)[0])

	want := func(ips map[string][]string) []msg.RemoteGroupNetwork {
		out := []msg.RemoteGroupNetwork{
			{ID: netA, CIDRs: []string{"10.7.0.0/24"}, IPs: ips[netA]},
			{ID: netB, CIDRs: []string{"10.7.0.0/24", "fd00:7::/64"}, IPs: ips[netB]},
		}
		slices.SortFunc(out, func(a, b msg.RemoteGroupNetwork) int { return strings.Compare(a.ID, b.ID) })
		return out
	}
	ipsOf := func(ports ...map[string]any) []string {
		var out []string
		for _, p := range ports {
			for _, f := range p["fixed_ips"].([]any) {
				out = append(out, apitest.S(f.(map[string]any)["ip_address"]))
			}
		}
		slices.Sort(out)
		return out
	}
	st := r.sync("node1")
	g, ok := findRemote(st.RemoteGroups, def)
	if exp := want(map[string][]string{netA: ipsOf(pa), netB: ipsOf(pb)}); !ok || !reflect.DeepEqual(g.Networks, exp) {
		t.Fatalf("remote group by network: %+v, want %+v", g.Networks, exp)
	}

	in := r.listen("node1")
	pb2 := r.port(netB, map[string]any{"binding:host_id": "node2"})
	exp := want(map[string][]string{netA: ipsOf(pa), netB: ipsOf(pb, pb2)})
	in.waitFor(t, "the new member on network B", func(n msg.Notification) bool {
		if n.L2 == nil {
			return false
		}
		g, ok := findRemote(n.L2.RemoteGroups, def)
		return ok && reflect.DeepEqual(g.Networks, exp)
	})
}

// TestSubnetChangesReachTheHostsThatNameAMemberNetwork: node1 names the
// default group, whose other member sits on network B (node2 only). A
// subnet added to B reaches node1 at once in a notification of the
// group's members with B's new CIDR, and its deletion takes the CIDR away
// again, without a membership change or a full sync.
func TestSubnetChangesReachTheHostsThatNameAMemberNetwork(t *testing.T) {
	r := newRig(t)
	netA, netB := r.overlappingNetworks()
	pa := r.port(netA, map[string]any{"binding:host_id": "node1"})
	r.port(netB, map[string]any{"binding:host_id": "node2"})
	def := apitest.S(pa["security_groups"].([]any)[0])

	cidrsOfB := func(n msg.Notification) ([]string, bool) {
		if n.L2 == nil {
			return nil, false
		}
		g, ok := findRemote(n.L2.RemoteGroups, def)
		if !ok {
			return nil, false
		}
		for _, net := range g.Networks {
			if net.ID == netB {
				return net.CIDRs, true
			}
		}
		return nil, false
	}
	in := r.listen("node1")
	added := r.subnet(netB, "10.8.0.0/24", nil)
	seen := in.waitFor(t, "network B's new subnet in the default group's members", func(n msg.Notification) bool {
		cidrs, ok := cidrsOfB(n)
		return ok && slices.Equal(cidrs, []string{"10.7.0.0/24", "10.8.0.0/24"})
	})

	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+apitest.S(added["id"]), nil)
	in.waitFor(t, "network B's deleted subnet gone from the default group's members", func(n msg.Notification) bool {
		cidrs, ok := cidrsOfB(n)
		return ok && n.Epoch == seen.Epoch && n.Seq > seen.Seq && slices.Equal(cidrs, []string{"10.7.0.0/24"})
	})
}

// TestL2NetworksCarryTheirSubnets: the l2 agent's networks come with
// their subnets' CIDRs, in a sync and in the notification of a new subnet,
// so that its firewall can keep other networks' member addresses out of
// them even where no member is.
func TestL2NetworksCarryTheirSubnets(t *testing.T) {
	r := newRig(t)
	netA, _ := r.overlappingNetworks()
	r.port(netA, map[string]any{"binding:host_id": "node1"})
	cidrsOfA := func(nets []msg.Network) []string {
		for _, n := range nets {
			if n.ID == netA {
				return n.CIDRs
			}
		}
		return nil
	}
	if got := cidrsOfA(r.sync("node1").Networks); !slices.Equal(got, []string{"10.7.0.0/24"}) {
		t.Fatalf("network A in node1's sync has CIDRs %q, want [10.7.0.0/24]", got)
	}
	in := r.listen("node1")
	r.subnet(netA, "fd00:7::/64", map[string]any{"ip_version": 6})
	in.waitFor(t, "network A with its new subnet", func(n msg.Notification) bool {
		return n.L2 != nil && slices.Equal(cidrsOfA(n.L2.Networks), []string{"10.7.0.0/24", "fd00:7::/64"})
	})
}
