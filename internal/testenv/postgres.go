package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrPostgresNotFound is wrapped by the errors of StartPostgresServer when
// the machine has no PostgreSQL server to start: its binaries are missing or,
// when running as root, there is no "postgres" OS user to run them as.
// StartPostgres skips the test then; a TestMain can test for it with errors.Is.
var ErrPostgresNotFound = errors.New("PostgreSQL server not available")

// pgSuperuser is the database superuser that initdb creates. Connections from
// 127.0.0.1 are trusted: the server is a throwaway one for tests.
const pgSuperuser = "postgres"

// debianPostgresBins matches the postgres binary of every PostgreSQL major
// version installed the Debian way.
const debianPostgresBins = "/usr/lib/postgresql/*/bin/postgres"

const (
	// pgStartTimeout bounds one start of the postmaster until it accepts
	// connections, on top of the caller's context.
	pgStartTimeout = 60 * time.Second
	// pgStopTimeout is how long Stop waits for a fast shutdown before it
	// kills the server's process group.
	pgStopTimeout = 15 * time.Second
	// pgStartAttempts is how often a start is tried on a new port when the
	// port chosen was taken in the meantime.
	pgStartAttempts = 5
)

// PostgresServer is a private PostgreSQL server started for tests, listening
// only on 127.0.0.1. One server can serve many tests, each with a database
// of its own (NewDatabase, NewTestDatabase). Stop it with Stop.
type PostgresServer struct {
	binDir   string
	baseDir  string // owned by the OS user the server runs as
	dataDir  string
	logPath  string
	ownedDir string // removed by Stop: StartPostgresServer created it
	cred     *syscall.Credential
	port     int
	proc     *process

	createMu sync.Mutex // serialises CREATE DATABASE
	seq      atomic.Int64
	stopOnce sync.Once
}

// StartPostgres starts a private PostgreSQL server for t in t.TempDir(),
// creates a database in it and returns a postgres:// DSN for that database
// that pgx accepts. The server is stopped when t ends, whether it passed or
// not; if t failed, the end of the server's log is logged. When no PostgreSQL
// server is installed, t is skipped with a message saying how to install it.
//
// To share one server between the tests of a package, start it in TestMain
// with StartPostgresServer and give each test its own database.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*pgStartTimeout)
	defer cancel()
	srv := startForTest(ctx, t, "PostgreSQL", ErrPostgresNotFound, 40, StartPostgresServer)
	dsn, err := srv.NewDatabase(ctx, "test")
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	return dsn
}

// StartPostgresServer initialises a new PostgreSQL cluster in dir and starts
// a server on it, listening on a free port of 127.0.0.1 (no unix socket),
// tuned for tests (no fsync, no full-page writes, asynchronous commit): it is
// throwaway. When dir is "", a temporary directory is created and Stop
// removes it. ctx bounds the start only, not the server's life; the caller
// must call Stop.
//
// Running as root, the server runs as the "postgres" OS user: dir and its
// parents under the temporary directory are made searchable by that user.
// The errors wrap ErrPostgresNotFound when no server is installed.
//
// A package whose tests share one server starts it in TestMain and gives
// each test a database of its own:
//
//	var pg struct {
//		srv *testenv.PostgresServer
//		err error
//	}
//
//	func TestMain(m *testing.M) {
//		pg.srv, pg.err = testenv.StartPostgresServer(context.Background(), "")
//		code := m.Run()
//		if pg.srv != nil {
//			pg.srv.Stop()
//		}
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		if pg.err != nil {
//			t.Skip(pg.err) // or t.Fatal unless errors.Is(pg.err, testenv.ErrPostgresNotFound)
//		}
//		dsn := pg.srv.NewTestDatabase(t)
//		// ...
//	}
func StartPostgresServer(ctx context.Context, dir string) (*PostgresServer, error) {
	binDir, err := findPostgresBinDir(debianPostgresBins)
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}

	s := &PostgresServer{binDir: binDir, cred: cred}
	if dir, s.ownedDir, err = serverDir(dir, "neutrino-pg-", "PostgreSQL"); err != nil {
		return nil, err
	}
	if err := s.start(ctx, dir); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *PostgresServer) start(ctx context.Context, dir string) error {
	began := time.Now()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("PostgreSQL directory: %w", err)
	}
	if s.cred != nil {
		if err := ensureSearchable(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	s.baseDir = filepath.Join(dir, "pg")
	s.dataDir = filepath.Join(s.baseDir, "data")
	s.logPath = filepath.Join(s.baseDir, "postgres.log")
	if err := os.Mkdir(s.baseDir, 0o700); err != nil {
		return fmt.Errorf("create PostgreSQL directory: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.baseDir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("hand PostgreSQL directory to the postgres user: %w", err)
		}
	}

	initdb := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"),
		"--pgdata", s.dataDir,
		"--username", pgSuperuser,
		"--auth", "trust",
		"--encoding", "UTF8",
		"--no-locale",
		"--no-sync",
		"--no-instructions",
	)
	initdb.Dir = s.baseDir
	initdb.Env = s.env()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", s.dataDir, err, bytes.TrimSpace(out))
	}
	slog.DebugContext(ctx, "postgres: cluster initialised", "dir", s.dataDir, "took", time.Since(began))

	for attempt := 1; ; attempt++ {
		err := s.startPostmaster(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == pgStartAttempts {
			return err
		}
		slog.DebugContext(ctx, "postgres: port taken, trying another", "attempt", attempt)
	}
	slog.DebugContext(ctx, "postgres: ready", "pid", s.PID(), "port", s.port,
		"dir", s.dataDir, "took", time.Since(began))
	return nil
}

// startPostmaster starts postgres on a free port and waits until it accepts
// connections. It returns an error wrapping errPortTaken when the port was
// taken by someone else in the meantime.
func (s *PostgresServer) startPostmaster(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"),
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "synchronous_commit=off",
		"-c", "max_connections=200",
		"-c", "huge_pages=off",
	)
	cmd.Dir = s.baseDir
	cmd.Env = s.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	// Stop asks for a fast shutdown (SIGINT); a test binary that dies
	// without Stop leaves it an immediate shutdown (SIGQUIT).
	p, logStart, err := startProcess("postgres", cmd, s.logPath, syscall.SIGQUIT, syscall.SIGINT, pgStopTimeout)
	if err != nil {
		return err
	}
	s.port = port
	s.proc = p

	if err := p.waitReady(ctx, pgStartTimeout, 50*time.Millisecond, "postgres to accept connections", s.probe); err != nil {
		p.stop()
		out := string(readFileFrom(s.logPath, logStart))
		if strings.Contains(out, "could not bind") || strings.Contains(out, "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("postgres on port %d: %w\nlog:\n%s", port, err, strings.TrimSpace(out))
	}
	return nil
}

// probe connects to the server once.
func (s *PostgresServer) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// env is the environment of initdb and postgres: nothing of the caller's
// (whose HOME may be unreadable to the postgres user), a fixed time zone (so
// initdb need not search for one) and the C locale.
func (s *PostgresServer) env() []string {
	return []string{
		"PATH=" + s.binDir + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + s.baseDir,
		"LC_ALL=C",
		"TZ=UTC",
	}
}

// Stop stops the server by its PID and waits for it to exit; when
// StartPostgresServer created the server's directory it removes it too. It
// may be called more than once.
func (s *PostgresServer) Stop() {
	s.stopOnce.Do(func() { stopServer(s.proc, s.ownedDir) })
}

// PID is the process id of the server (the postmaster).
func (s *PostgresServer) PID() int { return s.proc.pid() }

// Port is the TCP port the server listens on, on 127.0.0.1.
func (s *PostgresServer) Port() int { return s.port }

// LogPath is the file the server writes its log to.
func (s *PostgresServer) LogPath() string { return s.logPath }

// DSN is the postgres:// URL of database dbname on this server, as the
// superuser.
func (s *PostgresServer) DSN(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(pgSuperuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates the empty database name and returns its DSN. It fails
// if the database exists already.
func (s *PostgresServer) NewDatabase(ctx context.Context, name string) (dsn string, err error) {
	if name == "" || len(name) > 63 || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("create database %q: name must be 1 to 63 bytes without NUL", name)
	}
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return s.DSN(name), nil
}

// NewTestDatabase creates a database of its own for t, named after it, and
// returns its DSN. The database is dropped when t ends (connections still
// open to it are ended then). It fails t if the database cannot be created.
func (s *PostgresServer) NewTestDatabase(t testing.TB) (dsn string) {
	t.Helper()
	name := testDatabaseName(t.Name(), s.seq.Add(1))
	dsn, err := s.NewDatabase(t.Context(), name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if s.proc.exited() {
			return // the server is gone, and the database with it
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %q: %v", name, err)
		}
	})
	return dsn
}

// testDatabaseName makes a database name out of a test's name and a number
// that keeps it unique on the server.
func testDatabaseName(testName string, seq int64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	prefix := strings.TrimSuffix(b.String(), "_")
	if prefix == "" {
		prefix = "db"
	}
	return fmt.Sprintf("%s_%d", prefix, seq)
}

// exec runs one statement in the server's "postgres" database on a
// connection of its own.
func (s *PostgresServer) exec(ctx context.Context, sql string) error {
	if s.proc.exited() {
		return errors.New("the PostgreSQL server has stopped")
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// LogTail returns at most the last n lines of the server's log, under a
// line naming the file.
func (s *PostgresServer) LogTail(n int) string {
	return fmt.Sprintf("== %s ==\n%s", s.logPath, tail(readFile(s.logPath), n))
}

// findPostgresBinDir returns the directory holding initdb and postgres: that
// of the newest major version matched by pattern (see debianPostgresBins),
// else the one found in PATH.
func findPostgresBinDir(pattern string) (string, error) {
	type candidate struct {
		dir     string
		version float64
	}
	var found []candidate
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return "", fmt.Errorf("find PostgreSQL: %w", err)
	}
	for _, m := range matches {
		dir := filepath.Dir(m)
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil {
			continue
		}
		found = append(found, candidate{dir, v})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].version > found[j].version })
	for _, c := range found {
		if isExecutable(filepath.Join(c.dir, "initdb")) {
			return c.dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(p)
			if isExecutable(filepath.Join(dir, "initdb")) {
				return dir, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no initdb and postgres under /usr/lib/postgresql/*/bin or in PATH; %s",
		ErrPostgresNotFound, installHint)
}

// postgresCredential returns the credential to run PostgreSQL with: none
// (the caller's own) unless running as root, which PostgreSQL refuses; then
// the "postgres" OS user's.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, PostgreSQL must run as the \"postgres\" OS user: %v; %s",
			ErrPostgresNotFound, err, installHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// ensureSearchable makes sure the user uid (group gid) can reach dir: every
// directory on the way must be searchable by it. Directories that are not
// and that lie under the temporary directory (such as the private parent of
// t.TempDir()), or that are dir itself, get search permission for others
// (not read); any other such directory is an error.
func ensureSearchable(dir string, uid, gid int) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("PostgreSQL directory: %w", err)
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = filepath.Clean(os.TempDir())
	}
	for d := real; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("PostgreSQL directory: %w", err)
		}
		if !searchable(fi, uid, gid) {
			if d != real && !strings.HasPrefix(d, tmp+string(filepath.Separator)) {
				return fmt.Errorf("the postgres user (uid %d) cannot reach %s: %s is not searchable by it; use a directory under %s",
					uid, real, d, tmp)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let the postgres user reach %s: %w", d, err)
			}
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// searchable reports whether user uid with primary group gid may search
// (enter) the directory fi, by the owner/group/other bits alone.
func searchable(fi os.FileInfo, uid, gid int) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}
	switch {
	case int(st.Uid) == uid:
		return perm&0o100 != 0
	case int(st.Gid) == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
