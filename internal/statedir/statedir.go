// Package statedir owns the layout of an all-in-one's state directory (the
// --state-dir of `neutrino up`, `neutrino vm` and `neutrino down`): where the
// embedded database, the private Open vSwitch and the VMs' records live, the
// runtime record `up` writes for the other commands (API URL, host, Open
// vSwitch paths and process ids), and the lock that tells whether `up` is
// running on the directory.
package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is a state directory.
type Dir struct{ Path string }

// New returns the state directory at path, made absolute (the commands
// may run from other working directories).
func New(path string) (Dir, error) {
	if path == "" {
		return Dir{}, errors.New("statedir: empty state directory")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Dir{}, fmt.Errorf("statedir: %w", err)
	}
	return Dir{Path: abs}, nil
}

// The entries `up` and `vm` make in the directory; `down` removes exactly
// these.
const (
	runtimeFile = "up.json"
	lockFile    = "up.lock"
	ovsDir      = "ovs"
	vmsDir      = "vms"
	// DatabaseFile is the embedded SQLite database (config.DatabaseURL's
	// default); its -wal and -shm companions go with it.
	DatabaseFile = "neutrino.db"
)

// OVS is the directory of the private Open vSwitch `up` starts when none
// serves the host.
func (d Dir) OVS() string { return filepath.Join(d.Path, ovsDir) }

// VMs is the directory of the VMs' records, one subdirectory per VM.
func (d Dir) VMs() string { return filepath.Join(d.Path, vmsDir) }

// Database is the path of the embedded SQLite database.
func (d Dir) Database() string { return filepath.Join(d.Path, DatabaseFile) }

// Entries are the paths `up` and `vm` may create in the directory.
func (d Dir) Entries() []string {
	var out []string
	for _, name := range []string{runtimeFile, lockFile, ovsDir, vmsDir, DatabaseFile, DatabaseFile + "-wal", DatabaseFile + "-shm", DatabaseFile + "-journal"} {
		out = append(out, filepath.Join(d.Path, name))
	}
	return out
}

// Runtime is what a running (or last) `up` recorded for `vm` and `down`.
type Runtime struct {
	// PID is the process id of `up`.
	PID int `json:"pid"`
	// Started is when that `up` started.
	Started time.Time `json:"started"`
	// APIURL is the Networking API's endpoint, e.g. http://127.0.0.1:9696.
	APIURL string `json:"api_url"`
	// Host is the agent's host, the binding:host_id of VMs' ports.
	Host string `json:"host"`
	// DatabaseURL is the server's database.
	DatabaseURL string `json:"database_url"`
	// NetNS identifies the network namespace `up` runs in (its
	// /proc/<pid>/ns/net link, e.g. "net:[4026531840]"): VIFs must be made
	// in the namespace where ovs-vswitchd runs.
	NetNS string `json:"netns"`
	OVS   OVS    `json:"ovs"`
}

// OVS says which Open vSwitch the all-in-one uses.
type OVS struct {
	// Own is true when `up` started the daemons itself in Dir.OVS().
	Own bool `json:"own"`
	// DB is the OVSDB endpoint, RunDir the run directory (bridges'
	// management sockets), VSwitchdCtl ovs-vswitchd's control socket.
	DB          string `json:"db"`
	RunDir      string `json:"run_dir"`
	VSwitchdCtl string `json:"vswitchd_ctl"`
	// IntegrationBridge is where VMs plug in.
	IntegrationBridge string `json:"integration_bridge"`
	// OVSDBServerPID and VSwitchdPID are the daemons `up` started (0 when
	// it uses a system Open vSwitch or has stopped them).
	OVSDBServerPID int `json:"ovsdb_server_pid,omitempty"`
	VSwitchdPID    int `json:"vswitchd_pid,omitempty"`
	// CreatedBridges are the bridges the all-in-one added to a system
	// Open vSwitch, which `down` deletes (with its own daemons, `down`
	// deletes every bridge).
	CreatedBridges []string `json:"created_bridges,omitempty"`
}

// ErrNoRuntime is wrapped by ReadRuntime's error when `up` never ran on
// the directory.
var ErrNoRuntime = errors.New("neutrino up has not run with this state directory")

// ReadRuntime reads the runtime record.
func (d Dir) ReadRuntime() (Runtime, error) {
	var rt Runtime
	data, err := os.ReadFile(filepath.Join(d.Path, runtimeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rt, fmt.Errorf("%w (%s)", ErrNoRuntime, d.Path)
	}
	if err != nil {
		return rt, fmt.Errorf("statedir: %w", err)
	}
	if err := json.Unmarshal(data, &rt); err != nil {
		return rt, fmt.Errorf("statedir: %s: %w", filepath.Join(d.Path, runtimeFile), err)
	}
	return rt, nil
}

// WriteRuntime replaces the runtime record atomically.
func (d Dir) WriteRuntime(rt Runtime) error {
	return WriteJSON(filepath.Join(d.Path, runtimeFile), rt)
}

// WriteJSON writes v as indented JSON to path through a temporary file and
// a rename, so readers never see half a record.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("statedir: encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("statedir: %w", err)
	}
	return nil
}

// Lock is the exclusive lock a running `up` holds on its directory.
type Lock struct{ f *os.File }

// ErrBusy is wrapped by Acquire's error when another `up` holds the lock.
var ErrBusy = errors.New("another neutrino up is running with this state directory")

// Acquire takes the directory's lock without waiting, creating the
// directory if needed. The kernel releases it when the process dies.
func (d Dir) Acquire() (*Lock, error) {
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d.Path, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if rt, rerr := d.ReadRuntime(); rerr == nil && rt.PID != 0 {
				return nil, fmt.Errorf("%w (%s, pid %d)", ErrBusy, d.Path, rt.PID)
			}
			return nil, fmt.Errorf("%w (%s)", ErrBusy, d.Path)
		}
		return nil, fmt.Errorf("statedir: lock %s: %w", d.Path, err)
	}
	return &Lock{f: f}, nil
}

// Release releases the lock.
func (l *Lock) Release() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// Running reports whether an `up` holds the directory's lock now, and
// returns its runtime record when it does.
func (d Dir) Running() (Runtime, bool) {
	f, err := os.Open(filepath.Join(d.Path, lockFile))
	if err != nil {
		return Runtime{}, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return Runtime{}, false
	}
	rt, err := d.ReadRuntime()
	if err != nil {
		return Runtime{}, false
	}
	return rt, true
}

// ErrNotRunning is wrapped by RequireRunning's error.
var ErrNotRunning = errors.New("neutrino up is not running with this state directory")

// RequireRunning returns the runtime record of the running `up`, or an
// error that says how to start it.
func (d Dir) RequireRunning() (Runtime, error) {
	rt, ok := d.Running()
	if !ok {
		return rt, fmt.Errorf("%w (%s): start it with `neutrino up --state-dir %s`", ErrNotRunning, d.Path, d.Path)
	}
	return rt, nil
}

// ProcessAlive reports whether pid runs and its command name is comm (as
// /proc/<pid>/comm shows it), so a recycled pid is never taken for ours.
func ProcessAlive(pid int, comm string) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return false
	}
	if strings.TrimSpace(string(data)) != comm {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// NetNSOf returns the identity of pid's network namespace ("self" for this
// process), as the /proc/<pid>/ns/net link reads.
func NetNSOf(pid string) (string, error) {
	id, err := os.Readlink(filepath.Join("/proc", pid, "ns", "net"))
	if err != nil {
		return "", fmt.Errorf("statedir: network namespace of %s: %w", pid, err)
	}
	return id, nil
}
