// Package allinone owns `neutrino up` and `neutrino down`: the all-in-one
// on one machine. Up runs the API server (embedded SQLite and NATS under
// the state directory) and an agent with every role in one process, on the
// host's Open vSwitch or, when none serves the host, on ovsdb-server and
// ovs-vswitchd of its own under the state directory; it records what
// `neutrino vm` and `neutrino down` need (statedir.Runtime) and stops every
// process it started on SIGINT/SIGTERM. A later Up on the same directory
// resumes its networks and VMs. Down removes everything Up and the VMs
// made: VMs, the agents' namespaces, bridges, the private Open vSwitch and
// the files.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent/roles"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/server"
	"github.com/neutrino-sdn/neutrino/internal/statedir"
)

// NoPeersTunnelIP is the all-in-one's tunnel endpoint when
// agent.l2.local_ip is not set: a node without peers needs no reachable
// one, but tunnel networks (the default tenant type, vxlan) bind only to
// agents that have one.
const NoPeersTunnelIP = "127.0.0.1"

// Options configure Up.
type Options struct {
	Log *slog.Logger
	// Out receives what the user is told (where the API is); default stderr.
	Out io.Writer
	// DefaultStateDir is the state directory the commands use without
	// --state-dir; the hints Up prints name the directory only if it differs.
	DefaultStateDir string
}

// Up runs the all-in-one with cfg until ctx ends, then stops everything it
// started.
func Up(ctx context.Context, cfg config.Config, opts Options) (err error) {
	log, out := opts.Log, opts.Out
	if log == nil {
		log = slog.Default()
	}
	if out == nil {
		out = os.Stderr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	dir, err := statedir.New(cfg.StateDir)
	if err != nil {
		return err
	}
	cfg.StateDir = dir.Path
	lock, err := dir.Acquire()
	if err != nil {
		return err
	}
	defer lock.Release()
	prior, _ := dir.ReadRuntime()

	host, err := cfg.Agent.HostName()
	if err != nil {
		return err
	}
	cfg.Agent.Host = host
	if cfg.Agent.Metadata.Socket == "" {
		// Per state directory: two ups on one machine must not share it.
		cfg.Agent.Metadata.Socket = filepath.Join(cfg.StateDir, "metadata_proxy")
	}
	withAgent := len(cfg.Agent.Roles) > 0
	if !withAgent {
		return serveOnly(ctx, cfg, dir, host, opts)
	}
	if os.Geteuid() != 0 {
		return errors.New("all-in-one: the agent needs root (network namespaces, Open vSwitch): run neutrino up as root, or with --roles '' for the API server alone")
	}
	if cfg.Agent.L2.LocalIP == "" {
		cfg.Agent.L2.LocalIP = NoPeersTunnelIP
		log.Info("agent.l2.local_ip is not set: tunnels to other nodes need it; this node alone uses " + NoPeersTunnelIP)
	}
	sw, err := openVSwitch(ctx, cfg, dir, prior, log)
	if err != nil {
		return err
	}
	defer func() {
		if serr := sw.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	cfg.Agent.L2.OVSRunDir = sw.inst.RunDir

	netNS, err := statedir.NetNSOf("self")
	if err != nil {
		return err
	}
	rt := statedir.Runtime{
		PID: os.Getpid(), Started: time.Now().UTC(), Host: host, DatabaseURL: cfg.DatabaseURL(), NetNS: netNS,
		OVS: sw.record(cfg.Agent.L2.IntegrationBridge),
	}
	if err := dir.WriteRuntime(rt); err != nil {
		return err
	}
	// However up ends, the record says nothing runs.
	defer func() {
		rt.PID, rt.OVS.OVSDBServerPID, rt.OVS.VSwitchdPID = 0, 0, 0
		if werr := dir.WriteRuntime(rt); werr != nil {
			err = errors.Join(err, werr)
		}
	}()

	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	// The server outlives the agent, so the agent's last calls are answered.
	serverCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	// /readyz waits for the in-process agent: not ready until it exists and
	// has applied its first full sync.
	srv.SetReadyCheck("agent", func() error { return errors.New("starting") })
	ready := make(chan string, 1)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(serverCtx, func(addr string) { ready <- addr }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-serveErr:
		return err
	case <-ctx.Done():
		stopServer()
		return <-serveErr
	}
	rt.APIURL = apiURL(addr)
	if err := dir.WriteRuntime(rt); err != nil {
		stopServer()
		return errors.Join(err, <-serveErr)
	}

	conn, err := agentConn(srv, cfg, log)
	if err != nil {
		stopServer()
		return errors.Join(err, <-serveErr)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentErr := make(chan error, 1)
	go func() {
		agentErr <- roles.Run(agentCtx, cfg.Agent, conn, log, &roles.InProcess{Metrics: srv.Metrics(), SetReadyCheck: srv.SetReadyCheck})
	}()

	printBanner(out, cfg, rt, sw, opts.DefaultStateDir, srv.NATSURL())

	// Stop order: the agent, then the bus connection, then the server.
	var agentDone, serverDone bool
	var runErr, serverErr error
	select {
	case <-ctx.Done():
	case runErr = <-agentErr:
		agentDone = true
		if runErr == nil {
			runErr = errors.New("the agent stopped")
		}
		runErr = fmt.Errorf("all-in-one: agent: %w", runErr)
	case serverErr = <-serveErr:
		serverDone = true
	}
	stopAgent()
	if !agentDone {
		if err := <-agentErr; err != nil && runErr == nil {
			runErr = fmt.Errorf("all-in-one: agent: %w", err)
		}
	}
	conn.Close()
	stopServer()
	if !serverDone {
		serverErr = <-serveErr
	}
	return errors.Join(runErr, serverErr)
}

// serveOnly runs the API server alone (no agent roles configured): no
// Open vSwitch, no namespaces; VMs cannot be made.
func serveOnly(ctx context.Context, cfg config.Config, dir statedir.Dir, host string, opts Options) error {
	log, out := opts.Log, opts.Out
	if log == nil {
		log = slog.Default()
	}
	if out == nil {
		out = os.Stderr
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	rt := statedir.Runtime{PID: os.Getpid(), Started: time.Now().UTC(), Host: host, DatabaseURL: cfg.DatabaseURL()}
	err = srv.Serve(ctx, func(addr string) {
		rt.APIURL = apiURL(addr)
		if werr := dir.WriteRuntime(rt); werr != nil {
			log.Error("cannot record the API's address for neutrino vm and down", "err", werr)
		}
		fmt.Fprintf(out, "neutrino is up without an agent (no roles): the Networking API is at %s (state %s)\n"+
			"Point the openstack CLI at it: export OS_AUTH_TYPE=none OS_ENDPOINT=%s\n", rt.APIURL, cfg.StateDir, rt.APIURL)
	})
	rt.PID = 0
	return errors.Join(err, dir.WriteRuntime(rt))
}

// agentConn connects the in-process agent to the server's bus.
func agentConn(srv *server.Server, cfg config.Config, log *slog.Logger) (*bus.Conn, error) {
	if e := srv.NATS(); e != nil {
		return bus.ConnectEmbedded(e, "neutrino-agent", log)
	}
	return roles.Connect(cfg.NATS.URL, log)
}

// apiURL turns the listening address into a URL clients can use.
func apiURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func printBanner(out io.Writer, cfg config.Config, rt statedir.Runtime, sw *vswitch, defaultDir, natsURL string) {
	dirFlag := " --state-dir " + cfg.StateDir
	if abs, err := filepath.Abs(defaultDir); err == nil && defaultDir != "" && abs == cfg.StateDir {
		dirFlag = ""
	}
	fmt.Fprintf(out, `
neutrino is up: the Networking API is at %s
  state:         %s (database %s)
  agent:         host %s, roles %s
  Open vSwitch:  %s
`, rt.APIURL, cfg.StateDir, cfg.DatabaseURL(), rt.Host, strings.Join(cfg.Agent.Roles, ", "), sw.describe())
	if natsURL != "" {
		fmt.Fprintf(out, "  bus:           agents on other hosts connect to %s\n", natsURL)
	}
	fmt.Fprintf(out, `
Point the openstack CLI at it (no authentication; every caller is admin):
  export OS_AUTH_TYPE=none OS_ENDPOINT=%s
  openstack network create demo
  openstack subnet create demo-subnet --network demo --subnet-range 10.0.0.0/24
Make VMs (network namespaces plugged into br-int) and try them:
  neutrino vm create%s --network demo vm1
  neutrino vm exec%s vm1 -- ip addr
Ctrl-C stops it (a later up resumes); neutrino down%s removes everything.

`, rt.APIURL, dirFlag, dirFlag, dirFlag)
}

// vswitch is the Open vSwitch the all-in-one uses.
type vswitch struct {
	inst ovs.Instance
	// daemons are ours; nil for a system Open vSwitch.
	daemons *ovs.Daemons
	// createdBridges are the bridges the all-in-one added to a system
	// Open vSwitch.
	createdBridges []string
}

// openVSwitch picks the Open vSwitch: our own daemons if an earlier up
// made them (resume), else a configured or system one that answers, else
// new daemons of our own under the state directory.
func openVSwitch(ctx context.Context, cfg config.Config, dir statedir.Dir, prior statedir.Runtime, log *slog.Logger) (*vswitch, error) {
	runDir := cfg.Agent.L2.OVSRunDir
	_, ownErr := os.Stat(filepath.Join(dir.OVS(), "conf.db"))
	if ownErr != nil {
		if inst, ok := ovs.DetectIn(runDir); ok {
			sw := &vswitch{inst: inst}
			created, err := newBridges(ctx, inst, cfg.Agent.L2, prior.OVS.CreatedBridges, log)
			if err != nil {
				return nil, err
			}
			sw.createdBridges = created
			return sw, nil
		}
		if runDir != config.Default().Agent.L2.OVSRunDir {
			return nil, fmt.Errorf("all-in-one: no Open vSwitch answers in agent.l2.ovs_run_dir %s", runDir)
		}
	}
	// Daemons of an up that died without stopping them hold the database.
	stopStale(prior.OVS, log)
	if err := ovs.Installed(); err != nil {
		return nil, fmt.Errorf("all-in-one: no Open vSwitch serves this host and none can be started: %w", err)
	}
	d, err := ovs.StartDaemons(ctx, ovs.Options{Dir: dir.OVS(), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("all-in-one: %w", err)
	}
	return &vswitch{inst: d.Instance, daemons: d}, nil
}

// newBridges returns the bridges of a system Open vSwitch the all-in-one
// created or will create: the known ones plus those the agent uses that
// do not exist yet.
func newBridges(ctx context.Context, inst ovs.Instance, l2 config.L2Agent, known []string, log *slog.Logger) ([]string, error) {
	c, err := ovs.Connect(ctx, inst.DB, log)
	if err != nil {
		return nil, fmt.Errorf("all-in-one: %w", err)
	}
	defer c.Close()
	created := slices.Clone(known)
	mappings, err := l2.Mappings()
	if err != nil {
		return nil, err
	}
	wanted := []string{l2.IntegrationBridge, l2.TunnelBridge}
	for _, br := range mappings {
		wanted = append(wanted, br)
	}
	for _, br := range wanted {
		if _, err := c.Bridge(br); err != nil && !slices.Contains(created, br) {
			created = append(created, br)
		}
	}
	return created, nil
}

func (sw *vswitch) record(integrationBridge string) statedir.OVS {
	rec := statedir.OVS{
		Own: sw.daemons != nil, DB: sw.inst.DB, RunDir: sw.inst.RunDir, VSwitchdCtl: sw.inst.VSwitchdCtl,
		IntegrationBridge: integrationBridge, CreatedBridges: sw.createdBridges,
	}
	if sw.daemons != nil {
		rec.OVSDBServerPID, rec.VSwitchdPID = sw.daemons.PIDs()
	}
	return rec
}

func (sw *vswitch) describe() string {
	if sw.daemons != nil {
		return "its own ovsdb-server and ovs-vswitchd in " + sw.daemons.Dir
	}
	return "the host's, at " + sw.inst.DB
}

// stop stops our own daemons. OVSDB keeps bridges and ports for the next
// up, whose ovs-vswitchd makes the bridges' devices again: the ones this
// one made are removed, so a stopped all-in-one leaves no bridge devices
// in the namespace (the VMs' veths stay, and are plugged again).
func (sw *vswitch) stop() error {
	if sw.daemons == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var devices []string
	if c, err := ovs.Connect(ctx, sw.inst.DB, nil); err == nil {
		devices = c.BridgeNames()
		c.Close()
	}
	errs := []error{sw.daemons.Stop()}
	if h, err := link.Open(""); err == nil {
		for _, dev := range append(devices, netdevDatapathDevice) {
			errs = append(errs, h.Delete(dev))
		}
		h.Close()
	}
	return errors.Join(errs...)
}
