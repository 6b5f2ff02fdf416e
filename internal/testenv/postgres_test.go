package testenv

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStartPostgres(t *testing.T) {
	dsn := StartPostgres(t)
	if !strings.HasPrefix(dsn, "postgres://") {
		t.Errorf("DSN %q is not a postgres:// URL", dsn)
	}
	conn := connect(t, dsn)

	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("SELECT 1: %v", err)
	}
	if one != 1 {
		t.Errorf("SELECT 1 = %d", one)
	}
	if db := queryString(t, conn, "SELECT current_database()"); db != "test" {
		t.Errorf("current_database() = %q, want test", db)
	}
	for setting, want := range map[string]string{
		"fsync":              "off",
		"full_page_writes":   "off",
		"synchronous_commit": "off",
		"listen_addresses":   "127.0.0.1",
		"server_encoding":    "UTF8",
	} {
		if got := queryString(t, conn, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if v := queryString(t, conn, "SHOW server_version_num"); len(v) < 6 || v < "150000" {
		t.Errorf("server_version_num = %s, want PostgreSQL 15 or newer", v)
	}
}

func TestPostgresServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	srv, err := StartPostgresServer(ctx, "")
	if errors.Is(err, ErrPostgresNotFound) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Logf("PostgreSQL pid %d on port %d started in %v", srv.PID(), srv.Port(), time.Since(began).Round(time.Millisecond))
	dir := filepath.Dir(filepath.Dir(srv.LogPath()))

	alpha, err := srv.NewDatabase(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	beta, err := srv.NewDatabase(ctx, "Beta-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.NewDatabase(ctx, "alpha"); err == nil {
		t.Error("creating database alpha twice succeeded")
	}
	if _, err := srv.NewDatabase(ctx, ""); err == nil {
		t.Error("creating a database with an empty name succeeded")
	}

	a, b := connect(t, alpha), connect(t, beta)
	if db := queryString(t, a, "SELECT current_database()"); db != "alpha" {
		t.Errorf("alpha's current_database() = %q", db)
	}
	if db := queryString(t, b, "SELECT current_database()"); db != "Beta-2" {
		t.Errorf("Beta-2's current_database() = %q", db)
	}
	if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_alpha (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if n := queryString(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'only_in_alpha'"); n != "0" {
		t.Errorf("a table created in alpha is seen in Beta-2")
	}

	// One database per test, as a TestMain-shared server hands them out.
	names := make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				conn := connect(t, srv.NewTestDatabase(t))
				names <- queryString(t, conn, "SELECT current_database()")
			})
		}
	})
	close(names)
	var got []string
	for n := range names {
		got = append(got, n)
	}
	if len(got) != 2 || got[0] == got[1] {
		t.Errorf("per-test databases = %q, want two distinct ones", got)
	}
	for _, n := range got {
		// Their cleanups dropped them.
		if c := queryString(t, a, "SELECT count(*)::text FROM pg_database WHERE datname = '"+n+"'"); c != "0" {
			t.Errorf("test database %q still exists after its test", n)
		}
	}

	pid, port := srv.PID(), srv.Port()
	a.Close(ctx)
	b.Close(ctx)
	srv.Stop()
	srv.Stop() // idempotent
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postgres pid %d after Stop: kill(0) = %v, want ESRCH", pid, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", port)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v, want it removed", dir, err)
	}
	if _, err := srv.NewDatabase(ctx, "late"); err == nil {
		t.Error("NewDatabase after Stop succeeded")
	}
}

func TestTestDatabaseName(t *testing.T) {
	for _, tc := range []struct {
		test string
		seq  int64
		want string
	}{
		{"TestFoo", 1, "testfoo_1"},
		{"TestFoo/sub_test#01", 7, "testfoo_sub_test_01_7"},
		{"", 3, "db_3"},
		{"/", 3, "db_3"},
		{strings.Repeat("x", 100), 12, strings.Repeat("x", 40) + "_12"},
	} {
		if got := testDatabaseName(tc.test, tc.seq); got != tc.want {
			t.Errorf("testDatabaseName(%q, %d) = %q, want %q", tc.test, tc.seq, got, tc.want)
		}
	}
}

func TestFindPostgresBinDir(t *testing.T) {
	root := t.TempDir()
	mk := func(version, bin string) {
		dir := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, bin), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pattern := filepath.Join(root, "*", "bin", "postgres")
	t.Setenv("PATH", "")

	if _, err := findPostgresBinDir(pattern); !errors.Is(err, ErrPostgresNotFound) || !strings.Contains(err.Error(), "scripts/install-deps.sh") {
		t.Errorf("with nothing installed: err = %v, want ErrPostgresNotFound naming scripts/install-deps.sh", err)
	}

	for _, v := range []string{"9.6", "13", "15"} {
		mk(v, "postgres")
		mk(v, "initdb")
	}
	mk("16", "postgres") // incomplete: no initdb
	got, err := findPostgresBinDir(pattern)
	if want := filepath.Join(root, "15", "bin"); err != nil || got != want {
		t.Errorf("findPostgresBinDir = %q, %v; want %q", got, err, want)
	}
}

func TestEnsureSearchable(t *testing.T) {
	const nobody = 4000000 // owns nothing here, whoever runs the test
	base := t.TempDir()
	tmp := filepath.Join(base, "locked", "tmp")
	for _, d := range []struct {
		path string
		perm os.FileMode
	}{
		{filepath.Join(base, "locked"), 0o700},
		{tmp, 0o755},
		{filepath.Join(tmp, "private"), 0o700},
		{filepath.Join(tmp, "private", "pg"), 0o700},
	} {
		if err := os.Mkdir(d.path, d.perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.perm); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	t.Setenv("TMPDIR", tmp)

	// locked/ is outside the temporary directory and not searchable: an
	// error, and locked/ is left as it is.
	err := ensureSearchable(filepath.Join(tmp, "private", "pg"), nobody, nobody)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("ensureSearchable through a private directory outside TMPDIR: err = %v, want one naming it", err)
	}
	if fi, _ := os.Stat(filepath.Join(base, "locked")); fi.Mode().Perm() != 0o700 {
		t.Errorf("locked/ is now %v; it must not be changed", fi.Mode().Perm())
	}

	// With locked/ open, the private directories under TMPDIR are opened
	// for search (not reading) by others.
	if err := os.Chmod(filepath.Join(base, "locked"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil { // t.TempDir's own private parent
		t.Fatal(err)
	}
	if err := ensureSearchable(filepath.Join(tmp, "private", "pg"), nobody, nobody); err != nil {
		t.Fatalf("ensureSearchable: %v", err)
	}
	for _, d := range []string{filepath.Join(tmp, "private"), filepath.Join(tmp, "private", "pg")} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o701 {
			t.Errorf("%s is %v, want 0701", d, fi.Mode().Perm())
		}
	}
}
