// Package agent owns the node agent process: it connects to the bus,
// reports the state of each of its roles every report interval, receives
// the notifications of its host, and keeps its roles (l2, dhcp, …)
// converged on the server's desired state: a full sync on start, after a
// bus reconnect, on a gap in notification sequence numbers and
// periodically as a safety net, and incremental updates in between. It
// reports port status back for its roles. The roles themselves live in
// subpackages and plug in through the Role interface.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// Role is one job of the agent. The agent calls Sync and Apply from one
// goroutine, one call at a time, so a role needs no locking for them;
// both must be idempotent (the same state twice changes nothing).
type Role interface {
	// Name is the role's name in the configuration (msg.RoleL2, msg.RoleDHCP).
	Name() string
	// Report returns the role's state report (agent type, binary, topic,
	// configurations); the agent fills in version, host and Started.
	Report() msg.ReportState
	// Start prepares the role and starts its background work (watching
	// OVSDB, serving DHCP), which must end when ctx ends. It runs once,
	// before the first Sync.
	Start(ctx context.Context, env Env) error
	// Sync makes the role's state exactly the desired state of the host
	// (its own part of it), removing whatever the state does not name.
	Sync(ctx context.Context, state *msg.HostState) error
	// Apply applies one notification (its own part of it) on top of the
	// last Sync and the notifications before it.
	Apply(ctx context.Context, n *msg.Notification) error
}

// Env is what a role gets from the agent.
type Env struct {
	Host string
	Log  *slog.Logger
	// Status reports ports wired (up) or unwired (down) to the server.
	Status StatusReporter
	// Resync asks the agent for a full sync soon (the role found its
	// state doubtful); it does not block.
	Resync func(reason string)
}

// StatusReporter tells the server which ports a role wired or unwired.
type StatusReporter interface {
	PortStatus(ctx context.Context, up, down []string) error
}

// Options configure an agent.
type Options struct {
	// Host is the node's name, as binding:host_id names it.
	Host  string
	Roles []Role
	// ReportInterval is how often state is reported (default 10 s).
	ReportInterval time.Duration
	// ResyncInterval is how often a full sync runs anyway (default 60 s).
	ResyncInterval time.Duration
	// GapWait is how long a missing notification is awaited (it may come
	// late from another server replica) before a full sync (default 500 ms).
	GapWait time.Duration
	Log     *slog.Logger
	// Metrics receives the series of the agent, its roles and its bus
	// connection; nil keeps none (unless MetricsListen is set).
	Metrics *prometheus.Registry
	// MetricsListen, if not empty, is the address where Run serves
	// Metrics on /metrics, and /healthz and /readyz.
	MetricsListen string
}

// Defaults, as documented in docs/configuration.md.
const (
	DefaultReportInterval = 10 * time.Second
	DefaultResyncInterval = 60 * time.Second
	DefaultGapWait        = 500 * time.Millisecond
	// retryWait bounds the back-off of a failed sync or report.
	retryWait = 5 * time.Second
)

// Agent is a running node agent.
type Agent struct {
	conn *bus.Conn
	opts Options
	log  *slog.Logger

	// inbox holds notifications the bus delivered, in arrival order; the
	// bus callback never blocks on the agent loop.
	mu     sync.Mutex
	inbox  []*msg.Notification
	resync string // a pending resync's reason, "" when none
	wake   chan struct{}

	// Loop state, touched by Run's goroutine only.
	epoch    string
	seq      uint64
	synced   bool
	pending  map[uint64]*msg.Notification
	gapSince time.Time

	stats Stats
	// firstSynced is set by the first full sync that succeeded; marks are
	// the kicks of each converging role's loop then (see Ready).
	firstSynced bool
	marks       map[string]uint64

	syncDuration *prometheus.HistogramVec
}

// Stats count what the agent did, for tests and metrics.
type Stats struct {
	Syncs, Applied, Skipped, Gaps int
}

// New makes an agent on a bus connection.
func New(conn *bus.Conn, opts Options) (*Agent, error) {
	if opts.Host == "" {
		return nil, errors.New("agent: host name is required")
	}
	if len(opts.Roles) == 0 {
		return nil, errors.New("agent: no roles configured")
	}
	seen := map[string]bool{}
	for _, r := range opts.Roles {
		if seen[r.Name()] {
			return nil, fmt.Errorf("agent: role %s configured twice", r.Name())
		}
		seen[r.Name()] = true
	}
	if opts.ReportInterval <= 0 {
		opts.ReportInterval = DefaultReportInterval
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.GapWait <= 0 {
		opts.GapWait = DefaultGapWait
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &Agent{
		conn: conn, opts: opts, log: opts.Log.With("host", opts.Host),
		wake: make(chan struct{}, 1), pending: map[uint64]*msg.Notification{},
	}
	if opts.MetricsListen != "" && opts.Metrics == nil {
		a.opts.Metrics = prometheus.NewRegistry()
	}
	if a.opts.Metrics != nil {
		if err := a.registerMetrics(a.opts.Metrics); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Stats returns the counters so far; safe to call while the agent runs.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Run runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.opts.MetricsListen != "" {
		stop, err := a.serveHTTP(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	env := Env{Host: a.opts.Host, Log: a.log, Status: statusReporter{a}, Resync: a.RequestResync}
	for _, r := range a.opts.Roles {
		if err := r.Start(ctx, env); err != nil {
			return fmt.Errorf("agent: start role %s: %w", r.Name(), err)
		}
	}
	unsub, err := a.conn.Subscribe(msg.HostSubject(a.opts.Host), a.receive)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer unsub()
	// Notifications sent while the connection was down are lost.
	a.conn.OnReconnect(func() { a.RequestResync("bus reconnected") })
	if err := a.conn.Flush(ctx); err != nil {
		a.log.Warn("bus flush failed; the first sync will retry", "err", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.reportLoop(ctx)
	}()
	a.RequestResync("agent started")
	a.loop(ctx)
	wg.Wait()
	return nil
}

// RequestResync asks for a full sync; it does not block.
func (a *Agent) RequestResync(reason string) {
	a.mu.Lock()
	if a.resync == "" {
		a.resync = reason
	}
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// receive is the bus callback: it queues the notification for the loop.
func (a *Agent) receive(_ string, data []byte) {
	n, err := bus.Decode[msg.Notification](data)
	if err == nil {
		err = msg.CheckVersion(n.Version)
	}
	if err != nil {
		a.log.Warn("unreadable notification; resyncing", "err", err)
		a.RequestResync("unreadable notification")
		return
	}
	a.mu.Lock()
	a.inbox = append(a.inbox, &n)
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) loop(ctx context.Context) {
	resyncTick := time.NewTicker(a.opts.ResyncInterval)
	defer resyncTick.Stop()
	// timer wakes the loop for a retry or a gap deadline.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retry := time.Duration(0)
	var nextTry time.Time
	for {
		a.mu.Lock()
		reason, inbox := a.resync, a.inbox
		a.resync, a.inbox = "", nil
		a.mu.Unlock()
		for _, n := range inbox {
			a.accept(n)
		}
		if reason == "" && a.synced {
			reason = a.applyReady(ctx)
		}
		// After a failed sync, the next one waits for its back-off unless
		// something asked for it.
		if reason == "" && !a.synced && !time.Now().Before(nextTry) {
			reason = "retry"
		}
		if reason != "" {
			if err := a.sync(ctx, reason); err != nil {
				if ctx.Err() != nil {
					return
				}
				retry = min(max(2*retry, 100*time.Millisecond), retryWait)
				a.log.Warn("full sync failed; retrying", "reason", reason, "err", err, "in", retry)
				nextTry = time.Now().Add(retry)
				resetTimer(timer, retry)
			} else {
				retry = 0
				if r := a.applyReady(ctx); r != "" {
					a.RequestResync(r)
				}
			}
		}
		if a.synced && len(a.pending) > 0 {
			resetTimer(timer, time.Until(a.gapSince.Add(a.opts.GapWait)))
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-timer.C:
			if a.synced && len(a.pending) > 0 && time.Since(a.gapSince) >= a.opts.GapWait {
				a.count(func(s *Stats) { s.Gaps++ })
				a.RequestResync(fmt.Sprintf("notification %d never arrived", a.seq+1))
			}
		case <-resyncTick.C:
			a.RequestResync("periodic")
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(max(d, 0))
}

func (a *Agent) count(fn func(*Stats)) {
	a.mu.Lock()
	fn(&a.stats)
	a.mu.Unlock()
}

// accept files a received notification under its sequence number.
func (a *Agent) accept(n *msg.Notification) {
	if a.synced && n.Epoch != a.epoch {
		a.RequestResync("server epoch changed")
		return
	}
	if a.synced && n.Seq <= a.seq {
		a.count(func(s *Stats) { s.Skipped++ })
		return
	}
	if len(a.pending) == 0 {
		a.gapSince = time.Now()
	}
	a.pending[n.Seq] = n
}

// applyReady applies the pending notifications that follow the state in
// sequence; it returns a resync reason if one is needed.
func (a *Agent) applyReady(ctx context.Context) string {
	for {
		n, ok := a.pending[a.seq+1]
		if !ok {
			break
		}
		delete(a.pending, n.Seq)
		a.seq = n.Seq
		if n.Resync {
			return "server asked for a resync"
		}
		for _, r := range a.opts.Roles {
			if err := r.Apply(ctx, n); err != nil {
				a.log.Warn("applying a notification failed; resyncing", "role", r.Name(), "seq", n.Seq, "err", err)
				return "apply failed in role " + r.Name()
			}
		}
		a.count(func(s *Stats) { s.Applied++ })
		a.gapSince = time.Now()
	}
	if len(a.pending) == 0 {
		a.gapSince = time.Time{}
	}
	return ""
}

func (a *Agent) roleNames() []string {
	names := make([]string, 0, len(a.opts.Roles))
	for _, r := range a.opts.Roles {
		names = append(names, r.Name())
	}
	return names
}

// sync takes the host's full desired state and hands it to every role.
func (a *Agent) sync(ctx context.Context, reason string) (err error) {
	start := time.Now()
	if a.syncDuration != nil {
		defer func() {
			if ctx.Err() == nil {
				a.syncDuration.WithLabelValues(reconcile.Result(err)).Observe(time.Since(start).Seconds())
			}
		}()
	}
	var st msg.HostState
	err = a.conn.Call(ctx, msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: a.opts.Host, Roles: a.roleNames()}, &st)
	if err != nil {
		a.synced = false
		return fmt.Errorf("agent: sync: %w", err)
	}
	if err := msg.CheckVersion(st.Version); err != nil {
		a.synced = false
		return fmt.Errorf("agent: sync: %w", err)
	}
	for _, r := range a.opts.Roles {
		if err := r.Sync(ctx, &st); err != nil {
			a.synced = false
			return fmt.Errorf("agent: sync role %s: %w", r.Name(), err)
		}
	}
	a.epoch, a.seq, a.synced = st.Epoch, st.Seq, true
	for seq, n := range a.pending {
		if seq <= a.seq || n.Epoch != a.epoch {
			delete(a.pending, seq)
		}
	}
	a.count(func(s *Stats) { s.Syncs++ })
	a.markFirstSync()
	a.log.Info("full sync done", "reason", reason, "seq", st.Seq, "took", time.Since(start))
	return nil
}

// reportLoop reports every role's state every report interval; the first
// successful report of each role says it has (re)started.
func (a *Agent) reportLoop(ctx context.Context) {
	started := map[string]bool{}
	tick := time.NewTicker(a.opts.ReportInterval)
	defer tick.Stop()
	for {
		for _, r := range a.opts.Roles {
			rep := r.Report()
			rep.Version, rep.Host, rep.Started = msg.Version, a.opts.Host, !started[r.Name()]
			cctx, cancel := context.WithTimeout(ctx, a.opts.ReportInterval)
			err := a.conn.Call(cctx, msg.MethodReportState, rep, nil)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("state report failed", "role", r.Name(), "err", err)
				continue
			}
			started[r.Name()] = true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// statusReporter sends port status over RPC.
type statusReporter struct{ a *Agent }

func (s statusReporter) PortStatus(ctx context.Context, up, down []string) error {
	if len(up) == 0 && len(down) == 0 {
		return nil
	}
	req := msg.PortStatus{Version: msg.Version, Host: s.a.opts.Host, Up: slices.Clone(up), Down: slices.Clone(down)}
	var rep msg.PortStatusReply
	if err := s.a.conn.Call(ctx, msg.MethodPortStatus, req, &rep); err != nil {
		return fmt.Errorf("agent: port status: %w", err)
	}
	if len(rep.Unknown) > 0 {
		s.a.log.Debug("server does not know these ports on this host", "ports", rep.Unknown)
	}
	return nil
}

// FloatingIPStatus reports the floating IPs an l3 role configured (active)
// or could not (down).
func (s statusReporter) FloatingIPStatus(ctx context.Context, active, down []string) error {
	if len(active) == 0 && len(down) == 0 {
		return nil
	}
	req := msg.FloatingIPStatus{Version: msg.Version, Host: s.a.opts.Host, Active: slices.Clone(active), Down: slices.Clone(down)}
	var rep msg.FloatingIPStatusReply
	if err := s.a.conn.Call(ctx, msg.MethodFloatingIPStatus, req, &rep); err != nil {
		return fmt.Errorf("agent: floating IP status: %w", err)
	}
	if len(rep.Unknown) > 0 {
		s.a.log.Debug("server does not know these floating IPs on this host", "floating_ips", rep.Unknown)
	}
	return nil
}
