// Package reconcile owns what the agent roles that converge a host on a
// desired state in the background share (l2, dhcp, l3, metadata): the loop that runs a
// pass whenever it is kicked and retries a failed pass with a growing
// back-off, the count and duration of its passes and whether it has caught
// up with its kicks (the agent's readiness), an OVSDB connection that is made
// again when it drops, and the checks and clean-up of the namespaces they
// serve from.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// Retry back-off of a failed pass.
const (
	MinRetry = 50 * time.Millisecond
	MaxRetry = 2 * time.Second
)

// Passes is what a role's stats tell of its passes.
type Passes struct {
	// Reconciles counts passes that completed.
	Reconciles int
	// LastError is the error of the last failed pass ("" after a success).
	LastError string
}

// Record counts a pass that ended with err.
func (p *Passes) Record(err error) {
	if err != nil {
		p.LastError = err.Error()
		return
	}
	p.LastError = ""
	p.Reconciles++
}

// Loop runs passes one at a time on a goroutine of its own.
type Loop struct {
	kick    chan struct{}
	stopped chan struct{}
	// kicks counts kicks so far; settled is what kicks was when the last
	// successful pass began, so every kick up to it has been acted on.
	kicks, settled atomic.Uint64
	// duration, once Measure made it, times every pass.
	duration atomic.Pointer[prometheus.HistogramVec]
}

// NewLoop makes a loop; Run starts it.
func NewLoop() *Loop {
	return &Loop{kick: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// Kick asks for a pass; it does not block. Kicks while a pass runs make
// one more pass after it.
func (l *Loop) Kick() {
	l.kicks.Add(1)
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Stopped is closed once Run returned.
func (l *Loop) Stopped() <-chan struct{} { return l.stopped }

// Run runs pass after every kick until ctx ends, then runs stop (may be
// nil) and closes Stopped. A failed pass is logged and retried after a
// back-off that doubles from MinRetry to MaxRetry and resets on success.
func (l *Loop) Run(ctx context.Context, log *slog.Logger, pass func(context.Context) error, stop func()) {
	defer close(l.stopped)
	if stop != nil {
		defer stop()
	}
	backoff := MinRetry
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-retry.C:
		}
		begun, start := l.kicks.Load(), time.Now()
		err := pass(ctx)
		if ctx.Err() != nil && err != nil {
			return
		}
		if d := l.duration.Load(); d != nil {
			d.WithLabelValues(Result(err)).Observe(time.Since(start).Seconds())
		}
		if err == nil {
			l.settled.Store(begun)
			backoff = MinRetry
			continue
		}
		log.Warn("reconcile failed; retrying", "err", err, "in", backoff)
		retry.Reset(backoff)
		backoff = min(2*backoff, MaxRetry)
	}
}

// OVSDB keeps a connection to one ovsdb-server. It is not safe for
// concurrent use: the passes of one loop use it.
type OVSDB struct {
	Endpoint string
	Log      *slog.Logger
	db       *ovs.Client
}

// connectTimeout bounds one connection attempt.
const connectTimeout = 10 * time.Second

// Client returns the connection, made again if it dropped.
func (o *OVSDB) Client(ctx context.Context) (*ovs.Client, error) {
	if o.db != nil {
		select {
		case <-o.db.Disconnected():
			o.db.Close()
			o.db = nil
		default:
			return o.db, nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	db, err := ovs.Connect(cctx, o.Endpoint, o.Log)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	o.db = db
	return db, nil
}

// Close closes the connection, if any.
func (o *OVSDB) Close() {
	if o.db != nil {
		o.db.Close()
		o.db = nil
	}
}
