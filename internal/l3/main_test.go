package l3_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// pg is one PostgreSQL server for the package's tests, each of which gets
// a database of its own.
var pg struct {
	srv *testenv.PostgresServer
	err error
}

func TestMain(m *testing.M) {
	pg.srv, pg.err = testenv.StartPostgresServer(context.Background(), "")
	code := m.Run()
	if pg.srv != nil {
		pg.srv.Stop()
	}
	os.Exit(code)
}

// backends runs fn against a server on SQLite and one on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, srv *apitest.Server)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, apitest.Start(t)) })
	t.Run("postgres", func(t *testing.T) {
		if errors.Is(pg.err, testenv.ErrPostgresNotFound) {
			t.Skip(pg.err)
		}
		if pg.err != nil {
			t.Fatalf("PostgreSQL: %v", pg.err)
		}
		fn(t, apitest.Start(t, apitest.WithDatabase(pg.srv.NewTestDatabase(t))))
	})
}
