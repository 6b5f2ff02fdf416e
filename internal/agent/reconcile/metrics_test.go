package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLoopSettlesAndMeasures: a loop has settled a kick only once a pass
// begun after it succeeded, and a measured loop times every pass.
func TestLoopSettlesAndMeasures(t *testing.T) {
	l := NewLoop()
	reg := prometheus.NewRegistry()
	if err := reg.Register(l.Measure("dhcp")); err != nil {
		t.Fatal(err)
	}
	if l.Measure("dhcp") != l.Measure("dhcp") {
		t.Error("Measure made a second collector")
	}
	var fail atomic.Bool
	fail.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-l.Stopped() }()
	go l.Run(ctx, slog.Default(), func(context.Context) error {
		if fail.Load() {
			return errors.New("not yet")
		}
		return nil
	}, nil)
	if !l.Settled(l.Kicks()) {
		t.Error("a loop never kicked has not settled")
	}
	l.Kick()
	mark := l.Kicks()
	time.Sleep(3 * MinRetry)
	if l.Settled(mark) {
		t.Fatal("settled while every pass fails")
	}
	fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for !l.Settled(mark) {
		if time.Now().After(deadline) {
			t.Fatal("not settled after a pass succeeded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	counts := map[string]uint64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, p := range m.GetLabel() {
				labels[p.GetName()] = p.GetValue()
			}
			if mf.GetName() == "neutrino_agent_reconcile_duration_seconds" && labels["role"] == "dhcp" {
				counts[labels["result"]] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if counts["error"] < 1 || counts["ok"] != 1 {
		t.Errorf("passes timed by result: %v, want ≥ 1 error and 1 ok", counts)
	}
}
