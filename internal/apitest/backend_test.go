package apitest_test

import (
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

func TestMain(m *testing.M) { apitest.Main(m) }

// The server runs on the backend NEUTRINO_TEST_DB names, each test on a
// database of its own.
func TestStartUsesTheChosenBackend(t *testing.T) {
	a, b := apitest.Start(t), apitest.Start(t)
	if got, want := a.Srv.DB.Backend(), apitest.Backend(t); got != want {
		t.Fatalf("backend %q, want %q", got, want)
	}
	a.Client(t, "p1").Create("networks", "network", map[string]any{"name": "only-in-a"})
	r := b.Client(t, "p1").Do("GET", "/v2.0/networks", nil)
	if r.Status != http.StatusOK || len(r.Items("networks")) != 0 {
		t.Fatalf("second server sees the first one's networks: %d %s", r.Status, r.Raw)
	}
}

func TestPostgresDSNIsAFreshDatabase(t *testing.T) {
	dsn := apitest.PostgresDSN(t)
	srv := apitest.Start(t, apitest.WithDatabase(dsn))
	if got := srv.Srv.DB.Backend(); got != apitest.BackendPostgres {
		t.Fatalf("backend %q, want postgres", got)
	}
	if r := srv.Client(t, "p1").Do("GET", "/v2.0/networks", nil); len(r.Items("networks")) != 0 {
		t.Fatalf("fresh database has networks: %s", r.Raw)
	}
}
