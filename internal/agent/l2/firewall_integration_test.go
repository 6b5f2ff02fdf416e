package l2

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// secured is a placement with security groups: ports get port security
// and the groups named; remote groups are computed from the ports'
// addresses (as the server does), also by network when cidrs (the
// networks' subnets, by network id) is set.
type secured struct {
	placement
	groups map[string]msg.SecurityGroup
	cidrs  map[string][]string
}

func (s secured) apply(b *bed) {
	members := map[string][]string{}
	byNet := map[string]map[string][]string{} // group → network → addresses
	for _, ports := range s.ports {
		for _, p := range ports {
			for _, g := range p.SecurityGroups {
				if byNet[g] == nil {
					byNet[g] = map[string][]string{}
				}
				for _, ip := range p.FixedIPs {
					members[g] = append(members[g], ip.IPAddress)
					byNet[g][p.NetworkID] = append(byNet[g][p.NetworkID], ip.IPAddress)
				}
				for _, pair := range p.AllowedAddressPairs {
					members[g] = append(members[g], pair.IPAddress)
					byNet[g][p.NetworkID] = append(byNet[g][p.NetworkID], pair.IPAddress)
				}
			}
		}
	}
	remoteGroup := func(id string) msg.RemoteGroup {
		rg := msg.RemoteGroup{ID: id, IPs: sortedUnique(members[id])}
		if s.cidrs == nil {
			return rg
		}
		for _, netID := range slices.Sorted(maps.Keys(byNet[id])) {
			rg.Networks = append(rg.Networks, msg.RemoteGroupNetwork{ID: netID, CIDRs: s.cidrs[netID], IPs: sortedUnique(byNet[id][netID])})
		}
		return rg
	}
	for _, nd := range b.nodes {
		st := s.stateFor(b, nd)
		for _, g := range s.groups {
			st.L2.SecurityGroups = append(st.L2.SecurityGroups, g)
			for _, r := range g.Rules {
				if r.RemoteGroupID != "" {
					st.L2.RemoteGroups = append(st.L2.RemoteGroups, remoteGroup(r.RemoteGroupID))
				}
			}
		}
		nd.sync(st)
	}
}

func intp(n int) *int { return &n }

// defaultGroup has Neutron's default rules: all egress, ingress from the
// group's own members.
func defaultGroup(id string) msg.SecurityGroup {
	return msg.SecurityGroup{ID: id, Stateful: true, Rules: []msg.SecurityGroupRule{
		{ID: id + "-e4", Direction: msg.DirectionEgress, Ethertype: msg.EthertypeIPv4},
		{ID: id + "-e6", Direction: msg.DirectionEgress, Ethertype: msg.EthertypeIPv6},
		{ID: id + "-i4", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4, RemoteGroupID: id},
		{ID: id + "-i6", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv6, RemoteGroupID: id},
	}}
}

func securePort(id, network, mac, ip string, groups ...string) msg.Port {
	p := port(id, network, mac, ip)
	p.PortSecurityEnabled = true
	p.SecurityGroups = groups
	return p
}

// noPing checks that from cannot ping ip.
func noPing(t *testing.T, from *vm, ip string) {
	t.Helper()
	if got := from.ping(ip, 3, "0.2"); got != 0 {
		t.Errorf("%s → %s: %d of 3 pings answered, want none", from.name, ip, got)
	}
}

func tcpWorks(from *vm, to netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return from.TCPEcho(ctx, to, []byte("hello"))
}

func TestIntegrationFirewallGroupsRulesAndRemoteGroups(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	s := secured{
		placement: placement{
			networks: []msg.Network{network("net", "vxlan", 100)},
			ports: map[*node][]msg.Port{
				n1: {securePort("a", "net", "fa:16:3e:00:00:0a", "10.0.0.10/24", "default"), securePort("c", "net", "fa:16:3e:00:00:0c", "10.0.0.12/24", "other")},
				n2: {securePort("b", "net", "fa:16:3e:00:00:0b", "10.0.0.11/24", "default"), port("o", "net", "fa:16:3e:00:00:0f", "10.0.0.15/24")},
			},
		},
		groups: map[string]msg.SecurityGroup{"default": defaultGroup("default"), "other": defaultGroup("other")},
	}
	s.apply(b)
	b.startRoles()
	vms := b.plugVMs(t, s.ports)
	a, bv, c, o := vms["a"], vms["b"], vms["c"], vms["o"]

	// Default group: same-group VMs on two nodes talk.
	b.waitPing(a, bv.addr())
	b.waitPing(bv, a.addr())
	// Another group's VM on the same node as a cannot reach a or b; a's
	// egress to it leaves, but c's ingress does not let it in either.
	noPing(t, c, a.addr())
	noPing(t, c, bv.addr())
	noPing(t, a, c.addr())
	// Egress to a port without port security works and its replies come
	// back; its new connections towards a are dropped.
	b.waitPing(a, o.addr())
	noPing(t, o, a.addr())

	// A TCP port opened by a rule becomes reachable from another group.
	echo := a.ServeTCPEcho(t, 5001)
	if err := tcpWorks(c, echo); err == nil {
		t.Fatalf("c reached a's TCP 5001 before any rule opened it")
	}
	open := msg.SecurityGroupRule{ID: "tcp5001", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4,
		Protocol: intp(6), PortRangeMin: intp(5000), PortRangeMax: intp(5010), RemoteIPPrefix: "0.0.0.0/0"}
	g := defaultGroup("default")
	g.Rules = append(g.Rules, open)
	s.groups["default"] = g
	s.apply(b)
	waitFor(t, func() bool { return tcpWorks(c, echo) == nil }, "c reaches a's TCP 5001 after the rule")
	if err := tcpWorks(o, echo); err != nil {
		t.Errorf("o (other node) → a's TCP 5001 with the rule: %v", err)
	}
	// A closed port stays closed.
	closed := a.ServeTCPEcho(t, 6001)
	if err := tcpWorks(c, closed); err == nil {
		t.Errorf("c reached a's TCP 6001, which no rule opens")
	}
	// Removing the rule blocks new connections.
	s.groups["default"] = defaultGroup("default")
	s.apply(b)
	waitFor(t, func() bool { return tcpWorks(c, echo) != nil }, "c no longer reaches a's TCP 5001")

	// remote_group membership: c joins the default group and gains access
	// without any rule change; leaving takes it away again.
	s.ports[n1][1].SecurityGroups = []string{"other", "default"}
	s.apply(b)
	waitFor(t, func() bool { return c.ping(a.addr(), 1, "0.2") == 1 }, "c (now in default) pings a")
	b.waitPing(c, bv.addr())
	s.ports[n1][1].SecurityGroups = []string{"other"}
	s.apply(b)
	waitFor(t, func() bool { return c.ping(bv.addr(), 1, "0.2") == 0 }, "c (out of default) cannot ping b")
}

// TestIntegrationFirewallRemoteGroupMemberOnItsOwnNetwork: red and blue
// are both 10.0.0.0/24 on one node. The default group (ingress from its
// members) has a member on red at 10.0.0.5 and target and peer on blue; a
// stranger on blue, not in the group, has 10.0.0.5 too. The peer reaches
// the target, the stranger does not: 10.0.0.5 is a member only on red.
// A member on green (10.1.0.0/24), routed to blue by a namespace router,
// still reaches the target. With the members' addresses alone (a server
// from before the members' networks) the stranger gets in: the gap this
// closes.
func TestIntegrationFirewallRemoteGroupMemberOnItsOwnNetwork(t *testing.T) {
	b := newBed(t, 1)
	n1 := b.nodes[0]
	s := secured{
		placement: placement{
			networks: []msg.Network{network("net-red", "vxlan", 100), network("net-blue", "vxlan", 200), network("net-green", "vxlan", 300)},
			ports: map[*node][]msg.Port{n1: {
				securePort("member", "net-red", "fa:16:3e:00:01:05", "10.0.0.5/24", "default"),
				securePort("target", "net-blue", "fa:16:3e:00:02:0a", "10.0.0.10/24", "default"),
				securePort("peer", "net-blue", "fa:16:3e:00:02:0b", "10.0.0.11/24", "default"),
				securePort("stranger", "net-blue", "fa:16:3e:00:02:05", "10.0.0.5/24", "other"),
				securePort("far", "net-green", "fa:16:3e:00:03:07", "10.1.0.7/24", "default"),
				// The router's interfaces, trusted like Neutron's.
				port("rblue", "net-blue", "fa:16:3e:00:02:01", "10.0.0.1/24"),
				port("rgreen", "net-green", "fa:16:3e:00:03:01", "10.1.0.1/24"),
			}},
		},
		groups: map[string]msg.SecurityGroup{"default": defaultGroup("default"), "other": defaultGroup("other")},
		cidrs:  map[string][]string{"net-red": {"10.0.0.0/24"}, "net-blue": {"10.0.0.0/24"}, "net-green": {"10.1.0.0/24"}},
	}
	s.apply(b)
	b.startRoles()
	vms := b.plugVMs(t, s.ports)
	target, peer, stranger, far := vms["target"], vms["peer"], vms["stranger"], vms["far"]

	b.waitPing(peer, target.addr())
	noPing(t, stranger, target.addr())

	// rgreen's namespace becomes the router: rblue's interface moves in.
	router, rblue := vms["rgreen"], vms["rblue"]
	run := func(ns string, prog string, args ...string) {
		t.Helper()
		if out, err := netns.Command(ns, prog, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %s %s: %v: %s", ns, prog, strings.Join(args, " "), err, out)
		}
	}
	run(rblue.Netns, "ip", "link", "set", "eth0", "down")
	run(rblue.Netns, "ip", "link", "set", "eth0", "name", "eth1", "netns", router.Netns)
	run(router.Netns, "ip", "addr", "add", "10.0.0.1/24", "dev", "eth1")
	run(router.Netns, "ip", "link", "set", "eth1", "up")
	run(router.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(target.Netns, "ip", "route", "add", "10.1.0.0/24", "via", "10.0.0.1")
	run(far.Netns, "ip", "route", "add", "10.0.0.0/24", "via", "10.1.0.1")
	b.waitPing(far, target.addr())

	s.cidrs = nil
	s.apply(b)
	waitFor(t, func() bool { return stranger.ping(target.addr(), 1, "0.2") == 1 },
		"the stranger reaches the target when the members' networks are not known")
}

func TestIntegrationPortSecurity(t *testing.T) {
	b := newBed(t, 2)
	n1, n2 := b.nodes[0], b.nodes[1]
	g := defaultGroup("default")
	// Everyone may ping everyone: the test is about spoofing.
	g.Rules = append(g.Rules, msg.SecurityGroupRule{ID: "any", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4})
	pairPort := securePort("p", "net", "fa:16:3e:00:00:0b", "10.0.0.11/24", "default")
	pairPort.AllowedAddressPairs = []msg.AddressPair{{IPAddress: "10.0.0.100/30", MACAddress: "fa:16:3e:00:00:0b"}}
	open := port("u", "net", "fa:16:3e:00:00:0d", "10.0.0.13/24") // port security off
	s := secured{
		placement: placement{
			networks: []msg.Network{network("net", "vxlan", 100)},
			ports: map[*node][]msg.Port{
				n1: {securePort("a", "net", "fa:16:3e:00:00:0a", "10.0.0.10/24", "default"), open},
				n2: {pairPort, securePort("t", "net", "fa:16:3e:00:00:0c", "10.0.0.12/24", "default")},
			},
		},
		groups: map[string]msg.SecurityGroup{"default": g},
	}
	s.apply(b)
	b.startRoles()
	vms := b.plugVMs(t, s.ports)
	a, u, p, tgt := vms["a"], vms["u"], vms["p"], vms["t"]
	b.waitPing(a, tgt.addr())
	b.waitPing(u, tgt.addr())

	ip := func(v *vm, args ...string) {
		t.Helper()
		if out, err := netns.Command(v.Netns, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: ip %s: %v: %s", v.name, strings.Join(args, " "), err, out)
		}
	}
	pingFrom := func(v *vm, src, dst string) int { return v.pingFrom(src, dst, 3, "0.2") }

	// Spoofed source IP (and its ARP, which carries the spoofed address):
	// nothing of it reaches the target.
	capture := b.tb.Capture(t, tgt.Netns, "eth0", "")
	ip(a, "addr", "add", "10.0.0.50/24", "dev", "eth0")
	if got := pingFrom(a, "10.0.0.50", tgt.addr()); got != 0 {
		t.Errorf("ping from a spoofed source: %d answered", got)
	}
	// A rogue DHCP server's offer (UDP 67 → 68, broadcast) is dropped.
	script := `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)
s.bind(("10.0.0.10",67))
for i in range(3): s.sendto(b"rogue-offer",("255.255.255.255",68))
`
	if out, err := netns.Command(a.Netns, "python3", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("rogue DHCP sender: %v: %s", err, out)
	}
	b.waitPing(a, tgt.addr()) // the capture is listening and a still works
	time.Sleep(200 * time.Millisecond)
	text := strings.Join(capture.Stop(), "\n")
	if strings.Contains(text, "10.0.0.50") {
		t.Errorf("the target saw the spoofed address 10.0.0.50 (IP or ARP):\n%s", text)
	}
	if strings.Contains(text, ".67 >") || strings.Contains(text, "bootps") {
		t.Errorf("the target saw the rogue DHCP offer:\n%s", text)
	}
	ip(a, "addr", "del", "10.0.0.50/24", "dev", "eth0")

	// A broadcast from a legitimate source reaches a firewalled VM: its
	// copy is tracked inside the flood's clone like unicast.
	capture = b.tb.Capture(t, tgt.Netns, "eth0", "icmp and dst host 10.0.0.255")
	netns.Command(a.Netns, "ping", "-b", "-n", "-c", "3", "-i", "0.2", "-W", "1", "10.0.0.255").Run()
	if lines := capture.Stop(); len(lines) == 0 {
		t.Errorf("the target saw none of a's broadcast pings")
	}

	// Spoofed MAC: nothing passes.
	ip(a, "link", "set", "eth0", "address", "fa:16:3e:00:00:99")
	noPing(t, a, tgt.addr())
	ip(a, "link", "set", "eth0", "address", a.mac)
	ip(a, "neigh", "flush", "all")
	b.waitPing(a, tgt.addr())

	// An address of the allowed address pair's CIDR passes.
	ip(p, "addr", "add", "10.0.0.101/24", "dev", "eth0")
	if got := pingFrom(p, "10.0.0.101", tgt.addr()); got == 0 {
		t.Errorf("ping from the allowed address pair 10.0.0.101: none answered")
	}
	// One outside it does not.
	ip(p, "addr", "add", "10.0.0.104/24", "dev", "eth0")
	if got := pingFrom(p, "10.0.0.104", tgt.addr()); got != 0 {
		t.Errorf("ping from 10.0.0.104, outside the pair: %d answered", got)
	}

	// Port security off: a spoofed source passes.
	ip(u, "addr", "add", "10.0.0.60/24", "dev", "eth0")
	if got := pingFrom(u, "10.0.0.60", tgt.addr()); got == 0 {
		t.Errorf("ping from a spoofed source of a port without port security: none answered")
	}
}
