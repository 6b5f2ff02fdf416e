package apitest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// EnvDatabase selects the store backend of the servers Start runs:
// "sqlite" (the default when unset) or "postgres". With "postgres" each
// server gets a fresh database on a private PostgreSQL server shared by the
// whole test process; `make test` runs the API packages a second time so.
const EnvDatabase = "NEUTRINO_TEST_DB"

// Backends EnvDatabase may name.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// pgStartTimeout bounds the start of the shared PostgreSQL server.
const pgStartTimeout = 2 * time.Minute

// WithKeystone runs the server in keystone mode against the Keystone v3
// endpoint url: callers authenticate with X-Auth-Token (Client.Token).
func WithKeystone(url string) Option {
	return func(c *config.Config) {
		c.Auth = "keystone"
		c.Keystone.URL = url
	}
}

// shared is the one PostgreSQL server of a test process that runs its tests
// through Main or Run. It is package-level because Start(t) has no other
// place to find it: a test binary is one process, its tests share the
// server the way they share the binary, and Run bounds its life (started on
// first use, stopped when the tests end), so nothing outlives the process.
// Each test still gets a database of its own, so tests stay independent.
var shared struct {
	mu      sync.Mutex
	running bool // inside Run: the server may be started and will be stopped
	srv     *testenv.PostgresServer
	err     error // why the server could not be started
}

// Main runs the package's tests and exits with their status; call it from
// TestMain so that the PostgreSQL server shared by the package's tests (when
// NEUTRINO_TEST_DB=postgres or PostgresDSN is used) is stopped at the end:
//
//	func TestMain(m *testing.M) { apitest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has more to tear down: it runs the tests,
// stops the shared PostgreSQL server if one was started, and returns the
// exit status.
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.mu.Unlock()
	defer func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if shared.srv != nil {
			shared.srv.Stop()
			shared.srv = nil
		}
		shared.running = false
	}()
	return m.Run()
}

// Backend returns the store backend tests run on, from NEUTRINO_TEST_DB.
func Backend(t testing.TB) string {
	t.Helper()
	switch b := os.Getenv(EnvDatabase); b {
	case "", BackendSQLite:
		return BackendSQLite
	case BackendPostgres:
		return BackendPostgres
	default:
		t.Fatalf("apitest: %s=%q: want %q or %q", EnvDatabase, b, BackendSQLite, BackendPostgres)
		return ""
	}
}

// backendDatabase is the database URL of a server Start runs when the test
// chose none: "" (SQLite in the server's state directory) or a fresh
// PostgreSQL database, as NEUTRINO_TEST_DB says.
func backendDatabase(t testing.TB) string {
	t.Helper()
	if Backend(t) == BackendPostgres {
		return PostgresDSN(t)
	}
	return ""
}

// PostgresDSN returns the DSN of a new, empty database for t, dropped when t
// ends. The database lives on the process's shared PostgreSQL server when
// the package's TestMain calls Main or Run; otherwise on a server of t's own,
// which takes a few seconds more per test. t is skipped when PostgreSQL is
// not installed.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	srv, err := sharedPostgres()
	switch {
	case errors.Is(err, errNotInMain):
		return testenv.StartPostgres(t)
	case errors.Is(err, testenv.ErrPostgresNotFound):
		t.Skipf("skipping: %v", err)
	case err != nil:
		t.Fatalf("apitest: %v", err)
	}
	return srv.NewTestDatabase(t)
}

var errNotInMain = errors.New("apitest: no shared PostgreSQL server outside apitest.Run")

// sharedPostgres starts the shared server on first use. A failed start is
// remembered, so that every test reports it without trying again.
func sharedPostgres() (*testenv.PostgresServer, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.running {
		return nil, errNotInMain
	}
	if shared.srv == nil && shared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
		defer cancel()
		srv, err := testenv.StartPostgresServer(ctx, "")
		if err != nil {
			shared.err = fmt.Errorf("start shared PostgreSQL server: %w", err)
		}
		shared.srv = srv
	}
	return shared.srv, shared.err
}
