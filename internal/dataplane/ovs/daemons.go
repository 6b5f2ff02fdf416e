// Package ovs owns neutrino's use of Open vSwitch: starting and stopping
// private ovsdb-server/ovs-vswitchd daemons (for the all-in-one and for test
// nodes in network namespaces), the OVSDB client (bridges, ports,
// interfaces, external_ids, and interface events from the monitor), and
// OpenFlow programming of a bridge in atomic OpenFlow 1.4 bundles.
package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// Where Debian's openvswitch-switch puts things.
const (
	// DefaultSchema is the Open_vSwitch database schema.
	DefaultSchema = "/usr/share/openvswitch/vswitch.ovsschema"
	// SystemRunDir is the run directory of a system-wide OVS.
	SystemRunDir = "/var/run/openvswitch"
)

// ErrNotInstalled is wrapped by Installed's error.
var ErrNotInstalled = errors.New("Open vSwitch is not installed")

const (
	// defaultStartTimeout bounds StartDaemons when ctx has no deadline.
	defaultStartTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// pollInterval paces the readiness checks while daemons start.
	pollInterval = 5 * time.Millisecond
)

// Instance says where a running Open vSwitch listens: its database and its
// run directory, which holds each bridge's OpenFlow management socket
// (<bridge>.mgmt).
type Instance struct {
	// DB is the OVSDB endpoint, e.g. "unix:/var/run/openvswitch/db.sock".
	DB string
	// RunDir holds the bridges' management sockets.
	RunDir string
	// VSwitchdCtl is ovs-vswitchd's control socket, for ovs-appctl -t.
	VSwitchdCtl string
}

// BridgeSocket is the path of the bridge's OpenFlow management socket.
func (i Instance) BridgeSocket(bridge string) string {
	return filepath.Join(i.RunDir, bridge+".mgmt")
}

// Appctl runs `ovs-appctl -t <ovs-vswitchd control socket> args…` (e.g.
// tnl/neigh/set, ofproto/trace, fdb/show) and returns its output.
func (i Instance) Appctl(ctx context.Context, args ...string) (string, error) {
	bin, err := findBinary("ovs-appctl")
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"-t", i.VSwitchdCtl}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ovs: ovs-appctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Detect reports whether a system-wide Open vSwitch serves this host: its
// database answers on SystemRunDir/db.sock and ovs-vswitchd runs.
func Detect() (Instance, bool) {
	return DetectIn(SystemRunDir)
}

// DetectIn reports whether an Open vSwitch whose run directory is runDir
// (its db.sock and ovs-vswitchd pid file and control socket) is running,
// e.g. one StartDaemons started under a state directory.
func DetectIn(runDir string) (Instance, bool) {
	sock := filepath.Join(runDir, "db.sock")
	if !socketAnswers(sock) {
		return Instance{}, false
	}
	pid, err := readPidfile(filepath.Join(runDir, "ovs-vswitchd.pid"))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return Instance{}, false
	}
	// A system OVS names its control socket after its pid; StartDaemons
	// gives it a fixed name.
	for _, ctl := range []string{
		filepath.Join(runDir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid)),
		filepath.Join(runDir, "ovs-vswitchd.ctl"),
	} {
		if socketAnswers(ctl) {
			return Instance{DB: "unix:" + sock, RunDir: runDir, VSwitchdCtl: ctl}, true
		}
	}
	return Instance{}, false
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func socketAnswers(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Installed checks that the OVS programs and schema neutrino uses are
// present; its error wraps ErrNotInstalled and says what is missing.
func Installed() error {
	var missing []string
	for _, bin := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-ofctl", "ovs-appctl"} {
		if _, err := findBinary(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat(DefaultSchema); err != nil {
		missing = append(missing, DefaultSchema)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s (Debian: apt-get install openvswitch-switch)", ErrNotInstalled, strings.Join(missing, ", "))
	}
	return nil
}

// findBinary looks in PATH, then in the sbin directories a user's PATH
// often lacks.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found", ErrNotInstalled, name)
}

// Options configure StartDaemons.
type Options struct {
	// Dir holds the database, sockets, pid files and logs; it is also the
	// daemons' OVS_RUNDIR, so bridge management sockets are Dir/<br>.mgmt.
	// Unix socket paths are limited to 107 bytes: keep Dir short.
	Dir string
	// Netns, if set, is the network namespace the daemons run in.
	Netns string
	// Schema defaults to DefaultSchema.
	Schema string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Daemons are a private ovsdb-server and ovs-vswitchd started by
// StartDaemons. Stop them with Stop.
type Daemons struct {
	Instance
	Dir, Netns string

	log      *slog.Logger
	ovsdb    *process
	vswitchd *process
}

// StartDaemons starts ovsdb-server and ovs-vswitchd with every path under
// opts.Dir, in opts.Netns if given, and returns once ovs-vswitchd has
// applied the database (bridges can be created and programmed at once). An
// existing database in Dir is kept (converted if the schema is newer), so a
// restart resumes the bridges it had. ctx bounds the start only; the
// daemons run until Stop. They also get SIGTERM if this process dies.
func StartDaemons(ctx context.Context, opts Options) (_ *Daemons, err error) {
	if opts.Dir == "" {
		return nil, errors.New("ovs: StartDaemons needs a directory")
	}
	if err := Installed(); err != nil {
		return nil, err
	}
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	if longest := filepath.Join(dir, "ovs-vswitchd.ctl"); len(longest) > 100 {
		return nil, fmt.Errorf("ovs: directory %s is too long for unix socket paths", dir)
	}
	d := &Daemons{
		Instance: Instance{
			DB:          "unix:" + filepath.Join(dir, "db.sock"),
			RunDir:      dir,
			VSwitchdCtl: filepath.Join(dir, "ovs-vswitchd.ctl"),
		},
		Dir: dir, Netns: opts.Netns,
		log: opts.Logger.With("ovs_dir", dir, "netns", opts.Netns),
	}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	if err := d.prepareDB(ctx, opts.Schema); err != nil {
		return nil, err
	}
	if err := d.startOVSDB(ctx); err != nil {
		return nil, err
	}
	if err := d.startVSwitchd(ctx); err != nil {
		return nil, err
	}
	d.log.Info("Open vSwitch started", "ovsdb_pid", d.ovsdb.cmd.Process.Pid, "vswitchd_pid", d.vswitchd.cmd.Process.Pid)
	return d, nil
}

func (d *Daemons) dbFile() string { return filepath.Join(d.Dir, "conf.db") }

// prepareDB creates conf.db from the schema, or converts an existing one
// that an older schema made.
func (d *Daemons) prepareDB(ctx context.Context, schema string) error {
	tool, err := findBinary("ovsdb-tool")
	if err != nil {
		return err
	}
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("ovs: ovsdb-tool %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := os.Stat(d.dbFile()); errors.Is(err, fs.ErrNotExist) {
		_, err := run("create", d.dbFile(), schema)
		return err
	}
	need, err := run("needs-conversion", d.dbFile(), schema)
	if err != nil {
		return err
	}
	if need == "yes" {
		_, err = run("convert", d.dbFile(), schema)
	}
	return err
}

func (d *Daemons) env() []string {
	return append(os.Environ(), "OVS_RUNDIR="+d.Dir, "OVS_DBDIR="+d.Dir, "OVS_LOGDIR="+d.Dir)
}

func (d *Daemons) startOVSDB(ctx context.Context) error {
	sock := strings.TrimPrefix(d.DB, "unix:")
	p, err := d.start("ovsdb-server",
		d.dbFile(),
		"--remote=punix:"+sock,
		"--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
		"--pidfile="+filepath.Join(d.Dir, "ovsdb-server.pid"),
		"--unixctl="+filepath.Join(d.Dir, "ovsdb-server.ctl"),
	)
	if err != nil {
		return err
	}
	d.ovsdb = p
	if err := p.waitFor(ctx, func() bool { return socketAnswers(sock) }); err != nil {
		return err
	}
	// ovs-vswitchd needs the root row; Connect creates it when missing.
	c, err := Connect(ctx, d.DB, d.log)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

func (d *Daemons) startVSwitchd(ctx context.Context) error {
	p, err := d.start("ovs-vswitchd",
		d.DB,
		"--pidfile="+filepath.Join(d.Dir, "ovs-vswitchd.pid"),
		"--unixctl="+d.VSwitchdCtl,
	)
	if err != nil {
		return err
	}
	d.vswitchd = p
	if err := p.waitFor(ctx, func() bool { return socketAnswers(d.VSwitchdCtl) }); err != nil {
		return err
	}
	c, err := Connect(ctx, d.DB, d.log)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.WaitVSwitchd(ctx); err != nil {
		return fmt.Errorf("%w%s", err, p.logTail())
	}
	return nil
}

// RestartVSwitchd stops ovs-vswitchd and starts it again, as an upgrade or
// crash would: OpenFlow tables and conntrack state are lost, OVSDB keeps
// the bridges and ports. Tests use it to check that agents re-push flows.
func (d *Daemons) RestartVSwitchd(ctx context.Context) error {
	if d.vswitchd != nil {
		if err := d.vswitchd.stop(); err != nil {
			return err
		}
		d.vswitchd = nil
	}
	return d.startVSwitchd(ctx)
}

// Stop stops ovs-vswitchd, then ovsdb-server, by their process ids, and
// waits for both to exit. The database stays in Dir. Internal ports' tap
// devices outlive ovs-vswitchd (they persist until their bridge is deleted
// or their namespace goes): delete bridges first to remove them.
func (d *Daemons) Stop() error {
	var errs []error
	for _, p := range []**process{&d.vswitchd, &d.ovsdb} {
		if *p != nil {
			errs = append(errs, (*p).stop())
			*p = nil
		}
	}
	return errors.Join(errs...)
}

// PIDs returns the process ids of ovsdb-server and ovs-vswitchd (0 if not
// running).
func (d *Daemons) PIDs() (ovsdbServer, ovsVSwitchd int) {
	if d.ovsdb != nil {
		ovsdbServer = d.ovsdb.cmd.Process.Pid
	}
	if d.vswitchd != nil {
		ovsVSwitchd = d.vswitchd.cmd.Process.Pid
	}
	return ovsdbServer, ovsVSwitchd
}

// process is one daemon this package started.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error
}

func (d *Daemons) start(name string, args ...string) (*process, error) {
	bin, err := findBinary(name)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(d.Dir, name+".log")
	consolePath := filepath.Join(d.Dir, name+".console")
	args = append(args, "--log-file="+logPath, "-vconsole:err", "-vfile:info")
	var cmd *exec.Cmd
	if d.Netns != "" {
		cmd = netns.Command(d.Netns, bin, args...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = d.env()
	cmd.Dir = d.Dir
	console, err := os.OpenFile(consolePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	defer console.Close()
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ovs: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitFor polls ready until it holds, the process exits, or ctx ends.
func (p *process) waitFor(ctx context.Context, ready func() bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for !ready() {
		select {
		case <-p.done:
			return fmt.Errorf("ovs: %s exited while starting: %v%s", p.name, p.waitErr, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("ovs: %s not ready: %w%s", p.name, ctx.Err(), p.logTail())
		case <-t.C:
		}
	}
	return nil
}

// stop sends SIGTERM, then SIGKILL if the process lingers, and waits.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("ovs: stop %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("ovs: %s ignored SIGTERM for %s and was killed", p.name, stopTimeout)
}

// logTail returns the end of the daemon's log and console output for error
// messages.
func (p *process) logTail() string {
	var b strings.Builder
	for _, path := range []string{p.logPath, strings.TrimSuffix(p.logPath, ".log") + ".console"} {
		data, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", path, bytes.TrimSpace(data))
	}
	return b.String()
}
