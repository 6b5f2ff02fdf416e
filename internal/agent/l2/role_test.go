package l2

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// fakeOVS is an OVSDB and OpenFlow switch in memory: ports get OpenFlow
// numbers as soon as they are added, bundles edit per-bridge flow tables.
type fakeOVS struct {
	mu      sync.Mutex
	view    OVSView
	next    map[string]int
	flows   map[string]map[string]uint64 // bridge → "table,priority,match" → cookie
	bundles []string                     // bridges, in the order programmed
	fail    bool
	onChg   []func()
}

func newFakeOVS() *fakeOVS {
	return &fakeOVS{view: OVSView{Bridges: map[string]OVSBridge{}}, next: map[string]int{}, flows: map[string]map[string]uint64{}}
}

func (f *fakeOVS) View() (OVSView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := OVSView{Bridges: map[string]OVSBridge{}}
	for n, b := range f.view.Bridges {
		v.Bridges[n] = OVSBridge{Name: n, ExternalIDs: maps.Clone(b.ExternalIDs), Ports: maps.Clone(b.Ports)}
	}
	return v, true
}

func (f *fakeOVS) OnChange(fn func()) { f.onChg = append(f.onChg, fn) }

func (f *fakeOVS) addPort(bridge string, p OVSPort) {
	f.next[bridge]++
	if p.OFPort == 0 {
		p.OFPort = f.next[bridge]
	}
	f.view.Bridges[bridge].Ports[p.Name] = p
}

func (f *fakeOVS) Apply(_ context.Context, c OVSChanges) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range c.Bridges {
		if _, ok := f.view.Bridges[b.Name]; !ok {
			f.view.Bridges[b.Name] = OVSBridge{Name: b.Name, ExternalIDs: map[string]string{}, Ports: map[string]OVSPort{}}
			f.flows[b.Name] = map[string]uint64{"0,0,": 0} // OVS's own NORMAL flow
		}
	}
	for _, p := range c.AddPorts {
		if old, ok := f.view.Bridges[p.Bridge].Ports[p.Name]; ok {
			old.Type, old.Options = p.Type, p.Options
			f.view.Bridges[p.Bridge].Ports[p.Name] = old
			continue
		}
		f.addPort(p.Bridge, OVSPort{Name: p.Name, Type: p.Type, Options: p.Options})
	}
	for b, names := range c.DelPorts {
		for _, n := range names {
			delete(f.view.Bridges[b].Ports, n)
		}
	}
	for b, ids := range c.SetBridgeIDs {
		maps.Copy(f.view.Bridges[b].ExternalIDs, ids)
	}
	for b, keys := range c.DelBridgeIDs {
		for _, k := range keys {
			delete(f.view.Bridges[b].ExternalIDs, k)
		}
	}
	return nil
}

// plug adds a VIF to br-int as Nova's VIF driver would.
func (f *fakeOVS) plug(name, ifaceID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addPort("br-int", OVSPort{Name: name, ExternalIDs: map[string]string{"iface-id": ifaceID}})
	return f.view.Bridges["br-int"].Ports[name].OFPort
}

func (f *fakeOVS) unplug(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.view.Bridges["br-int"].Ports, name)
}

func (f *fakeOVS) Program(_ context.Context, bridge string, add, del []Flow, deleteRuns []uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return context.DeadlineExceeded
	}
	table := f.flows[bridge]
	for _, fl := range add {
		table[flowKey(fl)] = fl.Cookie
	}
	for _, fl := range del {
		delete(table, flowKey(fl))
	}
	for k, c := range table {
		if slices.Contains(deleteRuns, CookieRun(c)) {
			delete(table, k)
		}
	}
	f.bundles = append(f.bundles, bridge)
	return nil
}

func flowKey(f Flow) string { return itoa(int(f.Table)) + "," + itoa(int(f.Priority)) + "," + f.Match }

func (f *fakeOVS) Cookies(_ context.Context, bridge string) ([]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, c := range f.flows[bridge] {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeOVS) flowCount(bridge string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.flows[bridge])
}

func (f *fakeOVS) hasFlow(bridge, needle string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.flows[bridge] {
		if strings.Contains(k, needle) {
			return true
		}
	}
	return false
}

type fakeStatus struct {
	mu       sync.Mutex
	up, down []string
}

func (s *fakeStatus) PortStatus(_ context.Context, up, down []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up = append(s.up, up...)
	s.down = append(s.down, down...)
	return nil
}

var testConfig = Config{
	IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
	LocalIP: "192.0.2.1", TunnelTypes: []string{"vxlan"},
	BridgeMappings: map[string]string{"physnet1": "br-physnet1"},
	ARPResponder:   true,
}

func newTestRole(t *testing.T, ovs *fakeOVS, status agent.StatusReporter) *Role {
	t.Helper()
	r, err := New(testConfig, ovs, ovs, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.status = status
	return r
}

func hostState() *msg.HostState {
	return &msg.HostState{L2: &msg.L2State{
		Networks: []msg.Network{
			{ID: "net-a", AdminStateUp: true, Segment: msg.Segment{NetworkType: "vxlan", SegmentationID: 100}},
			{ID: "net-b", AdminStateUp: true, Segment: msg.Segment{NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 1001}},
			{ID: "net-x", AdminStateUp: true, Segment: msg.Segment{NetworkType: "vlan", PhysicalNetwork: "unmapped", SegmentationID: 7}},
		},
		Ports: []msg.Port{
			{ID: "port-1", NetworkID: "net-a", MAC: "fa:16:3e:00:00:01", AdminStateUp: true, Status: "DOWN", Revision: 1},
			{ID: "port-2", NetworkID: "net-b", MAC: "fa:16:3e:00:00:02", AdminStateUp: true, Status: "DOWN", Revision: 1},
			{ID: "port-x", NetworkID: "net-x", MAC: "fa:16:3e:00:00:09", AdminStateUp: true, Status: "DOWN", Revision: 1},
		},
		TunnelEndpoints: []msg.TunnelEndpoint{
			{Host: "self", IP: "192.0.2.1", TunnelTypes: []string{"vxlan"}},
			{Host: "b", IP: "192.0.2.2", TunnelTypes: []string{"vxlan"}},
		},
		FDB: []msg.NetworkFDB{{
			NetworkID: "net-a", Segment: msg.Segment{NetworkType: "vxlan", SegmentationID: 100},
			FloodTo: []string{"192.0.2.2"},
			Entries: []msg.FDBEntry{{MAC: "fa:16:3e:00:00:b1", IPs: []string{"10.0.0.21"}, TunnelIP: "192.0.2.2", Host: "b", PortID: "port-b1"}},
		}},
	}}
}

// syncedRole returns a role on a fresh fake OVS that has been given
// hostState and reconciled: bridges, tunnels and flows are in, no VIF yet.
func syncedRole(t *testing.T, status agent.StatusReporter) (*fakeOVS, *Role) {
	t.Helper()
	ovs := newFakeOVS()
	r := newTestRole(t, ovs, status)
	r.Sync(context.Background(), hostState())
	reconcile(t, r)
	return ovs, r
}

func reconcile(t *testing.T, r *Role) {
	t.Helper()
	// Two passes: the first makes bridges and ports, the second sees
	// their OpenFlow numbers (OVSDB events would kick it).
	for i := 0; i < 2; i++ {
		if err := r.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoleOnlyMakesBridgesBeforeTheFirstSync(t *testing.T) {
	ovs := newFakeOVS()
	ovs.Apply(context.Background(), OVSChanges{Bridges: []BridgeSpec{{Name: "br-int"}}})
	ovs.view.Bridges["br-int"].ExternalIDs[LocalVLANKey("net-a")] = "7"
	r := newTestRole(t, ovs, nil)
	reconcile(t, r)
	if len(ovs.bundles) != 0 {
		t.Fatalf("flows programmed before knowing the desired state: %v", ovs.bundles)
	}
	v, _ := ovs.View()
	for _, br := range []string{"br-int", "br-tun", "br-physnet1"} {
		if _, ok := v.Bridges[br]; !ok {
			t.Errorf("bridge %s not made at start", br)
		}
	}
	if _, ok := v.Bridges["br-int"].Ports["patch-tun"]; !ok {
		t.Error("patch to br-tun not made at start")
	}
	// The recorded VLAN survives until the sync says what is needed.
	r.Sync(context.Background(), hostState())
	reconcile(t, r)
	v, _ = ovs.View()
	if got := v.Bridges["br-int"].ExternalIDs[LocalVLANKey("net-a")]; got != "7" {
		t.Errorf("net-a's recorded local VLAN 7 became %q", got)
	}
}

func TestRoleBuildsBridgesPatchesAndTunnels(t *testing.T) {
	ovs, _ := syncedRole(t, nil)
	v, _ := ovs.View()
	for _, want := range []struct{ bridge, port, typ string }{
		{"br-int", "patch-tun", "patch"},
		{"br-tun", "patch-int", "patch"},
		{"br-int", "int-br-physnet1", "patch"},
		{"br-physnet1", "phy-br-physnet1", "patch"},
		{"br-tun", "vxlan-c0000202", "vxlan"},
	} {
		p, ok := v.Bridges[want.bridge].Ports[want.port]
		if !ok || p.Type != want.typ {
			t.Errorf("%s: port %s (%s) missing: %+v", want.bridge, want.port, want.typ, v.Bridges[want.bridge].Ports)
		}
	}
	tun := v.Bridges["br-tun"].Ports["vxlan-c0000202"]
	if tun.Options["remote_ip"] != "192.0.2.2" || tun.Options["local_ip"] != "192.0.2.1" || tun.Options["key"] != "flow" {
		t.Errorf("tunnel options: %v", tun.Options)
	}
	if _, self := v.Bridges["br-tun"].Ports["vxlan-c0000201"]; self {
		t.Error("tunnel to itself")
	}
	// Local VLANs are recorded on br-int for the next run; the network
	// that cannot be wired here gets none.
	ids := v.Bridges["br-int"].ExternalIDs
	if ids[LocalVLANKey("net-a")] == "" || ids[LocalVLANKey("net-b")] == "" || ids[LocalVLANKey("net-x")] != "" {
		t.Errorf("local VLAN records: %v", ids)
	}
	// OVS's own default flow (cookie 0) is gone, ours are in.
	if ovs.hasFlow("br-tun", "0,0,") && ovs.flows["br-tun"]["0,0,"] == 0 {
		t.Error("OVS's default flow left on br-tun")
	}
	if !ovs.hasFlow("br-tun", "dl_dst=fa:16:3e:00:00:b1") {
		t.Error("no unicast flow to the remote port")
	}
}

func TestRoleRemakesTunnelPortsForANewLocalIP(t *testing.T) {
	ovs, _ := syncedRole(t, nil) // a first run made the tunnel ports
	cfg := testConfig
	cfg.LocalIP = "192.0.2.9"
	r2, err := New(cfg, ovs, ovs, nil)
	if err != nil {
		t.Fatal(err)
	}
	r2.Sync(context.Background(), hostState())
	reconcile(t, r2)
	v, _ := ovs.View()
	if got := v.Bridges["br-tun"].Ports["vxlan-c0000202"].Options["local_ip"]; got != "192.0.2.9" {
		t.Errorf("tunnel port's local_ip = %q after the local IP changed", got)
	}
}

func TestRoleWiresPluggedPortsAndReportsStatus(t *testing.T) {
	status := &fakeStatus{}
	ovs, r := syncedRole(t, status)
	ctx := context.Background()
	if len(status.up)+len(status.down) != 0 {
		t.Fatalf("status before any VIF: %+v", status)
	}
	p1 := ovs.plug("tap1", "port-1")
	ovs.plug("tapx", "port-x")        // network not wirable here
	pu := ovs.plug("tapu", "unknown") // no desired state yet
	reconcile(t, r)
	if !slices.Equal(status.up, []string{"port-1"}) {
		t.Fatalf("up = %v, want port-1", status.up)
	}
	if !ovs.hasFlow("br-int", "in_port="+itoa(p1)+",vlan_tci") {
		t.Error("port-1 not admitted")
	}
	if !ovs.hasFlow("br-int", "0,2,in_port="+itoa(pu)) {
		t.Error("unknown VIF not isolated")
	}
	// The same state again changes nothing and reports nothing again.
	n := len(ovs.bundles)
	reconcile(t, r)
	if len(ovs.bundles) != n || len(status.up) != 1 {
		t.Errorf("idempotence: bundles %d → %d, up %v", n, len(ovs.bundles), status.up)
	}
	// The server learns ACTIVE; then the VIF is unplugged: DOWN, and its
	// flows go.
	r.Apply(ctx, &msg.Notification{L2: &msg.L2Update{Ports: []msg.Port{
		{ID: "port-1", NetworkID: "net-a", MAC: "fa:16:3e:00:00:01", AdminStateUp: true, Status: "ACTIVE", Revision: 2},
	}}})
	ovs.unplug("tap1")
	reconcile(t, r)
	if !slices.Equal(status.down, []string{"port-1"}) {
		t.Fatalf("down = %v, want port-1", status.down)
	}
	if ovs.hasFlow("br-int", "in_port="+itoa(p1)+",") || ovs.hasFlow("br-int", "fa:16:3e:00:00:01") {
		t.Error("flows of the unplugged port left behind")
	}
	// Re-plugged: up again although the server's view did not change yet.
	ovs.plug("tap1b", "port-1")
	reconcile(t, r)
	if len(status.up) != 2 {
		t.Errorf("re-plug not reported: up %v", status.up)
	}
}

func TestRoleSyncWithoutL2PartKeepsTheState(t *testing.T) {
	ovs, r := syncedRole(t, nil)
	ctx := context.Background()
	ovs.plug("tap1", "port-1")
	reconcile(t, r)
	r.Sync(ctx, &msg.HostState{DHCP: &msg.DHCPState{}})
	reconcile(t, r)
	if !ovs.hasFlow("br-int", "fa:16:3e:00:00:01") {
		t.Error("a sync for another role unwired port-1")
	}
	r.Sync(ctx, &msg.HostState{L2: &msg.L2State{}})
	reconcile(t, r)
	if ovs.hasFlow("br-int", "fa:16:3e:00:00:01") {
		t.Error("an empty l2 state left port-1 wired")
	}
}

func TestRoleDeletedNetworkLeavesNothing(t *testing.T) {
	ovs, r := syncedRole(t, nil)
	ctx := context.Background()
	ovs.plug("tap1", "port-1")
	reconcile(t, r)
	r.Apply(ctx, &msg.Notification{L2: &msg.L2Update{DeletedPorts: []string{"port-1"}, DeletedNetworks: []string{"net-a"}}})
	ovs.unplug("tap1")
	reconcile(t, r)
	if ovs.hasFlow("br-tun", "tun_id=0x64") || ovs.hasFlow("br-tun", "fa:16:3e:00:00:b1") || ovs.hasFlow("br-int", "fa:16:3e:00:00:01") {
		t.Error("flows of the deleted network left behind")
	}
	v, _ := ovs.View()
	if v.Bridges["br-int"].ExternalIDs[LocalVLANKey("net-a")] != "" {
		t.Error("local VLAN record of the deleted network left behind")
	}
}

func TestRoleRestartReplacesFlowsInPlace(t *testing.T) {
	ovs, first := syncedRole(t, nil)
	ctx := context.Background()
	ovs.plug("tap1", "port-1")
	ovs.plug("tap2", "port-2")
	reconcile(t, first)
	before := map[string]map[string]bool{}
	for b, table := range ovs.flows {
		before[b] = map[string]bool{}
		for k := range table {
			before[b][k] = true
		}
	}
	v, _ := ovs.View()
	vlans := maps.Clone(v.Bridges["br-int"].ExternalIDs)

	// A new run on the same OVS: another network appears first in sort
	// order, but recorded VLANs stay.
	second := newTestRole(t, ovs, nil)
	state := hostState()
	state.L2.Networks = append(state.L2.Networks, msg.Network{ID: "net-0", Segment: msg.Segment{NetworkType: "vxlan", SegmentationID: 5}})
	second.Sync(ctx, state)
	reconcile(t, second)
	v, _ = ovs.View()
	for k, val := range vlans {
		if v.Bridges["br-int"].ExternalIDs[k] != val {
			t.Errorf("%s: local VLAN %s became %s", k, val, v.Bridges["br-int"].ExternalIDs[k])
		}
	}
	for b, table := range ovs.flows {
		for k, c := range table {
			if CookieRun(c) != second.Run() {
				t.Errorf("%s: flow %s of an old run (cookie %#x) left", b, k, c)
			}
		}
		for k := range before[b] {
			if _, ok := table[k]; !ok {
				t.Errorf("%s: flow %s gone after restart", b, k)
			}
		}
	}
	if s := second.Stats(); s.FullPushes != 3 {
		t.Errorf("full pushes = %d, want one per bridge (3)", s.FullPushes)
	}
}

// metricValue reads a gauge or counter.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	(<-ch).Write(&m)
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestRoleMetrics(t *testing.T) {
	ovs := newFakeOVS()
	r := newTestRole(t, ovs, nil)
	reg := prometheus.NewRegistry()
	if err := r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	r.Sync(context.Background(), hostState())
	reconcile(t, r)
	ovs.plug("tap1", "port-1")
	reconcile(t, r)
	if got := metricValue(r.metrics.wired); got != 1 {
		t.Errorf("ports_wired = %v, want 1", got)
	}
	if got := metricValue(r.metrics.flows.WithLabelValues("br-int", "output")); got != 2 { // default drop + port-1
		t.Errorf("br-int output flows = %v, want 2", got)
	}
	if got := metricValue(r.metrics.flows.WithLabelValues("br-tun", "unicast-to-tunnel")); got != 2 {
		t.Errorf("br-tun unicast flows = %v, want 2", got)
	}
	if got := metricValue(r.metrics.fullPushes); got != 3 {
		t.Errorf("full pushes = %v, want 3", got)
	}
}

func TestRoleReprogramPushesEverythingAgain(t *testing.T) {
	ovs, r := syncedRole(t, nil)
	want := ovs.flowCount("br-int")
	// ovs-vswitchd restarted: its tables are empty.
	ovs.mu.Lock()
	for b := range ovs.flows {
		ovs.flows[b] = map[string]uint64{}
	}
	ovs.mu.Unlock()
	r.Reprogram()
	reconcile(t, r)
	if got := ovs.flowCount("br-int"); got != want || want == 0 {
		t.Errorf("br-int has %d flows after reprogram, want %d", got, want)
	}
}

func TestRoleFailedBundleIsRetriedWhole(t *testing.T) {
	ovs, r := syncedRole(t, nil)
	ctx := context.Background()
	ovs.fail = true
	ovs.plug("tap1", "port-1")
	if err := r.Reconcile(ctx); err == nil {
		t.Fatal("a failed bundle went unreported")
	}
	if s := r.Stats(); s.LastError == "" {
		t.Error("stats hide the failure")
	}
	ovs.fail = false
	reconcile(t, r)
	if !ovs.hasFlow("br-int", "fa:16:3e:00:00:01") {
		t.Error("port-1 not wired after the switch came back")
	}
}

func TestTunnelPortName(t *testing.T) {
	for _, c := range []struct{ typ, ip, want string }{
		{"vxlan", "10.0.0.2", "vxlan-0a000002"},
		{"gre", "192.0.2.2", "gre-c0000202"},
		{"geneve", "192.0.2.2", "geneve-c0000202"},
	} {
		if got := TunnelPortName(c.typ, c.ip); got != c.want {
			t.Errorf("TunnelPortName(%s, %s) = %s, want %s", c.typ, c.ip, got, c.want)
		}
	}
	if n := TunnelPortName("vxlan", "2001:db8::1"); len(n) > 15 || !strings.HasPrefix(n, "vxlan-") {
		t.Errorf("IPv6 tunnel name %q", n)
	}
}

func TestRoleWithoutL2PopulationFloodsToEveryEndpoint(t *testing.T) {
	ovs := newFakeOVS()
	cfg := testConfig
	cfg.NoL2Population = true
	r, err := New(cfg, ovs, ovs, nil)
	if err != nil {
		t.Fatal(err)
	}
	state := hostState()
	state.L2.TunnelEndpoints = append(state.L2.TunnelEndpoints, msg.TunnelEndpoint{Host: "c", IP: "192.0.2.3", TunnelTypes: []string{"vxlan"}})
	r.Sync(context.Background(), state)
	reconcile(t, r)
	v, _ := ovs.View()
	b, c := v.Bridges["br-tun"].Ports["vxlan-c0000202"].OFPort, v.Bridges["br-tun"].Ports["vxlan-c0000203"].OFPort
	if b == 0 || c == 0 {
		t.Fatalf("tunnel ports missing: %v", v.Bridges["br-tun"].Ports)
	}
	want := ",output:" + itoa(b) + ",output:" + itoa(c)
	found := false
	for _, f := range r.installed["br-tun"] {
		if f.Table == TunFlood && f.Match == "dl_vlan=1" {
			found = strings.HasSuffix(f.Actions, want)
		}
		if f.Table == TunUnicast && strings.Contains(f.Match, "dl_dst") {
			t.Errorf("unicast entry without l2 population: %s", f)
		}
	}
	if !found {
		t.Errorf("flood list is not every endpoint (%s): %s", want, dump(r.installed["br-tun"]))
	}
}
