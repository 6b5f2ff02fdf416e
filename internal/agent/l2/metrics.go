package l2

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	agentreconcile "github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// metrics are the role's Prometheus series.
type metrics struct {
	reconcile  *prometheus.HistogramVec
	flows      *prometheus.GaugeVec
	wired      prometheus.Gauge
	fullPushes prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "neutrino", Subsystem: "l2", Name: "reconcile_duration_seconds",
			Help:    "Duration of l2 reconcile passes (OVSDB, flows, port status) by result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
		flows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "neutrino", Subsystem: "l2", Name: "flows",
			Help: "OpenFlow flows installed by the l2 role, by bridge and table.",
		}, []string{"bridge", "table"}),
		wired: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "neutrino", Subsystem: "l2", Name: "ports_wired",
			Help: "Ports whose VIF is plugged and wired.",
		}),
		fullPushes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "neutrino", Subsystem: "l2", Name: "full_pushes_total",
			Help: "Bridges programmed whole (agent start, ovs-vswitchd restart, failed bundle).",
		}),
	}
}

// RegisterMetrics registers the role's series with reg, and its passes in
// the agent's neutrino_agent_reconcile_duration_seconds beside every role's.
func (r *Role) RegisterMetrics(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{r.metrics.reconcile, r.metrics.flows, r.metrics.wired, r.metrics.fullPushes, r.passes.Measure(msg.RoleL2)} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// observeFlows sets the per-table flow counts of a bridge just programmed.
func (m *metrics) observeFlows(bridge, role string, set FlowSet) {
	counts := map[Table]int{}
	for t := range tableNames[role] {
		counts[t] = 0
	}
	for _, f := range set {
		counts[f.Table]++
	}
	for t, n := range counts {
		m.flows.WithLabelValues(bridge, TableName(role, t)).Set(float64(n))
	}
}

// Loop is the role's reconcile loop; the agent is ready once it has
// caught up with the first full sync.
func (r *Role) Loop() *agentreconcile.Loop { return r.passes }
