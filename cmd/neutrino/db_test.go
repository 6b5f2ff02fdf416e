package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

func TestMain(m *testing.M) { apitest.Main(m) }

// neutrino runs the command line args in this process, as the binary would,
// and returns what it printed.
func neutrino(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDBMigrateThenStatusSaysUpToDate(t *testing.T) {
	for name, database := range map[string]func(testing.TB) string{
		"sqlite":   func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "neutrino.db") },
		"postgres": apitest.PostgresDSN,
	} {
		t.Run(name, func(t *testing.T) {
			db := database(t)
			if name == "postgres" {
				// The test server trusts local connections, so a password
				// shows only whether the commands print it.
				u, err := url.Parse(db)
				if err != nil {
					t.Fatal(err)
				}
				u.User = url.UserPassword(u.User.Username(), "secret")
				db = u.String()
				out, err := neutrino(t, "db", "status", "--database", db)
				if err != nil || !strings.Contains(out, "schema version 0") || !strings.Contains(out, "1 pending: 00001_initial.sql") {
					t.Fatalf("db status of an empty database: %v\n%s", err, out)
				}
			}
			out, err := neutrino(t, "db", "migrate", "--database", db)
			if err != nil || !strings.Contains(out, "applied 00001_initial.sql") || !strings.Contains(out, "up to date") {
				t.Fatalf("db migrate of an empty database: %v\n%s", err, out)
			}
			out, err = neutrino(t, "db", "status", "--database", db)
			if strings.Contains(out, "secret") {
				t.Fatalf("db status printed the password:\n%s", out)
			}
			if err != nil || !strings.Contains(out, "schema version 1, newest known 1\nup to date") {
				t.Fatalf("db status after migrate: %v\n%s", err, out)
			}
			out, err = neutrino(t, "db", "migrate", "--database", db)
			if err != nil || !strings.Contains(out, "nothing to apply") {
				t.Fatalf("db migrate again: %v\n%s", err, out)
			}
		})
	}
}

// The default database is the server's: SQLite in the state directory, or
// the config file's; status and backup never create one.
func TestDBFindsTheServersDatabase(t *testing.T) {
	stateDir := t.TempDir()
	if _, err := neutrino(t, "db", "status", "--state-dir", stateDir); err == nil || !strings.Contains(err.Error(), "no database at "+filepath.Join(stateDir, "neutrino.db")) {
		t.Fatalf("db status without a database: %v, want no database at <state-dir>/neutrino.db", err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "neutrino.db")); err == nil {
		t.Fatal("db status created a database")
	}
	if _, err := neutrino(t, "db", "migrate", "--state-dir", stateDir); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "neutrino.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("state_dir = %q\n", stateDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := neutrino(t, "db", "status", "--config", conf)
	if err != nil || !strings.Contains(out, "database sqlite:"+filepath.Join(stateDir, "neutrino.db")+": schema version 1") {
		t.Fatalf("db status --config: %v\n%s", err, out)
	}
}

// A backup taken while clients keep creating networks, served by a new
// server, shows every network that existed when the backup began.
func TestDBBackupWhileServingRestoresThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	live := "sqlite:" + filepath.Join(dir, "live.db")
	unlimited := func(c *config.Config) { c.Quotas = map[string]int64{"network": -1} }
	api := apitest.Start(t, apitest.WithDatabase(live), unlimited).Client(t, "p1")
	for i := range 5 {
		api.Create("networks", "network", map[string]any{"name": fmt.Sprint("before-", i)})
	}
	var created atomic.Int64
	stop, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if r := api.Do("POST", apitest.Path("networks"), map[string]any{"network": map[string]any{"name": fmt.Sprint("during-", i)}}); r.Status != 201 {
				t.Errorf("create a network beside the backup: %d %s", r.Status, r.Raw)
				return
			}
			created.Add(1)
		}
	}()
	testenv.Eventually(t, 10*time.Second, "networks being created", func() bool { return created.Load() >= 5 })
	to := filepath.Join(dir, "backup.db")
	out, err := neutrino(t, "db", "backup", "--database", live, "--to", to)
	close(stop)
	<-writerDone
	if err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("db backup while serving: %v\n%s", err, out)
	}

	names := func(c *apitest.Client) map[string]bool {
		out := map[string]bool{}
		for _, n := range c.Do("GET", apitest.Path("networks"), nil).Items("networks") {
			out[apitest.S(n["name"])] = true
		}
		return out
	}
	restored := names(apitest.Start(t, apitest.WithDatabase("sqlite:"+to)).Client(t, "p1"))
	original := names(api)
	for i := range 5 {
		if !restored[fmt.Sprint("before-", i)] {
			t.Errorf("network before-%d is missing from the restored store", i)
		}
	}
	for n := range restored {
		if !original[n] {
			t.Errorf("the restored store has network %q the original never had", n)
		}
	}
	if len(restored) < 10 {
		t.Errorf("the restored store has %d networks; at least 10 existed when the backup began", len(restored))
	}

	if _, err := neutrino(t, "db", "backup", "--database", live, "--to", to); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("db backup onto the existing %s: %v, want a refusal", to, err)
	}
}

func TestDBBackupOfPostgresSaysUsePgDump(t *testing.T) {
	db := apitest.PostgresDSN(t)
	to := filepath.Join(t.TempDir(), "backup")
	_, err := neutrino(t, "db", "backup", "--database", db, "--to", to)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("db backup of PostgreSQL: %v, want an error naming pg_dump", err)
	}
}
