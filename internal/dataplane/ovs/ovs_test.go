package ovs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// startOVS starts private OVS daemons in a namespace of their own (so the
// userspace datapath's tap devices never appear on the host) and stops them
// and removes the namespace when the test ends.
func startOVS(t testing.TB) (*ovs.Daemons, string) {
	t.Helper()
	testenv.RequireOVS(t)
	b := make([]byte, 3)
	rand.Read(b)
	ns := "nt-ovs-" + hex.EncodeToString(b)
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := ovs.StartDaemons(ctx, ovs.Options{Dir: t.TempDir(), Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d, ns
}

func connect(t testing.TB, d *ovs.Daemons) *ovs.Client {
	t.Helper()
	c, err := ovs.Connect(context.Background(), d.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var intBridge = ovs.Bridge{
	Name: "br-int", DatapathType: "netdev", FailMode: "secure",
	Protocols: []string{"OpenFlow13", "OpenFlow14"},
}

func TestDaemonsStartDetectRestartStop(t *testing.T) {
	d, ns := startOVS(t)
	ctx := ctxFor(t)
	dbPID, vsPID := d.PIDs()
	if dbPID == 0 || vsPID == 0 {
		t.Fatalf("PIDs = %d, %d", dbPID, vsPID)
	}
	inst, ok := ovs.DetectIn(d.Dir)
	if !ok || inst.DB != d.DB || inst.VSwitchdCtl != d.VSwitchdCtl {
		t.Fatalf("DetectIn(%s) = %+v, %v; want %+v", d.Dir, inst, ok, d.Instance)
	}
	if out, err := d.Appctl(ctx, "version"); err != nil || !strings.Contains(out, "ovs-vswitchd") {
		t.Fatalf("appctl version: %q, %v", out, err)
	}

	c := connect(t, d)
	must(t, c.EnsureBridge(ctx, intBridge))
	must(t, c.WaitVSwitchd(ctx))
	if _, err := os.Stat(d.BridgeSocket("br-int")); err != nil {
		t.Fatalf("no management socket in the private run directory: %v", err)
	}
	// The bridge's internal port is a tap device in the daemons' namespace.
	h, err := link.Open(ns)
	must(t, err)
	defer h.Close()
	if !h.Exists("br-int") {
		t.Fatal("br-int's internal port is not in the namespace")
	}
	of := d.OpenFlow("br-int")
	must(t, of.AddFlows(ctx, ovs.Flow{Table: 0, Priority: 1, Cookie: 7, Actions: "NORMAL"}))

	lost := of.WatchFlowLoss(ctx)
	expectLoss := func(why string) {
		t.Helper()
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("no flow-loss report %s", why)
		}
	}
	expectLoss("when the watch starts")
	select {
	case <-lost:
		t.Fatal("flow-loss report while nothing happened")
	case <-time.After(300 * time.Millisecond):
	}

	must(t, d.RestartVSwitchd(ctx))
	expectLoss("after ovs-vswitchd restarted")
	if _, vs := d.PIDs(); vs == vsPID || vs == 0 {
		t.Fatalf("ovs-vswitchd pid after restart: %d (was %d)", vs, vsPID)
	}
	flows, err := of.DumpFlows(ctx, "")
	must(t, err)
	if len(flows) != 0 {
		t.Fatalf("flows survived an ovs-vswitchd restart: %v", flows)
	}
	if _, err := c.Bridge("br-int"); err != nil {
		t.Fatalf("bridge lost from OVSDB by a restart: %v", err)
	}
	// (Had ovs-vswitchd seen the deletion and the creation in one pass,
	// it would have kept the bridge and its flows.)
	must(t, c.DeleteBridge(ctx, "br-int"))
	must(t, c.WaitVSwitchd(ctx))
	must(t, c.EnsureBridge(ctx, intBridge))
	expectLoss("after the bridge was made again")

	_, vsPID = d.PIDs()
	must(t, d.Stop())
	for _, pid := range []int{dbPID, vsPID} {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop: %v", pid, err)
		}
	}
	if _, ok := ovs.DetectIn(d.Dir); ok {
		t.Error("DetectIn finds stopped daemons")
	}
	must(t, d.Stop()) // twice is fine

	// A second start on the same directory resumes the database.
	d2, err := ovs.StartDaemons(ctx, ovs.Options{Dir: d.Dir, Netns: ns})
	must(t, err)
	defer d2.Stop()
	c2 := connect(t, d2)
	if _, err := c2.Bridge("br-int"); err != nil {
		t.Fatalf("bridge lost across a daemon restart: %v", err)
	}
}

func TestStartDaemonsErrors(t *testing.T) {
	testenv.RequireOVS(t)
	if _, err := ovs.StartDaemons(context.Background(), ovs.Options{}); err == nil {
		t.Error("StartDaemons without a directory succeeded")
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if _, err := ovs.StartDaemons(context.Background(), ovs.Options{Dir: long}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("StartDaemons in a too long directory: %v", err)
	}
	if _, err := ovs.StartDaemons(context.Background(), ovs.Options{Dir: t.TempDir(), Netns: "nt-no-such-namespace"}); err == nil {
		t.Error("StartDaemons in a missing namespace succeeded")
	}
}

// nextEvent waits for the next interface event, or fails the test.
func nextEvent(t *testing.T, events <-chan ovs.InterfaceEvent) ovs.InterfaceEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no interface event within 10s")
	}
	panic("unreachable")
}

// eventFor skips events about other interfaces.
func eventFor(t *testing.T, events <-chan ovs.InterfaceEvent, name string) ovs.InterfaceEvent {
	t.Helper()
	for {
		if ev := nextEvent(t, events); ev.Interface.Name == name {
			return ev
		}
	}
}

func TestOVSDBBridgesPortsAndEvents(t *testing.T) {
	d, ns := startOVS(t)
	ctx := ctxFor(t)
	c := connect(t, d)

	must(t, c.EnsureBridge(ctx, intBridge))
	must(t, c.EnsureBridge(ctx, intBridge)) // idempotent
	must(t, c.EnsureBridge(ctx, ovs.Bridge{
		Name: "br-int", DatapathType: "netdev", ExternalIDs: map[string]string{"owner": "neutrino", "x": "1"},
	}))
	must(t, c.EnsureBridge(ctx, ovs.Bridge{Name: "br-int", DatapathType: "netdev", ExternalIDs: map[string]string{"x": ""}}))
	br, err := c.Bridge("br-int")
	must(t, err)
	// FailMode was left out of the last two calls, so it stays; Protocols
	// were given as none.
	if br.DatapathType != "netdev" || len(br.Protocols) != 0 || br.FailMode != "secure" || !maps.Equal(br.ExternalIDs, map[string]string{"owner": "neutrino"}) || !slices.Equal(br.Ports, []string{"br-int"}) {
		t.Fatalf("br-int = %+v", br)
	}
	must(t, c.EnsureBridge(ctx, intBridge))
	must(t, c.EnsureBridge(ctx, ovs.Bridge{Name: "br-tun", DatapathType: "netdev", FailMode: "secure", Protocols: intBridge.Protocols}))
	if got := c.BridgeNames(); !slices.Equal(got, []string{"br-int", "br-tun"}) {
		t.Fatalf("bridges %v", got)
	}

	events := c.WatchInterfaces(ctx)
	// Existing interfaces come first, as additions.
	seen := map[string]bool{}
	for len(seen) < 2 {
		ev := nextEvent(t, events)
		if ev.Kind != ovs.InterfaceAdded {
			t.Fatalf("initial event %v", ev.Kind)
		}
		seen[ev.Interface.Name] = true
	}
	if !seen["br-int"] || !seen["br-tun"] {
		t.Fatalf("initial events for %v", seen)
	}

	// A VIF plugged the way Nova's VIF driver plugs one.
	h, err := link.Open(ns)
	must(t, err)
	defer h.Close()
	must(t, h.AddVeth(link.Veth{Name: "tap1", PeerName: "vm1"}))
	must(t, h.SetUp("tap1"))
	vif := ovs.Port{Name: "tap1", ExternalIDs: map[string]string{
		"iface-id": "port-1", "attached-mac": "fa:16:3e:00:00:01", "iface-status": "active",
	}}
	must(t, c.EnsurePort(ctx, "br-int", vif))
	ev := eventFor(t, events, "tap1")
	if ev.Kind != ovs.InterfaceAdded || ev.Interface.IfaceID != "port-1" || ev.Interface.AttachedMAC != "fa:16:3e:00:00:01" || ev.Interface.Bridge != "br-int" {
		t.Fatalf("plug event %+v", ev)
	}
	for ev.Interface.Ofport <= 0 {
		ev = eventFor(t, events, "tap1")
		if ev.Kind != ovs.InterfaceUpdated {
			t.Fatalf("event %v before the ofport", ev.Kind)
		}
	}
	ofport, err := c.WaitOfport(ctx, "tap1")
	must(t, err)
	if ofport != ev.Interface.Ofport {
		t.Fatalf("WaitOfport %d, event ofport %d", ofport, ev.Interface.Ofport)
	}

	// Port tag, other_config and external_ids on an existing VIF.
	must(t, c.SetPortTag(ctx, "tap1", 5))
	must(t, c.SetOtherConfig(ctx, ovs.TablePort, "tap1", map[string]string{"net_uuid": "net-1"}))
	must(t, c.SetExternalIDs(ctx, ovs.TableInterface, "tap1", map[string]string{"iface-status": ""}))
	ports, err := c.Ports("br-int")
	must(t, err)
	i := slices.IndexFunc(ports, func(p ovs.PortState) bool { return p.Name == "tap1" })
	if i < 0 || ports[i].Tag != 5 || ports[i].OtherConfig["net_uuid"] != "net-1" || len(ports[i].Interfaces) != 1 ||
		ports[i].Interfaces[0].ExternalIDs["iface-status"] != "" || ports[i].Interfaces[0].IfaceID != "port-1" {
		t.Fatalf("ports of br-int: %+v", ports)
	}
	ev = eventFor(t, events, "tap1")
	if ev.Kind != ovs.InterfaceUpdated || ev.Old.ExternalIDs["iface-status"] != "active" || ev.Interface.ExternalIDs["iface-status"] != "" {
		t.Fatalf("external_ids update event %+v", ev)
	}
	if err := c.SetPortTags(ctx, map[string]int{"tap1": 7, "nope": 8}); !errors.Is(err, ovs.ErrNotFound) {
		t.Fatalf("tags with a missing port: %v", err)
	}
	if ports, _ := c.Ports("br-int"); ports[slices.IndexFunc(ports, func(p ovs.PortState) bool { return p.Name == "tap1" })].Tag != 5 {
		t.Fatal("a failed SetPortTags changed a tag")
	}
	must(t, c.SetPortTag(ctx, "tap1", 0))
	if ports, _ := c.Ports("br-int"); ports[slices.IndexFunc(ports, func(p ovs.PortState) bool { return p.Name == "tap1" })].Tag != 0 {
		t.Fatal("tag not cleared")
	}
	if err := c.SetPortTag(ctx, "tap1", 4096); err == nil {
		t.Error("tag 4096 accepted")
	}
	must(t, c.SetExternalIDs(ctx, ovs.TableOpenvSwitch, "", map[string]string{"hostname": "node1"}))
	must(t, c.SetOtherConfig(ctx, ovs.TableBridge, "br-int", map[string]string{"mac-table-size": "50000"}))
	if br, _ := c.Bridge("br-int"); br.OtherConfig["mac-table-size"] != "50000" {
		t.Fatalf("bridge other_config %v", br.OtherConfig)
	}
	if err := c.SetExternalIDs(ctx, ovs.TablePort, "nope", map[string]string{"a": "b"}); !errors.Is(err, ovs.ErrNotFound) {
		t.Fatalf("external_ids of a missing port: %v", err)
	}

	// Patch ports and a tunnel port, as the l2 agent makes them.
	must(t, c.EnsurePatchPorts(ctx, "br-int", "patch-tun", "br-tun", "patch-int"))
	must(t, c.EnsurePatchPorts(ctx, "br-int", "patch-tun", "br-tun", "patch-int"))
	vxlan := ovs.Port{Name: "vxlan-ac1e0002", Type: "vxlan", Options: map[string]string{
		"remote_ip": "172.30.0.2", "local_ip": "172.30.0.1", "key": "flow", "in_key": "flow", "out_key": "flow",
	}}
	must(t, c.EnsurePort(ctx, "br-tun", vxlan))
	for _, name := range []string{"patch-tun", "patch-int", "vxlan-ac1e0002"} {
		if _, err := c.WaitOfport(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	tunPorts, err := c.Ports("br-tun")
	must(t, err)
	var names []string
	for _, p := range tunPorts {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"br-tun", "patch-int", "vxlan-ac1e0002"}) {
		t.Fatalf("ports of br-tun: %v", names)
	}
	if iface, _ := c.Interface("patch-int"); iface.Type != "patch" || iface.Options["peer"] != "patch-tun" {
		t.Fatalf("patch-int = %+v", iface)
	}
	// Changing a port's options in place.
	vxlan.Options["remote_ip"] = "172.30.0.3"
	must(t, c.EnsurePort(ctx, "br-tun", vxlan))
	if iface, _ := c.Interface("vxlan-ac1e0002"); iface.Options["remote_ip"] != "172.30.0.3" {
		t.Fatalf("options after update: %v", iface.Options)
	}
	// Moving a port to another bridge.
	must(t, c.EnsurePort(ctx, "br-tun", vif))
	if iface, _ := c.Interface("tap1"); iface.Bridge != "br-tun" || iface.IfaceID != "port-1" {
		t.Fatalf("tap1 after the move: %+v", iface)
	}
	if err := c.EnsurePort(ctx, "br-nope", ovs.Port{Name: "x"}); !errors.Is(err, ovs.ErrNotFound) {
		t.Fatalf("port on a missing bridge: %v", err)
	}
	// A port OVS cannot add shows an error and ofport -1.
	must(t, c.EnsurePort(ctx, "br-int", ovs.Port{Name: "no-such-dev"}))
	if _, err := c.WaitOfport(ctx, "no-such-dev"); err == nil {
		t.Error("WaitOfport of a missing device succeeded")
	}
	must(t, c.DeletePort(ctx, "no-such-dev"))

	// Unplugging.
	must(t, c.DeletePort(ctx, "tap1"))
	for {
		ev = eventFor(t, events, "tap1")
		if ev.Kind == ovs.InterfaceDeleted {
			break
		}
	}
	if ev.Interface.IfaceID != "port-1" {
		t.Fatalf("delete event %+v", ev)
	}
	if _, err := c.Interface("tap1"); !errors.Is(err, ovs.ErrNotFound) {
		t.Fatalf("tap1 after delete: %v", err)
	}
	must(t, c.DeletePort(ctx, "tap1")) // missing: fine

	must(t, c.DeleteBridge(ctx, "br-tun"))
	must(t, c.DeleteBridge(ctx, "br-tun"))
	if _, err := c.Interface("patch-int"); !errors.Is(err, ovs.ErrNotFound) {
		t.Fatalf("br-tun's ports outlived it: %v", err)
	}
	if got := c.BridgeNames(); !slices.Equal(got, []string{"br-int"}) {
		t.Fatalf("bridges %v", got)
	}
	// ovs-vswitchd removes a deleted bridge's internal port device.
	must(t, c.WaitVSwitchd(ctx))
	if h.Exists("br-tun") || !h.Exists("br-int") {
		t.Fatalf("internal port devices after deleting br-tun: br-tun %v, br-int %v", h.Exists("br-tun"), h.Exists("br-int"))
	}

	// The watch ends with the connection.
	c.Close()
	select {
	case _, ok := <-events:
		for ok {
			_, ok = <-events
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still open after Close")
	}
}

func TestOpenFlowBundles(t *testing.T) {
	d, _ := startOVS(t)
	ctx := ctxFor(t)
	c := connect(t, d)
	must(t, c.EnsureBridge(ctx, intBridge))
	must(t, c.WaitVSwitchd(ctx))
	of := d.OpenFlow("br-int")

	must(t, of.AddFlows(ctx,
		ovs.Flow{Table: 0, Priority: 0, Cookie: 0x10, Actions: "resubmit(,1)"},
		ovs.Flow{Table: 1, Priority: 10, Cookie: 0x10, Match: "ip,nw_src=10.0.0.1", Actions: "drop"},
		ovs.Flow{Table: 1, Priority: 20, Cookie: 0x20, Match: "arp", Actions: "NORMAL", IdleTimeout: 300},
	))
	table1, err := of.DumpTable(ctx, 1)
	must(t, err)
	if len(table1) != 2 {
		t.Fatalf("table 1: %+v", table1)
	}
	arp := table1[slices.IndexFunc(table1, func(f ovs.Flow) bool { return f.Cookie == 0x20 })]
	if arp.Priority != 20 || arp.Match != "arp" || arp.Actions != "NORMAL" || arp.IdleTimeout != 300 || arp.Table != 1 {
		t.Fatalf("arp flow read back as %+v", arp)
	}

	// Replacing cookie 0x10's flows leaves 0x20's alone.
	must(t, of.ReplaceCookie(ctx, 0x10, []ovs.Flow{
		{Table: 0, Priority: 0, Actions: "resubmit(,1)"},
		{Table: 2, Priority: 5, Match: "in_port=1", Actions: "drop"},
	}))
	all, err := of.DumpFlows(ctx, "")
	must(t, err)
	got := map[string]uint64{}
	for _, f := range all {
		got[fmt.Sprintf("%d/%d/%s", f.Table, f.Priority, f.Match)] = f.Cookie
	}
	want := map[string]uint64{"0/0/": 0x10, "1/20/arp": 0x20, "2/5/in_port=1": 0x10}
	if !maps.Equal(got, want) {
		t.Fatalf("after ReplaceCookie: %v, want %v", got, want)
	}

	// A bundle with one bad flow changes nothing.
	err = of.Apply(ctx,
		ovs.AddFlow(ovs.Flow{Table: 3, Priority: 1, Actions: "drop"}),
		ovs.AddFlow(ovs.Flow{Table: 3, Priority: 2, Match: "no_such_field=1", Actions: "drop"}),
	)
	if err == nil {
		t.Fatal("bundle with an invalid match applied")
	}
	err = of.Apply(ctx,
		ovs.DeleteCookie(0x20, ^uint64(0)),
		ovs.AddFlow(ovs.Flow{Table: 3, Priority: 1, Actions: "group:77"}), // no such group: the switch refuses
	)
	if err == nil {
		t.Fatal("bundle referring to a missing group applied")
	}
	if after, _ := of.DumpFlows(ctx, ""); len(after) != len(all) {
		t.Fatalf("a failed bundle changed the flows: %+v", after)
	}
	if err := of.Apply(ctx, ovs.AddFlow(ovs.Flow{Match: "ip\nadd table=9 actions=drop"})); err == nil {
		t.Fatal("a line break in a flow was accepted")
	}

	// Modify keeps the flow, strict delete removes exactly one.
	must(t, of.Apply(ctx, ovs.ModifyFlow(ovs.Flow{Table: 2, Priority: 5, Cookie: 0x10, Match: "in_port=1", Actions: "output:2"})))
	must(t, of.Apply(ctx, ovs.ModifyFlow(ovs.Flow{Table: 4, Priority: 3, Match: "in_port=9", Actions: "drop"})))
	if table4, _ := of.DumpTable(ctx, 4); len(table4) != 0 {
		t.Fatalf("modifying a missing flow added it: %+v", table4)
	}
	must(t, of.Apply(ctx, ovs.DeleteFlowStrict(ovs.Flow{Table: 0, Priority: 0})))
	table2, _ := of.DumpTable(ctx, 2)
	if len(table2) != 1 || table2[0].Actions != "output:2" {
		t.Fatalf("table 2 after modify: %+v", table2)
	}
	if table0, _ := of.DumpTable(ctx, 0); len(table0) != 0 {
		t.Fatalf("table 0 after strict delete: %+v", table0)
	}
	must(t, of.DeleteCookie(ctx, 0x10, ^uint64(0)))
	must(t, of.Apply(ctx, ovs.DeleteFlows("table=1")))
	if rest, _ := of.DumpFlows(ctx, ""); len(rest) != 0 {
		t.Fatalf("flows left: %+v", rest)
	}
	if _, err := d.OpenFlow("br-nope").DumpFlows(ctx, ""); err == nil {
		t.Fatal("dumping a missing bridge succeeded")
	}
}

// BenchmarkBundle10kFlows installs 10,000 flows in one bundle (replacing
// the previous iteration's, as an agent's full resync does) and prints the
// rate.
func BenchmarkBundle10kFlows(b *testing.B) {
	d, _ := startOVS(b)
	ctx := context.Background()
	c := connect(b, d)
	must(b, c.EnsureBridge(ctx, intBridge))
	must(b, c.WaitVSwitchd(ctx))
	of := d.OpenFlow("br-int")
	const n = 10000
	flows := make([]ovs.Flow, n)
	for i := range flows {
		flows[i] = ovs.Flow{
			Table: 1, Priority: 100,
			Match:   fmt.Sprintf("ip,nw_src=10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Actions: fmt.Sprintf("mod_vlan_vid:%d,resubmit(,2)", i%4094+1),
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if err := of.ReplaceCookie(ctx, uint64(i%2+1), flows); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	perBundle := elapsed / time.Duration(b.N)
	b.ReportMetric(float64(n)/perBundle.Seconds(), "flows/s")
	b.Logf("%d flows in one bundle: %v per bundle (%d bundles)", n, perBundle, b.N)

	delStart := time.Now()
	must(b, of.DeleteCookie(ctx, 0, 0))
	b.Logf("deleting every flow by cookie mask: %v", time.Since(delStart))
}

// BenchmarkOVSDB500Ports creates 500 ports one transaction each, then runs
// a resync pass over them (every EnsurePort a no-op) and a listing, and
// prints the time of each: the OVSDB share of an agent's wiring and resync.
func BenchmarkOVSDB500Ports(b *testing.B) {
	d, _ := startOVS(b)
	ctx := context.Background()
	c := connect(b, d)
	must(b, c.EnsureBridge(ctx, intBridge))
	const n = 500
	for i := 0; b.Loop(); i++ {
		ports := make([]ovs.Port, n)
		for j := range ports {
			ports[j] = ovs.Port{
				Name: fmt.Sprintf("p%d-%d", i, j), Type: "patch", Options: map[string]string{"peer": "none"},
				ExternalIDs: map[string]string{"iface-id": fmt.Sprintf("port-%d", j)}, Tag: j%4094 + 1,
			}
		}
		start := time.Now()
		for _, p := range ports {
			must(b, c.EnsurePort(ctx, "br-int", p))
		}
		created := time.Since(start)
		start = time.Now()
		for _, p := range ports {
			must(b, c.EnsurePort(ctx, "br-int", p))
		}
		resynced := time.Since(start)
		start = time.Now()
		if got := len(c.Interfaces()); got < n {
			b.Fatalf("%d interfaces", got)
		}
		listed := time.Since(start)
		tags := map[string]int{}
		for _, p := range ports {
			tags[p.Name] = p.Tag%4094 + 1
		}
		start = time.Now()
		must(b, c.SetPortTags(ctx, tags))
		retagged := time.Since(start)
		b.Logf("%d ports: create %v (%v each), no-op resync %v, list %v, retag all in one transaction %v",
			n, created, created/n, resynced, listed, retagged)
		for _, p := range ports {
			must(b, c.DeletePort(ctx, p.Name))
		}
	}
}
