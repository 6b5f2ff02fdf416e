package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// openUnmigrated opens a store on url without migrating it, closed when t ends.
func openUnmigrated(t *testing.T, url string) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestApplyMigrationsThenStatusIsUpToDate(t *testing.T) {
	for name, url := range map[string]func(*testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "n.db") },
		"postgres": postgresDSN,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := openUnmigrated(t, url(t))
			before, err := db.SchemaStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if before.Current != 0 || before.UpToDate() || len(before.Pending) == 0 {
				t.Fatalf("status of an empty database = %+v, want version 0 with every migration pending", before)
			}
			applied, err := db.ApplyMigrations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != len(before.Pending) || applied[0].Name != before.Pending[0].Name {
				t.Fatalf("applied %+v, want the pending %+v", applied, before.Pending)
			}
			after, err := db.SchemaStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !after.UpToDate() || after.Current != before.Latest {
				t.Fatalf("status after migrating = %+v, want up to date at version %d", after, before.Latest)
			}
			again, err := db.ApplyMigrations(ctx)
			if err != nil || len(again) != 0 {
				t.Fatalf("migrating an up-to-date database applied %+v, %v; want nothing", again, err)
			}
		})
	}
}

// Replicas started at once all migrate the same PostgreSQL database at
// start: every one must succeed, and each migration must run once.
func TestReplicasMigratingAtOnceAllSucceed(t *testing.T) {
	dsn := postgresDSN(t)
	const replicas = 6
	dbs := make([]*DB, replicas)
	for i := range dbs {
		dbs[i] = openUnmigrated(t, dsn)
	}
	var wg sync.WaitGroup
	var ran atomic.Int64
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			applied, err := db.ApplyMigrations(context.Background())
			errs[i] = err
			ran.Add(int64(len(applied)))
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("replicas migrating at once: %v", err)
	}
	st, err := dbs[0].SchemaStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.UpToDate() || ran.Load() != st.Latest {
		t.Fatalf("after %d replicas migrated: status %+v, %d migrations run in all; want up to date, each run once", replicas, st, ran.Load())
	}
}

// A backup taken while another goroutine keeps writing is a store of its
// own holding every network committed before the backup began.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openUnmigrated(t, "sqlite:"+filepath.Join(dir, "live.db"))
	if _, err := db.ApplyMigrations(ctx); err != nil {
		t.Fatal(err)
	}
	nets := registry(t).ByPlural("networks")
	var committed atomic.Int64
	insert := func(i int64) error {
		return db.Tx(ctx, func(tx *Tx) error {
			return tx.Insert(ctx, nets, resource.Object{"id": fmt.Sprintf("net-%06d", i), "project_id": "p1", "name": fmt.Sprint("n", i)})
		})
	}
	if err := db.Tx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO host_sequences (host, epoch, seq) VALUES ('compute1', 'epoch-of-the-original', 42)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := insert(committed.Load()); err != nil {
			t.Fatal(err)
		}
		committed.Add(1)
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := insert(committed.Load()); err != nil {
				writerDone <- err
				return
			}
			committed.Add(1)
		}
	}()
	testenv.Eventually(t, 10*time.Second, "the writer to be under way", func() bool { return committed.Load() >= 100 })
	before := committed.Load()
	to := filepath.Join(dir, "copy.db")
	err := db.Backup(ctx, to)
	close(stop)
	if werr := <-writerDone; werr != nil {
		t.Fatalf("writer beside the backup: %v", werr)
	}
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if fi, err := os.Stat(to); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".copy.db.partial-*")); len(left) != 0 {
		t.Fatalf("backup left %v behind", left)
	}

	cp := openUnmigrated(t, "sqlite:"+to)
	st, err := cp.SchemaStatus(ctx)
	if err != nil || !st.UpToDate() {
		t.Fatalf("the copy's schema: %+v, %v; want up to date", st, err)
	}
	var n, sequences int
	var check string
	if err := cp.View(ctx, func(tx *Tx) error {
		if err := tx.QueryRow(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM host_sequences").Scan(&sequences); err != nil {
			return err
		}
		var err error
		n, err = tx.Count(ctx, nets, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if check != "ok" {
		t.Fatalf("integrity_check of the copy: %s", check)
	}
	// Agents that heard the original's later numbers must see a new epoch.
	if sequences != 0 {
		t.Fatalf("the copy keeps %d host sequences of the original; want new epochs", sequences)
	}
	if int64(n) < before || int64(n) > committed.Load() {
		t.Fatalf("the copy holds %d networks; %d were committed before the backup, %d in all", n, before, committed.Load())
	}
}

func TestBackupRefusesAnExistingFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openUnmigrated(t, "sqlite:"+filepath.Join(dir, "live.db"))
	if _, err := db.ApplyMigrations(ctx); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "precious")
	if err := os.WriteFile(to, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, to); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("backup onto an existing file: %v, want ErrBackupExists", err)
	}
	if data, _ := os.ReadFile(to); string(data) != "keep me" {
		t.Fatalf("the existing file now holds %q", data)
	}
	if err := db.Backup(ctx, filepath.Join(dir, "no-such-dir", "copy.db")); err == nil {
		t.Fatal("backup into a missing directory succeeded")
	}
}

func TestBackupOfPostgresPointsToPgDump(t *testing.T) {
	db := openUnmigrated(t, postgresDSN(t))
	to := filepath.Join(t.TempDir(), "copy")
	err := db.Backup(context.Background(), to)
	if !errors.Is(err, ErrBackupUnsupported) || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("backup on PostgreSQL: %v, want an error naming pg_dump", err)
	}
	if _, serr := os.Stat(to); serr == nil {
		t.Fatal("backup on PostgreSQL wrote a file")
	}
}
