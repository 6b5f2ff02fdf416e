package l3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/vif"
)

// Defaults of Config.
const (
	DefaultIntegrationBridge = "br-int"
	DefaultNamespacePrefix   = "qrouter-"
	// InterfaceDriver is what the role reports as its interface_driver.
	InterfaceDriver = "openvswitch"
)

// Config configures the l3 role, as Neutron's l3_agent.ini.
type Config struct {
	// IntegrationBridge is where router ports plug in (default br-int),
	// made by the l2 role of the same host.
	IntegrationBridge string
	// OVS is the host's Open vSwitch.
	OVS ovs.Instance
	// BridgeNetns is the network namespace ovs-vswitchd runs in, where the
	// bridge ends of the veth pairs go; "" is this process's own.
	BridgeNetns string
	// NamespacePrefix names each router's namespace, prefix + router id
	// (default qrouter-). Namespaces with the prefix that the role does
	// not have are removed at every full sync, so agents sharing one
	// machine (test beds) need prefixes of their own.
	NamespacePrefix string
}

// FloatingIPStatusReporter tells the server which floating IPs the role
// configured (active) or no longer can (down). The agent's
// StatusReporter implements it when the server side serves
// msg.MethodFloatingIPStatus; without it nothing is reported.
type FloatingIPStatusReporter interface {
	FloatingIPStatus(ctx context.Context, active, down []string) error
}

// Role is the l3 role of the agent (agent.Role).
type Role struct {
	cfg  Config
	log  *slog.Logger
	loop *reconcile.Loop

	// mu guards the desired state, which Sync and Apply change from the
	// agent's goroutine while the reconciler reads it, and the stats.
	mu       sync.Mutex
	desired  map[string]desiredRouter // nil before the first state
	gen      uint64
	full     bool // the next pass checks every router against the system
	stats    Stats
	reporter FloatingIPStatusReporter

	// reconcileMu serialises passes; the fields below are theirs.
	reconcileMu sync.Mutex
	ovsdb       reconcile.OVSDB
	db          *ovs.Client // the connection of the pass running
	routers     map[string]*servedRouter
	// fipStatus is the status last reported per floating IP, with the
	// floating IP's revision then: a report is repeated only when the
	// server's view moved on without taking it.
	fipStatus map[string]reportedStatus
}

// desiredRouter is one router the server wants here, with a generation
// that changes whenever the router does.
type desiredRouter struct {
	msg.Router
	gen uint64
}

// reportedStatus is a floating IP status reported at a revision.
type reportedStatus struct {
	status   string
	revision int64
}

// servedRouter is what the role made for one router.
type servedRouter struct {
	plan *routerPlan
	gen  uint64
}

// Stats tell what the role does, for its state report, tests and metrics.
type Stats struct {
	// Routers, Interfaces, FloatingIPs and GatewayPorts count what is
	// configured.
	Routers, Interfaces, FloatingIPs, GatewayPorts int
	// NATRebuilds counts router tables rebuilt; GARPs gratuitous ARPs sent.
	NATRebuilds, GARPs int
	// Passes count the reconcile passes and keep the last one's error.
	reconcile.Passes
}

// New makes the l3 role.
func New(cfg Config, log *slog.Logger) (*Role, error) {
	cfg.IntegrationBridge = cmp.Or(cfg.IntegrationBridge, DefaultIntegrationBridge)
	cfg.NamespacePrefix = cmp.Or(cfg.NamespacePrefix, DefaultNamespacePrefix)
	if err := reconcile.CheckNamespaces(msg.RoleL3, cfg.NamespacePrefix, cfg.OVS.DB); err != nil {
		return nil, err
	}
	log = cmp.Or(log, slog.Default())
	return &Role{
		cfg: cfg, log: log.With("role", msg.RoleL3), loop: reconcile.NewLoop(),
		ovsdb:   reconcile.OVSDB{Endpoint: cfg.OVS.DB, Log: log},
		routers: map[string]*servedRouter{}, fipStatus: map[string]reportedStatus{},
	}, nil
}

// Name is msg.RoleL3.
func (r *Role) Name() string { return msg.RoleL3 }

// Report is the L3 agent's state report.
func (r *Role) Report() msg.ReportState {
	st := r.Stats()
	conf := msg.L3Configurations{
		AgentMode: msg.L3AgentModeLegacy, InterfaceDriver: InterfaceDriver, HandleInternalOnlyRouters: true,
		Routers: st.Routers, Interfaces: st.Interfaces, FloatingIPs: st.FloatingIPs, ExGWPorts: st.GatewayPorts,
	}
	return msg.ReportState{
		AgentType:      msg.AgentTypeL3,
		Binary:         msg.BinaryL3,
		Topic:          msg.TopicL3,
		Configurations: conf.Map(),
	}
}

// Stopped is closed once the role's background work ended after the
// context given to Start did.
func (r *Role) Stopped() <-chan struct{} { return r.loop.Stopped() }

// Stats returns what the role did so far.
func (r *Role) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Start begins reconciling in the background until ctx ends; the router
// namespaces stay for the next run to adopt.
func (r *Role) Start(ctx context.Context, env agent.Env) error {
	if env.Log != nil {
		r.log = env.Log.With("role", msg.RoleL3)
	}
	if rep, ok := env.Status.(FloatingIPStatusReporter); ok {
		r.mu.Lock()
		r.reporter = rep
		r.mu.Unlock()
	}
	go r.loop.Run(ctx, r.log, r.Reconcile, r.closeDB)
	return nil
}

// Sync replaces the desired state; the next pass checks every router. A
// state without an l3 part (a server that does not know the role) keeps
// the routers as they are; an empty one removes them all.
func (r *Role) Sync(_ context.Context, state *msg.HostState) error {
	if state == nil || state.L3 == nil {
		return nil
	}
	r.mu.Lock()
	r.desired = map[string]desiredRouter{}
	for _, rt := range state.L3.Routers {
		r.putLocked(rt)
	}
	r.full = true
	r.mu.Unlock()
	r.Kick()
	return nil
}

// Apply applies a notification to the desired state.
func (r *Role) Apply(_ context.Context, n *msg.Notification) error {
	if n == nil || n.L3 == nil {
		return nil
	}
	r.mu.Lock()
	if r.desired == nil {
		r.desired = map[string]desiredRouter{}
	}
	for _, rt := range n.L3.Routers {
		r.putLocked(rt)
	}
	for _, id := range n.L3.DeletedRouters {
		delete(r.desired, id)
	}
	r.mu.Unlock()
	r.Kick()
	return nil
}

func (r *Role) putLocked(rt msg.Router) {
	r.gen++
	rt.Interfaces = slices.Clone(rt.Interfaces)
	rt.FloatingIPs = slices.Clone(rt.FloatingIPs)
	rt.Routes = slices.Clone(rt.Routes)
	r.desired[rt.ID] = desiredRouter{Router: rt, gen: r.gen}
}

// Kick asks for a reconcile pass; it does not block.
func (r *Role) Kick() { r.loop.Kick() }

func (r *Role) closeDB() {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	r.ovsdb.Close()
	r.db = nil
}

// Reconcile makes the router namespaces match the desired state once. It
// does nothing before the first state.
func (r *Role) Reconcile(ctx context.Context) error {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	r.mu.Lock()
	if r.desired == nil {
		r.mu.Unlock()
		return nil
	}
	snap, full, reporter := maps.Clone(r.desired), r.full, r.reporter
	r.full = false
	r.mu.Unlock()

	err := r.reconcile(ctx, snap, full)
	r.reportFloatingIPs(ctx, reporter, snap)

	var st Stats
	for _, s := range r.routers {
		st.Routers++
		for _, p := range s.plan.Ports {
			if strings.HasPrefix(p.Dev, gatewayPrefix) {
				st.GatewayPorts++
			} else {
				st.Interfaces++
			}
		}
		st.FloatingIPs += len(s.plan.FloatingIPs)
	}
	r.mu.Lock()
	if err != nil && full {
		r.full = true // what it could not check is checked on the retry
	}
	st.NATRebuilds, st.GARPs, st.Passes = r.stats.NATRebuilds, r.stats.GARPs, r.stats.Passes
	st.Record(err)
	r.stats = st
	r.mu.Unlock()
	return err
}

func (r *Role) count(fn func(*Stats)) {
	r.mu.Lock()
	fn(&r.stats)
	r.mu.Unlock()
}

func (r *Role) plugger() vif.Plugger {
	return vif.Plugger{DB: r.db, Bridge: r.cfg.IntegrationBridge, BridgeNetns: r.cfg.BridgeNetns}
}

func (r *Role) reconcile(ctx context.Context, snap map[string]desiredRouter, full bool) error {
	db, err := r.ovsdb.Client(ctx)
	if err != nil {
		return fmt.Errorf("l3: %w", err)
	}
	r.db = db
	var errs []error
	want := map[string]bool{} // namespaces that stay
	ids := slices.Sorted(maps.Keys(snap))
	for _, id := range ids {
		d := snap[id]
		if !d.AdminStateUp {
			continue // an administratively down router is not served
		}
		want[r.cfg.NamespacePrefix+id] = true
		cur := r.routers[id]
		if cur != nil && !full && cur.gen == d.gen {
			continue
		}
		if err := r.serve(ctx, d, full); err != nil {
			errs = append(errs, fmt.Errorf("l3: router %s: %w", id, err))
		}
	}
	for id := range r.routers {
		if !want[r.cfg.NamespacePrefix+id] {
			if err := r.teardown(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if full {
		// Namespaces and OVS ports that no served router has: left by a
		// previous run, or by a failed teardown.
		if err := reconcile.RemoveStale(ctx, r.log, r.plugger(), NetnsExternalID, r.cfg.NamespacePrefix, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serve makes router d's namespace hold what its plan says, changing only
// what differs from what was made before (all of it is checked when full).
func (r *Role) serve(ctx context.Context, d desiredRouter, full bool) error {
	plan := r.cfg.planRouter(d.Router)
	if len(plan.Problems) > 0 {
		r.log.Warn("l3: part of the router is not configured", "router", d.ID, "problems", plan.Problems)
	}
	cur := r.routers[d.ID]
	var old *routerPlan
	if cur != nil {
		old = cur.plan
	} else {
		cur = &servedRouter{}
		r.routers[d.ID] = cur
	}
	ns := plan.Netns
	if !netns.Exists(ns) {
		if err := netns.Create(ns); err != nil {
			return err
		}
		old = nil // nothing of it is there
	}
	if old == nil || full {
		if err := netns.SetSysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
	}
	// Whatever fails below leaves the router to be checked whole again.
	cur.plan, cur.gen = nil, 0

	// NAT first: a floating IP that goes stops being translated before
	// its connections are flushed and its address removed.
	rebuild := old == nil || !old.NAT.equal(plan.NAT)
	if !rebuild && full {
		inPlace, err := natInPlace(ns, plan.NAT)
		if err != nil {
			return err
		}
		rebuild = !inPlace
	}
	if rebuild {
		if err := applyNAT(ns, plan.NAT); err != nil {
			return err
		}
		r.count(func(s *Stats) { s.NATRebuilds++ })
	}
	var announce []string // floating IPs added or moved
	for id, f := range plan.FloatingIPs {
		if was, ok := oldFIP(old, id); !ok || was != f {
			announce = append(announce, id)
		}
	}
	if old != nil {
		for id, was := range old.FloatingIPs {
			if now, ok := plan.FloatingIPs[id]; ok && now == was {
				continue
			}
			if err := flushConntrack(ns, was.Floating); err != nil {
				return err
			}
		}
	}

	pl := r.plugger()
	wantTaps := map[string]bool{}
	for _, spec := range plan.Ports {
		wantTaps[spec.Tap] = true
		if !full && old != nil && slices.ContainsFunc(old.Ports, spec.Equal) {
			continue
		}
		if _, err := pl.Plug(ctx, spec); err != nil {
			return err
		}
	}
	host, err := link.Open(r.cfg.BridgeNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	for _, tap := range pl.Tagged(NetnsExternalID)[ns] {
		if !wantTaps[tap] {
			if err := pl.UnplugPort(ctx, host, tap); err != nil {
				return err
			}
		}
	}
	if err := syncRoutes(ns, plan.Routes); err != nil {
		return err
	}

	sort.Strings(announce)
	for _, id := range announce {
		f := plan.FloatingIPs[id]
		gw := plan.Ports[0] // a floating IP implies a gateway, planned first
		if err := gratuitousARP(ns, gw.Dev, gw.MAC, f.Floating); err != nil {
			// The address answers ARP anyway; the announcement only
			// speeds up neighbours that cached another MAC.
			r.log.Warn("l3: gratuitous ARP failed", "router", d.ID, "floating_ip", f.Floating, "err", err)
			continue
		}
		r.count(func(s *Stats) { s.GARPs++ })
	}
	cur.plan, cur.gen = plan, d.gen
	if old == nil {
		r.log.Info("l3: router configured", "router", d.ID, "netns", ns, "ports", len(plan.Ports), "floating_ips", len(plan.FloatingIPs))
	}
	return nil
}

func oldFIP(old *routerPlan, id string) (floatingIP, bool) {
	if old == nil {
		return floatingIP{}, false
	}
	f, ok := old.FloatingIPs[id]
	return f, ok
}

// syncRoutes makes want the routes through a gateway in namespace ns.
func syncRoutes(ns string, want []link.Route) error {
	h, err := link.Open(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	have, err := h.Routes()
	if err != nil {
		return err
	}
	for _, rt := range have {
		if !slices.ContainsFunc(want, func(w link.Route) bool { return w.Dst == rt.Dst && w.Gateway == rt.Gateway }) {
			if err := h.DelRoute(rt); err != nil {
				return err
			}
		}
	}
	var errs []error
	for _, rt := range want {
		if slices.ContainsFunc(have, func(h link.Route) bool {
			return h.Dst == rt.Dst && h.Gateway == rt.Gateway && (rt.Dev == "" || h.Dev == rt.Dev)
		}) {
			continue
		}
		// A nexthop no interface reaches fails; the other routes still go in.
		if err := h.AddRoute(rt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// teardown removes router id's namespace, veths and OVS ports (its
// table, routes and conntrack entries go with the namespace).
func (r *Role) teardown(ctx context.Context, id string) error {
	ns := r.cfg.NamespacePrefix + id
	if err := r.plugger().RemoveNamespace(ctx, NetnsExternalID, ns); err != nil {
		return fmt.Errorf("l3: router %s: remove: %w", id, err)
	}
	delete(r.routers, id)
	r.log.Info("l3: router no longer served here", "router", id)
	return nil
}

// reportFloatingIPs tells the server the floating IPs whose status
// changed: ACTIVE once configured, DOWN when their router could not be.
func (r *Role) reportFloatingIPs(ctx context.Context, reporter FloatingIPStatusReporter, snap map[string]desiredRouter) {
	if reporter == nil {
		return
	}
	var active, down []string
	seen := map[string]bool{}
	revision := map[string]int64{}
	for id, d := range snap {
		cur := r.routers[id]
		for _, f := range d.FloatingIPs {
			seen[f.ID] = true
			want := msg.StatusDown
			if cur != nil && cur.plan != nil && d.AdminStateUp {
				if _, ok := cur.plan.FloatingIPs[f.ID]; ok {
					want = msg.StatusActive
				}
			}
			if f.Status == want || r.fipStatus[f.ID] == (reportedStatus{want, f.Revision}) {
				continue
			}
			if want == msg.StatusActive {
				active = append(active, f.ID)
			} else {
				down = append(down, f.ID)
			}
			revision[f.ID] = f.Revision
		}
	}
	for id := range r.fipStatus {
		if !seen[id] {
			delete(r.fipStatus, id)
		}
	}
	if len(active) == 0 && len(down) == 0 {
		return
	}
	sort.Strings(active)
	sort.Strings(down)
	if err := reporter.FloatingIPStatus(ctx, active, down); err != nil {
		r.log.Warn("l3: floating IP status report failed; retried on the next pass", "err", err)
		return
	}
	for _, id := range active {
		r.fipStatus[id] = reportedStatus{msg.StatusActive, revision[id]}
	}
	for _, id := range down {
		r.fipStatus[id] = reportedStatus{msg.StatusDown, revision[id]}
	}
}

// Cleanup removes everything an l3 role with this configuration made on
// this host: every namespace with its prefix and every OVS port it
// plugged. It is for tearing a host down (neutrino down) while no agent
// runs.
func Cleanup(ctx context.Context, cfg Config, log *slog.Logger) error {
	r, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := reconcile.RemoveAll(ctx, r.log, r.cfg.OVS.DB, r.plugger(), NetnsExternalID, r.cfg.NamespacePrefix); err != nil {
		return fmt.Errorf("l3: %w", err)
	}
	return nil
}

// ConfigFrom makes the role's configuration from the agent's: the
// integration bridge of agent.l2, on the host's Open vSwitch inst (which
// runs in this process's namespace).
func ConfigFrom(c config.Agent, inst ovs.Instance) Config {
	return Config{IntegrationBridge: c.L2.IntegrationBridge, OVS: inst}
}
