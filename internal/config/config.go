// Package config owns neutrino's configuration: one TOML file whose every
// option is documented in docs/configuration.md, with defaults that run an
// all-in-one out of the box, and command-line flags that override the file.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/neutrino-sdn/neutrino/internal/segment"
)

// Config is the whole configuration of a neutrino process.
type Config struct {
	// StateDir holds the embedded database and other local state.
	StateDir string `koanf:"state_dir"`
	// Listen is the API address.
	Listen string `koanf:"listen"`
	// Database is "sqlite:PATH" or "postgres://…"; empty means SQLite in StateDir.
	Database string `koanf:"database"`
	// Auth is "noauth" or "keystone".
	Auth     string   `koanf:"auth"`
	Keystone Keystone `koanf:"keystone"`
	// NoAuthProject is the project of noauth callers that send no X-Project-Id.
	NoAuthProject string `koanf:"noauth_project"`
	// LogFormat is "text" or "json"; LogLevel "debug", "info", "warn", "error".
	LogFormat string `koanf:"log_format"`
	LogLevel  string `koanf:"log_level"`
	// BaseMAC is the prefix of generated port MAC addresses.
	BaseMAC string `koanf:"base_mac"`
	ML2     ML2    `koanf:"ml2"`
	// Quotas are default per-project limits by resource (-1 = unlimited).
	Quotas map[string]int64 `koanf:"quotas"`
	// ShutdownTimeout bounds how long in-flight requests may finish on stop.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// AgentDownTime is how old an agent's last state report may be for it
	// to count as alive (Neutron's agent_down_time).
	AgentDownTime time.Duration `koanf:"agent_down_time"`
	// DHCPAgentsPerNetwork is how many DHCP agents serve each network.
	DHCPAgentsPerNetwork int  `koanf:"dhcp_agents_per_network"`
	NATS                 NATS `koanf:"nats"`
	// Metadata configures the built-in instance metadata service.
	Metadata Metadata `koanf:"metadata"`
	// Agent configures `neutrino agent` (and the agent inside `neutrino up`).
	Agent Agent `koanf:"agent"`
}

// NATS configures the bus between servers and agents.
type NATS struct {
	// URL is an external NATS server or cluster (comma-separated URLs);
	// empty means the server runs an embedded NATS server and agents
	// connect to nats://127.0.0.1:4222.
	URL string `koanf:"url"`
	// Listen is where the embedded NATS server accepts remote agents,
	// host:port; empty serves agents in the same process only.
	Listen string `koanf:"listen"`
}

// Metadata configures the server's built-in instance metadata service,
// the default nova_metadata_url of metadata agents.
type Metadata struct {
	// Listen is the service's address, host:port; empty turns it off.
	Listen string `koanf:"listen"`
	// SharedSecret signs instance ids between metadata agents and the
	// service (Neutron's and Nova's metadata_proxy_shared_secret).
	SharedSecret string `koanf:"metadata_proxy_shared_secret"`
}

// MetadataAgent configures the metadata role, as Neutron's
// metadata_agent.ini.
type MetadataAgent struct {
	// NovaMetadataURL is where signed metadata requests go.
	NovaMetadataURL string `koanf:"nova_metadata_url"`
	// SharedSecret is metadata_proxy_shared_secret, the service's.
	SharedSecret string `koanf:"metadata_proxy_shared_secret"`
	// Socket is the metadata agent's unix socket, where the namespace
	// listeners forward; empty means one in the temporary directory,
	// named after the agent's host.
	Socket string `koanf:"metadata_proxy_socket"`
	// ListenPort is the router namespaces' listener port, to which
	// 169.254.169.254:80 is redirected.
	ListenPort int `koanf:"listen_port"`
}

// Agent configures the node agent.
type Agent struct {
	// Host names this node as ports' binding:host_id does; empty means
	// the machine's host name.
	Host string `koanf:"host"`
	// Roles are the jobs the agent does: "l2", "dhcp", "l3".
	Roles []string `koanf:"roles"`
	// ReportInterval is how often the agent reports its state; keep it
	// well under agent_down_time.
	ReportInterval time.Duration `koanf:"report_interval"`
	// ResyncInterval is how often the agent takes a full sync even when it
	// missed nothing, as a safety net.
	ResyncInterval time.Duration `koanf:"resync_interval"`
	// MetricsListen is where `neutrino agent` serves /metrics, /healthz
	// and /readyz; empty turns them off. Inside `neutrino up` the agent's
	// series are on the server's /metrics instead.
	MetricsListen string        `koanf:"metrics_listen"`
	L2            L2Agent       `koanf:"l2"`
	DHCP          DHCPAgent     `koanf:"dhcp"`
	Metadata      MetadataAgent `koanf:"metadata"`
}

// L2Agent configures the l2 role (Open vSwitch), as Neutron's [ovs] and
// [agent] sections of the OVS agent.
type L2Agent struct {
	// OVSRunDir is the run directory of the local Open vSwitch: its
	// db.sock, ovs-vswitchd's pid file and control socket, and the
	// bridges' OpenFlow management sockets.
	OVSRunDir string `koanf:"ovs_run_dir"`
	// IntegrationBridge is where VIFs plug in.
	IntegrationBridge string `koanf:"integration_bridge"`
	// TunnelBridge holds the tunnel ports.
	TunnelBridge string `koanf:"tunnel_bridge"`
	// DatapathType is the bridges' datapath: "system" (kernel) or "netdev"
	// (userspace).
	DatapathType string `koanf:"datapath_type"`
	// LocalIP is this node's tunnel endpoint; empty disables tunnels.
	LocalIP string `koanf:"local_ip"`
	// TunnelTypes are the tunnel network types served: "vxlan", "gre", "geneve".
	TunnelTypes []string `koanf:"tunnel_types"`
	// BridgeMappings are "physnet:bridge" pairs for flat and VLAN networks.
	BridgeMappings []string `koanf:"bridge_mappings"`
	// L2Population follows the server's forwarding entries instead of
	// flooding to learn.
	L2Population bool `koanf:"l2_population"`
	// ARPResponder answers ARP for remote ports locally (needs L2Population).
	ARPResponder bool `koanf:"arp_responder"`
}

// DHCPAgent configures the dhcp role.
type DHCPAgent struct {
	// LeaseDuration is the lease time handed to instances.
	LeaseDuration time.Duration `koanf:"lease_duration"`
	// EnableIsolatedMetadata serves metadata from the DHCP namespace of
	// networks without a router (with the metadata role on the same
	// agent), announced to guests by a DHCP classless route.
	EnableIsolatedMetadata bool `koanf:"enable_isolated_metadata"`
}

// Keystone configures token validation against Keystone v3.
type Keystone struct {
	URL               string        `koanf:"url"`
	Username          string        `koanf:"username"`
	Password          string        `koanf:"password"`
	ProjectName       string        `koanf:"project_name"`
	UserDomainName    string        `koanf:"user_domain_name"`
	ProjectDomainName string        `koanf:"project_domain_name"`
	CacheTTL          time.Duration `koanf:"cache_ttl"`
}

// ML2 configures network types and segment ranges, as Neutron's ml2 section.
type ML2 struct {
	TenantNetworkTypes []string `koanf:"tenant_network_types"`
	FlatNetworks       []string `koanf:"flat_networks"`
	// NetworkVLANRanges entries are "physnet" or "physnet:MIN:MAX".
	NetworkVLANRanges []string `koanf:"network_vlan_ranges"`
	VNIRanges         string   `koanf:"vni_ranges"`
	TunnelIDRanges    string   `koanf:"tunnel_id_ranges"`
	GeneveVNIRanges   string   `koanf:"geneve_vni_ranges"`
	GlobalPhysnetMTU  int64    `koanf:"global_physnet_mtu"`
}

// DefaultStateDir is where state lives unless configured.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/neutrino"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "neutrino")
	}
	return ".neutrino"
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		StateDir:             DefaultStateDir(),
		Listen:               "127.0.0.1:9696",
		Auth:                 "noauth",
		NoAuthProject:        "admin",
		LogFormat:            "text",
		LogLevel:             "info",
		BaseMAC:              "fa:16:3e:00:00:00",
		ShutdownTimeout:      30 * time.Second,
		AgentDownTime:        75 * time.Second,
		DHCPAgentsPerNetwork: 1,
		Agent: Agent{
			Roles:          []string{"l2", "dhcp"},
			ReportInterval: 10 * time.Second,
			ResyncInterval: 60 * time.Second,
			MetricsListen:  "127.0.0.1:9698",
			L2: L2Agent{
				OVSRunDir:         "/var/run/openvswitch",
				IntegrationBridge: "br-int",
				TunnelBridge:      "br-tun",
				DatapathType:      "netdev",
				TunnelTypes:       []string{"vxlan"},
				BridgeMappings:    []string{},
				L2Population:      true,
				ARPResponder:      true,
			},
			DHCP:     DHCPAgent{LeaseDuration: 24 * time.Hour},
			Metadata: MetadataAgent{NovaMetadataURL: "http://127.0.0.1:8775", ListenPort: 9697},
		},
		Metadata: Metadata{Listen: "127.0.0.1:8775"},
		Keystone: Keystone{
			UserDomainName: "Default", ProjectDomainName: "Default", CacheTTL: 5 * time.Minute,
		},
		ML2: ML2{
			TenantNetworkTypes: []string{"vxlan"},
			FlatNetworks:       []string{"*"},
			NetworkVLANRanges:  []string{"physnet1:1000:2999"},
			VNIRanges:          "1:1000",
			TunnelIDRanges:     "1:1000",
			GeneveVNIRanges:    "1:1000",
			GlobalPhysnetMTU:   1500,
		},
	}
}

// Load reads the TOML file at path (if path is not empty) over the defaults.
func Load(path string) (Config, error) { return LoadOver(Default(), path) }

// LoadOver reads the TOML file at path (if path is not empty) over base:
// options the file leaves out keep base's values.
func LoadOver(base Config, path string) (Config, error) {
	cfg := base
	if path == "" {
		return cfg, nil
	}
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), toml.Parser()); err != nil {
		return cfg, fmt.Errorf("config: read %s: %w", path, err)
	}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return cfg, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// DatabaseURL is the configured database, defaulting to SQLite in StateDir.
func (c Config) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.StateDir, "neutrino.db")
}

// Validate checks values that would otherwise fail late.
func (c Config) Validate() error {
	switch c.Auth {
	case "noauth":
	case "keystone":
		if c.Keystone.URL == "" {
			return fmt.Errorf("config: auth = keystone needs keystone.url (or --keystone-url)")
		}
	default:
		return fmt.Errorf("config: auth must be noauth or keystone, not %q", c.Auth)
	}
	if _, err := c.Segments(); err != nil {
		return err
	}
	if c.AgentDownTime <= 0 {
		return fmt.Errorf("config: agent_down_time must be positive, not %s", c.AgentDownTime)
	}
	if c.DHCPAgentsPerNetwork < 1 {
		return fmt.Errorf("config: dhcp_agents_per_network must be at least 1, not %d", c.DHCPAgentsPerNetwork)
	}
	return c.Agent.Validate()
}

// Agent roles.
const (
	RoleL2   = "l2"
	RoleDHCP = "dhcp"
	RoleL3   = "l3"
	// RoleMetadata is the metadata agent and its namespace listeners.
	RoleMetadata = "metadata"
)

// Validate checks the agent options.
func (a Agent) Validate() error {
	for _, r := range a.Roles {
		if r != RoleL2 && r != RoleDHCP && r != RoleL3 && r != RoleMetadata {
			return fmt.Errorf("config: agent.roles: unknown role %q (want %q, %q, %q or %q)", r, RoleL2, RoleDHCP, RoleL3, RoleMetadata)
		}
	}
	if a.ReportInterval <= 0 {
		return fmt.Errorf("config: agent.report_interval must be positive, not %s", a.ReportInterval)
	}
	if a.ResyncInterval <= 0 {
		return fmt.Errorf("config: agent.resync_interval must be positive, not %s", a.ResyncInterval)
	}
	if a.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(a.MetricsListen); err != nil || port == "" {
			return fmt.Errorf("config: agent.metrics_listen must be host:port (e.g. \"0.0.0.0:9698\") or empty, not %q", a.MetricsListen)
		}
	}
	if _, err := a.L2.Mappings(); err != nil {
		return err
	}
	// 0 is the role's default.
	if p := a.Metadata.ListenPort; p < 0 || p > 65535 || p == 80 {
		return fmt.Errorf("config: agent.metadata.listen_port must be a port other than 80, not %d", p)
	}
	return nil
}

// HostName is the agent's host: agent.host, or the machine's host name.
func (a Agent) HostName() (string, error) {
	if a.Host != "" {
		return a.Host, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("config: agent.host is empty and the host name is unknown: %w", err)
	}
	return h, nil
}

// Mappings parses bridge_mappings into physical network → bridge.
func (l L2Agent) Mappings() (map[string]string, error) {
	out := map[string]string{}
	for _, e := range l.BridgeMappings {
		physnet, bridge, ok := strings.Cut(e, ":")
		if !ok || physnet == "" || bridge == "" {
			return nil, fmt.Errorf("config: agent.l2.bridge_mappings: %q is not physnet:bridge", e)
		}
		if _, dup := out[physnet]; dup {
			return nil, fmt.Errorf("config: agent.l2.bridge_mappings: physical network %q is mapped twice", physnet)
		}
		out[physnet] = bridge
	}
	return out, nil
}

// Segments converts the ml2 options into the type drivers' configuration.
func (c Config) Segments() (segment.Config, error) {
	out := segment.Config{
		TenantNetworkTypes: c.ML2.TenantNetworkTypes,
		FlatNetworks:       c.ML2.FlatNetworks,
		VLANRanges:         map[string][]segment.Range{},
		PhysnetMTU:         c.ML2.GlobalPhysnetMTU,
	}
	var err error
	if out.VXLANRanges, err = segment.ParseRanges(c.ML2.VNIRanges); err != nil {
		return out, fmt.Errorf("config: ml2.vni_ranges: %w", err)
	}
	if out.GRERanges, err = segment.ParseRanges(c.ML2.TunnelIDRanges); err != nil {
		return out, fmt.Errorf("config: ml2.tunnel_id_ranges: %w", err)
	}
	if out.GeneveRanges, err = segment.ParseRanges(c.ML2.GeneveVNIRanges); err != nil {
		return out, fmt.Errorf("config: ml2.geneve_vni_ranges: %w", err)
	}
	for _, e := range c.ML2.NetworkVLANRanges {
		physnet, rng, hasRange := strings.Cut(e, ":")
		if physnet == "" {
			return out, fmt.Errorf("config: ml2.network_vlan_ranges: empty physical network in %q", e)
		}
		if !hasRange {
			out.VLANRanges[physnet] = append(out.VLANRanges[physnet], []segment.Range{}...)
			continue
		}
		rs, err := segment.ParseRanges(rng)
		if err != nil {
			return out, fmt.Errorf("config: ml2.network_vlan_ranges: %w", err)
		}
		for _, r := range rs {
			if r.Min < 1 || r.Max > 4094 {
				return out, fmt.Errorf("config: ml2.network_vlan_ranges: %q outside 1..4094", e)
			}
		}
		out.VLANRanges[physnet] = append(out.VLANRanges[physnet], rs...)
	}
	return out, nil
}
