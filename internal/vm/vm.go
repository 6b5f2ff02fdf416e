// Package vm owns `neutrino vm`: stand-in virtual machines for tests, demos
// and debugging on an all-in-one. A VM is a network namespace (vm-<name>)
// whose eth0 is one end of a veth pair; the other end is plugged into
// br-int the way Nova's VIF driver plugs a tap (Interface external_ids
// iface-id, attached-mac, iface-status, vm-uuid), for a port the VM's
// create makes through the Networking API and binds to the all-in-one's
// host. A busybox udhcpc in the namespace gets the port's address by DHCP
// and keeps renewing it. Each VM's record and files live under the state
// directory's vms/<name>/.
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/statedir"
)

// VM is the record of one VM.
type VM struct {
	Name string `json:"name"`
	// Namespace is the VM's network namespace, vm-<name>.
	Namespace string `json:"namespace"`
	// InstanceID is the VM's uuid: its port's device_id and the OVS
	// interface's vm-uuid.
	InstanceID  string    `json:"instance_id"`
	ProjectID   string    `json:"project_id,omitempty"`
	NetworkID   string    `json:"network_id"`
	NetworkName string    `json:"network_name"`
	PortID      string    `json:"port_id,omitempty"`
	MAC         string    `json:"mac_address,omitempty"`
	FixedIPs    []FixedIP `json:"fixed_ips,omitempty"`
	// Tap is the host end of the VM's veth, the port on br-int.
	Tap string `json:"tap,omitempty"`
	// DHCPClientPID is the VM's udhcpc.
	DHCPClientPID int    `json:"dhcp_client_pid,omitempty"`
	Lease         *Lease `json:"lease,omitempty"`
	// KeyFile and UserDataFile are the stored copies of --key and
	// --user-data, for the instance metadata service.
	KeyFile      string    `json:"key_file,omitempty"`
	UserDataFile string    `json:"user_data_file,omitempty"`
	Created      time.Time `json:"created"`
}

// IP is the VM's address: its lease's, else its port's first.
func (v VM) IP() string {
	if v.Lease != nil {
		return v.Lease.IP()
	}
	if len(v.FixedIPs) > 0 {
		return v.FixedIPs[0].IPAddress
	}
	return ""
}

// Manager works on the VMs of one state directory.
type Manager struct {
	dir  statedir.Dir
	opts Options
	log  *slog.Logger
}

// Options say where the API, the host name and Open vSwitch are when they
// are not those of a `neutrino up` on the state directory, e.g. on a
// compute node that runs `neutrino agent` only.
type Options struct {
	// APIURL overrides the runtime record's API URL; with no `up`
	// running, it is required.
	APIURL string
	// Host overrides the host VMs' ports bind to (default: up's, else
	// this machine's host name, as the agent's default).
	Host string
	// OVSRunDir is the Open vSwitch used when no `up` runs (default
	// ovs.SystemRunDir).
	OVSRunDir string
	Log       *slog.Logger
}

// NewManager returns the VM manager of a state directory.
func NewManager(dir statedir.Dir, opts Options) *Manager {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{dir: dir, opts: opts, log: log}
}

// validName keeps VM names usable as namespace and file names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid VM name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Namespace is the network namespace of the VM called name.
func Namespace(name string) string { return "vm-" + name }

// tapName is the host end of a port's veth, named as Nova names taps.
func tapName(portID string) string { return "tap" + portID[:min(11, len(portID))] }

func (m *Manager) vmDir(name string) string { return filepath.Join(m.dir.VMs(), name) }
func recordPath(dir string) string          { return filepath.Join(dir, "vm.json") }

// CreateRequest is what `neutrino vm create` asks for.
type CreateRequest struct {
	Name string
	// Network is a network's id or unique name.
	Network string
	// Project, if set, owns the port (the caller acts in it).
	Project string
	// FixedIP, if set, is the address the port asks for.
	FixedIP string
	// SecurityGroups are ids or names; none means the project's default.
	SecurityGroups []string
	// KeyFile and UserDataFile are stored for the metadata service.
	KeyFile, UserDataFile string
	// Timeout bounds the whole create, the DHCP lease included.
	Timeout time.Duration
}

// DefaultTimeout bounds a create when the request gives none.
const DefaultTimeout = 60 * time.Second

// env is what create and delete need of the running all-in-one.
type env struct {
	api         *apiClient
	host        string
	ovs         ovs.Instance
	integration string
	log         *slog.Logger
}

// requireRoot fails clearly where namespaces and Open vSwitch would
// fail obscurely.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("neutrino vm needs root (network namespaces, Open vSwitch)")
	}
	return nil
}

func (m *Manager) env(project string) (env, error) {
	if err := requireRoot(); err != nil {
		return env{}, err
	}
	rt, running := m.dir.Running()
	switch {
	case !running && m.opts.APIURL == "":
		_, rerr := m.dir.RequireRunning()
		return env{}, rerr
	case !running:
		// A node without up: the API given by --url, the agent's host and
		// Open vSwitch.
		host, herr := config.Agent{Host: m.opts.Host}.HostName()
		if herr != nil {
			return env{}, herr
		}
		runDir := m.opts.OVSRunDir
		if runDir == "" {
			runDir = ovs.SystemRunDir
		}
		inst, ok := ovs.DetectIn(runDir)
		if !ok {
			return env{}, fmt.Errorf("no neutrino up runs with %s and no Open vSwitch answers in %s (--ovs-run-dir)", m.dir.Path, runDir)
		}
		return env{api: newAPIClient(m.opts.APIURL, project), host: host, ovs: inst, integration: "br-int", log: m.log}, nil
	}
	if rt.NetNS != "" {
		if self, serr := statedir.NetNSOf("self"); serr == nil && self != rt.NetNS {
			return env{}, fmt.Errorf("neutrino up for %s runs in another network namespace (%s, this is %s): run neutrino vm where it runs, e.g. with nsenter --net=/run/netns/NAME (ip netns exec would hide the namespaces it makes from the rest of the system)", m.dir.Path, rt.NetNS, self)
		}
	}
	url, host := rt.APIURL, rt.Host
	if m.opts.APIURL != "" {
		url = m.opts.APIURL
	}
	if m.opts.Host != "" {
		host = m.opts.Host
	}
	br := rt.OVS.IntegrationBridge
	if br == "" {
		br = "br-int"
	}
	return env{
		api:         newAPIClient(url, project),
		host:        host,
		ovs:         ovs.Instance{DB: rt.OVS.DB, RunDir: rt.OVS.RunDir, VSwitchdCtl: rt.OVS.VSwitchdCtl},
		integration: br,
		log:         m.log,
	}, nil
}

// Create makes a VM and returns once it holds its DHCP lease. On failure
// it removes everything it made: port, namespace, veth, OVS port, files.
func (m *Manager) Create(ctx context.Context, req CreateRequest) (_ *VM, err error) {
	if err := checkName(req.Name); err != nil {
		return nil, err
	}
	if req.Network == "" {
		return nil, errors.New("a VM needs a network (--network)")
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	e, err := m.env(req.Project)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.dir.VMs(), 0o750); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	dir := m.vmDir(req.Name)
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("a VM named %s exists already (neutrino vm delete %s removes it)", req.Name, req.Name)
		}
		return nil, fmt.Errorf("vm: %w", err)
	}
	v := &VM{Name: req.Name, Namespace: Namespace(req.Name), InstanceID: uuid.NewString(), ProjectID: req.Project, Created: time.Now().UTC()}
	defer func() {
		if err != nil {
			// Undo with a fresh context: ctx may be what ran out.
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer ccancel()
			if cerr := m.remove(cctx, e, dir, v); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v)", err, cerr)
			}
		}
	}()
	if err := m.createPort(ctx, e, req, v); err != nil {
		return nil, err
	}
	if err := saveRecord(dir, v); err != nil {
		return nil, err
	}
	if err := storeMetadataFiles(dir, req, v); err != nil {
		return nil, err
	}
	if err := registerMetadata(ctx, e, v); err != nil {
		return nil, err
	}
	net, err := e.api.network(ctx, v.NetworkID)
	if err != nil {
		return nil, err
	}
	if err := checkDHCP(ctx, e, v); err != nil {
		return nil, err
	}
	if err := plug(ctx, e, v, net.MTU); err != nil {
		return nil, err
	}
	// The first DHCP discover goes out once the port is wired: udhcpc
	// retries only every second.
	if err := waitActive(ctx, e, v.PortID); err != nil {
		return nil, err
	}
	client := dhcpClient{dir: dir, netns: v.Namespace, iface: "eth0", hostname: v.Name}
	var exited <-chan error
	if v.DHCPClientPID, exited, err = client.start(); err != nil {
		return nil, err
	}
	if err := saveRecord(dir, v); err != nil {
		return nil, err
	}
	lease, err := client.waitLease(ctx, exited)
	if err != nil {
		return nil, fmt.Errorf("VM %s (port %s, MAC %s): %w", v.Name, v.PortID, v.MAC, err)
	}
	v.Lease = &lease
	if !slices.ContainsFunc(v.FixedIPs, func(f FixedIP) bool { return f.IPAddress == lease.IP() }) {
		m.log.Warn("the VM's DHCP lease is not its port's address", "vm", v.Name, "lease", lease.Address, "port_ips", v.FixedIPs)
	}
	if err := saveRecord(dir, v); err != nil {
		return nil, err
	}
	return v, nil
}

// createPort resolves the network and security groups, waits for the
// host's l2 agent, and creates the VM's port bound to the host.
func (m *Manager) createPort(ctx context.Context, e env, req CreateRequest, v *VM) error {
	net, err := e.api.network(ctx, req.Network)
	if err != nil {
		return err
	}
	v.NetworkID, v.NetworkName = net.ID, net.Name
	body := map[string]any{
		"network_id": net.ID, "name": v.Name,
		"device_owner": "compute:nova", "device_id": v.InstanceID,
		"binding:host_id": e.host,
	}
	if req.Project != "" {
		body["project_id"] = req.Project
	}
	if req.FixedIP != "" {
		body["fixed_ips"] = []map[string]any{{"ip_address": req.FixedIP}}
	}
	if len(req.SecurityGroups) > 0 {
		ids := make([]string, 0, len(req.SecurityGroups))
		for _, ref := range req.SecurityGroups {
			id, err := e.api.securityGroup(ctx, ref)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		body["security_groups"] = ids
	}
	if err := waitAgent(ctx, e); err != nil {
		return err
	}
	p, err := e.api.createPort(ctx, body)
	if err != nil {
		return fmt.Errorf("create the VM's port: %w", err)
	}
	v.PortID, v.MAC, v.FixedIPs = p.ID, p.MACAddress, p.FixedIPs
	if p.VIFType != "ovs" {
		return fmt.Errorf("port %s could not be bound to host %s (binding:vif_type %s): its Open vSwitch agent does not reach network %s's segment (tunnel type or physical network)", p.ID, e.host, p.VIFType, net.Name)
	}
	return nil
}

// checkDHCP fails at once when no address of the port is on an IPv4
// subnet with DHCP: the VM would wait for a lease in vain.
func checkDHCP(ctx context.Context, e env, v *VM) error {
	subnets, err := e.api.subnets(ctx, v.NetworkID)
	if err != nil {
		return err
	}
	for _, f := range v.FixedIPs {
		for _, s := range subnets {
			if s.ID == f.SubnetID && s.IPVersion == 4 && s.EnableDHCP {
				return nil
			}
		}
	}
	return fmt.Errorf("the VM's port on network %s has no address on an IPv4 subnet with DHCP enabled, so the VM would get no lease (port addresses %v)", v.NetworkName, v.FixedIPs)
}

// waitAgent waits until an alive Open vSwitch agent reports from the host
// (just after `up` starts it may not have reported yet).
func waitAgent(ctx context.Context, e env) error {
	for {
		ok, err := e.api.aliveL2Agent(ctx, e.host)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no alive Open vSwitch agent on host %s: %w", e.host, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitActive waits until the l2 agent has wired the port (status ACTIVE).
func waitActive(ctx context.Context, e env, portID string) error {
	for {
		p, err := e.api.port(ctx, portID)
		if err != nil {
			return err
		}
		if p.Status == "ACTIVE" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("port %s is still %s: the l2 agent on host %s has not wired it: %w", portID, p.Status, e.host, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// plug makes the VM's namespace and veth and plugs the host end into
// br-int as Nova's VIF driver does.
func plug(ctx context.Context, e env, v *VM, mtu int) error {
	mac, err := net.ParseMAC(v.MAC)
	if err != nil {
		return fmt.Errorf("port %s: MAC %q: %w", v.PortID, v.MAC, err)
	}
	if err := netns.Create(v.Namespace); err != nil {
		return err
	}
	v.Tap = tapName(v.PortID)
	host, err := link.Open("")
	if err != nil {
		return err
	}
	defer host.Close()
	if err := host.AddVeth(link.Veth{Name: v.Tap, PeerName: "eth0", PeerNetns: v.Namespace, PeerMAC: mac, MTU: mtu}); err != nil {
		return err
	}
	inside, err := link.Open(v.Namespace)
	if err != nil {
		return err
	}
	defer inside.Close()
	// TX checksum offload off on both ends, or TCP through the userspace
	// datapath fails while ping works.
	for _, step := range []func() error{
		func() error { return host.DisableTXChecksum(v.Tap) },
		func() error { return host.SetUp(v.Tap) },
		func() error { return inside.SetUp("lo") },
		func() error { return inside.DisableTXChecksum("eth0") },
		func() error { return inside.SetUp("eth0") },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	c, err := ovs.Connect(ctx, e.ovs.DB, e.log)
	if err != nil {
		return fmt.Errorf("Open vSwitch at %s: %w", e.ovs.DB, err)
	}
	defer c.Close()
	if err := waitBridge(ctx, c, e.integration); err != nil {
		return err
	}
	if err := c.EnsurePort(ctx, e.integration, ovs.Port{Name: v.Tap, ExternalIDs: map[string]string{
		"iface-id": v.PortID, "attached-mac": v.MAC, "iface-status": "active", "vm-uuid": v.InstanceID,
	}}); err != nil {
		return err
	}
	if _, err := c.WaitOfport(ctx, v.Tap); err != nil {
		return err
	}
	return nil
}

// waitBridge waits until the l2 agent has made the integration bridge.
func waitBridge(ctx context.Context, c *ovs.Client, bridge string) error {
	for {
		if _, err := c.Bridge(bridge); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the l2 agent has not made %s: %w", bridge, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func storeMetadataFiles(dir string, req CreateRequest, v *VM) error {
	for _, f := range []struct {
		src, name string
		dst       *string
	}{{req.KeyFile, "key.pub", &v.KeyFile}, {req.UserDataFile, "user-data", &v.UserDataFile}} {
		if f.src == "" {
			continue
		}
		data, err := os.ReadFile(f.src)
		if err != nil {
			return fmt.Errorf("vm: %w", err)
		}
		*f.dst = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.dst, data, 0o600); err != nil {
			return fmt.Errorf("vm: %w", err)
		}
	}
	return nil
}

// registerMetadata registers the VM with the metadata service: its name
// (the hostname guests see), project, key and user data.
func registerMetadata(ctx context.Context, e env, v *VM) error {
	body := map[string]any{"name": v.Name, "project_id": v.ProjectID}
	if v.KeyFile != "" {
		key, err := os.ReadFile(v.KeyFile)
		if err != nil {
			return fmt.Errorf("vm: %w", err)
		}
		body["public_keys"] = map[string]string{"default": strings.TrimSpace(string(key))}
	}
	if v.UserDataFile != "" {
		data, err := os.ReadFile(v.UserDataFile)
		if err != nil {
			return fmt.Errorf("vm: %w", err)
		}
		body["user_data"] = string(data)
	}
	if err := e.api.registerInstance(ctx, v.InstanceID, body); err != nil {
		return fmt.Errorf("register the VM's metadata: %w", err)
	}
	return nil
}

func saveRecord(dir string, v *VM) error { return statedir.WriteJSON(recordPath(dir), v) }

func readRecord(dir string) (*VM, error) {
	data, err := os.ReadFile(recordPath(dir))
	if err != nil {
		return nil, err
	}
	var v VM
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("vm: %s: %w", recordPath(dir), err)
	}
	return &v, nil
}

// List returns the VMs of the state directory, sorted by name.
func (m *Manager) List() ([]VM, error) {
	return Records(m.dir)
}

// Records reads the VM records of a state directory, sorted by name. A
// directory whose create never wrote a record counts as a VM with only a
// name, so delete and down still find it.
func Records(dir statedir.Dir) ([]VM, error) {
	entries, err := os.ReadDir(dir.VMs())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	var out []VM
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		v, err := readRecord(filepath.Join(dir.VMs(), e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			v = &VM{Name: e.Name(), Namespace: Namespace(e.Name())}
		} else if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Manager) get(name string) (*VM, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	v, err := readRecord(m.vmDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(m.vmDir(name)); serr == nil {
			return &VM{Name: name, Namespace: Namespace(name)}, nil
		}
		return nil, fmt.Errorf("no VM named %s in %s (neutrino vm list shows them)", name, m.dir.Path)
	}
	return v, err
}

// ExitError carries the exit status of a command run in a VM.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Exec runs argv inside the VM's namespace with the given standard
// streams; a non-zero exit comes back as *ExitError with its status.
func (m *Manager) Exec(ctx context.Context, name string, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return errors.New("no command to run (neutrino vm exec NAME -- CMD…)")
	}
	if err := requireRoot(); err != nil {
		return err
	}
	v, err := m.get(name)
	if err != nil {
		return err
	}
	if !netns.Exists(v.Namespace) {
		return fmt.Errorf("VM %s has no namespace %s (was it made by a neutrino vm create that failed?)", name, v.Namespace)
	}
	cmd := netns.CommandContext(ctx, v.Namespace, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitError{Code: code}
	}
	return err
}

// Delete removes the VM: its port through the API, its OVS port, its
// namespace (and so its veth), its DHCP client and its files.
func (m *Manager) Delete(ctx context.Context, name string) error {
	v, err := m.get(name)
	if err != nil {
		return err
	}
	e, err := m.env(v.ProjectID)
	if err != nil {
		return err
	}
	return m.remove(ctx, e, m.vmDir(name), v)
}

// remove undoes what create made, whatever of it exists.
func (m *Manager) remove(ctx context.Context, e env, dir string, v *VM) error {
	var errs []error
	if err := RemoveLocal(ctx, dir, v, e.ovs.DB, e.log); err != nil {
		errs = append(errs, err)
	}
	if v.InstanceID != "" && e.api != nil {
		if err := e.api.unregisterInstance(ctx, v.InstanceID); err != nil {
			errs = append(errs, fmt.Errorf("unregister instance %s: %w", v.InstanceID, err))
		}
	}
	if v.PortID != "" && e.api != nil {
		if err := e.api.deletePort(ctx, v.PortID); err != nil {
			errs = append(errs, fmt.Errorf("delete port %s: %w", v.PortID, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	return nil
}

// RemoveLocal removes what a VM has on this machine, but not its port in
// the API and not its directory: its DHCP client, its OVS port (when
// ovsdb, an OVSDB endpoint, is given), its namespace and veth.
// `neutrino down` uses it for every VM.
func RemoveLocal(ctx context.Context, dir string, v *VM, ovsdb string, log *slog.Logger) error {
	var errs []error
	client := dhcpClient{dir: dir, netns: v.Namespace}
	if err := client.stop(v.DHCPClientPID); err != nil {
		errs = append(errs, err)
	}
	tap := v.Tap
	if tap == "" && v.PortID != "" {
		tap = tapName(v.PortID)
	}
	if tap != "" && ovsdb != "" {
		if err := deleteOVSPort(ctx, ovsdb, tap, log); err != nil {
			errs = append(errs, err)
		}
	}
	if err := netns.Delete(v.Namespace); err != nil {
		errs = append(errs, err)
	}
	if tap != "" {
		if h, err := link.Open(""); err == nil {
			// Gone with the namespace normally; a veth whose peer never
			// reached the namespace is not. The kernel frees the
			// namespace asynchronously: the veth may vanish between
			// lookup and delete (ENODEV), which is as good.
			if err := h.Delete(tap); err != nil && !errors.Is(err, syscall.ENODEV) {
				errs = append(errs, err)
			}
			h.Close()
		}
	}
	return errors.Join(errs...)
}

func deleteOVSPort(ctx context.Context, endpoint, name string, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := ovs.Connect(cctx, endpoint, log)
	if err != nil {
		return fmt.Errorf("Open vSwitch at %s: %w", endpoint, err)
	}
	defer c.Close()
	if err := c.DeletePort(cctx, name); err != nil && !errors.Is(err, ovs.ErrNotFound) {
		return err
	}
	return nil
}

// Describe is a one-line summary of a VM for the user.
func (v VM) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VM %s: port %s on network %s", v.Name, v.PortID, v.NetworkName)
	if v.Lease != nil {
		fmt.Fprintf(&b, ", address %s by DHCP", v.Lease.Address)
		if v.Lease.Router != "" {
			fmt.Fprintf(&b, " (router %s)", v.Lease.Router)
		}
	}
	fmt.Fprintf(&b, ", namespace %s", v.Namespace)
	return b.String()
}
