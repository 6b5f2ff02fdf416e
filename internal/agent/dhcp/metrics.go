package dhcp

import (
	"errors"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// metrics are the role's Prometheus series.
type metrics struct {
	replies *prometheus.CounterVec
	leases  *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neutrino", Subsystem: "dhcp", Name: "replies_total",
			Help: "DHCP replies sent, by message type (offer, ack, nak).",
		}, []string{"type"}),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neutrino", Subsystem: "dhcp", Name: "leases_total",
			Help: "Leases handed out (ACKs carrying an address), by network.",
		}, []string{"network"}),
	}
}

// replied is the reply observer of network's server.
func (m *metrics) replied(network string) func(Reply) {
	return func(r Reply) {
		m.replies.WithLabelValues(strings.ToLower(r.Msg.MessageType().String())).Inc()
		// An ACK to an INFORM carries options only, no address.
		if ip := r.Msg.YourIPAddr; r.Msg.MessageType() == dhcpv4.MessageTypeAck && ip != nil && !ip.IsUnspecified() {
			m.leases.WithLabelValues(network).Inc()
		}
	}
}

// forget drops the series of a network no longer served here.
func (m *metrics) forget(network string) { m.leases.DeleteLabelValues(network) }

// RegisterMetrics registers the role's series with reg: replies, leases,
// networks served and the duration of its reconcile passes.
func (r *Role) RegisterMetrics(reg prometheus.Registerer) error {
	networks := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "neutrino", Subsystem: "dhcp", Name: "networks",
		Help: "Networks whose DHCP server runs on this agent.",
	}, func() float64 { return float64(r.Stats().Networks) })
	var errs []error
	for _, c := range []prometheus.Collector{r.metrics.replies, r.metrics.leases, networks, r.loop.Measure(msg.RoleDHCP)} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// Loop is the role's reconcile loop; the agent is ready once it has
// caught up with the first full sync.
func (r *Role) Loop() *reconcile.Loop { return r.loop }
