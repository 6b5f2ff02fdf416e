package l2

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// fwScenario is one network (net-red, local VLAN 1, 10.0.0.0/16) with n
// secured ports in group "web", whose rules are the given ones, and the
// ports as the members of the remote group "web", by network as the
// server sends them.
func fwScenario(n int, rules []msg.SecurityGroupRule) Wiring {
	w := scenario()
	w.Networks = w.Networks[:1]
	w.Networks[0].Ports = nil
	var members []string
	for i := range n {
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		mac := fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/250, i%250+1)
		w.Networks[0].Ports = append(w.Networks[0].Ports, LocalPort{
			ID: fmt.Sprintf("p%d", i), OFPort: 10 + i, MACs: []string{mac},
			Security: &PortSecurity{MAC: mac, IPs: []string{ip}, Groups: []string{"web"}},
		})
		members = append(members, ip)
	}
	w.SecurityGroups = map[string]msg.SecurityGroup{"web": {ID: "web", Stateful: true, Rules: rules}}
	w.RemoteGroups = map[string]msg.RemoteGroup{"web": {ID: "web", IPs: members,
		Networks: []msg.RemoteGroupNetwork{{ID: "net-red", CIDRs: []string{"10.0.0.0/16"}, IPs: members}}}}
	return w
}

// findAt returns the br-int flow of table, priority and match.
func findAt(t *testing.T, c Compiled, table Table, prio uint16, match string) Flow {
	t.Helper()
	f, ok := c.Bridges["br-int"][FlowKey{table, prio, match}]
	if !ok {
		t.Fatalf("br-int: no flow in table %d at priority %d matching %q; flows:\n%s", table, prio, match, dump(c.Bridges["br-int"]))
	}
	return f
}

func countTable(c Compiled, t Table) int {
	n := 0
	for _, f := range c.Bridges["br-int"] {
		if f.Table == t {
			n++
		}
	}
	return n
}

func fromGroup(proto, port int) msg.SecurityGroupRule {
	return msg.SecurityGroupRule{ID: fmt.Sprintf("r%d", port), Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4,
		Protocol: intp(proto), PortRangeMin: intp(port), PortRangeMax: intp(port), RemoteGroupID: "web"}
}

func TestFirewallRemoteGroupFlowsGrowWithMembersPlusRules(t *testing.T) {
	count := func(members, rules int) int {
		var rs []msg.SecurityGroupRule
		for i := range rules {
			rs = append(rs, fromGroup(6, 1000+i))
		}
		c := Compile(fwScenario(members, rs))
		if len(c.Problems) > 0 {
			t.Fatal(c.Problems)
		}
		return countTable(c, IntIngressRules)
	}
	base := count(10, 1)
	// One more member: two more flows (its address on its network and
	// anywhere, shared by every port and rule), plus the new member's own
	// rule flows (new and established connections, on link and anywhere).
	if got := count(11, 1) - base; got != 2+2*2 {
		t.Errorf("one more member added %d ingress-rules flows, want 6", got)
	}
	// One more rule: four flows per port (new, established; on link,
	// anywhere), none per member.
	if got := count(10, 2) - base; got != 10*2*2 {
		t.Errorf("one more rule added %d flows, want 40 (4 per port)", got)
	}
	// 200 members, 1 rule: far below members × ports.
	if got := count(200, 1); got > 2*200+200*2*2+20 {
		t.Errorf("200 members: %d ingress-rules flows, want about 1200", got)
	}
}

func TestFirewallConjunctionMatchesMembersAndPortRule(t *testing.T) {
	c := Compile(fwScenario(2, []msg.SecurityGroupRule{fromGroup(6, 22)}))
	// Dimension 1: each member's address, conjoined for new and
	// established connections.
	m := find(t, c, "br-int", IntIngressRules, "ip,nw_src=10.0.0.2")
	if strings.Count(m.Actions, ",1/2)") != 2 {
		t.Fatalf("member flow actions %q, want two first-dimension conjunctions", m.Actions)
	}
	// Dimension 2: the port (reg5) and the rule's protocol and port.
	newFlow := findAt(t, c, IntIngressRules, prioConjunction, "reg5=10,ct_state="+ctNew+",tcp,tp_dst=22")
	id := strings.TrimSuffix(strings.TrimPrefix(newFlow.Actions, "conjunction("), ",2/2)")
	if !strings.Contains(m.Actions, "conjunction("+id+",1/2)") {
		t.Errorf("port flow conjunction %s not among the member's %q", id, m.Actions)
	}
	// The conjunction accepts and commits new connections in the zone.
	acc := find(t, c, "br-int", IntIngressRules, "conj_id="+id+",ip")
	if acc.Actions != "ct(commit,zone=NXM_NX_REG6[0..15]),goto_table:50" {
		t.Errorf("conj_id actions %q", acc.Actions)
	}
	// Adding another remote group leaves this group's ids alone.
	w := fwScenario(2, []msg.SecurityGroupRule{fromGroup(6, 22), {ID: "x", Direction: msg.DirectionEgress, Ethertype: msg.EthertypeIPv4, RemoteGroupID: "db"}})
	w.RemoteGroups["db"] = msg.RemoteGroup{ID: "db", IPs: []string{"10.9.9.9"}}
	c2 := Compile(w)
	if got := findAt(t, c2, IntIngressRules, prioConjunction, "reg5=10,ct_state="+ctNew+",tcp,tp_dst=22"); got.Actions != newFlow.Actions {
		t.Errorf("conjunction id changed when another group appeared: %q → %q", newFlow.Actions, got.Actions)
	}
	find(t, c2, "br-int", IntEgressRules, "ip,nw_dst=10.9.9.9")
}

func TestFirewallRuleMatches(t *testing.T) {
	for _, tc := range []struct {
		rule msg.SecurityGroupRule
		want []string
	}{
		{msg.SecurityGroupRule{Ethertype: "IPv4"}, []string{"ip"}},
		{msg.SecurityGroupRule{Ethertype: "IPv6", Protocol: intp(0)}, []string{"ipv6"}},
		{msg.SecurityGroupRule{Ethertype: "IPv4", Protocol: intp(6), PortRangeMin: intp(22), PortRangeMax: intp(22)}, []string{"tcp,tp_dst=22"}},
		{msg.SecurityGroupRule{Ethertype: "IPv6", Protocol: intp(17), PortRangeMin: intp(1), PortRangeMax: intp(65535)}, []string{"udp6,tp_dst=1", "udp6,tp_dst=0x2/0xfffe", "udp6,tp_dst=0x4/0xfffc", "udp6,tp_dst=0x8/0xfff8", "udp6,tp_dst=0x10/0xfff0", "udp6,tp_dst=0x20/0xffe0", "udp6,tp_dst=0x40/0xffc0", "udp6,tp_dst=0x80/0xff80", "udp6,tp_dst=0x100/0xff00", "udp6,tp_dst=0x200/0xfe00", "udp6,tp_dst=0x400/0xfc00", "udp6,tp_dst=0x800/0xf800", "udp6,tp_dst=0x1000/0xf000", "udp6,tp_dst=0x2000/0xe000", "udp6,tp_dst=0x4000/0xc000", "udp6,tp_dst=0x8000/0x8000"}},
		{msg.SecurityGroupRule{Ethertype: "IPv4", Protocol: intp(132)}, []string{"sctp"}},
		{msg.SecurityGroupRule{Ethertype: "IPv4", Protocol: intp(1), PortRangeMin: intp(8), PortRangeMax: intp(0)}, []string{"icmp,icmp_type=8,icmp_code=0"}},
		{msg.SecurityGroupRule{Ethertype: "IPv4", Protocol: intp(1), PortRangeMin: intp(3)}, []string{"icmp,icmp_type=3"}},
		{msg.SecurityGroupRule{Ethertype: "IPv6", Protocol: intp(58), PortRangeMin: intp(128)}, []string{"icmp6,icmp_type=128"}},
		{msg.SecurityGroupRule{Ethertype: "IPv6", Protocol: intp(1)}, []string{"icmp6"}},
		{msg.SecurityGroupRule{Ethertype: "IPv4", Protocol: intp(47)}, []string{"ip,nw_proto=47"}},
	} {
		got := ruleMatches(tc.rule, tc.rule.Ethertype == "IPv4")
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%+v: got %q, want %q", tc.rule, got, tc.want)
		}
	}
}

// TestPortMasksCoverExactlyTheRange checks every port of many ranges
// against the masks' union.
func TestPortMasksCoverExactlyTheRange(t *testing.T) {
	for _, r := range [][2]int{{22, 22}, {1000, 1999}, {1, 65535}, {0, 0}, {80, 443}, {1024, 2047}, {65535, 65535}, {3, 9}} {
		masks := portMasks(r[0], r[1])
		type vm struct{ v, m uint64 }
		var parsed []vm
		for _, s := range masks {
			v, m := s, "0xffff"
			if i := strings.Index(s, "/"); i >= 0 {
				v, m = s[:i], s[i+1:]
			}
			vv, _ := strconv.ParseUint(v, 0, 16)
			mm, _ := strconv.ParseUint(m, 0, 16)
			parsed = append(parsed, vm{vv, mm})
		}
		for p := range 65536 {
			in := false
			for _, x := range parsed {
				if uint64(p)&x.m == x.v {
					in = true
				}
			}
			if want := p >= r[0] && p <= r[1]; in != want {
				t.Fatalf("range %v with %v: port %d covered=%v", r, masks, p, in)
			}
		}
	}
}

func TestSpoofGuard(t *testing.T) {
	w := scenario()
	w.Networks[0].Ports[0].Security = &PortSecurity{
		MAC: "fa:16:3e:00:00:01", IPs: []string{"10.0.0.1", "2001:db8::1"},
		Pairs: []msg.AddressPair{{IPAddress: "10.0.5.7/24", MACAddress: "fa:16:3e:00:00:77"}},
	}
	w.SecurityGroups = map[string]msg.SecurityGroup{}
	c := Compile(w)
	if len(c.Problems) > 0 {
		t.Fatal(c.Problems)
	}
	in := "in_port=10,"
	for _, m := range []string{
		in + "ip,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.1",
		in + "ipv6,dl_src=fa:16:3e:00:00:01,ipv6_src=2001:db8::1",
		// EUI-64 link-local of the MAC.
		in + "ipv6,dl_src=fa:16:3e:00:00:01,ipv6_src=fe80::f816:3eff:fe00:1",
		// The pair: its CIDR with host bits cleared, with its own MAC.
		in + "ip,dl_src=fa:16:3e:00:00:77,nw_src=10.0.5.0/24",
	} {
		wantActions(t, c, "br-int", IntSpoofGuard, m, gotoTable(IntEgressFirewall))
	}
	find(t, c, "br-int", IntSpoofGuard, in+"arp,dl_src=fa:16:3e:00:00:01,arp_spa=10.0.0.1,arp_sha=fa:16:3e:00:00:01")
	find(t, c, "br-int", IntSpoofGuard, in+"arp,dl_src=fa:16:3e:00:00:77,arp_spa=10.0.5.0/24,arp_sha=fa:16:3e:00:00:77")
	for _, m := range []string{in + "udp,tp_src=67", in + "udp6,tp_src=547", in + "icmp6,icmp_type=134", "in_port=10"} {
		wantActions(t, c, "br-int", IntSpoofGuard, m, "drop")
	}
	wantActions(t, c, "br-int", IntSpoofGuard, in+"udp,dl_src=fa:16:3e:00:00:01,tp_src=68,tp_dst=67", gotoTable(IntForward))
	// The drop of DHCP server traffic outranks the IP allow.
	if find(t, c, "br-int", IntSpoofGuard, in+"udp,tp_src=67").Priority <= find(t, c, "br-int", IntSpoofGuard, in+"ip,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.1").Priority {
		t.Error("DHCP server drop does not outrank the source allow")
	}
	// No group: IP is tracked but no rule allows it.
	if f := find(t, c, "br-int", IntEgressFirewall, in+"ip"); !strings.HasPrefix(f.Actions, "ct(table=21,") {
		t.Errorf("egress tracking: %q", f.Actions)
	}
	for _, f := range c.Bridges["br-int"] {
		if f.Table == IntEgressRules && strings.Contains(f.Match, "in_port=10") {
			t.Errorf("a port without groups has an egress rule: %s", f)
		}
	}
	// Red-2 has no port security: no flow of its own in the guard.
	for _, f := range c.Bridges["br-int"] {
		if (f.Table == IntSpoofGuard || f.Table == IntIngressFirewall) && (strings.Contains(f.Match, "in_port=11") || strings.Contains(f.Match, "reg5=11")) {
			t.Errorf("port without port security has %s", f)
		}
	}
	// The ingress side loads the network's zone before tracking.
	wantActions(t, c, "br-int", IntIngressFirewall, "reg5=10,ip", "load:0x1->NXM_NX_REG6[],ct(table=41,zone=NXM_NX_REG6[0..15])")
}

func TestFirewallPlainRulesAndStateless(t *testing.T) {
	w := fwScenario(1, []msg.SecurityGroupRule{
		{ID: "ssh", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4, Protocol: intp(6), PortRangeMin: intp(22), PortRangeMax: intp(22), RemoteIPPrefix: "0.0.0.0/0"},
		{ID: "net", Direction: msg.DirectionEgress, Ethertype: msg.EthertypeIPv6, RemoteIPPrefix: "2001:db8::/64"},
	})
	c := Compile(w)
	// /0 is no restriction at all.
	wantActions(t, c, "br-int", IntIngressRules, "reg5=10,ct_state="+ctNew+",tcp,tp_dst=22", "ct(commit,zone=NXM_NX_REG6[0..15]),goto_table:50")
	wantActions(t, c, "br-int", IntIngressRules, "reg5=10,ct_state="+ctEstablished+",tcp,tp_dst=22", "goto_table:50")
	find(t, c, "br-int", IntEgressRules, "in_port=10,ct_state="+ctNew+",ipv6,ipv6_dst=2001:db8::/64")
	// Stateless: allowed without commit.
	g := w.SecurityGroups["web"]
	g.Stateful = false
	w.SecurityGroups["web"] = g
	c = Compile(w)
	wantActions(t, c, "br-int", IntIngressRules, "reg5=10,ct_state="+ctNew+",tcp,tp_dst=22", "goto_table:50")
	// An unknown group is a problem, not a crash.
	w.Networks[0].Ports[0].Security.Groups = []string{"gone"}
	if c := Compile(w); len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "gone") {
		t.Errorf("problems %q", c.Problems)
	}
}

func TestPortSecurityFromThePort(t *testing.T) {
	p := msg.Port{ID: "p", MAC: "fa:16:3e:00:00:01", PortSecurityEnabled: true, DeviceOwner: "compute:nova",
		FixedIPs:            []msg.FixedIP{{IPAddress: "10.0.0.5"}, {IPAddress: "2001:db8::5"}},
		AllowedAddressPairs: []msg.AddressPair{{IPAddress: "10.0.1.0/24", MACAddress: "fa:16:3e:00:00:01"}},
		SecurityGroups:      []string{"default"}}
	s := portSecurity(p)
	if s == nil || s.MAC != p.MAC || strings.Join(s.IPs, " ") != "10.0.0.5 2001:db8::5" || len(s.Pairs) != 1 || s.Groups[0] != "default" {
		t.Fatalf("port security %+v", s)
	}
	off := p
	off.PortSecurityEnabled = false
	if portSecurity(off) != nil {
		t.Error("port_security_enabled=false still filtered")
	}
	// The network's own ports are trusted, as Neutron's firewall trusts them.
	for _, owner := range []string{"network:dhcp", "network:router_interface"} {
		trusted := p
		trusted.DeviceOwner = owner
		if portSecurity(trusted) != nil {
			t.Errorf("%s filtered", owner)
		}
	}
}

// TestFirewallRemoteGroupMemberMatchesOnItsOwnNetwork: red and blue are
// both 10.0.0.0/24 on this node. Group web has a member on red at
// 10.0.0.5 and one on a network elsewhere at 10.1.0.7; the port on blue
// takes ingress from web. 10.0.0.5 is a member only on red: on blue the
// same address is somebody else's, so blue's packets from it must not
// match, while 10.1.0.7 (routed to blue) still does.
func TestFirewallRemoteGroupMemberMatchesOnItsOwnNetwork(t *testing.T) {
	w := scenario()
	w.Networks = w.Networks[:2]
	redMAC, blueMAC := "fa:16:3e:00:00:01", "fa:16:3e:00:00:03"
	w.Networks[0].Ports = []LocalPort{{ID: "red-1", OFPort: 10, MACs: []string{redMAC},
		Security: &PortSecurity{MAC: redMAC, IPs: []string{"10.0.0.5"}, Groups: []string{"web"}}}}
	w.Networks[1].Ports = []LocalPort{{ID: "blue-1", OFPort: 12, MACs: []string{blueMAC},
		Security: &PortSecurity{MAC: blueMAC, IPs: []string{"10.0.0.9"}, Groups: []string{"web"}}}}
	w.SecurityGroups = map[string]msg.SecurityGroup{"web": {ID: "web", Stateful: true, Rules: []msg.SecurityGroupRule{fromGroup(6, 22)}}}
	w.RemoteGroups = map[string]msg.RemoteGroup{"web": {ID: "web", IPs: []string{"10.0.0.5", "10.0.0.9", "10.1.0.7"},
		Networks: []msg.RemoteGroupNetwork{
			{ID: "net-blue", CIDRs: []string{"10.0.0.0/24"}, IPs: []string{"10.0.0.9"}},
			{ID: "net-elsewhere", CIDRs: []string{"10.1.0.0/24"}, IPs: []string{"10.1.0.7"}},
			{ID: "net-red", CIDRs: []string{"10.0.0.0/24"}, IPs: []string{"10.0.0.5"}},
		}}}
	c := Compile(w)
	if len(c.Problems) > 0 {
		t.Fatal(c.Problems)
	}
	flow := func(prio uint16, match string) (Flow, bool) {
		f, ok := c.Bridges["br-int"][FlowKey{IntIngressRules, prio, match}]
		return f, ok
	}
	// On link: the member's address with its own network's VLAN only.
	red, ok := flow(prioConjOnLink, "reg6=1,ip,nw_src=10.0.0.5")
	if !ok || strings.Count(red.Actions, ",1/2)") != 2 {
		t.Fatalf("no on-link member flow for 10.0.0.5 on red (reg6=1): %+v\n%s", red, dump(c.Bridges["br-int"]))
	}
	if f, ok := flow(prioConjOnLink, "reg6=2,ip,nw_src=10.0.0.5"); ok {
		t.Errorf("red's member address matches on blue too: %v", f)
	}
	if _, ok := flow(prioConjOnLink, "reg6=2,ip,nw_src=10.0.0.9"); !ok {
		t.Errorf("blue's own member 10.0.0.9 has no on-link flow on blue")
	}
	// Inside its own subnets, blue's packets match blue's members only.
	if f, ok := flow(prioForeignDrop, "reg6=2,ip,nw_src=10.0.0.0/24"); !ok || f.Actions != "drop" {
		t.Errorf("blue's subnet from other networks' members: %+v, want drop", f)
	}
	// Anywhere (routed): the member elsewhere matches on every network.
	if _, ok := flow(prioConjunction, "ip,nw_src=10.1.0.7"); !ok {
		t.Errorf("member on a routed network has no flow")
	}
	if _, ok := flow(prioConjOnLink, "reg6=1,ip,nw_src=10.1.0.7"); ok {
		t.Errorf("member of a network not on this node got an on-link flow")
	}
	// The port's rule joins both layers, each with its own conjunction.
	onLink, _ := flow(prioConjOnLink, "reg5=12,ct_state="+ctNew+",tcp,tp_dst=22")
	routed, _ := flow(prioConjunction, "reg5=12,ct_state="+ctNew+",tcp,tp_dst=22")
	if !strings.HasSuffix(onLink.Actions, ",2/2)") || !strings.HasSuffix(routed.Actions, ",2/2)") || onLink.Actions == routed.Actions {
		t.Errorf("port rule flows: on link %q, anywhere %q; want two distinct second dimensions", onLink.Actions, routed.Actions)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(onLink.Actions, "conjunction("), ",2/2)")
	if !strings.Contains(red.Actions, "conjunction("+id+",1/2)") {
		t.Errorf("on-link port conjunction %s not among the member's %q", id, red.Actions)
	}
}

// TestFirewallRemoteGroupWithoutNetworks: a server from before
// RemoteGroup.Networks sends the addresses only; they match on every
// network, as before.
func TestFirewallRemoteGroupWithoutNetworks(t *testing.T) {
	w := fwScenario(2, []msg.SecurityGroupRule{fromGroup(6, 22)})
	w.RemoteGroups["web"] = msg.RemoteGroup{ID: "web", IPs: w.RemoteGroups["web"].IPs}
	c := Compile(w)
	if len(c.Problems) > 0 {
		t.Fatal(c.Problems)
	}
	find(t, c, "br-int", IntIngressRules, "ip,nw_src=10.0.0.2")
	for k := range c.Bridges["br-int"] {
		if k.Priority == prioConjOnLink || k.Priority == prioForeignDrop {
			t.Errorf("flow %v without the members' networks", k)
		}
	}
}

// TestFirewallDropsForeignMembersOnANetworkWithoutMembers: blue
// (10.0.0.0/24) has a port that takes ingress from group web but no
// member of web; web's member 10.0.0.5 sits on another node's network
// with the same CIDR. With blue's own subnets from the server, blue gets
// the drop at 61, so its own 10.0.0.5 is not taken for the member; web's
// routed member 10.1.0.7 still matches there.
func TestFirewallDropsForeignMembersOnANetworkWithoutMembers(t *testing.T) {
	w := scenario()
	w.Networks = w.Networks[1:2]
	blueMAC := "fa:16:3e:00:00:03"
	w.Networks[0].Ports = []LocalPort{{ID: "blue-1", OFPort: 12, MACs: []string{blueMAC},
		Security: &PortSecurity{MAC: blueMAC, IPs: []string{"10.0.0.9"}, Groups: []string{"db"}}}}
	w.SecurityGroups = map[string]msg.SecurityGroup{"db": {ID: "db", Stateful: true, Rules: []msg.SecurityGroupRule{fromGroup(6, 22)}}}
	w.RemoteGroups = map[string]msg.RemoteGroup{"web": {ID: "web", IPs: []string{"10.0.0.5", "10.1.0.7"},
		Networks: []msg.RemoteGroupNetwork{
			{ID: "net-elsewhere", CIDRs: []string{"10.0.0.0/24"}, IPs: []string{"10.0.0.5"}},
			{ID: "net-routed", CIDRs: []string{"10.1.0.0/24"}, IPs: []string{"10.1.0.7"}},
		}}}
	drop := FlowKey{IntIngressRules, prioForeignDrop, "reg6=2,ip,nw_src=10.0.0.0/24"}

	// A server from before msg.Network.CIDRs: blue's subnets are unknown.
	if f, ok := Compile(w).Bridges["br-int"][drop]; ok {
		t.Fatalf("drop on blue without its subnets: %+v", f)
	}

	w.Networks[0].CIDRs = []string{"10.0.0.0/24", "2001:db8::/64"}
	c := Compile(w)
	if len(c.Problems) > 0 {
		t.Fatal(c.Problems)
	}
	if f, ok := c.Bridges["br-int"][drop]; !ok || f.Actions != "drop" {
		t.Fatalf("blue's subnet from another network's members: %+v, want drop\n%s", f, dump(c.Bridges["br-int"]))
	}
	// Only families and directions some remote-group rule uses get drops.
	for k := range c.Bridges["br-int"] {
		if k.Priority == prioForeignDrop && k != drop {
			t.Errorf("unexpected drop %v", k)
		}
	}
	// Below the drop, members anywhere still match (routed).
	find(t, c, "br-int", IntIngressRules, "ip,nw_src=10.1.0.7")
	find(t, c, "br-int", IntIngressRules, "ip,nw_src=10.0.0.5")
}
