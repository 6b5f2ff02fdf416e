package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrKeystoneNotFound is wrapped by the errors of StartKeystoneServer when
// the machine lacks Debian's keystone package or uwsgi with its python3
// plugin. StartKeystone skips the test then.
var ErrKeystoneNotFound = errors.New("Keystone not available")

// Debian's Keystone and the uwsgi that serves it. The absolute paths keep a
// pyenv python3 on PATH out of the way: Keystone's modules are Debian's.
const (
	ksPython       = "/usr/bin/python3"
	ksManage       = "/usr/bin/keystone-manage"
	ksWSGIPublic   = "/usr/bin/keystone-wsgi-public"
	ksUWSGIPython3 = "/usr/bin/uwsgi_python3"
	ksUWSGICore    = "/usr/bin/uwsgi-core"
	ksUWSGIPlugin  = "/usr/lib/uwsgi/plugins/python3_plugin.so"
	ksInstallHint  = "apt-get install keystone uwsgi-core uwsgi-plugin-python3"
)

const (
	// ksStartTimeout bounds StartKeystone as a whole.
	ksStartTimeout = 3 * time.Minute
	// ksReadyTimeout bounds the wait for uwsgi to answer once started.
	ksReadyTimeout = 90 * time.Second
	// ksStopTimeout is how long Stop waits for uwsgi to exit after SIGTERM
	// before it kills uwsgi's process group.
	ksStopTimeout = 15 * time.Second
	// ksStartAttempts is how often uwsgi is started on a new port when the
	// port chosen was taken in the meantime.
	ksStartAttempts = 4
	// ksRequestTimeout bounds one request to Keystone.
	ksRequestTimeout = 30 * time.Second
	// ksDomain is where the test projects and users live.
	ksDomain = "default"
)

// Keystone is a private OpenStack Keystone (identity v3) for tests, served by
// uwsgi on 127.0.0.1 from a SQLite database in its own directory.
// keystone-manage bootstrap gave it an admin user AdminUser with password
// AdminPassword holding the admin role in project AdminProject, the roles
// admin, member and reader, and region RegionOne. Stop it with Stop.
type Keystone struct {
	URL                          string // identity v3 endpoint: http://127.0.0.1:PORT/v3
	AdminUser, AdminPassword     string
	AdminProject                 string
	AdminUserID, AdminProjectID  string
	Dir                          string // config, database, keys and logs
	port                         int
	confPath, logPath, uwsgiPath string
	ownedDir                     string // removed by Stop: StartKeystoneServer created it
	client                       *http.Client
	proc                         *process
	stopOnce                     sync.Once

	adminMu      sync.Mutex
	adminToken   string
	adminExpires time.Time
}

// StartKeystone starts a private Keystone for t in t.TempDir() and returns
// it; it is stopped when t ends, whether t passed or not, and if t failed the
// ends of its logs are logged. t is skipped, with a message saying why, when
// not running as root or when Keystone or uwsgi is not installed.
//
// Keystone takes seconds to start: to share one between the tests of a
// package, start it in TestMain with StartKeystoneServer.
func StartKeystone(t testing.TB) *Keystone {
	t.Helper()
	RequireRoot(t)
	if err := findKeystone(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), ksStartTimeout)
	defer cancel()
	return startForTest(ctx, t, "Keystone", ErrKeystoneNotFound, 30, StartKeystoneServer)
}

// StartKeystoneServer sets up a new Keystone in dir (configuration, SQLite
// database, fernet and credential keys, bootstrap with admin/admin in
// project admin and region RegionOne) and serves it with uwsgi, one process,
// on a free port of 127.0.0.1. It returns once Keystone issues tokens. When
// dir is "", a temporary directory is created and Stop removes it. ctx
// bounds the start only, not the server's life; the caller must call Stop.
// The errors wrap ErrKeystoneNotFound when Keystone is not installed.
//
// A package whose tests share one Keystone starts it in TestMain:
//
//	var ks struct {
//		srv *testenv.Keystone
//		err error
//	}
//
//	func TestMain(m *testing.M) {
//		ks.srv, ks.err = testenv.StartKeystoneServer(context.Background(), "")
//		code := m.Run()
//		if ks.srv != nil {
//			ks.srv.Stop()
//		}
//		os.Exit(code)
//	}
func StartKeystoneServer(ctx context.Context, dir string) (*Keystone, error) {
	if err := findKeystone(); err != nil {
		return nil, err
	}
	k := &Keystone{
		AdminUser:     "admin",
		AdminPassword: "admin",
		AdminProject:  "admin",
		client:        &http.Client{Timeout: ksRequestTimeout},
	}
	var err error
	if dir, k.ownedDir, err = serverDir(dir, "neutrino-keystone-", "Keystone"); err != nil {
		return nil, err
	}
	if err := k.start(ctx, dir); err != nil {
		k.Stop()
		return nil, err
	}
	return k, nil
}

// findKeystone checks that Keystone and uwsgi are installed.
func findKeystone() error {
	for _, f := range []string{ksPython, ksManage, ksWSGIPublic} {
		if !isExecutable(f) {
			return fmt.Errorf("%w: %s is missing; %s", ErrKeystoneNotFound, f, ksInstallHint)
		}
	}
	if _, err := ksUWSGICommand(); err != nil {
		return err
	}
	return nil
}

// ksUWSGICommand returns the command that runs uwsgi with its python3 plugin.
func ksUWSGICommand() ([]string, error) {
	if isExecutable(ksUWSGIPython3) {
		return []string{ksUWSGIPython3}, nil
	}
	if isExecutable(ksUWSGICore) {
		if _, err := os.Stat(ksUWSGIPlugin); err == nil {
			return []string{ksUWSGICore, "--plugin", "python3"}, nil
		}
	}
	return nil, fmt.Errorf("%w: uwsgi with its python3 plugin is missing; %s", ErrKeystoneNotFound, ksInstallHint)
}

func (k *Keystone) start(ctx context.Context, dir string) error {
	began := time.Now()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("Keystone directory: %w", err)
	}
	k.Dir = filepath.Join(dir, "keystone")
	if err := os.Mkdir(k.Dir, 0o700); err != nil {
		return fmt.Errorf("create Keystone directory: %w", err)
	}
	k.confPath = filepath.Join(k.Dir, "keystone.conf")
	k.logPath = filepath.Join(k.Dir, "keystone.log")
	k.uwsgiPath = filepath.Join(k.Dir, "uwsgi.log")
	if err := k.writeConfig(); err != nil {
		return err
	}

	owner, err := user.Current()
	if err != nil {
		return fmt.Errorf("Keystone key owner: %w", err)
	}
	group, err := user.LookupGroupId(owner.Gid)
	if err != nil {
		return fmt.Errorf("Keystone key owner group: %w", err)
	}
	// Each keystone-manage run takes seconds, mostly Python starting up,
	// so independent steps overlap: the database (db_sync, then
	// bootstrap) is set up while the key repositories are created and,
	// once they exist, uwsgi loads Keystone (which needs no data to
	// answer GET /v3).
	dbReady := make(chan error, 1)
	go func() {
		err := k.manage(ctx, "db_sync")
		if err == nil {
			err = k.useWAL(ctx)
		}
		dbReady <- err
	}()
	keyOwner := []string{"--keystone-user", owner.Username, "--keystone-group", group.Name}
	keyErrs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { keyErrs[0] = k.manage(ctx, append([]string{"fernet_setup"}, keyOwner...)...) })
	wg.Go(func() { keyErrs[1] = k.manage(ctx, append([]string{"credential_setup"}, keyOwner...)...) })
	wg.Wait()
	if err := errors.Join(keyErrs...); err != nil {
		return errors.Join(err, <-dbReady)
	}
	slog.DebugContext(ctx, "keystone: keys ready", "dir", k.Dir, "took", time.Since(began))

	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return errors.Join(err, <-dbReady)
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port) + "/v3"
		bootstrapped := make(chan error, 1)
		go func() {
			if attempt == 1 {
				if err := <-dbReady; err != nil {
					bootstrapped <- err
					return
				}
			}
			bootstrapped <- k.bootstrap(ctx, base)
		}()
		err = k.startUWSGI(ctx, port, base)
		if berr := <-bootstrapped; berr != nil {
			return errors.Join(berr, err)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == ksStartAttempts {
			return err
		}
		slog.DebugContext(ctx, "keystone: port taken, trying another", "attempt", attempt)
	}
	slog.DebugContext(ctx, "keystone: bootstrapped and serving", "url", k.URL, "took", time.Since(began))

	tok, err := k.adminTokenContext(ctx)
	if err != nil {
		return fmt.Errorf("Keystone started but issues no admin token: %w", err)
	}
	var out struct {
		Token struct {
			User    struct{ ID string } `json:"user"`
			Project struct{ ID string } `json:"project"`
		} `json:"token"`
	}
	if _, err := k.call(ctx, http.MethodGet, "/auth/tokens?nocatalog", tok,
		map[string]string{"X-Subject-Token": tok}, nil, &out, http.StatusOK); err != nil {
		return fmt.Errorf("validate admin token: %w", err)
	}
	k.AdminUserID, k.AdminProjectID = out.Token.User.ID, out.Token.Project.ID
	slog.DebugContext(ctx, "keystone: ready", "url", k.URL, "pid", k.PID(), "took", time.Since(began))
	return nil
}

// writeConfig writes keystone.conf and an empty policy file, so that
// Keystone's in-code default policies apply whatever /etc/keystone holds.
func (k *Keystone) writeConfig() error {
	p := func(name string) string { return filepath.Join(k.Dir, name) }
	conf := fmt.Sprintf(`[DEFAULT]
log_file = %s
use_stderr = false
debug = false

[database]
# uwsgi runs one process with one thread: SQLite locks under several
# processes, and its connections may not cross threads.
connection = sqlite:///%s
# Throwaway database: no fsync.
sqlite_synchronous = false

[fernet_tokens]
key_repository = %s

[fernet_receipts]
key_repository = %s

[credential]
key_repository = %s

[token]
provider = fernet
expiration = 3600

[identity]
# The cheapest bcrypt: password authentication is on tests' hot path.
password_hash_rounds = 4

[oslo_policy]
policy_file = %s
policy_dirs = %s
`, k.logPath, p("keystone.db"), p("fernet-keys"), p("fernet-receipts"), p("credential-keys"),
		p("policy.yaml"), p("policy.d"))
	if err := os.WriteFile(k.confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write Keystone config: %w", err)
	}
	if err := os.WriteFile(p("policy.yaml"), []byte("# empty: Keystone's in-code default policies apply\n"), 0o644); err != nil {
		return fmt.Errorf("write Keystone policy: %w", err)
	}
	return nil
}

// env is the environment of keystone-manage and uwsgi: nothing of the
// caller's, so that no pyenv or virtualenv settings reach Debian's python.
func (k *Keystone) env() []string {
	return []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + k.Dir,
		"LANG=C.UTF-8",
		"OS_KEYSTONE_CONFIG_FILES=" + k.confPath,
	}
}

// manage runs keystone-manage with args, its output appended to
// keystone-manage.log.
func (k *Keystone) manage(ctx context.Context, args ...string) error {
	argv := append([]string{ksManage, "--config-file", k.confPath}, args...)
	cmd := exec.CommandContext(ctx, ksPython, argv...)
	cmd.Dir = k.Dir
	cmd.Env = k.env()
	out, err := cmd.CombinedOutput()
	logPath := filepath.Join(k.Dir, "keystone-manage.log")
	if werr := ksAppendFile(logPath, fmt.Appendf(nil, "$ keystone-manage %s\n%s", strings.Join(args, " "), out)); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("keystone-manage %s: %w\n%s\nkeystone.log:\n%s", args[0], err,
			tail(bytes.TrimSpace(out), 20), tail(readFile(k.logPath), 20))
	}
	return nil
}

// useWAL puts Keystone's SQLite database in write-ahead-log mode (a lasting
// property of the file). In the default rollback-journal mode a reader's
// transaction that Keystone leaves open (oslo.db's pool closes SQLite
// connections from the garbage collector, sometimes in another thread,
// which fails) blocks every later write: "database is locked" after 5 s,
// seen on the second role assignment. In WAL mode readers block no writer.
func (k *Keystone) useWAL(ctx context.Context) error {
	const script = `import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
c.close()
if mode.lower() != "wal":
    sys.exit("journal_mode is " + mode)
`
	cmd := exec.CommandContext(ctx, ksPython, "-c", script, filepath.Join(k.Dir, "keystone.db"))
	cmd.Dir = k.Dir
	cmd.Env = k.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("put Keystone's SQLite database in WAL mode: %w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}

// bootstrap runs keystone-manage bootstrap, which is idempotent: it creates
// the admin user, project and roles, and region RegionOne once, and points
// the identity endpoints at base.
func (k *Keystone) bootstrap(ctx context.Context, base string) error {
	return k.manage(ctx, "bootstrap",
		"--bootstrap-username", k.AdminUser,
		"--bootstrap-password", k.AdminPassword,
		"--bootstrap-project-name", k.AdminProject,
		"--bootstrap-role-name", "admin",
		"--bootstrap-service-name", "keystone",
		"--bootstrap-region-id", "RegionOne",
		"--bootstrap-admin-url", base+"/",
		"--bootstrap-internal-url", base+"/",
		"--bootstrap-public-url", base+"/",
	)
}

// startUWSGI serves Keystone with uwsgi on port of 127.0.0.1, base being
// its v3 URL there, and waits until it answers. It returns an error
// wrapping errPortTaken when the port was taken in the meantime.
func (k *Keystone) startUWSGI(ctx context.Context, port int, base string) error {
	argv, err := ksUWSGICommand()
	if err != nil {
		return err
	}
	argv = append(argv,
		"--master", "--die-on-term", "--no-orphans", "--need-app",
		// One process, one thread: Keystone's SQLite connections must
		// stay in the thread that made them, and SQLite locks when
		// several processes write.
		"--processes", "1", "--threads", "1", "--lazy-apps",
		"--http-socket", "127.0.0.1:"+strconv.Itoa(port),
		"--wsgi-file", ksWSGIPublic,
		"--buffer-size", "65535",
		// uwsgi's http-socket does not keep connections alive; say so,
		// or clients reusing a connection see it reset.
		"--add-header", "Connection: close",
		"--procname-prefix-spaced", "neutrino-test-keystone",
	)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = k.Dir
	cmd.Env = k.env()
	// SIGTERM both for Stop and when the test binary dies without Stop:
	// uwsgi shuts down on it (--die-on-term).
	p, logStart, err := startProcess("uwsgi", cmd, k.uwsgiPath, syscall.SIGTERM, syscall.SIGTERM, ksStopTimeout)
	if err != nil {
		return err
	}
	k.proc, k.port, k.URL = p, port, base

	if err := p.waitReady(ctx, ksReadyTimeout, 100*time.Millisecond, "Keystone to answer", k.probe); err != nil {
		p.stop()
		out := readFileFrom(k.uwsgiPath, logStart)
		if bytes.Contains(out, []byte("Address already in use")) {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("keystone (uwsgi) on port %d: %w\nuwsgi log:\n%s\nkeystone.log:\n%s",
			port, err, tail(bytes.TrimSpace(out), 30), tail(readFile(k.logPath), 20))
	}
	return nil
}

func (k *Keystone) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL, nil)
	if err != nil {
		return err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", k.URL, resp.StatusCode)
	}
	return nil
}

// Stop stops Keystone and, if StartKeystoneServer created its directory,
// removes it. It is safe to call more than once.
func (k *Keystone) Stop() {
	k.stopOnce.Do(func() { stopServer(k.proc, k.ownedDir) })
}

// PID returns the process id of the uwsgi master serving Keystone.
func (k *Keystone) PID() int { return k.proc.pid() }

// Port returns the port Keystone listens on at 127.0.0.1.
func (k *Keystone) Port() int { return k.port }

// LogTail returns the last n lines of uwsgi's and Keystone's logs.
func (k *Keystone) LogTail(n int) string {
	return fmt.Sprintf("== %s ==\n%s\n== %s ==\n%s", k.uwsgiPath, tail(readFile(k.uwsgiPath), n),
		k.logPath, tail(readFile(k.logPath), n))
}

// AdminToken returns a token of the admin user scoped to the admin project.
func (k *Keystone) AdminToken(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ksRequestTimeout)
	defer cancel()
	tok, err := k.adminTokenContext(ctx)
	if err != nil {
		t.Fatalf("Keystone admin token: %v", err)
	}
	return tok
}

// adminTokenContext returns the admin token, issuing a new one when none is
// held or the held one expires within five minutes.
func (k *Keystone) adminTokenContext(ctx context.Context) (string, error) {
	k.adminMu.Lock()
	defer k.adminMu.Unlock()
	if k.adminToken != "" && time.Now().Add(5*time.Minute).Before(k.adminExpires) {
		return k.adminToken, nil
	}
	tok, expires, err := k.issueToken(ctx, k.AdminUser, k.AdminPassword, k.AdminProject)
	if err != nil {
		return "", err
	}
	k.adminToken, k.adminExpires = tok, expires
	return tok, nil
}

// Token returns a token of user, authenticated by password and scoped to
// project; user and project are in the Default domain.
func (k *Keystone) Token(t testing.TB, user, password, project string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ksRequestTimeout)
	defer cancel()
	tok, err := k.TokenContext(ctx, user, password, project)
	if err != nil {
		t.Fatalf("Keystone token of %s in project %s: %v", user, project, err)
	}
	return tok
}

// TokenContext is Token for use outside a test.
func (k *Keystone) TokenContext(ctx context.Context, user, password, project string) (string, error) {
	tok, _, err := k.issueToken(ctx, user, password, project)
	return tok, err
}

func (k *Keystone) issueToken(ctx context.Context, user, password, project string) (string, time.Time, error) {
	type named struct {
		Name   string `json:"name"`
		Domain struct {
			ID string `json:"id"`
		} `json:"domain"`
		Password string `json:"password,omitempty"`
	}
	var req struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User named `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project named `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	req.Auth.Identity.Methods = []string{"password"}
	u := &req.Auth.Identity.Password.User
	u.Name, u.Password, u.Domain.ID = user, password, ksDomain
	p := &req.Auth.Scope.Project
	p.Name, p.Domain.ID = project, ksDomain
	var out struct {
		Token struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"token"`
	}
	hdr, err := k.call(ctx, http.MethodPost, "/auth/tokens?nocatalog", "", nil, &req, &out, http.StatusCreated)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	tok := hdr.Get("X-Subject-Token")
	if tok == "" {
		return "", time.Time{}, errors.New("issue token: no X-Subject-Token in Keystone's answer")
	}
	return tok, out.Token.ExpiresAt, nil
}

// RevokeToken revokes token, as an admin.
func (k *Keystone) RevokeToken(t testing.TB, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ksRequestTimeout)
	defer cancel()
	if err := k.RevokeTokenContext(ctx, token); err != nil {
		t.Fatalf("Keystone: %v", err)
	}
}

// RevokeTokenContext is RevokeToken for use outside a test.
func (k *Keystone) RevokeTokenContext(ctx context.Context, token string) error {
	admin, err := k.adminTokenContext(ctx)
	if err != nil {
		return err
	}
	if _, err := k.call(ctx, http.MethodDelete, "/auth/tokens", admin,
		map[string]string{"X-Subject-Token": token}, nil, nil, http.StatusNoContent); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// CreateProjectUser creates project (unless it exists) and user (unless it
// exists; then its password is set) in the Default domain, and gives user
// roles on project, "member" when no roles are named. Roles that do not
// exist are created.
func (k *Keystone) CreateProjectUser(t testing.TB, project, user, password string, roles ...string) (projectID, userID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*ksRequestTimeout)
	defer cancel()
	projectID, userID, err := k.CreateProjectUserContext(ctx, project, user, password, roles...)
	if err != nil {
		t.Fatalf("Keystone: create project %s with user %s: %v", project, user, err)
	}
	return projectID, userID
}

// CreateProjectUserContext is CreateProjectUser for use outside a test.
func (k *Keystone) CreateProjectUserContext(ctx context.Context, project, user, password string, roles ...string) (projectID, userID string, err error) {
	tok, err := k.adminTokenContext(ctx)
	if err != nil {
		return "", "", err
	}
	if len(roles) == 0 {
		roles = []string{"member"}
	}
	if projectID, err = k.ensure(ctx, tok, "project", project, map[string]any{
		"name": project, "domain_id": ksDomain, "enabled": true,
	}); err != nil {
		return "", "", err
	}
	userBody := map[string]any{
		"name": user, "domain_id": ksDomain, "enabled": true,
		"password": password, "default_project_id": projectID,
	}
	if userID, err = k.ensure(ctx, tok, "user", user, userBody); err != nil {
		return "", "", err
	}
	// An existing user gets the password asked for.
	if _, err := k.call(ctx, http.MethodPatch, "/users/"+url.PathEscape(userID), tok, nil,
		map[string]any{"user": map[string]any{"password": password}}, nil, http.StatusOK); err != nil {
		return "", "", fmt.Errorf("set password of user %s: %w", user, err)
	}
	for _, role := range roles {
		roleID, err := k.ensure(ctx, tok, "role", role, map[string]any{"name": role})
		if err != nil {
			return "", "", err
		}
		path := "/projects/" + url.PathEscape(projectID) + "/users/" + url.PathEscape(userID) + "/roles/" + url.PathEscape(roleID)
		if _, err := k.call(ctx, http.MethodPut, path, tok, nil, nil, nil, http.StatusNoContent, http.StatusOK); err != nil {
			return "", "", fmt.Errorf("grant role %s to user %s on project %s: %w", role, user, project, err)
		}
	}
	return projectID, userID, nil
}

// ensure returns the id of the kind ("project", "user", "role") named name,
// creating it from body when there is none.
func (k *Keystone) ensure(ctx context.Context, tok, kind, name string, body map[string]any) (string, error) {
	collection := "/" + kind + "s"
	query := url.Values{"name": {name}}
	if kind != "role" {
		query.Set("domain_id", ksDomain)
	}
	var list map[string]json.RawMessage
	if _, err := k.call(ctx, http.MethodGet, collection+"?"+query.Encode(), tok, nil, nil, &list, http.StatusOK); err != nil {
		return "", fmt.Errorf("look up %s %s: %w", kind, name, err)
	}
	var found []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(list[kind+"s"], &found); err != nil {
		return "", fmt.Errorf("look up %s %s: decode answer: %w", kind, name, err)
	}
	if len(found) > 0 {
		return found[0].ID, nil
	}
	var created map[string]struct {
		ID string `json:"id"`
	}
	if _, err := k.call(ctx, http.MethodPost, collection, tok, nil, map[string]any{kind: body}, &created, http.StatusCreated); err != nil {
		return "", fmt.Errorf("create %s %s: %w", kind, name, err)
	}
	id := created[kind].ID
	if id == "" {
		return "", fmt.Errorf("create %s %s: no id in Keystone's answer", kind, name)
	}
	return id, nil
}

// call sends one request to Keystone: in as JSON (when non-nil), with token
// as X-Auth-Token (when non-empty) and extra headers; it decodes the answer
// into out (when non-nil) and fails unless the status is one of ok.
func (k *Keystone) call(ctx context.Context, method, path, token string, headers map[string]string, in, out any, ok ...int) (http.Header, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for h, v := range headers {
		req.Header.Set(h, v)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	if !ksStatusIn(resp.StatusCode, ok) {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, req.URL.Path, resp.StatusCode, tail(bytes.TrimSpace(data), 5))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, req.URL.Path, err)
		}
	}
	return resp.Header, nil
}

func ksStatusIn(status int, ok []int) bool {
	for _, s := range ok {
		if status == s {
			return true
		}
	}
	return false
}

func ksAppendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
