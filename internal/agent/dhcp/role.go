package dhcp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// Defaults of Config.
const (
	DefaultIntegrationBridge = "br-int"
	DefaultNamespacePrefix   = "qdhcp-"
	// Driver is what the role reports as its dhcp_driver.
	Driver = "neutrino.dhcp.InProcessDHCPv4"
)

// Config configures the dhcp role, as Neutron's dhcp_agent.ini.
type Config struct {
	// Settings are the lease time and domain name handed out.
	Settings
	// IntegrationBridge is where DHCP ports plug in (default br-int),
	// made by the l2 role of the same host.
	IntegrationBridge string
	// OVS is the host's Open vSwitch.
	OVS ovs.Instance
	// BridgeNetns is the network namespace ovs-vswitchd runs in, where the
	// bridge ends of the veth pairs go; "" is this process's own.
	BridgeNetns string
	// NamespacePrefix names each network's namespace, prefix + network id
	// (default qdhcp-). Namespaces with the prefix that the role does not
	// serve are removed at every full sync, so agents sharing one machine
	// (test beds) need prefixes of their own.
	NamespacePrefix string
}

// Role is the dhcp role of the agent (agent.Role).
type Role struct {
	cfg  Config
	log  *slog.Logger
	loop *reconcile.Loop

	// mu guards the desired state, which Sync and Apply change from the
	// agent's goroutine while the reconciler reads it, and the stats.
	mu      sync.Mutex
	host    string
	desired *desiredState
	full    bool // the next pass checks every network against the system
	stats   Stats
	metrics *metrics

	// reconcileMu serialises passes; the fields below are theirs.
	reconcileMu sync.Mutex
	ovsdb       reconcile.OVSDB
	db          *ovs.Client // the connection of the pass running
	nets        map[string]*servedNetwork
	problems    map[string]string
}

// servedNetwork is what the role made for one network.
type servedNetwork struct {
	plumbing *plumbing // nil until plugged
	server   *Server
	gen      uint64
}

// Stats tell what the role does, for its state report, tests and metrics.
type Stats struct {
	// Networks, Subnets and Ports count what the servers answer for.
	Networks, Subnets, Ports int
	// Passes count the reconcile passes and keep the last one's error.
	reconcile.Passes
}

// New makes the dhcp role.
func New(cfg Config, log *slog.Logger) (*Role, error) {
	cfg.IntegrationBridge = cmp.Or(cfg.IntegrationBridge, DefaultIntegrationBridge)
	cfg.NamespacePrefix = cmp.Or(cfg.NamespacePrefix, DefaultNamespacePrefix)
	if err := reconcile.CheckNamespaces(msg.RoleDHCP, cfg.NamespacePrefix, cfg.OVS.DB); err != nil {
		return nil, err
	}
	log = cmp.Or(log, slog.Default())
	return &Role{
		cfg: cfg, log: log.With("role", msg.RoleDHCP), loop: reconcile.NewLoop(),
		ovsdb: reconcile.OVSDB{Endpoint: cfg.OVS.DB, Log: log},
		nets:  map[string]*servedNetwork{}, problems: map[string]string{},
		metrics: newMetrics(),
	}, nil
}

// Name is msg.RoleDHCP.
func (r *Role) Name() string { return msg.RoleDHCP }

// Report is the DHCP agent's state report.
func (r *Role) Report() msg.ReportState {
	r.mu.Lock()
	st := r.stats
	r.mu.Unlock()
	lease := int(r.cfg.leaseTime() / time.Second)
	if r.cfg.leaseTime() < 0 {
		lease = -1
	}
	conf := msg.DHCPConfigurations{
		DHCPDriver: Driver, Networks: st.Networks, Subnets: st.Subnets, Ports: st.Ports,
		DHCPLeaseDuration: lease,
	}
	return msg.ReportState{
		AgentType:      msg.AgentTypeDHCP,
		Binary:         msg.BinaryDHCP,
		Topic:          msg.TopicDHCP,
		Configurations: conf.Map(),
	}
}

// Stopped is closed once the role's servers have stopped after the
// context given to Start ended.
func (r *Role) Stopped() <-chan struct{} { return r.loop.Stopped() }

// Stats returns what the role did so far.
func (r *Role) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Start begins reconciling in the background until ctx ends; then the
// servers stop, and the namespaces stay for the next run to adopt.
func (r *Role) Start(ctx context.Context, env agent.Env) error {
	if env.Log != nil {
		r.log = env.Log.With("role", msg.RoleDHCP)
	}
	r.mu.Lock()
	r.host = env.Host
	r.mu.Unlock()
	go r.loop.Run(ctx, r.log, r.Reconcile, r.stop)
	return nil
}

// Sync replaces the desired state; the next pass checks every network.
func (r *Role) Sync(_ context.Context, state *msg.HostState) error {
	r.mu.Lock()
	d := newDesiredState(r.host)
	if state != nil {
		d.replace(state.DHCP)
	}
	r.desired, r.full = d, true
	r.mu.Unlock()
	r.Kick()
	return nil
}

// Apply applies a notification to the desired state.
func (r *Role) Apply(_ context.Context, n *msg.Notification) error {
	if n == nil || n.DHCP == nil {
		return nil
	}
	r.mu.Lock()
	if r.desired == nil {
		r.desired = newDesiredState(r.host)
	}
	r.desired.update(n.DHCP)
	r.mu.Unlock()
	r.Kick()
	return nil
}

// Kick asks for a reconcile pass; it does not block.
func (r *Role) Kick() { r.loop.Kick() }

// stop ends every server and the OVSDB connection.
func (r *Role) stop() {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	for _, s := range r.nets {
		if s.server != nil {
			s.server.Close()
			s.server = nil
		}
	}
	r.ovsdb.Close()
	r.db = nil
}

// Reconcile makes namespaces, DHCP ports and servers match the desired
// state once. It does nothing before the first Sync.
func (r *Role) Reconcile(ctx context.Context) error {
	r.reconcileMu.Lock()
	defer r.reconcileMu.Unlock()
	r.mu.Lock()
	if r.desired == nil {
		r.mu.Unlock()
		return nil
	}
	snap, full := r.desired.snapshot(), r.full
	r.full = false
	r.mu.Unlock()

	err := r.reconcile(ctx, snap, full)

	var st Stats
	for _, s := range r.nets {
		if s.server != nil {
			t := s.server.Table()
			st.Networks++
			st.Subnets += len(t.serverIDs)
			st.Ports += t.Len()
		}
	}
	r.mu.Lock()
	if err != nil && full {
		r.full = true // what it could not check is checked on the retry
	}
	st.Passes = r.stats.Passes
	st.Record(err)
	r.stats = st
	r.mu.Unlock()
	return err
}

func (r *Role) reconcile(ctx context.Context, snap map[string]desiredNetwork, full bool) error {
	db, err := r.ovsdb.Client(ctx)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	r.db = db
	pl := &plumber{cfg: r.cfg, db: r.db}
	var errs []error
	want := map[string]bool{} // namespaces that stay
	ids := make([]string, 0, len(snap))
	for id := range snap {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := snap[id]
		p, err := r.cfg.plumbingFor(n.DHCPNetwork)
		if err != nil {
			errs = append(errs, err)
			want[r.cfg.NamespacePrefix+id] = true // leave it as it is
			continue
		}
		cur := r.nets[id]
		if p == nil || (cur != nil && cur.plumbing != nil && cur.plumbing.PortID != p.PortID) {
			// Nothing to serve, or another DHCP port: out with the old.
			if cur != nil {
				if err := r.teardown(ctx, pl, id); err != nil {
					errs = append(errs, err)
					want[r.cfg.NamespacePrefix+id] = true
					continue
				}
			}
			if p == nil {
				continue
			}
			cur = nil
		}
		want[p.Netns] = true
		if cur != nil && !full && cur.gen == n.gen && cur.plumbing.Equal(p) && cur.server != nil {
			continue
		}
		if err := r.serve(ctx, pl, n, p, full); err != nil {
			errs = append(errs, fmt.Errorf("dhcp: network %s: %w", id, err))
		}
	}
	for id := range r.nets {
		if _, ok := snap[id]; !ok {
			if err := r.teardown(ctx, pl, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if full {
		// Namespaces and OVS ports that no served network has: left by a
		// previous run, or by a failed teardown.
		if err := reconcile.RemoveStale(ctx, r.log, pl.vif(), NetnsExternalID, r.cfg.NamespacePrefix, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serve plugs network n's DHCP port as p says and runs its server with a
// fresh table.
func (r *Role) serve(ctx context.Context, pl *plumber, n desiredNetwork, p *plumbing, full bool) error {
	cur := r.nets[n.ID]
	if cur == nil {
		cur = &servedNetwork{}
		r.nets[n.ID] = cur
	}
	if full || !cur.plumbing.Equal(p) {
		recreated, err := pl.ensure(ctx, p)
		if recreated && cur.server != nil {
			// Its socket is bound to the interface that went.
			cur.server.Close()
			cur.server = nil
		}
		if err != nil {
			cur.plumbing = nil
			return err
		}
		cur.plumbing = p
	}
	table := BuildTable(n.DHCPNetwork, n.DHCPPort, r.cfg.Settings)
	if text := strings.Join(table.Problems, "; "); text != r.problems[n.ID] {
		r.problems[n.ID] = text
		if text != "" {
			r.log.Warn("dhcp: part of the network's DHCP configuration is not served", "network", n.ID, "problems", table.Problems)
		}
	}
	if cur.server == nil {
		srv, err := Listen(p.Netns, p.Dev, table, r.log.With("network", n.ID))
		if err != nil {
			return err
		}
		srv.OnReply(r.metrics.replied(n.ID))
		cur.server = srv
		r.log.Info("dhcp: serving network", "network", n.ID, "netns", p.Netns, "dev", p.Dev, "addresses", p.Addrs, "macs", table.Len())
	} else {
		cur.server.SetTable(table)
	}
	cur.gen = n.gen
	return nil
}

// teardown stops the network's server and removes its namespace, veth and
// OVS port.
func (r *Role) teardown(ctx context.Context, pl *plumber, id string) error {
	if cur := r.nets[id]; cur != nil && cur.server != nil {
		cur.server.Close()
		cur.server = nil
	}
	if err := pl.remove(ctx, r.cfg.NamespacePrefix+id); err != nil {
		return fmt.Errorf("dhcp: network %s: remove: %w", id, err)
	}
	delete(r.nets, id)
	delete(r.problems, id)
	r.metrics.forget(id)
	r.log.Info("dhcp: network no longer served here", "network", id)
	return nil
}

// Cleanup removes everything a dhcp role with this configuration made on
// this host: every namespace with its prefix and every OVS port it
// plugged. It is for tearing a host down (neutrino down) while no agent
// runs.
func Cleanup(ctx context.Context, cfg Config, log *slog.Logger) error {
	r, err := New(cfg, log)
	if err != nil {
		return err
	}
	pl := plumber{cfg: r.cfg}
	if err := reconcile.RemoveAll(ctx, r.log, r.cfg.OVS.DB, pl.vif(), NetnsExternalID, r.cfg.NamespacePrefix); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	return nil
}

// ConfigFrom makes the role's configuration from the agent's: the lease
// time of agent.dhcp and the integration bridge of agent.l2, on the host's
// Open vSwitch inst (which runs in this process's namespace).
func ConfigFrom(c config.Agent, inst ovs.Instance) Config {
	return Config{
		Settings:          Settings{LeaseDuration: c.DHCP.LeaseDuration, IsolatedMetadata: c.DHCP.EnableIsolatedMetadata},
		IntegrationBridge: c.L2.IntegrationBridge,
		OVS:               inst,
	}
}
