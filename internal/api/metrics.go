package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus series.
type metrics struct {
	requests *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "neutrino", Subsystem: "api", Name: "request_duration_seconds",
		Help:    "API request latency by resource, verb and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"resource", "verb", "code"})}
	if reg != nil {
		reg.MustRegister(m.requests)
	}
	return m
}

// observe records one request once routing has filled its path values.
func (m *metrics) observe(r *http.Request, status int, d time.Duration) {
	res := r.PathValue("plural")
	if res == "" {
		switch {
		case r.Pattern == "":
			res = "unknown"
		default:
			res = "root"
		}
	}
	verb := r.Method
	if r.PathValue("action") != "" {
		verb = r.PathValue("action")
	}
	m.requests.WithLabelValues(res, verb, strconv.Itoa(status)).Observe(d.Seconds())
}
