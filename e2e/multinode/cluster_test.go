// Package multinode holds the three-node integration tests and benchmarks
// of the agents and the L2 dataplane: the real neutrino binary runs as a
// server (with embedded NATS) and as agents inside the namespaces of an
// internal/testbed bed, VMs are made with `neutrino vm create` on the node
// they run on, and the tests check what a user would: DHCP gave the API's
// address, pings and TCP go where they should and nowhere else, frames on
// the provider segment carry the right 802.1Q tag, deleting things removes
// their flows and namespaces, dead agents are noticed and their networks
// rescheduled, routers on a network node translate and route for two
// projects with the same addresses. They need root, Open vSwitch, tcpdump and busybox, and skip
// with a message saying so otherwise.
package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/e2e"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/statedir"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// Timing of the clusters: short so that liveness tests stay quick. An
// agent reports every agentReport; the server counts it dead once its last
// report is older than agentDownTime and looks for dead agents every
// agentReport (the scheduler's check interval is the report interval).
const (
	agentReport   = time.Second
	agentDownTime = 4 * time.Second
	// deadWithin is the documented bound for alive:false after an agent
	// stops: agent_down_time plus one report interval of slack.
	deadWithin = agentDownTime + agentReport
	physnet    = "physnet1"
	apiPort    = 9696
	natsPort   = 4222
)

// binEnv names the binary TestMain built.
const binEnv = "NEUTRINO_MULTINODE_BIN"

func TestMain(m *testing.M) {
	// Building needs a minute; without root every test here skips anyway.
	if os.Geteuid() == 0 && os.Getenv(binEnv) == "" {
		dir, err := os.MkdirTemp("", "neutrino-multinode-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		bin, err := e2e.Build(ctx, dir)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		os.Setenv(binEnv, bin)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// cluster is a bed of three nodes running neutrino: node1 the server and
// an agent with l2 and dhcp (and l3, with the external network on br-ex,
// in networkNodeSpec), node2 and node3 agents with l2.
type cluster struct {
	t     testing.TB
	bed   *testbed.Bed
	bin   string
	nodes []*node
	// api talks to the server through a proxy into node1's namespace.
	api *apitest.Client
	// apiURL is the server's address as the nodes see it.
	apiURL  string
	server  *proc
	serverD string

	mu sync.Mutex
	// networks are the ids of networks the test made, whose qdhcp
	// namespaces are removed at the end if an agent left them.
	networks []string
	// routers are the ids of routers the test made, likewise for their
	// qrouter namespaces.
	routers []string
}

type node struct {
	c     *cluster
	tb    *testbed.Node
	dir   string
	roles []string
	// external: the node maps extPhysnet to br-ex, which holds the bed's
	// external NIC (a network node).
	external bool
	agent    *proc
	// vmDir is the state directory `neutrino vm` works with on this node;
	// the test holds its lock and wrote its runtime record, standing in
	// for `neutrino up`.
	vmDir string
	vms   []string
}

// proc is a neutrino process the test started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	logPath string
	exited  chan struct{}
	err     error
}

// clusterSpec says which roles each node's agent runs, and which nodes
// have the external network on br-ex.
type clusterSpec struct {
	roles    [3][]string
	external [3]bool
}

func defaultSpec() clusterSpec {
	return clusterSpec{roles: [3][]string{{"l2", "dhcp"}, {"l2"}, {"l2"}}}
}

// newCluster builds the bed, starts the server on node1 and the agents,
// and waits until every agent is alive. Everything is removed when the
// test ends.
func newCluster(t testing.TB, spec clusterSpec) *cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.LookPathOrSkip(t, "busybox", "apt-get install busybox (udhcpc in the VMs)")
	testenv.LookPathOrSkip(t, "nsenter", "apt-get install util-linux")
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Skip("skipping: TestMain did not build neutrino (needs root)")
	}
	bed := testbed.New(t, testbed.Spec{Nodes: 3})
	c := &cluster{t: t, bed: bed, bin: bin}
	node1 := bed.Nodes[0]
	c.apiURL = fmt.Sprintf("http://%s:%d", node1.TunnelIP, apiPort)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, tn := range bed.Nodes {
		nd := &node{c: c, tb: tn, dir: filepath.Join(bed.Dir, tn.Name, "neutrino"), roles: spec.roles[i], external: spec.external[i]}
		if err := os.MkdirAll(nd.dir, 0o750); err != nil {
			t.Fatal(err)
		}
		// The provider NIC on br-physnet1, as an operator sets it up.
		db := tn.OVSDB(t)
		must(t, db.EnsureBridge(ctx, ovs.Bridge{Name: "br-" + physnet, DatapathType: "netdev", FailMode: "secure"}))
		must(t, db.EnsurePort(ctx, "br-"+physnet, ovs.Port{Name: testbed.ProviderNIC}))
		if nd.external {
			must(t, db.EnsureBridge(ctx, ovs.Bridge{Name: extBridge, DatapathType: "netdev", FailMode: "secure"}))
			must(t, db.EnsurePort(ctx, extBridge, ovs.Port{Name: testbed.ExternalNIC}))
		}
		c.nodes = append(c.nodes, nd)
	}

	// Stop processes last (cleanups run in reverse): the resources go
	// first, while the agents still tear down what they made.
	t.Cleanup(c.removeLeftovers)
	t.Cleanup(c.stopAll)
	c.startServer()
	for _, nd := range c.nodes {
		nd.writeAgentConfig()
		nd.startAgent()
		nd.prepareVMDir()
	}
	t.Cleanup(c.deleteEverything)
	c.waitAgentsAlive(len(c.nodes))
	return c
}

// startServer runs `neutrino server` in node1, listening on its underlay
// address for the API and for agents' NATS connections.
func (c *cluster) startServer() {
	t := c.t
	t.Helper()
	n1 := c.bed.Nodes[0]
	c.serverD = filepath.Join(c.bed.Dir, "server")
	cfg := fmt.Sprintf(`state_dir = %q
listen = "%s:%d"
agent_down_time = %q
dhcp_agents_per_network = 1
[nats]
listen = "%s:%d"
[agent]
report_interval = %q
[quotas]
port = -1
[ml2]
network_vlan_ranges = ["%s:1000:2999"]
`, filepath.Join(c.serverD, "state"), n1.TunnelIP, apiPort, agentDownTime, n1.TunnelIP, natsPort, agentReport, physnet)
	path := writeFile(t, c.serverD, "server.toml", cfg)
	c.server = c.start("server", n1.Netns, filepath.Join(c.serverD, "server.log"), "server", "--config", path)

	// The test reaches the API through a proxy into node1's namespace.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	target := net.JoinHostPort(n1.TunnelIP.String(), strconv.Itoa(apiPort))
	go proxy(ln, n1.Netns, target)
	c.api = apitest.NewClient(t, "http://"+ln.Addr().String(), "admin")
	testenv.Eventually(t, 30*time.Second, "the server to answer", func() bool {
		if c.server.done() {
			t.Fatalf("neutrino server exited: %v\n%s", c.server.err, c.server.tail())
		}
		var d net.Dialer
		var conn net.Conn
		err := netns.Do(n1.Netns, func() (err error) { conn, err = d.Dial("tcp", target); return err })
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// proxy forwards every connection on ln to target, dialled inside ns.
func proxy(ln net.Listener, ns, target string) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			var out net.Conn
			err := netns.Do(ns, func() (err error) { out, err = net.DialTimeout("tcp", target, 5*time.Second); return err })
			if err != nil {
				return
			}
			defer out.Close()
			go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
			io.Copy(in, out)
		}()
	}
}

func (nd *node) writeAgentConfig() {
	c, tn := nd.c, nd.tb
	roles := make([]string, len(nd.roles))
	for i, r := range nd.roles {
		roles[i] = fmt.Sprintf("%q", r)
	}
	mappings := fmt.Sprintf("%q", physnet+":br-"+physnet)
	if nd.external {
		mappings += fmt.Sprintf(", %q", extPhysnet+":"+extBridge)
	}
	cfg := fmt.Sprintf(`[nats]
url = "nats://%s:%d"
[agent]
host = %q
roles = [%s]
report_interval = %q
[agent.l2]
ovs_run_dir = %q
datapath_type = "netdev"
local_ip = %q
bridge_mappings = [%s]
`, c.bed.Nodes[0].TunnelIP, natsPort, tn.Name, strings.Join(roles, ", "), agentReport, tn.OVS.RunDir, tn.TunnelIP, mappings)
	if slices.Contains(nd.roles, "metadata") {
		// Networks without a router get metadata from their DHCP namespace.
		cfg += "[agent.dhcp]\nenable_isolated_metadata = true\n"
	}
	writeFile(c.t, nd.dir, "agent.toml", cfg)
}

// startAgent runs `neutrino agent` in the node's namespace.
func (nd *node) startAgent() {
	nd.agent = nd.c.start("agent "+nd.tb.Name, nd.tb.Netns, filepath.Join(nd.dir, "agent.log"),
		"agent", "--config", filepath.Join(nd.dir, "agent.toml"))
}

// stopAgent stops the node's agent by its pid and waits for it.
func (nd *node) stopAgent() { nd.agent.stop(nd.c.t) }

// prepareVMDir makes the state directory `neutrino vm` uses on this node:
// its runtime record names the node's host, Open vSwitch and the server,
// and the test holds its lock as a running `up` would.
func (nd *node) prepareVMDir() {
	t := nd.c.t
	dir, err := statedir.New(filepath.Join(nd.dir, "vmstate"))
	must(t, err)
	lock, err := dir.Acquire()
	must(t, err)
	t.Cleanup(lock.Release)
	inst := nd.tb.OVS.Instance
	must(t, dir.WriteRuntime(statedir.Runtime{
		PID: os.Getpid(), Started: time.Now().UTC(), APIURL: nd.c.apiURL, Host: nd.tb.Name,
		OVS: statedir.OVS{DB: inst.DB, RunDir: inst.RunDir, VSwitchdCtl: inst.VSwitchdCtl, IntegrationBridge: "br-int"},
	}))
	nd.vmDir = dir.Path
}

// start runs the binary with args inside ns (through nsenter, so that the
// namespaces it makes are visible to everyone, as they would be on a real
// host), logging to logPath. The process is stopped by its pid when the
// test ends.
func (c *cluster) start(name, ns, logPath string, args ...string) *proc {
	t := c.t
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	must(t, err)
	defer logFile.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + netns.Path(ns), c.bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process (nsenter execs the binary, so its pid
// is neutrino's) and waits; SIGKILL after 15 s.
func (p *proc) stop(t testing.TB) {
	if p == nil || p.done() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15 s of SIGTERM; killing it", p.name)
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail is the end of the process's log.
func (p *proc) tail() string {
	data, _ := os.ReadFile(p.logPath)
	if len(data) > 6000 {
		data = data[len(data)-6000:]
	}
	return string(data)
}

func (c *cluster) stopAll() {
	for _, nd := range c.nodes {
		nd.agent.stop(c.t)
	}
	c.server.stop(c.t)
	if c.t.Failed() {
		for _, nd := range c.nodes {
			c.t.Logf("--- agent log of %s:\n%s", nd.tb.Name, nd.agent.tail())
		}
		c.t.Logf("--- server log:\n%s", c.server.tail())
	}
}

// deleteEverything deletes the VMs and then every network, while the
// server and agents still run, so the agents remove what they made.
func (c *cluster) deleteEverything() {
	for _, nd := range c.nodes {
		for _, name := range nd.vms {
			if netns.Exists(vm.Namespace(name)) {
				nd.deleteVM(name)
			}
		}
	}
	c.deleteRouters()
	for _, p := range c.api.Do("GET", "/v2.0/ports", nil).Items("ports") {
		if !strings.HasPrefix(apitest.S(p["device_owner"]), "network:") {
			c.api.Do("DELETE", "/v2.0/ports/"+apitest.S(p["id"]), nil)
		}
	}
	for _, n := range c.api.Do("GET", "/v2.0/networks", nil).Items("networks") {
		c.api.Do("DELETE", "/v2.0/networks/"+apitest.S(n["id"]), nil)
	}
	// Give the dhcp agents a moment to remove their namespaces.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(c.leftNamespaces()) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
}

// leftNamespaces are the namespaces of this test's VMs and networks that
// still exist.
func (c *cluster) leftNamespaces() []string {
	var left []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.networks {
		if netns.Exists("qdhcp-" + id) {
			left = append(left, "qdhcp-"+id)
		}
	}
	for _, id := range c.routers {
		if netns.Exists("qrouter-" + id) {
			left = append(left, "qrouter-"+id)
		}
	}
	for _, nd := range c.nodes {
		for _, name := range nd.vms {
			if netns.Exists(vm.Namespace(name)) {
				left = append(left, vm.Namespace(name))
			}
		}
	}
	return left
}

// removeLeftovers deletes namespaces a failed test or agent left behind
// (after the processes stopped) so the machine stays clean.
func (c *cluster) removeLeftovers() {
	for _, ns := range c.leftNamespaces() {
		c.t.Logf("removing left-over namespace %s", ns)
		netns.Delete(ns)
	}
}

// waitAgentsAlive waits until n agents show alive.
func (c *cluster) waitAgentsAlive(n int) {
	c.t.Helper()
	testenv.Eventually(c.t, 30*time.Second, fmt.Sprintf("%d agents alive", n), func() bool {
		alive := 0
		for _, a := range c.api.Do("GET", "/v2.0/agents", nil).Items("agents") {
			if a["alive"] == true {
				alive++
			}
		}
		return alive >= n
	})
}

// network creates a network (admin attributes allowed) with one
// DHCP-enabled IPv4 subnet and returns the network.
func (c *cluster) network(name, cidr string, attrs map[string]any) map[string]any {
	c.t.Helper()
	body := map[string]any{"name": name}
	for k, v := range attrs {
		body[k] = v
	}
	n := c.api.Create("networks", "network", body)
	id := apitest.S(n["id"])
	c.mu.Lock()
	c.networks = append(c.networks, id)
	c.mu.Unlock()
	c.api.Create("subnets", "subnet", map[string]any{"network_id": id, "cidr": cidr, "ip_version": 4, "name": name})
	return n
}

// vmRun runs `neutrino vm ARGS…` on the node and returns its output; it
// fails the test if the command fails.
func (nd *node) vmRun(sub string, args ...string) string {
	t := nd.c.t
	t.Helper()
	out, err := nd.vmCommand(sub, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: neutrino vm %s %s: %v\n%s", nd.tb.Name, sub, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vmCommand is `neutrino vm SUBCOMMAND --state-dir DIR ARGS…` in the
// node's namespace.
func (nd *node) vmCommand(sub string, args ...string) *exec.Cmd {
	full := append([]string{"--net=" + netns.Path(nd.tb.Netns), nd.c.bin, "vm", sub, "--state-dir", nd.vmDir}, args...)
	return exec.Command("nsenter", full...)
}

// deleteVM runs `neutrino vm delete NAME` on the node. A delete that
// fails only because the VM's veth vanished with its namespace between
// being looked up and being deleted (a race in vm delete, reported) is run
// again, as a user would: delete is idempotent.
func (nd *node) deleteVM(name string) {
	t := nd.c.t
	t.Helper()
	out, err := nd.vmCommand("delete", name).CombinedOutput()
	if err != nil && strings.Contains(string(out), "no such device") {
		t.Logf("%s: neutrino vm delete %s raced with the kernel removing its veth; running it again:\n%s", nd.tb.Name, name, out)
		out, err = nd.vmCommand("delete", name).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("%s: neutrino vm delete %s: %v\n%s", nd.tb.Name, name, err, out)
	}
}

// createVM runs `neutrino vm create --network NET NAME` on the node (name
// gets the bed's prefix) and returns the VM's record.
func (nd *node) createVM(network, name string) vm.VM {
	nd.c.t.Helper()
	name = nd.c.bed.Prefix + "-" + name
	nd.vms = append(nd.vms, name)
	out, err := nd.vmCommand("create", "--network", network, name).CombinedOutput()
	if err != nil && strings.Contains(string(out), "the DHCP client exited without a lease") {
		// Reported: vm create sometimes takes its udhcpc for dead right
		// after starting it (an empty udhcpc log: the client never
		// failed). create removed what it made, so a user runs it again.
		nd.c.t.Logf("%s: neutrino vm create %s lost track of its DHCP client; running it again:\n%s", nd.tb.Name, name, out)
		out, err = nd.vmCommand("create", "--network", network, name).CombinedOutput()
	}
	if err != nil {
		nd.c.t.Fatalf("%s: neutrino vm create --network %s %s: %v\n%s", nd.tb.Name, network, name, err, out)
	}
	return nd.vm(name)
}

// vm reads the VM's record from `neutrino vm list -f json`.
func (nd *node) vm(name string) vm.VM {
	t := nd.c.t
	t.Helper()
	var vms []vm.VM
	out, err := nd.vmCommand("list", "-f", "json").Output()
	if err != nil {
		t.Fatalf("%s: neutrino vm list: %v", nd.tb.Name, err)
	}
	must(t, json.Unmarshal(out, &vms))
	for _, v := range vms {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("%s: VM %s not in neutrino vm list", nd.tb.Name, name)
	return vm.VM{}
}

// flows dumps the flows of every neutrino bridge on the node.
func (nd *node) flows(ctx context.Context) []string {
	var out []string
	for _, br := range []string{"br-int", "br-tun", "br-" + physnet} {
		fl, err := nd.tb.OVS.OpenFlow(br).DumpFlows(ctx, "")
		if err != nil {
			nd.c.t.Fatalf("%s: %v", nd.tb.Name, err)
		}
		for _, f := range fl {
			out = append(out, br+" "+f.String())
		}
	}
	return out
}

// flowsWith are the flows on any node whose text contains one of substrs.
func (c *cluster) flowsWith(substrs ...string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	for _, nd := range c.nodes {
		for _, f := range nd.flows(ctx) {
			for _, s := range substrs {
				if strings.Contains(f, s) {
					out = append(out, nd.tb.Name+" "+f)
					break
				}
			}
		}
	}
	return out
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o750))
	path := filepath.Join(dir, name)
	must(t, os.WriteFile(path, []byte(content), 0o640))
	return path
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
