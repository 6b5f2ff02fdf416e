package metadata

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// RegisterMetrics registers the duration of the role's reconcile passes
// with reg.
func (r *Role) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(r.loop.Measure(msg.RoleMetadata))
}

// Loop is the role's reconcile loop; the agent is ready once it has
// caught up with the first full sync.
func (r *Role) Loop() *reconcile.Loop { return r.loop }
