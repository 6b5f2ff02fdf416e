package l2

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	// Named apart from the package's tests' reconcile helper.
	agentreconcile "github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
)

// Config configures the l2 role, as Neutron's [ovs] and [agent] sections.
type Config struct {
	// IntegrationBridge is where VIFs plug in (br-int).
	IntegrationBridge string
	// TunnelBridge holds the tunnel ports (br-tun).
	TunnelBridge string
	// DatapathType is the datapath of the bridges the role makes or
	// enforces: "system" (kernel) or "netdev" (userspace).
	DatapathType string
	// LocalIP is this node's tunnel endpoint; empty disables tunnels.
	LocalIP string
	// TunnelTypes are the tunnel network types served.
	TunnelTypes []string
	// BridgeMappings maps physical networks to their bridges.
	BridgeMappings map[string]string
	// ARPResponder answers ARP requests for remote ports on br-tun.
	ARPResponder bool
	// NoL2Population ignores the server's forwarding entries: broadcast
	// and all unicast to other nodes are flooded to every tunnel endpoint
	// of the network's type (there is no MAC learning on br-tun).
	NoL2Population bool
}

func (c Config) tunnels() bool {
	return c.LocalIP != "" && c.TunnelBridge != "" && len(c.TunnelTypes) > 0
}

// serves reports whether this node can wire networks of segment s.
func (c Config) serves(s msg.Segment) bool {
	if msg.IsTunnel(s.NetworkType) {
		return c.tunnels() && slices.Contains(c.TunnelTypes, s.NetworkType)
	}
	if s.NetworkType == msg.NetworkTypeVLAN || s.NetworkType == msg.NetworkTypeFlat {
		_, ok := c.BridgeMappings[s.PhysicalNetwork]
		return ok
	}
	return false
}

// Role is the l2 role of the agent (agent.Role).
type Role struct {
	cfg   Config
	ovsdb OVSDB
	of    OpenFlow
	log   *slog.Logger
	run   uint64
	// passes runs Reconcile whenever it is kicked, retrying failures.
	passes *agentreconcile.Loop

	// mu guards the desired state, which Sync and Apply change from the
	// agent's goroutine while the reconciler reads it.
	mu      sync.Mutex
	desired *desiredState
	status  agent.StatusReporter
	stats   Stats

	// reconcileMu serialises reconcile passes; the fields below are theirs.
	reconcileMu sync.Mutex
	vlans       *localVLANs
	recovered   bool
	enforced    bool
	installed   map[string]FlowSet
	problems    string
	sent        map[string]sentStatus

	metrics *metrics
}

// Stats tell what the role did, for tests, benchmarks and metrics.
type Stats struct {
	// FullPushes counts bridges programmed whole (start, ovs-vswitchd restart).
	FullPushes int
	// Flows is the number of flows installed per bridge.
	Flows map[string]int
	// Wired is the number of ports wired.
	Wired int
	// Passes count the reconcile passes and keep the last one's error.
	agentreconcile.Passes
}

type sentStatus struct {
	status   string
	revision int64
}

// New makes the l2 role on a node's OVSDB and OpenFlow access.
func New(cfg Config, db OVSDB, of OpenFlow, log *slog.Logger) (*Role, error) {
	if cfg.IntegrationBridge == "" {
		return nil, errors.New("l2: integration bridge is required")
	}
	for _, t := range cfg.TunnelTypes {
		if !msg.IsTunnel(t) {
			return nil, fmt.Errorf("l2: %q is not a tunnel type (vxlan, gre, geneve)", t)
		}
	}
	for physnet, br := range cfg.BridgeMappings {
		if br == "" || br == cfg.IntegrationBridge || br == cfg.TunnelBridge {
			return nil, fmt.Errorf("l2: physical network %q mapped to bridge %q", physnet, br)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Role{
		cfg: cfg, ovsdb: db, of: of, log: log.With("role", msg.RoleL2),
		run:       newRunID(),
		passes:    agentreconcile.NewLoop(),
		vlans:     newLocalVLANs(),
		installed: map[string]FlowSet{},
		sent:      map[string]sentStatus{},
		stats:     Stats{Flows: map[string]int{}},
		metrics:   newMetrics(),
	}, nil
}

// newRunID is a random non-zero 48-bit run identifier.
func newRunID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return uint64(time.Now().UnixNano()) & (1<<48 - 1)
		}
		if id := binary.BigEndian.Uint64(b[:]) & (1<<48 - 1); id != 0 {
			return id
		}
	}
}

// Run is the cookie run of this role's flows.
func (r *Role) Run() uint64 { return r.run }

// Name is msg.RoleL2.
func (r *Role) Name() string { return msg.RoleL2 }

// Report is the Open vSwitch agent's state report.
func (r *Role) Report() msg.ReportState {
	r.mu.Lock()
	wired := r.stats.Wired
	r.mu.Unlock()
	conf := msg.L2Configurations{
		BridgeMappings:    r.cfg.BridgeMappings,
		TunnelTypes:       r.cfg.TunnelTypes,
		DatapathType:      r.cfg.DatapathType,
		IntegrationBridge: r.cfg.IntegrationBridge,
		L2Population:      !r.cfg.NoL2Population,
		ARPResponder:      r.cfg.ARPResponder,
		Devices:           wired,
	}
	if conf.BridgeMappings == nil {
		conf.BridgeMappings = map[string]string{}
	}
	if conf.TunnelTypes == nil {
		conf.TunnelTypes = []string{}
	}
	if r.cfg.tunnels() {
		conf.TunnelingIP = r.cfg.LocalIP
		conf.TunnelBridge = r.cfg.TunnelBridge
	}
	return msg.ReportState{
		AgentType:      msg.AgentTypeOVS,
		Binary:         msg.BinaryOVS,
		Topic:          msg.TopicL2,
		Configurations: conf.Map(),
	}
}

// Start begins reconciling in the background until ctx ends. Nothing is
// programmed before the first Sync: a restarted agent must not wipe the
// flows that carry traffic before it knows what they should be.
func (r *Role) Start(ctx context.Context, env agent.Env) error {
	if env.Log != nil {
		r.log = env.Log.With("role", msg.RoleL2)
	}
	r.mu.Lock()
	r.status = env.Status
	r.mu.Unlock()
	r.ovsdb.OnChange(r.Kick)
	if b, ok := r.ovsdb.(backgroundRunner); ok {
		go b.run(ctx, r.cfg, r.Reprogram)
	}
	go r.passes.Run(ctx, r.log, r.Reconcile, nil)
	return nil
}

// backgroundRunner is an OVSDB with work of its own (keeping connections,
// watching ovs-vswitchd) that runs while the role does.
type backgroundRunner interface {
	run(ctx context.Context, cfg Config, reprogram func())
}

// Sync replaces the desired state. A state without an l2 part (a sync
// for other roles) changes nothing: wiping every flow of the node must
// take an explicit, empty l2 state.
func (r *Role) Sync(_ context.Context, state *msg.HostState) error {
	if state == nil || state.L2 == nil {
		return nil
	}
	d := newDesiredState()
	d.replace(*state.L2)
	r.mu.Lock()
	r.desired = d
	r.mu.Unlock()
	r.Kick()
	return nil
}

// Apply applies a notification to the desired state.
func (r *Role) Apply(_ context.Context, n *msg.Notification) error {
	if n == nil || n.L2 == nil {
		return nil
	}
	r.mu.Lock()
	if r.desired == nil {
		r.desired = newDesiredState()
	}
	r.desired.update(*n.L2)
	r.mu.Unlock()
	r.Kick()
	return nil
}

// Kick asks for a reconcile pass; it does not block.
func (r *Role) Kick() { r.passes.Kick() }

// Reprogram forgets what is installed, so the next pass pushes every
// bridge whole (ovs-vswitchd restarted and lost its flows), and kicks.
func (r *Role) Reprogram() {
	r.reconcileMu.Lock()
	r.installed = map[string]FlowSet{}
	r.enforced = false
	r.reconcileMu.Unlock()
	r.Kick()
}

// Stats returns what the role did so far.
func (r *Role) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Flows = make(map[string]int, len(r.stats.Flows))
	for k, v := range r.stats.Flows {
		s.Flows[k] = v
	}
	return s
}

// Reconcile makes OVS match the desired state once: OVSDB (bridges, patch
// and tunnel ports, local VLAN records), then the flows of every bridge,
// then port status. It does nothing before the first Sync and before
// OVSDB has been read.
func (r *Role) Reconcile(ctx context.Context) error {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	start := time.Now()
	err := r.reconcile(ctx)
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.metrics.reconcile.WithLabelValues(result).Observe(time.Since(start).Seconds())
	r.mu.Lock()
	r.stats.Record(err)
	r.mu.Unlock()
	return err
}

func (r *Role) reconcile(ctx context.Context) error {
	view, ok := r.ovsdb.View()
	if !ok {
		return nil
	}
	r.mu.Lock()
	var d *desiredState
	if r.desired != nil {
		d = r.desired.clone()
	}
	r.mu.Unlock()
	if d == nil {
		// Before the first sync only the bridges and their patches are
		// made, so VIFs can be plugged; no flow is touched.
		if ch := r.bootstrap(view); !ch.Empty() {
			if err := r.ovsdb.Apply(ctx, ch); err != nil {
				return fmt.Errorf("l2: create bridges: %w", err)
			}
		}
		return nil
	}
	if !r.recovered {
		r.vlans.recover(view.Bridges[r.cfg.IntegrationBridge].ExternalIDs)
		r.recovered = true
	}
	p := r.plan(view, d)
	if !p.changes.Empty() {
		if err := r.ovsdb.Apply(ctx, p.changes); err != nil {
			return fmt.Errorf("l2: update OVSDB: %w", err)
		}
		r.vlans.saved()
		r.enforced = true
	}
	compiled := Compile(p.wiring)
	if text := strings.Join(compiled.Problems, "; "); text != r.problems {
		r.problems = text
		if text != "" {
			r.log.Warn("l2: desired state partly unwirable", "problems", compiled.Problems)
		}
	}
	bridges := make([]string, 0, len(compiled.Bridges))
	for b := range compiled.Bridges {
		bridges = append(bridges, b)
	}
	sort.Strings(bridges)
	var errs []error
	intOK := false
	for _, b := range bridges {
		if _, exists := view.Bridges[b]; !exists {
			continue // just created; programmed once OVSDB shows it
		}
		if err := r.program(ctx, b, compiled.Bridges[b]); err != nil {
			errs = append(errs, err)
			continue
		}
		if b == r.cfg.IntegrationBridge {
			intOK = true
		}
	}
	if !intOK {
		p.wired = nil
	}
	r.metrics.wired.Set(float64(len(p.wired)))
	r.mu.Lock()
	r.stats.Wired = len(p.wired)
	for b, set := range r.installed {
		r.stats.Flows[b] = len(set)
	}
	r.mu.Unlock()
	if err := r.reportStatus(ctx, d, p.wired); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// program makes a bridge's flows the given set in one bundle. The first
// time in a run (and after Reprogram) it adds every flow, which replaces
// identical flows of an earlier run in place, and deletes every flow of any
// other run; afterwards it sends only the difference.
func (r *Role) program(ctx context.Context, bridge string, set FlowSet) error {
	installed, known := r.installed[bridge]
	var add, del []Flow
	var staleRuns []uint64
	if !known {
		cookies, err := r.of.Cookies(ctx, bridge)
		if err != nil {
			return fmt.Errorf("l2: read flows of %s: %w", bridge, err)
		}
		add = set.Sorted()
		for _, c := range cookies {
			if run := CookieRun(c); run != r.run && !slices.Contains(staleRuns, run) {
				staleRuns = append(staleRuns, run)
			}
		}
	} else {
		add, del = set.Diff(installed)
		if len(add)+len(del) == 0 {
			return nil
		}
	}
	if err := r.of.Program(ctx, bridge, add, del, staleRuns); err != nil {
		// What the bridge holds is unknown now: push it whole next time.
		delete(r.installed, bridge)
		return fmt.Errorf("l2: program %s: %w", bridge, err)
	}
	r.installed[bridge] = set
	r.metrics.observeFlows(bridge, r.bridgeRole(bridge), set)
	if !known {
		r.metrics.fullPushes.Inc()
		r.mu.Lock()
		r.stats.FullPushes++
		r.mu.Unlock()
		r.log.Debug("l2: bridge programmed whole", "bridge", bridge, "flows", len(set), "run", fmt.Sprintf("%#x", r.run))
	}
	return nil
}

// bridgeRole says which part of the pipeline a bridge holds.
func (r *Role) bridgeRole(bridge string) string {
	switch bridge {
	case r.cfg.IntegrationBridge:
		return RoleIntegration
	case r.cfg.TunnelBridge:
		return RoleTunnel
	}
	return RolePhysical
}

// reportStatus tells the server which ports went up (wired) or down (not
// wired any more), each change once per port revision.
func (r *Role) reportStatus(ctx context.Context, d *desiredState, wired map[string]bool) error {
	r.mu.Lock()
	reporter := r.status
	r.mu.Unlock()
	if reporter == nil {
		return nil
	}
	var up, down []string
	for id, port := range d.ports {
		current := port.Status
		if s, ok := r.sent[id]; ok && s.revision == port.Revision {
			current = s.status
		}
		switch {
		case wired[id] && current != msg.StatusActive:
			up = append(up, id)
		case !wired[id] && current == msg.StatusActive:
			down = append(down, id)
		}
	}
	for id := range r.sent {
		if _, ok := d.ports[id]; !ok {
			delete(r.sent, id)
		}
	}
	if len(up)+len(down) == 0 {
		return nil
	}
	sort.Strings(up)
	sort.Strings(down)
	if err := reporter.PortStatus(ctx, up, down); err != nil {
		return fmt.Errorf("l2: report port status: %w", err)
	}
	for _, id := range up {
		r.sent[id] = sentStatus{msg.StatusActive, d.ports[id].Revision}
	}
	for _, id := range down {
		r.sent[id] = sentStatus{msg.StatusDown, d.ports[id].Revision}
	}
	r.log.Debug("l2: port status reported", "up", up, "down", down)
	return nil
}

// bootstrap returns the OVSDB changes that make the bridges and their
// patch ports exist, whatever the desired state.
func (r *Role) bootstrap(view OVSView) OVSChanges {
	cfg := r.cfg
	var ch OVSChanges
	for _, br := range cfg.bridges() {
		if _, ok := view.Bridges[br]; !ok {
			ch.Bridges = append(ch.Bridges, BridgeSpec{Name: br, DatapathType: cfg.DatapathType, Secure: true})
		}
	}
	patch := func(bridge, name, peer string) {
		if _, ok := view.Bridges[bridge].Ports[name]; !ok {
			ch.AddPorts = append(ch.AddPorts, PortSpec{Bridge: bridge, Name: name, Type: "patch", Options: map[string]string{"peer": peer}})
		}
	}
	if cfg.tunnels() {
		patch(cfg.IntegrationBridge, PatchIntName, PatchTunName)
		patch(cfg.TunnelBridge, PatchTunName, PatchIntName)
	}
	for _, br := range cfg.BridgeMappings {
		patch(cfg.IntegrationBridge, IntPhysPatchName(br), PhysPatchName(br))
		patch(br, PhysPatchName(br), IntPhysPatchName(br))
	}
	return ch
}

// plan is what one pass derives from the desired state and OVSDB.
type plan struct {
	changes OVSChanges
	wiring  Wiring
	// wired are the ports whose VIF is plugged and gets flows.
	wired map[string]bool
}

func (r *Role) plan(view OVSView, d *desiredState) plan {
	cfg := r.cfg
	p := plan{
		changes: OVSChanges{DelPorts: map[string][]string{}},
		wiring: Wiring{
			Run: r.run, IntBridge: cfg.IntegrationBridge,
			Physical: map[string]PhysicalBridge{}, Tunnels: map[TunnelKey]int{},
			SecurityGroups: d.groups, RemoteGroups: d.remote,
		},
		wired: map[string]bool{},
	}
	intBr := view.Bridges[cfg.IntegrationBridge]
	ensureBridge := func(name string, secure bool) {
		if _, ok := view.Bridges[name]; !ok || !r.enforced {
			p.changes.Bridges = append(p.changes.Bridges, BridgeSpec{Name: name, DatapathType: cfg.DatapathType, Secure: secure})
		}
	}
	ofport := func(bridge, port string) int {
		if pt, ok := view.Bridges[bridge].Ports[port]; ok && pt.OFPort > 0 {
			return pt.OFPort
		}
		return 0
	}
	ensurePatch := func(bridge, name, peer string) {
		if _, ok := view.Bridges[bridge].Ports[name]; !ok {
			p.changes.AddPorts = append(p.changes.AddPorts, PortSpec{Bridge: bridge, Name: name, Type: "patch", Options: map[string]string{"peer": peer}})
		}
	}
	ensureBridge(cfg.IntegrationBridge, true)

	// br-tun, its patch to br-int and the tunnels.
	if cfg.tunnels() {
		ensureBridge(cfg.TunnelBridge, true)
		ensurePatch(cfg.IntegrationBridge, PatchIntName, PatchTunName)
		ensurePatch(cfg.TunnelBridge, PatchTunName, PatchIntName)
		p.wiring.TunBridge = cfg.TunnelBridge
		p.wiring.PatchInt = ofport(cfg.IntegrationBridge, PatchIntName)
		p.wiring.PatchTun = ofport(cfg.TunnelBridge, PatchTunName)
		wanted := map[string]TunnelKey{}
		for _, k := range d.tunnels(cfg) {
			name := TunnelPortName(k.Type, k.RemoteIP)
			wanted[name] = k
			options := map[string]string{"remote_ip": k.RemoteIP, "local_ip": cfg.LocalIP, "key": "flow", "df_default": "true"}
			existing, ok := view.Bridges[cfg.TunnelBridge].Ports[name]
			if !ok || existing.Type != k.Type || !maps.Equal(existing.Options, options) {
				// Missing, or made for another local IP or type: (re)made.
				p.changes.AddPorts = append(p.changes.AddPorts, PortSpec{Bridge: cfg.TunnelBridge, Name: name, Type: k.Type, Options: options})
			}
			if port := ofport(cfg.TunnelBridge, name); ok && port > 0 {
				p.wiring.Tunnels[k] = port
			}
		}
		for name, port := range view.Bridges[cfg.TunnelBridge].Ports {
			if _, ok := wanted[name]; !ok && msg.IsTunnel(port.Type) {
				p.changes.DelPorts[cfg.TunnelBridge] = append(p.changes.DelPorts[cfg.TunnelBridge], name)
			}
		}
	}

	// Physical bridges and their patches.
	for physnet, br := range cfg.BridgeMappings {
		ensureBridge(br, true)
		ensurePatch(cfg.IntegrationBridge, IntPhysPatchName(br), PhysPatchName(br))
		ensurePatch(br, PhysPatchName(br), IntPhysPatchName(br))
		p.wiring.Physical[physnet] = PhysicalBridge{
			Bridge:   br,
			IntPort:  ofport(cfg.IntegrationBridge, IntPhysPatchName(br)),
			PhysPort: ofport(br, PhysPatchName(br)),
		}
	}

	// Networks this node can wire get a local VLAN.
	nets := map[string]*LocalNetwork{}
	keep := map[string]bool{}
	for id, n := range d.networks {
		if !cfg.serves(n.Segment) {
			continue
		}
		keep[id] = true
	}
	r.vlans.release(keep)
	ids := make([]string, 0, len(keep))
	for id := range keep {
		ids = append(ids, id)
	}
	sort.Strings(ids) // lowest VLANs to the oldest-sorting ids, deterministically
	for _, id := range ids {
		vlan, ok := r.vlans.get(id)
		if !ok {
			continue // 4094 networks on one node: the rest stay isolated
		}
		n := d.networks[id]
		ln := &LocalNetwork{ID: id, VLAN: vlan, Segment: n.Segment, CIDRs: n.CIDRs}
		if cfg.NoL2Population && msg.IsTunnel(n.Segment.NetworkType) {
			for _, k := range d.tunnels(cfg) {
				if k.Type == n.Segment.NetworkType {
					ln.FloodTo = append(ln.FloodTo, k.RemoteIP)
				}
			}
		} else if fdb, ok := d.fdb[id]; ok && msg.IsTunnel(n.Segment.NetworkType) {
			for _, ip := range fdb.FloodTo {
				if ip != cfg.LocalIP {
					ln.FloodTo = append(ln.FloodTo, ip)
				}
			}
			for _, e := range fdb.Entries {
				if e.TunnelIP != cfg.LocalIP {
					if !cfg.ARPResponder {
						e.IPs = nil
					}
					ln.Remote = append(ln.Remote, e)
				}
			}
		}
		nets[id] = ln
	}
	if set, del := r.vlans.changes(); len(set)+len(del) > 0 {
		if set != nil {
			p.changes.SetBridgeIDs = map[string]map[string]string{cfg.IntegrationBridge: set}
		}
		if del != nil {
			p.changes.DelBridgeIDs = map[string][]string{cfg.IntegrationBridge: del}
		}
	}

	// VIFs: wired when their port is known, up and on a network wired
	// here; isolated otherwise. Of two interfaces claiming one port the
	// newest (highest OpenFlow port) wins.
	vifs := map[string]OVSPort{}
	for _, port := range intBr.Ports {
		id := port.ExternalIDs["iface-id"]
		if id == "" || port.Type == "patch" || port.OFPort <= 0 {
			continue
		}
		if old, ok := vifs[id]; ok {
			if old.OFPort > port.OFPort {
				p.wiring.Isolated = append(p.wiring.Isolated, port.OFPort)
				continue
			}
			p.wiring.Isolated = append(p.wiring.Isolated, old.OFPort)
		}
		vifs[id] = port
	}
	for id, vif := range vifs {
		port, ok := d.ports[id]
		n := nets[port.NetworkID]
		if !ok || n == nil || !port.AdminStateUp || port.VIFType == "binding_failed" {
			p.wiring.Isolated = append(p.wiring.Isolated, vif.OFPort)
			continue
		}
		macs := []string{port.MAC}
		for _, pair := range port.AllowedAddressPairs {
			if pair.MACAddress != "" && !slices.Contains(macs, pair.MACAddress) {
				macs = append(macs, pair.MACAddress)
			}
		}
		n.Ports = append(n.Ports, LocalPort{ID: id, OFPort: vif.OFPort, MACs: macs, Security: portSecurity(port)})
		p.wired[id] = true
	}
	sort.Ints(p.wiring.Isolated)
	for _, id := range ids {
		if n := nets[id]; n != nil {
			p.wiring.Networks = append(p.wiring.Networks, *n)
		}
	}
	if len(p.changes.DelPorts) == 0 {
		p.changes.DelPorts = nil
	}
	return p
}

// ConfigFrom turns the agent's l2 options into the role's configuration.
func ConfigFrom(c config.L2Agent) (Config, error) {
	mappings, err := c.Mappings()
	if err != nil {
		return Config{}, err
	}
	return Config{
		IntegrationBridge: c.IntegrationBridge,
		TunnelBridge:      c.TunnelBridge,
		DatapathType:      c.DatapathType,
		LocalIP:           c.LocalIP,
		TunnelTypes:       slices.Clone(c.TunnelTypes),
		BridgeMappings:    mappings,
		ARPResponder:      c.ARPResponder,
		NoL2Population:    !c.L2Population,
	}, nil
}

// portSecurity is what the flows enforce for a port: nothing without port
// security, nor for the network's own ports (DHCP, router interfaces),
// which Neutron's firewall trusts.
func portSecurity(p msg.Port) *PortSecurity {
	if !p.PortSecurityEnabled || strings.HasPrefix(p.DeviceOwner, "network:") {
		return nil
	}
	s := &PortSecurity{MAC: p.MAC, Pairs: p.AllowedAddressPairs, Groups: p.SecurityGroups}
	for _, ip := range p.FixedIPs {
		s.IPs = append(s.IPs, ip.IPAddress)
	}
	return s
}
