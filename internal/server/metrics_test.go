package server_test

import (
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// TestStoreMetrics: after a create and a list, the server's /metrics shows
// the store's read and write transactions on the backend in use.
func TestStoreMetrics(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	c.Create("networks", "network", map[string]any{"name": "n1"})
	c.Must(http.StatusOK, "GET", "/v2.0/networks", nil)
	m := testenv.Scrape(t, srv.URL+"/metrics")
	backend := srv.Srv.DB.Backend()
	for _, kind := range []string{"read", "write"} {
		labels := map[string]string{"backend": backend, "kind": kind, "result": "ok"}
		if n, ok := m.Sum("neutrino_db_transaction_duration_seconds_count", labels); !ok || n < 1 {
			t.Errorf("neutrino_db_transaction_duration_seconds_count%v = %v (found %v), want ≥ 1", labels, n, ok)
		}
	}
}
