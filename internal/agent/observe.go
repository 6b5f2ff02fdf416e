package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
)

// Converging is a role whose Sync only hands the state to a background
// reconcile loop (every built-in role): the agent counts it ready once
// that loop has finished a pass begun after the first full sync.
type Converging interface {
	Loop() *reconcile.Loop
}

// MetricsRole is a role with Prometheus series of its own.
type MetricsRole interface {
	RegisterMetrics(prometheus.Registerer) error
}

// registerMetrics registers the agent's series, its bus connection's and
// its roles' with reg.
func (a *Agent) registerMetrics(reg *prometheus.Registry) error {
	a.syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "neutrino", Subsystem: "agent", Name: "sync_duration_seconds",
		Help:    "Duration of full syncs (the sync request and every role taking the state), by result.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"result"})
	counter := func(name, help string, value func(Stats) int) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "neutrino", Subsystem: "agent", Name: name, Help: help},
			func() float64 { return float64(value(a.Stats())) })
	}
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "neutrino", Subsystem: "agent", Name: "ready",
		Help: "1 when the agent is connected to the bus and every role has applied the first full sync (/readyz), else 0.",
	}, func() float64 {
		if a.Ready() != nil {
			return 0
		}
		return 1
	})
	errs := []error{
		reg.Register(a.syncDuration),
		reg.Register(counter("notifications_applied_total", "Notifications applied in sequence.", func(s Stats) int { return s.Applied })),
		reg.Register(counter("sequence_gaps_total", "Notifications that never arrived, each followed by a full sync.", func(s Stats) int { return s.Gaps })),
		reg.Register(ready),
		a.conn.RegisterMetrics(reg),
	}
	for _, r := range a.opts.Roles {
		if m, ok := r.(MetricsRole); ok {
			if err := m.RegisterMetrics(reg); err != nil {
				errs = append(errs, fmt.Errorf("role %s: %w", r.Name(), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	return nil
}

// markFirstSync records, at the first full sync that succeeded, how far
// each converging role's loop had been kicked.
func (a *Agent) markFirstSync() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.firstSynced {
		return
	}
	marks := map[string]uint64{}
	for _, r := range a.opts.Roles {
		if c, ok := r.(Converging); ok {
			marks[r.Name()] = c.Loop().Kicks()
		}
	}
	a.firstSynced, a.marks = true, marks
}

// Ready says why the agent is not ready yet, or nil once it is connected
// to the bus and every role has applied the first full sync.
func (a *Agent) Ready() error {
	if !a.conn.Connected() {
		return errors.New("not connected to the bus")
	}
	a.mu.Lock()
	synced, marks := a.firstSynced, a.marks
	a.mu.Unlock()
	if !synced {
		return errors.New("the first full sync has not succeeded yet")
	}
	for _, r := range a.opts.Roles {
		if c, ok := r.(Converging); ok && !c.Loop().Settled(marks[r.Name()]) {
			return fmt.Errorf("role %s has not applied the first full sync yet", r.Name())
		}
	}
	return nil
}

// Handler serves /metrics from the agent's registry, /healthz (the
// process is up) and /readyz (Ready).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if a.opts.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.opts.Metrics, promhttp.HandlerOpts{}))
	}
	return mux
}

// serveHTTP serves Handler on MetricsListen until the returned function
// is called or ctx ends.
func (a *Agent) serveHTTP(ctx context.Context) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.opts.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("agent: metrics: listen on %s (agent.metrics_listen): %w", a.opts.MetricsListen, err)
	}
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	a.log.Info("agent metrics and health endpoints listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-done
	}, nil
}
