package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// errPortTaken is wrapped by a server's start when the free port it chose
// was taken by someone else before the server bound it; the start is then
// tried again on another port.
var errPortTaken = errors.New("port taken")

// process is one running server process that a test helper started and
// stops by its PID (PostgreSQL's postmaster, Keystone's uwsgi master).
type process struct {
	name        string         // in log messages and errors: "postgres", "uwsgi"
	stopSignal  syscall.Signal // asks the server to shut down
	stopTimeout time.Duration  // how long stop waits before killing the group
	cmd         *exec.Cmd
	done        chan struct{} // closed once the process has exited
	err         error         // what Wait returned; read only after done is closed
}

// startProcess starts cmd, its output appended to the file logPath, in a
// process group of its own (so that stop reaches its children too and a
// terminal's ^C reaches only the test binary), and sends it deathSignal if
// the test binary dies without stopping it. It also returns the size the log
// had before the start, from where readFileFrom reads what this start wrote.
// stopSignal and stopTimeout are how the process's stop shuts it down.
func startProcess(name string, cmd *exec.Cmd, logPath string, deathSignal, stopSignal syscall.Signal, stopTimeout time.Duration) (*process, int64, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logFile.Close() // the child has its own copy
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, fmt.Errorf("%s log: %w", name, err)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = deathSignal

	p := &process{name: name, stopSignal: stopSignal, stopTimeout: stopTimeout, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started
		// the child exits, not the process: hold this thread for the
		// child's whole life by waiting for it here.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", name, err)
	}
	return p, logStart, nil
}

// pid is the process id of the process.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady calls probe every interval until it succeeds, the process
// exits, or timeout passes; what says what is waited for ("postgres to
// accept connections").
func (p *process) waitReady(ctx context.Context, timeout, interval time.Duration, what string, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting: %v", p.name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// stop sends the process its stop signal and, if it is still there after
// its stop timeout, kills its process group; it returns once the process
// has exited.
func (p *process) stop() {
	if p.exited() {
		return
	}
	pid := p.pid()
	if err := p.cmd.Process.Signal(p.stopSignal); err != nil {
		slog.Warn("testenv: signal server to stop", "name", p.name, "pid", pid, "signal", p.stopSignal, "err", err)
	}
	select {
	case <-p.done:
		return
	case <-time.After(p.stopTimeout):
	}
	slog.Warn("testenv: server did not stop in time, killing its process group", "name", p.name, "pid", pid, "timeout", p.stopTimeout)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		slog.Warn("testenv: kill process group", "name", p.name, "pgid", pid, "err", err)
	}
	<-p.done
}

// stopServer stops p, if it was started, and removes ownedDir, if the
// server's start created it: what every server's Stop does.
func stopServer(p *process, ownedDir string) {
	if p != nil {
		p.stop()
	}
	if ownedDir != "" {
		if err := os.RemoveAll(ownedDir); err != nil {
			slog.Warn("testenv: remove server directory", "dir", ownedDir, "err", err)
		}
	}
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// readFile returns the contents of path, or a note saying why not.
func readFile(path string) []byte {
	return readFileFrom(path, 0)
}

// readFileFrom returns what path holds from offset on, or a note saying why
// not.
func readFileFrom(path string, offset int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Appendf(nil, "(%v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Appendf(nil, "(%v)", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Appendf(nil, "(read %s: %v)", path, err)
	}
	return data
}

// tail returns the last n lines of data.
func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// testServer is a server that StartPostgres or StartKeystone starts for one
// test.
type testServer interface {
	LogTail(n int) string
	Stop()
}

// startForTest starts a server for t in t.TempDir() with start and stops it
// when t ends, whether t passed or not; if t failed, the last tailLines lines
// of its logs are logged first. t is skipped when the error wraps notFound
// (the server is not installed) and fails on any other error.
func startForTest[S testServer](ctx context.Context, t testing.TB, name string, notFound error, tailLines int, start func(context.Context, string) (S, error)) S {
	t.Helper()
	// TempDir first: cleanups run last-in first-out, so the server is
	// stopped before its directory is removed.
	dir := t.TempDir()
	srv, err := start(ctx, dir)
	if errors.Is(err, notFound) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s logs end with:\n%s", name, srv.LogTail(tailLines))
		}
		srv.Stop()
	})
	return srv
}

// serverDir returns the directory a server is set up in: dir, or when dir
// is "" a new temporary directory named after pattern, which it returns as
// owned too, for the server's Stop to remove.
func serverDir(dir, pattern, name string) (d, owned string, err error) {
	if dir != "" {
		return dir, "", nil
	}
	if d, err = os.MkdirTemp("", pattern); err != nil {
		return "", "", fmt.Errorf("create %s directory: %w", name, err)
	}
	return d, d, nil
}
