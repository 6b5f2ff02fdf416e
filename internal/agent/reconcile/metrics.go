package reconcile

import "github.com/prometheus/client_golang/prometheus"

// passBuckets are the histogram buckets of reconcile passes: from a
// millisecond (nothing changed) to seconds (many namespaces made).
var passBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Result is the result label of a pass or call that ended with err.
func Result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Measure makes the loop time its passes in role's series of
// neutrino_agent_reconcile_duration_seconds and returns the collector to
// register. Call it before Run; calling it again returns the same one.
func (l *Loop) Measure(role string) prometheus.Collector {
	if d := l.duration.Load(); d != nil {
		return d
	}
	d := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "neutrino", Subsystem: "agent", Name: "reconcile_duration_seconds",
		Help:        "Duration of a role's reconcile passes by result.",
		ConstLabels: prometheus.Labels{"role": role},
		Buckets:     passBuckets,
	}, []string{"result"})
	l.duration.CompareAndSwap(nil, d)
	return l.duration.Load()
}

// Kicks is the number of kicks so far.
func (l *Loop) Kicks() uint64 { return l.kicks.Load() }

// Settled tells whether a pass that began after the first kicks kicks
// has succeeded: whatever those kicks asked for is done.
func (l *Loop) Settled(kicks uint64) bool { return l.settled.Load() >= kicks }
