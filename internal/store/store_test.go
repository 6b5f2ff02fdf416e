package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// pg is the PostgreSQL server the tests of this package share, started on
// first use and stopped by TestMain; each test gets a database of its own.
var pg struct {
	mu  sync.Mutex
	srv *testenv.PostgresServer
	err error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.srv != nil {
		pg.srv.Stop()
	}
	os.Exit(code)
}

func postgresDSN(t *testing.T) string {
	t.Helper()
	pg.mu.Lock()
	if pg.srv == nil && pg.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		pg.srv, pg.err = testenv.StartPostgresServer(ctx, "")
		cancel()
	}
	srv, err := pg.srv, pg.err
	pg.mu.Unlock()
	if errors.Is(err, testenv.ErrPostgresNotFound) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	return srv.NewTestDatabase(t)
}

// eachBackend runs test once on a fresh migrated SQLite store and once on a
// fresh migrated PostgreSQL database: both backends pass the same cases.
func eachBackend(t *testing.T, test func(t *testing.T, db *DB)) {
	backends := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "n.db") }},
		{"postgres", postgresDSN},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, b.url(t), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if db.Backend() != b.name {
				t.Fatalf("opened %s, want %s", db.Backend(), b.name)
			}
			test(t, db)
		})
	}
}

func registry(t *testing.T) *resource.Registry {
	t.Helper()
	reg, err := resource.NewRegistry(resource.All()...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestCRUDAndConstraints(t *testing.T) {
	eachBackend(t, testCRUDAndConstraints)
}

func testCRUDAndConstraints(t *testing.T, db *DB) {
	ctx := context.Background()
	reg := registry(t)
	nets, ports := reg.ByPlural("networks"), reg.ByPlural("ports")
	netID := "11111111-1111-1111-1111-111111111111"
	err := db.Tx(ctx, func(tx *Tx) error {
		return tx.Insert(ctx, nets, resource.Object{"id": netID, "project_id": "p1", "name": "n1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got resource.Object
	if err := db.View(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.Get(ctx, nets, netID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got["name"] != "n1" || got["revision_number"] != int64(0) {
		t.Fatalf("got %v", got)
	}
	got["name"] = "n2"
	if err := db.Tx(ctx, func(tx *Tx) error { return tx.Update(ctx, nets, got) }); err != nil {
		t.Fatal(err)
	}
	if got["revision_number"] != int64(1) {
		t.Fatalf("revision not bumped: %v", got["revision_number"])
	}
	// A port on a missing network violates the foreign key.
	err = db.Tx(ctx, func(tx *Tx) error {
		return tx.Insert(ctx, ports, resource.Object{"id": "22222222-2222-2222-2222-222222222222", "network_id": "nope", "mac_address": "fa:16:3e:00:00:01"})
	})
	if !errors.Is(err, ErrReferenced) {
		t.Fatalf("want ErrReferenced, got %v", err)
	}
	// Two ports with one MAC on a network violate the unique key.
	insertPort := func(id string) error {
		return db.Tx(ctx, func(tx *Tx) error {
			return tx.Insert(ctx, ports, resource.Object{"id": id, "network_id": netID, "mac_address": "fa:16:3e:00:00:01"})
		})
	}
	if err := insertPort("33333333-3333-3333-3333-333333333333"); err != nil {
		t.Fatal(err)
	}
	if err := insertPort("44444444-4444-4444-4444-444444444444"); !errors.Is(err, ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
	// The network is in use by a port.
	err = db.Tx(ctx, func(tx *Tx) error { return tx.Delete(ctx, nets, netID) })
	if !errors.Is(err, ErrReferenced) {
		t.Fatalf("want ErrReferenced deleting a used network, got %v", err)
	}
	var list []resource.Object
	_ = db.View(ctx, func(tx *Tx) error {
		list, err = tx.List(ctx, ports, Where{"network_id": {netID}})
		return err
	})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestMissingRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		nets := registry(t).ByPlural("networks")
		err := db.View(ctx, func(tx *Tx) error {
			_, err := tx.Get(ctx, nets, "55555555-5555-5555-5555-555555555555")
			return err
		})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("get missing: want ErrNotFound, got %v", err)
		}
		err = db.Tx(ctx, func(tx *Tx) error { return tx.Delete(ctx, nets, "55555555-5555-5555-5555-555555555555") })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete missing: want ErrNotFound, got %v", err)
		}
	})
}

// A failed transaction leaves nothing behind.
func TestFailedTransactionWritesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		nets := registry(t).ByPlural("networks")
		boom := errors.New("boom")
		err := db.Tx(ctx, func(tx *Tx) error {
			if err := tx.Insert(ctx, nets, resource.Object{"id": "66666666-6666-6666-6666-666666666666", "project_id": "p1"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("want the hook's error, got %v", err)
		}
		var n int
		if err := db.View(ctx, func(tx *Tx) (err error) { n, err = tx.Count(ctx, nets, nil); return err }); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d networks written by a failed transaction", n)
		}
	})
}

// A function that returns Retry runs again in a fresh transaction; what
// its first attempt wrote is gone.
func TestRetryRunsTheTransactionAgain(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		nets := registry(t).ByPlural("networks")
		attempts := 0
		err := db.Tx(ctx, func(tx *Tx) error {
			attempts++
			id := fmt.Sprintf("77777777-7777-7777-7777-77777777777%d", attempts)
			if err := tx.Insert(ctx, nets, resource.Object{"id": id, "project_id": "p1"}); err != nil {
				return err
			}
			if attempts == 1 {
				return Retry(errors.New("lost a race"))
			}
			return nil
		})
		if err != nil || attempts != 2 {
			t.Fatalf("Tx: %v after %d attempts, want success after 2", err, attempts)
		}
		var n int
		if err := db.View(ctx, func(tx *Tx) (err error) { n, err = tx.Count(ctx, nets, nil); return err }); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d networks after a retried transaction, want only the second attempt's", n)
		}
	})
}

// A conflict inside a savepoint is undone without aborting the transaction
// (PostgreSQL aborts the whole transaction on a failed statement otherwise).
func TestSavepointKeepsTransactionUsable(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		reg := registry(t)
		nets, ports := reg.ByPlural("networks"), reg.ByPlural("ports")
		netID := "77777777-7777-7777-7777-777777777777"
		port := func(id, mac string) resource.Object {
			return resource.Object{"id": id, "project_id": "p1", "network_id": netID, "mac_address": mac}
		}
		err := db.Tx(ctx, func(tx *Tx) error {
			if err := tx.Insert(ctx, nets, resource.Object{"id": netID, "project_id": "p1"}); err != nil {
				return err
			}
			if err := tx.Insert(ctx, ports, port("77777777-0000-0000-0000-000000000001", "fa:16:3e:00:00:01")); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func() error {
				return tx.Insert(ctx, ports, port("77777777-0000-0000-0000-000000000002", "fa:16:3e:00:00:01"))
			})
			if !errors.Is(err, ErrConflict) {
				return fmt.Errorf("duplicate MAC in savepoint: want ErrConflict, got %w", err)
			}
			// The next candidate goes in, in the same transaction.
			return tx.Savepoint(ctx, func() error {
				return tx.Insert(ctx, ports, port("77777777-0000-0000-0000-000000000002", "fa:16:3e:00:00:02"))
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.View(ctx, func(tx *Tx) (err error) {
			n, err = tx.Count(ctx, ports, Where{"network_id": {netID}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("%d ports after the transaction, want 2", n)
		}
	})
}

// Filters match any of their values, nil matching NULL; Rewrite completes
// a document without bumping its revision.
func TestWhereAndRewrite(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		reg := registry(t)
		nets, fips := reg.ByPlural("networks"), reg.ByPlural("floatingips")
		netID := "88888888-8888-8888-8888-888888888888"
		ids := []string{"88888888-0000-0000-0000-000000000001", "88888888-0000-0000-0000-000000000002", "88888888-0000-0000-0000-000000000003"}
		err := db.Tx(ctx, func(tx *Tx) error {
			if err := tx.Insert(ctx, nets, resource.Object{"id": netID, "project_id": "p1"}); err != nil {
				return err
			}
			for i, id := range ids {
				o := resource.Object{"id": id, "project_id": fmt.Sprintf("p%d", i), "floating_network_id": netID,
					"floating_ip_address": fmt.Sprintf("203.0.113.%d", i+1), "port_id": nil}
				if err := tx.Insert(ctx, fips, o); err != nil {
					return err
				}
				if i == 0 {
					o["fixed_ip_address"] = "10.0.0.5"
					if err := tx.Rewrite(ctx, fips, o); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(ctx, func(tx *Tx) error {
			l, err := tx.List(ctx, fips, Where{"project_id": {"p0", "p2"}})
			if err != nil {
				return err
			}
			if len(l) != 2 || l[0]["id"] != ids[0] || l[1]["id"] != ids[2] {
				return fmt.Errorf("project_id in (p0, p2): %v", l)
			}
			if n, err := tx.Count(ctx, fips, Where{"port_id": {nil}}); err != nil || n != 3 {
				return fmt.Errorf("port_id IS NULL: %d, %v", n, err)
			}
			if n, err := tx.Count(ctx, fips, Where{"floating_ip_address": {}}); err != nil || n != 0 {
				return fmt.Errorf("empty filter matches nothing: %d, %v", n, err)
			}
			if _, err := tx.List(ctx, fips, Where{"status": {"DOWN"}}); err == nil {
				return errors.New("filter on a column that is not indexed was accepted")
			}
			got, err := tx.Get(ctx, fips, ids[0])
			if err != nil {
				return err
			}
			if got["fixed_ip_address"] != "10.0.0.5" || got["revision_number"] != int64(0) {
				return fmt.Errorf("rewritten document: %v", got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Concurrent read-modify-write transactions on one row all succeed, one
// after the other: the loser of each race is retried, no update is lost.
func TestConcurrentUpdatesAreRetried(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		nets := registry(t).ByPlural("networks")
		netID := "99999999-9999-9999-9999-999999999999"
		if err := db.Tx(ctx, func(tx *Tx) error {
			return tx.Insert(ctx, nets, resource.Object{"id": netID, "project_id": "p1", "mtu": int64(0)})
		}); err != nil {
			t.Fatal(err)
		}
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- db.Tx(ctx, func(tx *Tx) error {
					o, err := tx.Get(ctx, nets, netID)
					if err != nil {
						return err
					}
					o["mtu"] = o["mtu"].(int64) + 1
					return tx.Update(ctx, nets, o)
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var got resource.Object
		if err := db.View(ctx, func(tx *Tx) (err error) { got, err = tx.Get(ctx, nets, netID); return err }); err != nil {
			t.Fatal(err)
		}
		if got["mtu"] != int64(writers) || got["revision_number"] != int64(writers) {
			t.Fatalf("after %d increments: mtu %v, revision %v", writers, got["mtu"], got["revision_number"])
		}
	})
}
