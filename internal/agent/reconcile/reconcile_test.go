package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopRetriesFailedPassesAndStops(t *testing.T) {
	l := NewLoop()
	var passes atomic.Int32
	stopped := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go l.Run(ctx, slog.Default(), func(context.Context) error {
		// The first two passes fail: the loop retries without a kick.
		if passes.Add(1) <= 2 {
			return errors.New("not yet")
		}
		return nil
	}, func() { close(stopped) })
	l.Kick()
	deadline := time.Now().Add(5 * time.Second)
	for passes.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d passes; want a retry after each failure", passes.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * MinRetry)
	if n := passes.Load(); n != 3 {
		t.Errorf("%d passes after a success without a kick; want 3", n)
	}
	l.Kick()
	for passes.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatal("a kick after success ran no pass")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-l.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("Stopped not closed after the context ended")
	}
	select {
	case <-stopped:
	default:
		t.Error("stop did not run")
	}
}
