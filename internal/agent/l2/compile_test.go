package l2

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// Port numbers of the scenario: br-int has patch-tun (1), int-br-phys (2)
// and VIFs from 10; br-tun has patch-int (1) and tunnels from 5; br-phys
// has phy-br-phys (1).
const (
	runID        = 0x1234
	ofPatchInt   = 1
	ofIntPhys    = 2
	ofPatchTun   = 1
	ofPhysPatch  = 1
	ofTunnelB    = 5 // vxlan to node B, 192.0.2.2
	ofTunnelC    = 6 // vxlan to node C, 192.0.2.3
	ofGRETunnelB = 7
)

func scenario() Wiring {
	return Wiring{
		Run:       runID,
		IntBridge: "br-int", TunBridge: "br-tun",
		PatchInt: ofPatchInt, PatchTun: ofPatchTun,
		Physical: map[string]PhysicalBridge{"physnet1": {Bridge: "br-physnet1", IntPort: ofIntPhys, PhysPort: ofPhysPatch}},
		Tunnels: map[TunnelKey]int{
			{msg.NetworkTypeVXLAN, "192.0.2.2"}: ofTunnelB,
			{msg.NetworkTypeVXLAN, "192.0.2.3"}: ofTunnelC,
			{msg.NetworkTypeGRE, "192.0.2.2"}:   ofGRETunnelB,
		},
		Networks: []LocalNetwork{
			{
				ID: "net-red", VLAN: 1, Segment: msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 100},
				Ports: []LocalPort{
					{ID: "red-1", OFPort: 10, MACs: []string{"fa:16:3e:00:00:01"}},
					{ID: "red-2", OFPort: 11, MACs: []string{"FA:16:3E:00:00:02"}},
				},
				FloodTo: []string{"192.0.2.2"},
				Remote:  []msg.FDBEntry{{MAC: "fa:16:3e:00:00:b1", IPs: []string{"10.0.0.21", "2001:db8::21"}, TunnelIP: "192.0.2.2", PortID: "red-b1"}},
			},
			{
				// Same CIDR as red, another tunnel id: isolated by its VLAN.
				ID: "net-blue", VLAN: 2, Segment: msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 200},
				Ports:   []LocalPort{{ID: "blue-1", OFPort: 12, MACs: []string{"fa:16:3e:00:00:03"}}},
				FloodTo: []string{"192.0.2.3"},
				Remote:  []msg.FDBEntry{{MAC: "fa:16:3e:00:00:c1", IPs: []string{"10.0.0.21"}, TunnelIP: "192.0.2.3", PortID: "blue-c1"}},
			},
			{
				ID: "net-vlan", VLAN: 3, Segment: msg.Segment{NetworkType: msg.NetworkTypeVLAN, PhysicalNetwork: "physnet1", SegmentationID: 1001},
				Ports: []LocalPort{{ID: "vlan-1", OFPort: 13, MACs: []string{"fa:16:3e:00:00:04"}}},
			},
			{
				ID: "net-flat", VLAN: 4, Segment: msg.Segment{NetworkType: msg.NetworkTypeFlat, PhysicalNetwork: "physnet1"},
				Ports: []LocalPort{{ID: "flat-1", OFPort: 14, MACs: []string{"fa:16:3e:00:00:05"}}},
			},
		},
		Isolated: []int{20},
	}
}

// find returns the flow of a bridge in table t whose match is exactly match.
func find(t *testing.T, c Compiled, bridge string, table Table, match string) Flow {
	t.Helper()
	f, ok := lookup(c, bridge, table, match)
	if !ok {
		t.Fatalf("%s: no flow in table %d matching %q; flows:\n%s", bridge, table, match, dump(c.Bridges[bridge]))
	}
	return f
}

// wantActions checks that the flow find returns has exactly actions.
func wantActions(t *testing.T, c Compiled, bridge string, table Table, match, actions string) {
	t.Helper()
	if f := find(t, c, bridge, table, match); f.Actions != actions {
		t.Errorf("%s table %d, match %q: actions %q, want %q", bridge, table, match, f.Actions, actions)
	}
}

func has(c Compiled, bridge string, table Table, match string) bool {
	_, ok := lookup(c, bridge, table, match)
	return ok
}

func lookup(c Compiled, bridge string, table Table, match string) (Flow, bool) {
	for _, f := range c.Bridges[bridge] {
		if f.Table == table && f.Match == match {
			return f, true
		}
	}
	return Flow{}, false
}

func dump(s FlowSet) string {
	var b strings.Builder
	for _, f := range s.Sorted() {
		b.WriteString(f.String())
		b.WriteString("\n")
	}
	return b.String()
}

func actionsOf(f Flow) []string {
	// Split at top-level commas only (clone(...) holds commas).
	var out []string
	depth, start := 0, 0
	for i, r := range f.Actions {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, f.Actions[start:i])
				start = i + 1
			}
		}
	}
	return append(out, f.Actions[start:])
}

func TestCompileVIFGetsItsNetworksLocalVLAN(t *testing.T) {
	c := Compile(scenario())
	if len(c.Problems) > 0 {
		t.Fatalf("problems: %v", c.Problems)
	}
	for port, vlan := range map[string]string{"10": "1", "11": "1", "12": "2", "13": "3", "14": "4"} {
		f := find(t, c, "br-int", IntClassify, "in_port="+port+",vlan_tci=0x0000/0x1fff")
		acts := actionsOf(f)
		if acts[0] != "mod_vlan_vid:"+vlan || acts[len(acts)-1] != gotoTable(IntSpoofGuard) {
			t.Errorf("port %s: actions %q, want local VLAN %s then the spoof-guard hook", port, f.Actions, vlan)
		}
	}
	// Anything else entering br-int is dropped; the isolated VIF explicitly.
	wantActions(t, c, "br-int", IntClassify, "", "drop")
	wantActions(t, c, "br-int", IntClassify, "in_port=20", "drop")
}

func TestCompileLocalUnicastPassesIngressHookBeforeOutput(t *testing.T) {
	c := Compile(scenario())
	// MACs are normalised to lower case.
	wantActions(t, c, "br-int", IntForward, "dl_vlan=1,dl_dst=fa:16:3e:00:00:02", "load:0xb->NXM_NX_REG5[],goto_table:40")
	// The hooks pass everything on until a firewall fills them.
	for table, next := range map[Table]Table{IntSpoofGuard: IntEgressFirewall, IntEgressFirewall: IntForward, IntIngressFirewall: IntOutput} {
		wantActions(t, c, "br-int", table, "", gotoTable(next))
	}
	wantActions(t, c, "br-int", IntOutput, "reg5=11,vlan_tci=0x1000/0x1000", "strip_vlan,output:11")
	// The same MAC on another network's VLAN is not delivered there.
	if has(c, "br-int", IntForward, "dl_vlan=2,dl_dst=fa:16:3e:00:00:02") {
		t.Error("red-2's MAC is switched on blue's VLAN")
	}
}

func TestCompileFloodStaysInTheNetwork(t *testing.T) {
	c := Compile(scenario())
	f := find(t, c, "br-int", IntForward, "dl_vlan=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00")
	acts := actionsOf(f)
	want := []string{
		"output:1", // patch to br-tun, still tagged
		"clone(load:0xa->NXM_NX_REG5[],resubmit(,40))",
		"clone(load:0xb->NXM_NX_REG5[],resubmit(,40))",
	}
	if !reflect.DeepEqual(acts, want) {
		t.Errorf("red flood: %q, want %q", acts, want)
	}
	// Unknown unicast leaves by the uplink only.
	wantActions(t, c, "br-int", IntForward, "dl_vlan=1", "output:1")
	// The VLAN network floods to the physical bridge's patch.
	f = find(t, c, "br-int", IntForward, "dl_vlan=3,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00")
	if acts := actionsOf(f); acts[0] != "output:2" || len(acts) != 2 {
		t.Errorf("vlan flood: %q", f.Actions)
	}
}

func TestCompileTunnelMapping(t *testing.T) {
	c := Compile(scenario())
	// From br-int: tunnel ports are classified by their type.
	wantActions(t, c, "br-tun", TunClassify, "in_port=5", gotoTable(TunFromVXLAN))
	wantActions(t, c, "br-tun", TunClassify, "in_port=7", gotoTable(TunFromGRE))
	// Tunnel id → local VLAN, one per network.
	wantActions(t, c, "br-tun", TunFromVXLAN, "tun_id=0x64", "mod_vlan_vid:1,output:1")
	wantActions(t, c, "br-tun", TunFromVXLAN, "tun_id=0xc8", "mod_vlan_vid:2,output:1")
	// A remote MAC goes to the tunnel of the node that holds it.
	wantActions(t, c, "br-tun", TunUnicast, "dl_vlan=1,dl_dst=fa:16:3e:00:00:b1", "strip_vlan,set_tunnel:0x64,output:5")
	wantActions(t, c, "br-tun", TunUnicast, "dl_vlan=2,dl_dst=fa:16:3e:00:00:c1", "strip_vlan,set_tunnel:0xc8,output:6")
	// Flooding only to nodes with ports on the network.
	wantActions(t, c, "br-tun", TunFlood, "dl_vlan=1", "strip_vlan,set_tunnel:0x64,output:5")
	wantActions(t, c, "br-tun", TunFlood, "dl_vlan=2", "strip_vlan,set_tunnel:0xc8,output:6")
}

func TestCompileARPResponder(t *testing.T) {
	c := Compile(scenario())
	f := find(t, c, "br-tun", TunARPResponder, "arp,dl_vlan=1,arp_op=1,arp_tpa=10.0.0.21")
	acts := actionsOf(f)
	for _, want := range []string{
		"mod_dl_src:fa:16:3e:00:00:b1",
		"load:0x2->NXM_OF_ARP_OP[]",
		"load:0xfa163e0000b1->NXM_NX_ARP_SHA[]",
		"load:0xa000015->NXM_OF_ARP_SPA[]",
		"IN_PORT",
	} {
		if !slices.Contains(acts, want) {
			t.Errorf("ARP reply lacks %q: %q", want, f.Actions)
		}
	}
	// Blue has the same address on another port: its own answer, on its VLAN.
	f = find(t, c, "br-tun", TunARPResponder, "arp,dl_vlan=2,arp_op=1,arp_tpa=10.0.0.21")
	if !slices.Contains(actionsOf(f), "mod_dl_src:fa:16:3e:00:00:c1") {
		t.Errorf("blue ARP reply: %q", f.Actions)
	}
	// Broadcast ARP from br-int meets the responder first.
	wantActions(t, c, "br-tun", TunFromInt, "arp,dl_dst=ff:ff:ff:ff:ff:ff", gotoTable(TunARPResponder))
	// No IPv6 address in an ARP answer.
	for _, f := range c.Bridges["br-tun"] {
		if strings.Contains(f.Match, "2001:db8") {
			t.Errorf("IPv6 in an ARP flow: %s", f)
		}
	}
}

func TestCompileProviderTranslation(t *testing.T) {
	c := Compile(scenario())
	// VLAN: local 3 ↔ provider 1001, both ways.
	wantActions(t, c, "br-physnet1", PhysEgress, "in_port=1,dl_vlan=3", "mod_vlan_vid:1001,NORMAL")
	wantActions(t, c, "br-int", IntClassify, "in_port=2,dl_vlan=1001", "mod_vlan_vid:3,goto_table:30")
	// Flat: local 4 ↔ untagged.
	wantActions(t, c, "br-physnet1", PhysEgress, "in_port=1,dl_vlan=4", "strip_vlan,NORMAL")
	wantActions(t, c, "br-int", IntClassify, "in_port=2,vlan_tci=0x0000/0x1fff", "mod_vlan_vid:4,goto_table:30")
	// Other local VLANs never leave through the physical bridge.
	wantActions(t, c, "br-physnet1", PhysEgress, "in_port=1", "drop")
	// Tunnelled networks have nothing on the physical bridge.
	for _, f := range c.Bridges["br-physnet1"] {
		if strings.Contains(f.Match, "dl_vlan=1,") || strings.HasSuffix(f.Match, "dl_vlan=1") {
			t.Errorf("red on the physical bridge: %s", f)
		}
	}
}

func TestCompileCookiesAndDeterminism(t *testing.T) {
	a, b := Compile(scenario()), Compile(scenario())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same wiring compiled to different flows")
	}
	for bridge, set := range a.Bridges {
		for _, f := range set {
			if f.Cookie != Cookie(runID, f.Table) || CookieRun(f.Cookie) != runID {
				t.Errorf("%s: %s has cookie %#x", bridge, f, f.Cookie)
			}
		}
	}
}

func TestCompileRemovingAPortRemovesItsFlows(t *testing.T) {
	before := Compile(scenario())
	w := scenario()
	w.Networks[0].Ports = w.Networks[0].Ports[:1] // red-2 (port 11) unplugged
	after := Compile(w)
	add, del := after.Bridges["br-int"].Diff(before.Bridges["br-int"])
	for _, f := range del {
		if !strings.Contains(f.Match, "=11") && !strings.Contains(f.Match, "fa:16:3e:00:00:02") {
			t.Errorf("deleted a flow not about red-2: %s", f)
		}
	}
	if len(del) != 3 { // classify, forward, output
		t.Errorf("deleted %d flows, want 3:\n%v", len(del), del)
	}
	if len(add) != 1 || !strings.Contains(add[0].Match, "01:00:00:00:00:00") || strings.Contains(add[0].Actions, "0xb->") {
		t.Errorf("want only red's flood list rewritten without red-2, got %v", add)
	}
	if add, del := after.Bridges["br-tun"].Diff(before.Bridges["br-tun"]); len(add)+len(del) != 0 {
		t.Errorf("br-tun changed: +%v -%v", add, del)
	}
}

func TestCompileRemovingANetworkRemovesItsTunnelFlows(t *testing.T) {
	before := Compile(scenario())
	w := scenario()
	w.Networks = w.Networks[1:] // red gone
	after := Compile(w)
	_, del := after.Bridges["br-tun"].Diff(before.Bridges["br-tun"])
	if len(del) != 4 { // tun_id mapping, unicast, ARP, flood
		t.Errorf("deleted %d br-tun flows, want 4: %v", len(del), del)
	}
	for bridge, set := range after.Bridges {
		for _, f := range set {
			if strings.Contains(f.Match, "dl_vlan=1,") || strings.HasSuffix(f.Match, "dl_vlan=1") || strings.Contains(f.Match, "tun_id=0x64") {
				t.Errorf("%s: red's flow left behind: %s", bridge, f)
			}
		}
	}
}

func TestCompileWithoutUplinkOrTunnelPortYet(t *testing.T) {
	w := scenario()
	w.PatchInt = 0                                                  // patch not numbered yet
	delete(w.Tunnels, TunnelKey{msg.NetworkTypeVXLAN, "192.0.2.2"}) // tunnel to B not made yet
	c := Compile(w)
	if len(c.Problems) > 0 {
		t.Fatalf("problems: %v", c.Problems)
	}
	f := find(t, c, "br-int", IntForward, "dl_vlan=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00")
	if strings.Contains(f.Actions, "output:") {
		t.Errorf("flood to a missing uplink: %q", f.Actions)
	}
	if has(c, "br-int", IntForward, "dl_vlan=1") || has(c, "br-tun", TunFlood, "dl_vlan=1") || has(c, "br-tun", TunUnicast, "dl_vlan=1,dl_dst=fa:16:3e:00:00:b1") {
		t.Error("flows through a missing port")
	}
	// Local switching still works.
	find(t, c, "br-int", IntForward, "dl_vlan=1,dl_dst=fa:16:3e:00:00:02")
}

func TestCompileProblems(t *testing.T) {
	w := scenario()
	w.Networks = append(w.Networks,
		LocalNetwork{ID: "no-mapping", VLAN: 5, Segment: msg.Segment{NetworkType: msg.NetworkTypeVLAN, PhysicalNetwork: "physnet9", SegmentationID: 7},
			Ports: []LocalPort{{ID: "x", OFPort: 30, MACs: []string{"fa:16:3e:00:00:30"}}}},
		LocalNetwork{ID: "bad-vlan", VLAN: 4095, Segment: msg.Segment{NetworkType: msg.NetworkTypeVXLAN, SegmentationID: 9}},
		LocalNetwork{ID: "local", VLAN: 6, Segment: msg.Segment{NetworkType: msg.NetworkTypeLocal}},
	)
	w.Networks[0].Ports = append(w.Networks[0].Ports,
		LocalPort{ID: "bad-mac", OFPort: 31, MACs: []string{"not-a-mac"}},
		LocalPort{ID: "dup-mac", OFPort: 32, MACs: []string{"fa:16:3e:00:00:01"}})
	c := Compile(w)
	text := strings.Join(c.Problems, "\n")
	for _, want := range []string{`"physnet9" has no bridge mapping`, "local VLAN 4095", `network type "local"`, `"not-a-mac"`, "given twice"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	if has(c, "br-int", IntClassify, "in_port=30,vlan_tci=0x0000/0x1fff") {
		t.Error("port of an unmappable network admitted")
	}
	// The first owner of a duplicated MAC keeps it.
	if f := find(t, c, "br-int", IntForward, "dl_vlan=1,dl_dst=fa:16:3e:00:00:01"); !strings.Contains(f.Actions, "0xa->") {
		t.Errorf("duplicate MAC taken over: %q", f.Actions)
	}
}

func TestFlowString(t *testing.T) {
	f := Flow{Table: 30, Priority: 20, Match: "dl_vlan=1,dl_dst=fa:16:3e:00:00:01", Actions: "drop", Cookie: Cookie(0xab, 30)}
	if got, want := f.String(), "table=30,priority=20,cookie=0xab001e,dl_vlan=1,dl_dst=fa:16:3e:00:00:01,actions=drop"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if CookieRun(f.Cookie) != 0xab || f.Cookie&^CookieRunMask != 30 {
		t.Errorf("cookie %#x does not split into run 0xab and table 30", f.Cookie)
	}
}
