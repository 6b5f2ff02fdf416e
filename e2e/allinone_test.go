package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// allInOne is a `neutrino up` with every role, run by the test in a
// network namespace of its own (its Open vSwitch bridges, VMs' veths and
// API port never meet the host's or another test's) and a mount namespace
// of its own whose /run/netns is a private tmpfs: the namespaces it makes
// (VMs, qdhcp-) are seen by it alone, and it sees no other. A dhcp agent
// removes every qdhcp- namespace it does not serve, so two on one machine
// (this test and the multi-node tests, say) must not see each other's.
// Every neutrino command of the test runs in both namespaces through
// nsenter, as a user's would on a host of its own.
type allInOne struct {
	t     *testing.T
	bin   string
	netns string
	// holder keeps the private mount namespace alive.
	holder   *exec.Cmd
	stateDir string
	logPath  string
	api      *http.Client
	url      string
	proc     *exec.Cmd
	exited   chan error
}

// requireAllInOne skips t unless root, Open vSwitch, busybox and nsenter
// are there.
func requireAllInOne(t *testing.T) {
	t.Helper()
	testenv.RequireOVS(t)
	testenv.LookPathOrSkip(t, "busybox", "apt-get install busybox (the VMs' DHCP client); scripts/install-deps.sh installs it")
	testenv.LookPathOrSkip(t, "nsenter", "apt-get install util-linux")
}

func randomSuffix(t *testing.T) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newAllInOne makes the namespace and state directory; start runs up.
func newAllInOne(t *testing.T) *allInOne {
	t.Helper()
	a := &allInOne{t: t, bin: os.Getenv(BinEnv), netns: "e2e-aio-" + randomSuffix(t)}
	if a.bin == "" {
		t.Fatalf("e2e: %s is not set; TestMain builds the binary", BinEnv)
	}
	// Unix socket paths under the state directory must stay short.
	dir, err := os.MkdirTemp("", "aio")
	if err != nil {
		t.Fatal(err)
	}
	a.stateDir = filepath.Join(dir, "state")
	a.logPath = filepath.Join(dir, "up.log")
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := netns.Create(a.netns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(a.netns) })
	h, err := link.Open(a.netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.SetUp("lo"); err != nil {
		t.Fatal(err)
	}
	a.api = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netns.Do(a.netns, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	a.startHolder()
	// However the test ends: stop up, then take everything down.
	t.Cleanup(func() {
		a.stop()
		if _, err := os.Stat(a.stateDir); err == nil {
			if out, err := a.command("down", "--state-dir", a.stateDir).CombinedOutput(); err != nil {
				t.Errorf("cleanup: neutrino down: %v\n%s", err, out)
			}
		}
	})
	return a
}

// startHolder starts the process that holds the all-in-one's mount
// namespace, with a private tmpfs on /run/netns, and stops it when the
// test ends.
func (a *allInOne) startHolder() {
	t := a.t
	t.Helper()
	a.holder = exec.Command("nsenter", "--net="+netns.Path(a.netns), "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", "mount -t tmpfs -o mode=0755 e2e-netns "+netns.RunDir+" && echo ready && exec sleep 3600")
	stdout, err := a.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	a.holder.Stderr = &stderr
	a.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.holder.Start(); err != nil {
		t.Fatalf("start the mount namespace holder: %v", err)
	}
	t.Cleanup(func() {
		a.holder.Process.Kill()
		a.holder.Wait()
	})
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		a.holder.Process.Kill()
		a.holder.Wait()
		t.Fatalf("mount namespace holder: %q %v: %s", line, err, stderr.String())
	}
}

// enter is the nsenter prefix into the all-in-one's namespaces.
func (a *allInOne) enter() []string {
	pid := fmt.Sprint(a.holder.Process.Pid)
	return []string{"--net=/proc/" + pid + "/ns/net", "--mount=/proc/" + pid + "/ns/mnt", "--"}
}

// command returns `neutrino args…` run inside the all-in-one's namespaces.
func (a *allInOne) command(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append(append(a.enter(), a.bin), args...)...)
}

// namespaces lists the named network namespaces the all-in-one sees.
func (a *allInOne) namespaces() []string {
	a.t.Helper()
	out, err := exec.Command("nsenter", append(a.enter(), "ls", netns.RunDir)...).CombinedOutput()
	if err != nil {
		a.t.Fatalf("list %s in the all-in-one's mount namespace: %v: %s", netns.RunDir, err, out)
	}
	return strings.Fields(string(out))
}

func (a *allInOne) hasNamespace(name string) bool {
	return slices.Contains(a.namespaces(), name)
}

// start runs `neutrino up` with flags and waits until its API answers.
func (a *allInOne) start(flags ...string) {
	t := a.t
	t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	a.proc = a.command(append([]string{"up", "--state-dir", a.stateDir, "--listen", "127.0.0.1:9696"}, flags...)...)
	a.proc.Stdout, a.proc.Stderr = logf, logf
	if err := a.proc.Start(); err != nil {
		t.Fatalf("start neutrino up: %v", err)
	}
	a.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(a.proc, a.exited)
	a.url = "http://127.0.0.1:9696"
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-a.exited:
			a.exited <- err
			t.Fatalf("neutrino up exited while starting: %v\n%s", err, a.logTail())
		default:
		}
		if resp, err := a.api.Get(a.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("neutrino up did not answer /healthz within 60s\n%s", a.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM to up and waits for it to exit.
func (a *allInOne) stop() {
	if a.proc == nil {
		return
	}
	defer func() { a.proc = nil }()
	a.proc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		if err != nil {
			a.t.Errorf("neutrino up exited with %v\n%s", err, a.logTail())
		}
	case <-time.After(45 * time.Second):
		a.t.Errorf("neutrino up (pid %d) did not stop within 45s of SIGTERM; killing it\n%s", a.proc.Process.Pid, a.logTail())
		a.proc.Process.Kill()
		<-a.exited
	}
}

func (a *allInOne) logTail() string {
	data, _ := os.ReadFile(a.logPath)
	if len(data) > 6000 {
		data = data[len(data)-6000:]
	}
	return "--- neutrino up log ---\n" + string(data)
}

// neutrino runs a neutrino command in the namespace; it returns the exit
// code and the combined output.
func (a *allInOne) neutrino(args ...string) (int, string) {
	a.t.Helper()
	out, err := a.command(args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		a.t.Fatalf("neutrino %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// must runs a neutrino command that must succeed and returns its output.
func (a *allInOne) must(args ...string) string {
	a.t.Helper()
	code, out := a.neutrino(args...)
	if code != 0 {
		a.t.Fatalf("neutrino %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, a.logTail())
	}
	return out
}

// call sends a request to the API and decodes the answer into out.
func (a *allInOne) call(method, path string, in, out any) int {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, a.url+path, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.api.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (a *allInOne) mustCall(method, path string, in, out any) {
	a.t.Helper()
	if code := a.call(method, path, in, out); code >= 300 {
		a.t.Fatalf("%s %s: status %d", method, path, code)
	}
}

// vmRecord is what `neutrino vm list -f json` tells of a VM.
type vmRecord struct {
	Name          string `json:"name"`
	Namespace     string `json:"namespace"`
	PortID        string `json:"port_id"`
	Tap           string `json:"tap"`
	DHCPClientPID int    `json:"dhcp_client_pid"`
	Lease         *struct {
		Address string `json:"address"`
		MTU     int    `json:"mtu"`
	} `json:"lease"`
}

func (v vmRecord) ip() string {
	if v.Lease == nil {
		return ""
	}
	ip, _, _ := strings.Cut(v.Lease.Address, "/")
	return ip
}

func (a *allInOne) vms() map[string]vmRecord {
	a.t.Helper()
	var list []vmRecord
	if err := json.Unmarshal([]byte(a.must("vm", "list", "--state-dir", a.stateDir, "-f", "json")), &list); err != nil {
		a.t.Fatalf("vm list -f json: %v", err)
	}
	out := map[string]vmRecord{}
	for _, v := range list {
		out[v.Name] = v
	}
	return out
}

type apiPort struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	VIFType  string `json:"binding:vif_type"`
	HostID   string `json:"binding:host_id"`
	Owner    string `json:"device_owner"`
	FixedIPs []struct {
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

func (a *allInOne) port(id string) (apiPort, int) {
	var out struct{ Port apiPort }
	code := a.call(http.MethodGet, "/v2.0/ports/"+id, nil, &out)
	return out.Port, code
}

// waitActive waits until the port is ACTIVE.
func (a *allInOne) waitActive(id string) apiPort {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, code := a.port(id)
		if code == http.StatusOK && p.Status == "ACTIVE" {
			return p
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("port %s is not ACTIVE after 30s (status %q, code %d)\n%s", id, p.Status, code, a.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAgentsAlive waits until the host's Open vSwitch, DHCP and L3 agents
// show alive.
func (a *allInOne) waitAgentsAlive() {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out struct {
			Agents []struct {
				AgentType string `json:"agent_type"`
				Alive     bool   `json:"alive"`
			}
		}
		a.mustCall(http.MethodGet, "/v2.0/agents", nil, &out)
		alive := map[string]bool{}
		for _, ag := range out.Agents {
			alive[ag.AgentType] = alive[ag.AgentType] || ag.Alive
		}
		if alive["Open vSwitch agent"] && alive["DHCP agent"] && alive["L3 agent"] {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("agents not alive after 30s: %+v", out.Agents)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// linksIn lists the links of a namespace.
func linksIn(t *testing.T, ns string) []string {
	t.Helper()
	out, err := netns.Command(ns, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v: %s", ns, err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	return names
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) }

func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return strings.HasPrefix(rest, "Z")
}

// TestAllInOneVMs is the user story on the real binary: up, a
// network and subnet through the API, two VMs that get their ports'
// addresses by DHCP and ping each other, agents alive, vm delete, a
// second up on the same directory resuming networks and VMs, and down
// leaving no namespace, link, process or file behind.
func TestAllInOneVMs(t *testing.T) {
	requireAllInOne(t)
	t.Parallel()
	a := newAllInOne(t)
	a.start()
	a.waitAgentsAlive()
	// One up per state directory.
	if code, out := a.neutrino("up", "--state-dir", a.stateDir, "--listen", "127.0.0.1:9697", "--nats-listen", "127.0.0.1:4223"); code == 0 || !strings.Contains(out, "another neutrino up is running") {
		t.Errorf("a second up on the same directory: exit %d, %s", code, out)
	}

	var net struct{ Network struct{ ID string } }
	a.mustCall(http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{"name": "e2e-net"}}, &net)
	// The pool leaves out 10.10.0.50, which vm2 asks for: the DHCP port
	// and vm1 take random pool addresses first.
	var subnet struct{ Subnet struct{ ID string } }
	a.mustCall(http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": net.Network.ID, "cidr": "10.10.0.0/24", "ip_version": 4, "name": "e2e-subnet",
		"allocation_pools": []any{map[string]any{"start": "10.10.0.100", "end": "10.10.0.254"}}}}, &subnet)

	suffix := randomSuffix(t)
	vm1, vm2, vm3 := "e2e"+suffix+"a", "e2e"+suffix+"b", "e2e"+suffix+"c"
	a.must("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-net", vm1)
	a.must("vm", "create", "--state-dir", a.stateDir, "--network", net.Network.ID, "--fixed-ip", "10.10.0.50", vm2)

	// A second VM of the same name is refused, and leaves the first alone.
	if code, out := a.neutrino("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-net", vm1); code == 0 || !strings.Contains(out, "exists already") {
		t.Errorf("vm create of an existing name: exit %d, %s", code, out)
	}
	// A network that does not exist is a clear error.
	if code, out := a.neutrino("vm", "create", "--state-dir", a.stateDir, "--network", "no-such-net", "e2e"+suffix+"x"); code == 0 || !strings.Contains(out, "no network") {
		t.Errorf("vm create on a missing network: exit %d, %s", code, out)
	}

	// No DHCP on the network: create fails, and leaves nothing behind.
	var quiet struct{ Network struct{ ID string } }
	a.mustCall(http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{"name": "e2e-nodhcp"}}, &quiet)
	a.mustCall(http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": quiet.Network.ID, "cidr": "10.20.0.0/24", "ip_version": 4, "enable_dhcp": false}}, nil)
	failed := "e2e" + suffix + "f"
	if code, out := a.neutrino("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-nodhcp", "--timeout", "3s", failed); code == 0 || !strings.Contains(out, "no address on an IPv4 subnet with DHCP enabled") {
		t.Errorf("vm create without a DHCP server: exit %d, %s", code, out)
	}
	var left struct{ Ports []apiPort }
	a.mustCall(http.MethodGet, "/v2.0/ports?network_id="+quiet.Network.ID, nil, &left)
	if len(left.Ports) != 0 || a.hasNamespace("vm-"+failed) {
		t.Errorf("a failed vm create left ports %+v or namespace vm-%s (exists: %v)", left.Ports, failed, a.hasNamespace("vm-"+failed))
	}
	if _, ok := a.vms()[failed]; ok {
		t.Errorf("vm list shows the VM whose create failed")
	}

	vms := a.vms()
	for _, name := range []string{vm1, vm2} {
		v, ok := vms[name]
		if !ok {
			t.Fatalf("vm list has no %s: %v", name, vms)
		}
		p := a.waitActive(v.PortID)
		if p.VIFType != "ovs" || p.Owner != "compute:nova" || p.HostID == "" {
			t.Errorf("%s: port binding %q owner %q host %q; want ovs, compute:nova, the all-in-one's host", name, p.VIFType, p.Owner, p.HostID)
		}
		if len(p.FixedIPs) != 1 || p.FixedIPs[0].IPAddress != v.ip() {
			t.Errorf("%s: DHCP gave %q; the API shows the port's addresses %+v", name, v.ip(), p.FixedIPs)
		}
		if v.Lease.MTU != 1450 {
			t.Errorf("%s: DHCP gave MTU %d; want the VXLAN network's 1450", name, v.Lease.MTU)
		}
		// The address is really on the VM's eth0.
		if out := a.must("vm", "exec", "--state-dir", a.stateDir, name, "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, v.Lease.Address) {
			t.Errorf("%s: eth0 lacks %s:\n%s", name, v.Lease.Address, out)
		}
	}
	if ip := vms[vm2].ip(); ip != "10.10.0.50" {
		t.Errorf("%s asked for 10.10.0.50 and got %q", vm2, ip)
	}
	a.must("vm", "exec", "--state-dir", a.stateDir, vm1, "--", "ping", "-c1", "-W2", vms[vm2].ip())
	a.must("vm", "exec", "--state-dir", a.stateDir, vm2, "--", "ping", "-c1", "-W2", vms[vm1].ip())
	// The command's exit status comes through.
	if code, _ := a.neutrino("vm", "exec", "--state-dir", a.stateDir, vm1, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("vm exec of `exit 7` exited %d", code)
	}

	// The l3 role is in the all-in-one: a router with its gateway on a flat
	// external network on physical network public (up's br-ex) and an
	// interface on the VMs' subnet gets its namespace, and a VM reaches
	// both of its addresses.
	var ext struct{ Network struct{ ID string } }
	a.mustCall(http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{
		"name": "e2e-public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"}}, &ext)
	a.mustCall(http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": ext.Network.ID, "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": false}}, nil)
	var router struct {
		Router struct {
			ID      string
			Gateway struct {
				IPs []struct {
					IPAddress string `json:"ip_address"`
				} `json:"external_fixed_ips"`
			} `json:"external_gateway_info"`
		}
	}
	a.mustCall(http.MethodPost, "/v2.0/routers", map[string]any{"router": map[string]any{
		"name": "e2e-router", "external_gateway_info": map[string]any{"network_id": ext.Network.ID}}}, &router)
	a.mustCall(http.MethodPut, "/v2.0/routers/"+router.Router.ID+"/add_router_interface", map[string]any{"subnet_id": subnet.Subnet.ID}, nil)
	if len(router.Router.Gateway.IPs) != 1 {
		t.Fatalf("router gateway addresses %+v; want one", router.Router.Gateway.IPs)
	}
	qrouter := "qrouter-" + router.Router.ID
	deadline := time.Now().Add(30 * time.Second)
	for !a.hasNamespace(qrouter) {
		if time.Now().After(deadline) {
			t.Fatalf("no namespace %s 30s after the router was made\n%s", qrouter, a.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, addr := range []string{"10.10.0.1", router.Router.Gateway.IPs[0].IPAddress} {
		// The router's ports are wired moments after its namespace appears.
		for attempt := 0; ; attempt++ {
			code, out := a.neutrino("vm", "exec", "--state-dir", a.stateDir, vm1, "--", "ping", "-c1", "-W1", addr)
			if code == 0 {
				break
			}
			if attempt == 20 {
				t.Fatalf("%s cannot ping the router's %s:\n%s\n%s", vm1, addr, out, a.logTail())
			}
		}
	}
	if !slices.Contains(linksIn(t, a.netns), "br-ex") {
		t.Errorf("up made no br-ex (the external network's bridge): links %v", linksIn(t, a.netns))
	}

	// On a node with no up (an agent only), vm works from --url, --host
	// and --ovs-run-dir; here they name the all-in-one's.
	var rec struct{ Host string }
	data, err := os.ReadFile(filepath.Join(a.stateDir, "up.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil {
		t.Fatalf("up.json: %v %s", err, data)
	}
	nodeDir := filepath.Join(filepath.Dir(a.stateDir), "node")
	nodeFlags := []string{"--state-dir", nodeDir, "--url", a.url, "--host", rec.Host, "--ovs-run-dir", filepath.Join(a.stateDir, "ovs")}
	vm4 := "e2e" + suffix + "d"
	a.must(append(append([]string{"vm", "create"}, nodeFlags...), "--network", "e2e-net", vm4)...)
	a.must(append(append([]string{"vm", "exec"}, nodeFlags...), vm4, "--", "ping", "-c1", "-W2", vms[vm1].ip())...)
	a.must(append(append([]string{"vm", "delete"}, nodeFlags...), vm4)...)
	if a.hasNamespace(vm.Namespace(vm4)) {
		t.Errorf("vm delete --url left namespace %s", vm.Namespace(vm4))
	}

	// vm delete removes the port, the namespace and the OVS port.
	gone := vms[vm2]
	a.must("vm", "delete", "--state-dir", a.stateDir, vm2)
	if _, code := a.port(gone.PortID); code != http.StatusNotFound {
		t.Errorf("after vm delete, GET its port: %d; want 404", code)
	}
	if a.hasNamespace(gone.Namespace) {
		t.Errorf("after vm delete, namespace %s exists", gone.Namespace)
	}
	if alive(gone.DHCPClientPID) {
		t.Errorf("after vm delete, its DHCP client (pid %d) runs", gone.DHCPClientPID)
	}
	if slices.Contains(linksIn(t, a.netns), gone.Tap) {
		t.Errorf("after vm delete, its veth %s exists", gone.Tap)
	}
	ovsdb, err := ovs.Connect(context.Background(), "unix:"+filepath.Join(a.stateDir, "ovs", "db.sock"), nil)
	if err != nil {
		t.Fatalf("connect to the all-in-one's OVSDB: %v", err)
	}
	if _, err := ovsdb.Interface(gone.Tap); !errors.Is(err, ovs.ErrNotFound) {
		t.Errorf("after vm delete, OVS still has interface %s (%v)", gone.Tap, err)
	}
	ovsdb.Close()
	if _, ok := a.vms()[vm2]; ok {
		t.Errorf("vm list still shows %s", vm2)
	}

	// A second up on the same directory resumes the network and the VM.
	var rt struct {
		OVS struct {
			OVSDBServerPID int `json:"ovsdb_server_pid"`
			VSwitchdPID    int `json:"vswitchd_pid"`
		} `json:"ovs"`
	}
	data, err = os.ReadFile(filepath.Join(a.stateDir, "up.json"))
	if err != nil || json.Unmarshal(data, &rt) != nil || rt.OVS.VSwitchdPID == 0 {
		t.Fatalf("up.json: %v %s", err, data)
	}
	upPID := a.proc.Process.Pid
	a.stop()
	for _, pid := range []int{upPID, rt.OVS.OVSDBServerPID, rt.OVS.VSwitchdPID} {
		if alive(pid) {
			t.Errorf("after SIGTERM to up, process %d it started runs", pid)
		}
	}
	if !a.hasNamespace(vms[vm1].Namespace) {
		t.Fatalf("VM namespace %s did not survive up's stop", vms[vm1].Namespace)
	}
	if code, out := a.neutrino("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-net", vm3); code == 0 || !strings.Contains(out, "neutrino up is not running") {
		t.Errorf("vm create while up is stopped: exit %d, %s", code, out)
	}
	a.start()
	a.waitAgentsAlive()
	var nets struct{ Networks []struct{ ID string } }
	a.mustCall(http.MethodGet, "/v2.0/networks?name=e2e-net", nil, &nets)
	if len(nets.Networks) != 1 || nets.Networks[0].ID != net.Network.ID {
		t.Fatalf("after a second up, networks named e2e-net: %+v", nets.Networks)
	}
	a.waitActive(vms[vm1].PortID)
	a.must("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-net", vm3)
	vms3 := a.vms()
	a.must("vm", "exec", "--state-dir", a.stateDir, vm3, "--", "ping", "-c1", "-W2", vms3[vm1].ip())
	a.must("vm", "exec", "--state-dir", a.stateDir, vm1, "--", "ping", "-c1", "-W2", vms3[vm3].ip())

	// down leaves no namespace, link, process or file behind.
	data, _ = os.ReadFile(filepath.Join(a.stateDir, "up.json"))
	json.Unmarshal(data, &rt)
	pids := []int{a.proc.Process.Pid, rt.OVS.OVSDBServerPID, rt.OVS.VSwitchdPID}
	var namespaces []string
	for _, v := range vms3 {
		pids = append(pids, v.DHCPClientPID)
		namespaces = append(namespaces, v.Namespace)
	}
	namespaces = append(namespaces, "qdhcp-"+net.Network.ID, qrouter)
	if !a.hasNamespace(qrouter) {
		t.Errorf("the router's namespace %s is gone after the second up", qrouter)
	}
	if !a.hasNamespace("qdhcp-" + net.Network.ID) {
		t.Errorf("the DHCP agent has no namespace qdhcp-%s", net.Network.ID)
	}
	a.must("down", "--state-dir", a.stateDir)
	// down stopped up; reap the child so its pid is free.
	select {
	case <-a.exited:
		a.proc = nil
	case <-time.After(10 * time.Second):
		t.Fatalf("neutrino up still runs after down")
	}
	if left := a.namespaces(); len(left) != 0 {
		t.Errorf("after down, namespaces %v exist (the VMs' and the DHCP agent's were %v)", left, namespaces)
	}
	if links := linksIn(t, a.netns); !slices.Equal(links, []string{"lo"}) {
		t.Errorf("after down, links in up's namespace: %v; want only lo", links)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("after down, process %d runs", pid)
		}
	}
	if _, err := os.Stat(a.stateDir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(a.stateDir)
		t.Errorf("after down, the state directory exists (%v): %v", err, entries)
	}
}

// TestAllInOneVMCreateTimesOut: with no DHCP agent to answer, vm create
// fails after its --timeout with the DHCP client's log, and removes the
// port, the namespace, the veth, the OVS port and the record it made.
func TestAllInOneVMCreateTimesOut(t *testing.T) {
	requireAllInOne(t)
	t.Parallel()
	a := newAllInOne(t)
	a.start("--roles", "l2")
	var net struct{ Network struct{ ID string } }
	a.mustCall(http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{"name": "e2e-net"}}, &net)
	a.mustCall(http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": net.Network.ID, "cidr": "10.30.0.0/24", "ip_version": 4}}, nil)
	name := "e2e" + randomSuffix(t) + "t"
	start := time.Now()
	code, out := a.neutrino("vm", "create", "--state-dir", a.stateDir, "--network", "e2e-net", "--timeout", "3s", name)
	if code == 0 || !strings.Contains(out, "no DHCP lease") || !strings.Contains(out, "udhcpc") {
		t.Fatalf("vm create with nobody serving DHCP: exit %d, %s", code, out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("vm create --timeout 3s took %s", took)
	}
	var ports struct{ Ports []apiPort }
	a.mustCall(http.MethodGet, "/v2.0/ports?network_id="+net.Network.ID+"&device_owner=compute:nova", nil, &ports)
	if len(ports.Ports) != 0 {
		t.Errorf("the failed create left ports %+v", ports.Ports)
	}
	if a.hasNamespace(vm.Namespace(name)) {
		t.Errorf("the failed create left namespace %s", vm.Namespace(name))
	}
	if links := linksIn(t, a.netns); slices.ContainsFunc(links, func(l string) bool { return strings.HasPrefix(l, "tap") }) {
		t.Errorf("the failed create left a veth: %v", links)
	}
	ovsdb, err := ovs.Connect(context.Background(), "unix:"+filepath.Join(a.stateDir, "ovs", "db.sock"), nil)
	if err != nil {
		t.Fatalf("connect to the all-in-one's OVSDB: %v", err)
	}
	defer ovsdb.Close()
	for _, iface := range ovsdb.Interfaces() {
		if iface.ExternalIDs["iface-id"] != "" {
			t.Errorf("the failed create left OVS interface %s (iface-id %s)", iface.Name, iface.ExternalIDs["iface-id"])
		}
	}
	if len(a.vms()) != 0 {
		t.Errorf("vm list shows VMs after a failed create: %v", a.vms())
	}
}
