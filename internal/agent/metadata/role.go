package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// Defaults of Config.
const (
	DefaultListenPort       = 9697
	DefaultRouterPrefix     = "qrouter-"
	DefaultDHCPPrefix       = "qdhcp-"
	DefaultNovaMetadataURL  = "http://127.0.0.1:8775"
	pendingNamespaceRecheck = 200 * time.Millisecond
)

// Address is the metadata address guests ask.
const Address = "169.254.169.254"

// Config configures the metadata role, as Neutron's metadata_agent.ini.
type Config struct {
	// NovaMetadataURL is where signed requests go (default the server's
	// built-in service on 127.0.0.1:8775).
	NovaMetadataURL string
	// SharedSecret is metadata_proxy_shared_secret, the same as the
	// metadata service's.
	SharedSecret string
	// Socket is the metadata agent's unix socket.
	Socket string
	// ListenPort is the router namespaces' listener port, where
	// 169.254.169.254:80 is redirected (default 9697).
	ListenPort int
	// EnableIsolatedMetadata serves metadata in the DHCP namespace of
	// networks that have no router.
	EnableIsolatedMetadata bool
	// RouterPrefix and DHCPPrefix name the l3 and dhcp roles' namespaces.
	RouterPrefix, DHCPPrefix string
}

// Role is the metadata role of the agent (agent.Role).
type Role struct {
	cfg    Config
	target *url.URL
	log    *slog.Logger
	loop   *reconcile.Loop
	lookup LookupFunc

	mu       sync.Mutex
	routers  map[string]bool
	networks map[string]msg.DHCPNetwork

	// servedMu serialises reconcile passes and guards served.
	servedMu sync.Mutex
	served   map[string]*listener
}

// listener is one namespace's metadata listener.
type listener struct {
	target
	srv *http.Server
	// inode identifies the namespace the socket is in: one removed and
	// made again under the same name is another namespace.
	inode uint64
}

// namespaceInode is the inode of namespace ns, 0 if it does not exist.
func namespaceInode(ns string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(netns.Path(ns), &st); err != nil {
		return 0
	}
	return st.Ino
}

// target is a namespace that should have a listener.
type target struct {
	ns    string
	scope Scope
	// dhcpAddr is the DHCP port's address the metadata address joins
	// (qdhcp namespaces only).
	dhcpAddr string
}

// New makes the metadata role. Lookups go over the bus once UseBus gave
// it the agent's connection.
func New(cfg Config, log *slog.Logger) (*Role, error) {
	if cfg.NovaMetadataURL == "" {
		cfg.NovaMetadataURL = DefaultNovaMetadataURL
	}
	target, err := url.Parse(cfg.NovaMetadataURL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("metadata: nova_metadata_url %q is not an http(s) URL", cfg.NovaMetadataURL)
	}
	if cfg.Socket == "" {
		return nil, errors.New("metadata: the metadata agent's socket path is required")
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultListenPort
	}
	if cfg.ListenPort < 1 || cfg.ListenPort > 65535 || cfg.ListenPort == 80 {
		return nil, fmt.Errorf("metadata: listen port %d (1..65535, not 80)", cfg.ListenPort)
	}
	if cfg.RouterPrefix == "" {
		cfg.RouterPrefix = DefaultRouterPrefix
	}
	if cfg.DHCPPrefix == "" {
		cfg.DHCPPrefix = DefaultDHCPPrefix
	}
	if log == nil {
		log = slog.Default()
	}
	return &Role{
		cfg: cfg, target: target, log: log.With("role", msg.RoleMetadata), loop: reconcile.NewLoop(),
		routers: map[string]bool{}, networks: map[string]msg.DHCPNetwork{}, served: map[string]*listener{},
		lookup: func(context.Context, msg.MetadataLookup) (msg.MetadataLookupReply, error) {
			return msg.MetadataLookupReply{}, errors.New("metadata: no bus connection")
		},
	}, nil
}

// UseBus makes lookups server RPCs on conn.
func (r *Role) UseBus(conn *bus.Conn) {
	r.SetLookup(func(ctx context.Context, q msg.MetadataLookup) (msg.MetadataLookupReply, error) {
		var out msg.MetadataLookupReply
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := conn.Call(ctx, msg.MethodMetadataLookup, q, &out)
		return out, err
	})
}

// SetLookup replaces how instances are found (tests).
func (r *Role) SetLookup(fn LookupFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookup = fn
}

func (r *Role) doLookup(ctx context.Context, q msg.MetadataLookup) (msg.MetadataLookupReply, error) {
	r.mu.Lock()
	fn := r.lookup
	r.mu.Unlock()
	return fn(ctx, q)
}

// Name is msg.RoleMetadata.
func (r *Role) Name() string { return msg.RoleMetadata }

// Report is the metadata agent's state report.
func (r *Role) Report() msg.ReportState {
	return msg.ReportState{
		AgentType: msg.AgentTypeMetadata, Binary: msg.BinaryMetadata, Topic: "N/A",
		Configurations: map[string]any{
			"nova_metadata_url": r.cfg.NovaMetadataURL, "metadata_proxy_socket": r.cfg.Socket,
			"enable_isolated_metadata": r.cfg.EnableIsolatedMetadata,
		},
	}
}

// Start serves the metadata agent on its unix socket and begins
// reconciling the namespace listeners, until ctx ends.
func (r *Role) Start(ctx context.Context, env agent.Env) error {
	if env.Log != nil {
		r.log = env.Log.With("role", msg.RoleMetadata)
	}
	if err := os.MkdirAll(filepath.Dir(r.cfg.Socket), 0o750); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if err := os.Remove(r.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metadata: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", r.cfg.Socket)
	if err != nil {
		return fmt.Errorf("metadata: listen on %s: %w", r.cfg.Socket, err)
	}
	srv := &http.Server{Handler: AgentProxy(r.target, r.cfg.SharedSecret, r.doLookup, r.log), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go r.loop.Run(ctx, r.log, r.Reconcile, func() {
		_ = srv.Close()
		_ = os.Remove(r.cfg.Socket)
		r.servedMu.Lock()
		defer r.servedMu.Unlock()
		for _, l := range r.served {
			_ = l.srv.Close()
		}
	})
	return nil
}

// Stopped is closed once the role's background work ended.
func (r *Role) Stopped() <-chan struct{} { return r.loop.Stopped() }

// Sync replaces the routers and networks served. A state without an l3
// or dhcp part keeps that part as it is.
func (r *Role) Sync(_ context.Context, state *msg.HostState) error {
	if state == nil {
		return nil
	}
	r.mu.Lock()
	if state.L3 != nil {
		r.routers = map[string]bool{}
		for _, rt := range state.L3.Routers {
			r.routers[rt.ID] = true
		}
	}
	if state.DHCP != nil {
		r.networks = map[string]msg.DHCPNetwork{}
		for _, n := range state.DHCP.Networks {
			r.networks[n.ID] = n
		}
	}
	r.mu.Unlock()
	r.loop.Kick()
	return nil
}

// Apply applies the router and network changes of a notification.
func (r *Role) Apply(_ context.Context, n *msg.Notification) error {
	if n == nil || (n.L3 == nil && n.DHCP == nil) {
		return nil
	}
	r.mu.Lock()
	if u := n.L3; u != nil {
		for _, rt := range u.Routers {
			r.routers[rt.ID] = true
		}
		for _, id := range u.DeletedRouters {
			delete(r.routers, id)
		}
	}
	if u := n.DHCP; u != nil {
		for _, nw := range u.Networks {
			r.networks[nw.ID] = nw
		}
		for _, id := range u.DeletedNetworks {
			delete(r.networks, id)
		}
		for _, p := range u.Ports {
			if nw, ok := r.networks[p.NetworkID]; ok {
				nw.Ports = replacePort(nw.Ports, p)
				if nw.DHCPPort != nil && nw.DHCPPort.ID == p.ID {
					nw.DHCPPort = &p
				}
				r.networks[p.NetworkID] = nw
			}
		}
		for _, ref := range u.DeletedPorts {
			if nw, ok := r.networks[ref.NetworkID]; ok {
				nw.Ports = removePort(nw.Ports, ref.ID)
				r.networks[ref.NetworkID] = nw
			}
		}
	}
	r.mu.Unlock()
	r.loop.Kick()
	return nil
}

func replacePort(ports []msg.Port, p msg.Port) []msg.Port {
	out := removePort(ports, p.ID)
	return append(out, p)
}

func removePort(ports []msg.Port, id string) []msg.Port {
	out := make([]msg.Port, 0, len(ports))
	for _, p := range ports {
		if p.ID != id {
			out = append(out, p)
		}
	}
	return out
}

// IsolatedNetwork tells whether guests of n need metadata from its DHCP
// namespace: it has a DHCP-enabled IPv4 subnet and no router interface.
func IsolatedNetwork(n msg.DHCPNetwork) bool {
	for _, p := range n.Ports {
		if strings.HasPrefix(p.DeviceOwner, "network:router_interface") || p.DeviceOwner == "network:ha_router_replicated_interface" {
			return false
		}
	}
	for _, s := range n.Subnets {
		if s.IPVersion == 4 && s.EnableDHCP {
			return true
		}
	}
	return false
}

// targets are the namespaces that should have a listener.
func (r *Role) targets() map[string]target {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]target{}
	for id := range r.routers {
		ns := r.cfg.RouterPrefix + id
		out[ns] = target{ns: ns, scope: Scope{RouterID: id}}
	}
	if !r.cfg.EnableIsolatedMetadata {
		return out
	}
	for id, n := range r.networks {
		if n.DHCPPort == nil || !IsolatedNetwork(n) {
			continue
		}
		addr := dhcpV4Address(n)
		if addr == "" {
			continue
		}
		ns := r.cfg.DHCPPrefix + id
		out[ns] = target{ns: ns, scope: Scope{NetworkID: id}, dhcpAddr: addr}
	}
	return out
}

// Reconcile makes the listeners those of the routers and isolated
// networks served; namespaces not made yet are looked at again shortly.
func (r *Role) Reconcile(ctx context.Context) error {
	r.servedMu.Lock()
	defer r.servedMu.Unlock()
	want := r.targets()
	var errs []error
	for ns, l := range r.served {
		if w, ok := want[ns]; ok && w == l.target && namespaceInode(ns) == l.inode {
			continue
		}
		_ = l.srv.Close()
		delete(r.served, ns)
		if netns.Exists(ns) {
			if err := r.unplumb(l.target); err != nil {
				errs = append(errs, err)
			}
		}
	}
	pending := 0
	names := make([]string, 0, len(want))
	for ns := range want {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		t := want[ns]
		if !netns.Exists(ns) {
			pending++
			continue
		}
		if l, ok := r.served[ns]; ok {
			// The namespace's owner may have rebuilt what it holds.
			if err := r.plumb(l.target); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := r.serve(t); err != nil {
			errs = append(errs, err)
		}
	}
	if pending > 0 && ctx.Err() == nil {
		time.AfterFunc(pendingNamespaceRecheck, r.loop.Kick)
	}
	return errors.Join(errs...)
}

// serve plumbs namespace t and opens its listener there.
func (r *Role) serve(t target) error {
	if err := r.plumb(t); err != nil {
		return err
	}
	addr := net.JoinHostPort("0.0.0.0", fmt.Sprint(r.cfg.ListenPort))
	if t.dhcpAddr != "" {
		addr = net.JoinHostPort(Address, "80")
	}
	var ln net.Listener
	inode := namespaceInode(t.ns)
	err := netns.Do(t.ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata: listen on %s in %s: %w", addr, t.ns, err)
	}
	srv := &http.Server{Handler: NamespaceProxy(t.scope, r.cfg.Socket, r.log), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	r.served[t.ns] = &listener{target: t, srv: srv, inode: inode}
	r.log.Info("metadata listener up", "netns", t.ns, "addr", addr)
	return nil
}

// Served lists the namespaces with a listener, sorted (tests).
func (r *Role) Served() []string {
	r.servedMu.Lock()
	defer r.servedMu.Unlock()
	var out []string
	for ns := range r.served {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// ConfigFrom is the role's configuration from the agent's.
func ConfigFrom(c config.Agent) Config {
	socket := c.Metadata.Socket
	if socket == "" {
		host, _ := c.HostName()
		socket = filepath.Join(os.TempDir(), "neutrino-metadata-"+strings.ReplaceAll(host, "/", "_")+".sock")
	}
	return Config{
		NovaMetadataURL: c.Metadata.NovaMetadataURL, SharedSecret: c.Metadata.SharedSecret,
		Socket: socket, ListenPort: c.Metadata.ListenPort, EnableIsolatedMetadata: c.DHCP.EnableIsolatedMetadata,
	}
}
