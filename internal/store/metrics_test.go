package store

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTransactionMetrics: with metrics registered, every transaction is
// timed by kind and result, and a retry is counted.
func TestTransactionMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		if err := db.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		attempts := 0
		if err := db.Tx(ctx, func(*Tx) error {
			if attempts++; attempts == 1 {
				return Retry(errors.New("lost a race"))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.View(ctx, func(*Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.View(ctx, func(*Tx) error { return ErrNotFound }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("View: %v, want ErrNotFound", err)
		}
		for _, c := range []struct{ kind, result string }{{"write", "ok"}, {"read", "ok"}, {"read", "error"}} {
			labels := map[string]string{"backend": db.Backend(), "kind": c.kind, "result": c.result}
			if n := gathered(t, reg, "neutrino_db_transaction_duration_seconds", labels); n != 1 {
				t.Errorf("%s transactions with result %s timed %v times, want 1", c.kind, c.result, n)
			}
		}
		if n := gathered(t, reg, "neutrino_db_transaction_retries_total", map[string]string{"kind": "write"}); n != 1 {
			t.Errorf("write retries = %v, want 1", n)
		}
		if err := db.RegisterMetrics(reg); err == nil {
			t.Error("registering the store's metrics twice with one registry succeeded")
		}
	})
}

// gathered is the value of a counter, or the sample count of a
// histogram, in the series of name with labels.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
