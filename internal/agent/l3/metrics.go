package l3

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// RegisterMetrics registers the role's series with reg: what is
// configured, read from its stats at scrape time, and the duration of its
// reconcile passes.
func (r *Role) RegisterMetrics(reg prometheus.Registerer) error {
	gauge := func(name, help string, value func(Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "neutrino", Subsystem: "l3", Name: name, Help: help},
			func() float64 { return float64(value(r.Stats())) })
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		gauge("routers", "Routers configured in namespaces on this agent.", func(s Stats) int { return s.Routers }),
		gauge("floating_ips", "Floating IPs configured (active) on this agent's routers.", func(s Stats) int { return s.FloatingIPs }),
		gauge("router_interfaces", "Router interfaces (not gateways) configured on this agent.", func(s Stats) int { return s.Interfaces }),
		r.loop.Measure(msg.RoleL3),
	} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// Loop is the role's reconcile loop; the agent is ready once it has
// caught up with the first full sync.
func (r *Role) Loop() *reconcile.Loop { return r.loop }
