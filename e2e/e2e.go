// Package e2e proves neutrino works for its users with their real tools: it
// builds the neutrino binary, runs `neutrino up` as a child process on a
// private state directory and port, and drives it with Debian's openstack
// CLI and with gophercloud, asserting what a user would check.
//
// The binary is built once per test run (TestMain); set NEUTRINO_BIN to test
// a binary built elsewhere. CLI tests skip when /usr/bin/openstack is
// missing: scripts/install-deps.sh installs python3-openstackclient.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// BinEnv names the environment variable holding the neutrino binary to test.
const BinEnv = "NEUTRINO_BIN"

// openstackCLI is Debian's openstack client (python3-openstackclient).
const openstackCLI = "/usr/bin/openstack"

// Build compiles cmd/neutrino into dir and returns the binary's path. It runs
// from the current directory, which must be inside the neutrino module.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "neutrino")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/neutrino-sdn/neutrino/cmd/neutrino")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: go build neutrino: %w\n%s", err, out)
	}
	return bin, nil
}

// Neutrino is a running `neutrino up` child process.
type Neutrino struct {
	// URL is the API endpoint, http://127.0.0.1:PORT.
	URL string
	// PID is the child's process id.
	PID     int
	logPath string
}

// StartNeutrino runs `neutrino up` (the API server alone, no agent) on a
// fresh state directory and free ports, with any extra flags, waits until
// /healthz answers, and stops the process by its PID when the test ends,
// also when it fails. The server's log is shown on failure.
func StartNeutrino(t testing.TB, flags ...string) *Neutrino {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		t.Fatalf("e2e: %s is not set; TestMain builds the binary", BinEnv)
	}
	var lastErr error
	// A free port found by listening and closing may be taken by another
	// process before neutrino binds it; try a few ports.
	for range 3 {
		n, err := startOnce(t, bin, flags)
		if err == nil {
			return n
		}
		lastErr = err
	}
	t.Fatalf("e2e: start neutrino: %v", lastErr)
	return nil
}

func startOnce(t testing.TB, bin string, flags []string) (*Neutrino, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	// The embedded NATS gets its own port too: `up` would take 4222, which
	// the servers of parallel tests (or a real all-in-one) would share. The
	// API is under test, so no agent runs (--roles=): parallel agents would
	// share, and on stopping tear down, this host's Open vSwitch bridges.
	natsPort, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "neutrino.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	defer logFile.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// --roles= serves the API alone: these tests need no agent, and an
	// all-in-one's Open vSwitch per test would clash on bridge devices.
	args := append([]string{"up", "--state-dir", filepath.Join(dir, "state"), "--listen", addr,
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--roles="}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	n := &Neutrino{URL: "http://" + addr, PID: cmd.Process.Pid, logPath: logPath}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		n.stop(t, exited)
		if t.Failed() {
			n.showLog(t)
		}
	})
	if err := n.waitHealthy(exited); err != nil {
		return nil, err
	}
	return n, nil
}

// waitHealthy polls /healthz until it answers 200, the process exits, or
// 30 seconds pass.
func (n *Neutrino) waitHealthy(exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("neutrino exited before serving (%v): %s", err, n.logTail())
		default:
		}
		resp, err := client.Get(n.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("neutrino did not answer %s/healthz within 30s: %s", n.URL, n.logTail())
}

// stop sends SIGTERM to the child and waits for it; SIGKILL after 10s.
func (n *Neutrino) stop(t testing.TB, exited <-chan error) {
	proc, err := os.FindProcess(n.PID)
	if err != nil {
		return
	}
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Errorf("e2e: neutrino (pid %d): %v", n.PID, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("e2e: neutrino (pid %d) did not stop within 10s of SIGTERM; killing it", n.PID)
		_ = proc.Kill()
		<-exited
	}
}

func (n *Neutrino) logTail() string {
	data, _ := os.ReadFile(n.logPath)
	const max = 4000
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

func (n *Neutrino) showLog(t testing.TB) {
	t.Logf("neutrino log (%s):\n%s", n.logPath, n.logTail())
}

// CLI runs Debian's openstack client against one neutrino in noauth mode.
type CLI struct {
	t   testing.TB
	env []string
}

// OpenstackCLI returns a CLI that talks to n without authentication
// (OS_AUTH_TYPE=none), or skips t when the client is missing.
func OpenstackCLI(t testing.TB, n *Neutrino) *CLI {
	t.Helper()
	return newCLI(t, "OS_AUTH_TYPE=none", "OS_ENDPOINT="+n.URL)
}

// KeystoneCLI returns a CLI that logs in to Keystone at authURL (v3) as
// user of project (both in the Default domain) and finds neutrino in
// Keystone's catalog, as in a production cloud; it skips t when the client
// is missing.
func KeystoneCLI(t testing.TB, authURL, user, password, project string) *CLI {
	t.Helper()
	return newCLI(t,
		"OS_AUTH_TYPE=password", "OS_AUTH_URL="+authURL, "OS_IDENTITY_API_VERSION=3",
		"OS_USERNAME="+user, "OS_PASSWORD="+password, "OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
		"OS_REGION_NAME=RegionOne", "OS_INTERFACE=public")
}

// RequireOpenstackCLI skips t when Debian's openstack client is missing.
func RequireOpenstackCLI(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(openstackCLI); err != nil {
		t.Skipf("skipping: %s not found; install python3-openstackclient (scripts/install-deps.sh)", openstackCLI)
	}
}

func newCLI(t testing.TB, osEnv ...string) *CLI {
	t.Helper()
	RequireOpenstackCLI(t)
	// A clean environment: no OS_* settings of the person running the tests,
	// a private HOME for the client's caches, Debian's python first in PATH.
	env := append([]string{
		"PATH=/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=" + t.TempDir(),
		"LANG=C.UTF-8",
	}, osEnv...)
	return &CLI{t: t, env: env}
}

// With returns a copy of c with more environment variables (NAME=value).
func (c *CLI) With(env ...string) *CLI {
	return &CLI{t: c.t, env: append(slices.Clone(c.env), env...)}
}

// Result is one finished CLI invocation.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Exit   int
}

func (r *Result) String() string {
	return fmt.Sprintf("openstack %s: exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.Exit, r.Stdout, r.Stderr)
}

// Run runs `openstack args...` and returns its result whatever the exit.
func (c *CLI) Run(args ...string) *Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openstackCLI, args...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if d := time.Since(start); d > 10*time.Second {
		c.t.Logf("slow: openstack %s took %v", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	r := &Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.Exit = exitErr.ExitCode()
	default:
		c.t.Fatalf("e2e: run openstack %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// OK runs the command and fails the test unless it exits 0; it returns stdout.
func (c *CLI) OK(args ...string) string {
	c.t.Helper()
	r := c.Run(args...)
	if r.Exit != 0 {
		c.t.Fatalf("%v", r)
	}
	return r.Stdout
}

// JSON runs the command with `-f json`, fails the test unless it exits 0,
// and decodes its output into out.
func (c *CLI) JSON(out any, args ...string) {
	c.t.Helper()
	stdout := c.OK(append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		c.t.Fatalf("openstack %s: output is not JSON (%v): %s", strings.Join(args, " "), err, stdout)
	}
}

// Object runs a show/create/set command with `-f json` and returns the object.
func (c *CLI) Object(args ...string) map[string]any {
	c.t.Helper()
	var m map[string]any
	c.JSON(&m, args...)
	return m
}

// List runs a list command with `-f json` and returns its rows.
func (c *CLI) List(args ...string) []map[string]any {
	c.t.Helper()
	var l []map[string]any
	c.JSON(&l, args...)
	return l
}

// Fail runs the command, fails the test unless it exits non-zero, and
// returns what it printed on stderr.
func (c *CLI) Fail(args ...string) string {
	c.t.Helper()
	r := c.Run(args...)
	if r.Exit == 0 {
		c.t.Fatalf("expected a failure: %v", r)
	}
	return r.Stderr
}
