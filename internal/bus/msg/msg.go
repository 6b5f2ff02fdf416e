// Package msg owns the messages neutrino servers and agents exchange over
// the bus: the RPC requests and replies agents send to any server replica
// (state reports, full syncs, port status), the desired state of one host
// for each agent role, and the notifications servers fan out per host.
// Both sides import these types; every envelope carries Version so that a
// server and an agent of different releases can tell each other apart.
//
// The types are plain data, JSON-encoded on the wire. Lists are sorted by
// id (ports, networks, subnets) or by value, so equal states encode to equal
// bytes.
package msg

import (
	"encoding/json"
	"fmt"
)

// Version is the message version this build speaks. A receiver refuses an
// envelope with a newer version it does not understand.
const Version = 1

// CheckVersion reports an error for an envelope version this build cannot
// read (0 counts as 1: the field was added with version 1).
func CheckVersion(v int) error {
	if v > Version {
		return fmt.Errorf("message version %d is newer than this build's %d", v, Version)
	}
	return nil
}

// RPC method names, served by every server replica in one queue group
// (bus.Conn.Call / bus.Conn.Handle).
const (
	// MethodReportState takes a ReportState and returns ReportStateReply.
	MethodReportState = "report_state"
	// MethodSync takes a SyncRequest and returns HostState.
	MethodSync = "sync"
	// MethodPortStatus takes a PortStatus and returns PortStatusReply.
	MethodPortStatus = "port_status"
	// MethodFloatingIPStatus takes a FloatingIPStatus and returns
	// FloatingIPStatusReply.
	MethodFloatingIPStatus = "floatingip_status"
)

// HostSubject is the subject on which a host's agent receives its
// notifications. NATS subjects split on dots and refuse spaces and
// wildcards, so every character of the host name other than letters,
// digits, '-' and '_' becomes '_' ("compute1.example" → "compute1_example").
func HostSubject(host string) string {
	b := []byte(host)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return "neutrino.host." + string(b)
}

// Agent types, as Neutron names them (shown by GET /v2.0/agents).
const (
	AgentTypeOVS      = "Open vSwitch agent"
	AgentTypeDHCP     = "DHCP agent"
	AgentTypeL3       = "L3 agent"
	AgentTypeMetadata = "Metadata agent"
)

// Agent binaries, shown as the agents' "binary".
const (
	BinaryOVS      = "neutrino-openvswitch-agent"
	BinaryDHCP     = "neutrino-dhcp-agent"
	BinaryL3       = "neutrino-l3-agent"
	BinaryMetadata = "neutrino-metadata-agent"
)

// Agent roles, as named in the agent's configuration.
const (
	RoleL2       = "l2"
	RoleDHCP     = "dhcp"
	RoleL3       = "l3"
	RoleMetadata = "metadata"
)

// Topics, as Neutron's agents report them.
const (
	TopicL2   = "N/A"
	TopicDHCP = "dhcp_agent"
	TopicL3   = "l3_agent"
)

// Network types an l2 agent may serve.
const (
	NetworkTypeFlat   = "flat"
	NetworkTypeVLAN   = "vlan"
	NetworkTypeVXLAN  = "vxlan"
	NetworkTypeGRE    = "gre"
	NetworkTypeGeneve = "geneve"
	NetworkTypeLocal  = "local"
)

// IsTunnel tells whether networkType is carried over tunnels between hosts.
func IsTunnel(networkType string) bool {
	switch networkType {
	case NetworkTypeVXLAN, NetworkTypeGRE, NetworkTypeGeneve:
		return true
	}
	return false
}

// Port status values an agent reports.
const (
	StatusActive = "ACTIVE"
	StatusDown   = "DOWN"
)

// ReportState is an agent's periodic state report (one per role: an agent
// process with the l2 and dhcp roles sends two, as Neutron's two agents
// would).
type ReportState struct {
	Version   int    `json:"version"`
	AgentType string `json:"agent_type"`
	Binary    string `json:"binary"`
	Topic     string `json:"topic"`
	Host      string `json:"host"`
	// AvailabilityZone is empty for agents without one.
	AvailabilityZone string `json:"availability_zone,omitempty"`
	// Started is set on the first report after the agent (re)started.
	Started bool `json:"started,omitempty"`
	// Configurations are shown as the agent's "configurations"; use
	// L2Configurations or DHCPConfigurations and their Map method.
	Configurations map[string]any `json:"configurations"`
}

// ReportStateReply answers a state report.
type ReportStateReply struct {
	Version int `json:"version"`
}

// L2Configurations are what an Open vSwitch agent reports, with Neutron's
// keys. The server binds ports from them: a tunnelled segment needs its
// type in TunnelTypes and a TunnelingIP, a flat or VLAN segment its
// physical network in BridgeMappings.
type L2Configurations struct {
	// BridgeMappings maps a physical network to its OVS bridge (br-<physnet>).
	BridgeMappings map[string]string `json:"bridge_mappings"`
	// TunnelTypes lists the tunnel network types served ("vxlan", "gre", "geneve").
	TunnelTypes []string `json:"tunnel_types"`
	// TunnelingIP is this host's tunnel endpoint ("" without tunnels).
	TunnelingIP string `json:"tunneling_ip"`
	// DatapathType is the OVS datapath of the bridges ("system" or "netdev").
	DatapathType string `json:"datapath_type"`
	// IntegrationBridge is where VIFs plug in (br-int).
	IntegrationBridge string `json:"integration_bridge"`
	// TunnelBridge holds the tunnel ports (br-tun).
	TunnelBridge string `json:"tunnel_bridge,omitempty"`
	// L2Population says unicast and flooding follow the server's FDB
	// entries instead of learning.
	L2Population bool `json:"l2_population"`
	// ARPResponder says ARP requests are answered locally from FDB entries.
	ARPResponder bool `json:"arp_responder_enabled"`
	// Devices is the number of ports the agent has wired.
	Devices int `json:"devices"`
}

// DHCPConfigurations are what a DHCP agent reports, with Neutron's keys.
type DHCPConfigurations struct {
	DHCPDriver string `json:"dhcp_driver"`
	// Networks, Subnets and Ports count what the agent serves.
	Networks int `json:"networks"`
	Subnets  int `json:"subnets"`
	Ports    int `json:"ports"`
	// DHCPLeaseDuration is the lease time in seconds.
	DHCPLeaseDuration int `json:"dhcp_lease_duration"`
}

// SyncRequest asks for the full desired state of a host.
type SyncRequest struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	// Roles limits the reply to these roles (RoleL2, RoleDHCP, RoleL3); empty means all.
	Roles []string `json:"roles,omitempty"`
}

// HostState is the full desired state of one host, the reply to a sync.
// Notifications with Seq greater than this Seq (and the same Epoch) carry
// the changes made after it.
type HostState struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	// Epoch names the server-side sequence of this host; a different epoch
	// (a new database) means the agent must take a full sync.
	Epoch string `json:"epoch"`
	// Seq is the last notification sequence number this state includes.
	Seq  uint64     `json:"seq"`
	L2   *L2State   `json:"l2,omitempty"`
	DHCP *DHCPState `json:"dhcp,omitempty"`
	L3   *L3State   `json:"l3,omitempty"`
}

// L2State is the desired state of a host's l2 role.
type L2State struct {
	// Ports are the ports bound to this host (binding:host_id), by id.
	Ports []Port `json:"ports"`
	// Networks are the networks of those ports, by id.
	Networks []Network `json:"networks"`
	// TunnelEndpoints are the other hosts' l2 agents with a tunnel IP, by host.
	TunnelEndpoints []TunnelEndpoint `json:"tunnel_endpoints"`
	// FDB holds, per tunnelled network of this host, the ports on other
	// hosts (l2 population), by network id.
	FDB []NetworkFDB `json:"fdb"`
	// SecurityGroups are the groups of this host's ports (Port.SecurityGroups
	// of the ports in Ports), with their rules, by id.
	SecurityGroups []SecurityGroup `json:"security_groups"`
	// RemoteGroups hold, for every group named as RemoteGroupID by a rule
	// of SecurityGroups, the addresses of its members on any host, by
	// group id.
	RemoteGroups []RemoteGroup `json:"remote_groups"`
}

// Rule directions and ethertypes, as Neutron names them.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
	EthertypeIPv4    = "IPv4"
	EthertypeIPv6    = "IPv6"
)

// SecurityGroup is a security group as the l2 role enforces it. A port
// with port security is allowed what any rule of any of its groups allows
// (plus the return traffic of allowed connections when Stateful); a port
// without port security has no groups.
type SecurityGroup struct {
	ID string `json:"id"`
	// Stateful groups allow the return traffic of connections their rules
	// allow (conntrack); stateless ones allow exactly what the rules say.
	Stateful bool `json:"stateful"`
	// Rules are the group's rules, by id.
	Rules []SecurityGroupRule `json:"rules"`
	// Revision is the group's revision_number (it moves with every rule
	// change).
	Revision int64 `json:"revision"`
}

// SecurityGroupRule is one rule of a group, in canonical form: the agent
// need not know Neutron's spellings.
type SecurityGroupRule struct {
	ID string `json:"id"`
	// Direction is DirectionIngress (to the port) or DirectionEgress
	// (from the port).
	Direction string `json:"direction"`
	// Ethertype is EthertypeIPv4 or EthertypeIPv6.
	Ethertype string `json:"ethertype"`
	// Protocol is the IP protocol number (6 tcp, 17 udp, 1 icmp, 58
	// ipv6-icmp, …); nil means any protocol. Neutron's "ip" and "hopopt"
	// names are 0.
	Protocol *int `json:"protocol"`
	// PortRangeMin and PortRangeMax bound the destination port for
	// protocols with ports (tcp, udp, sctp, dccp, udplite); both set or
	// both nil (any port). For ICMP and ICMPv6, PortRangeMin is the ICMP
	// type and PortRangeMax the code; nil means any type (any code).
	PortRangeMin *int `json:"port_range_min"`
	PortRangeMax *int `json:"port_range_max"`
	// RemoteIPPrefix limits the remote end (source for ingress,
	// destination for egress) to a CIDR with its host bits cleared
	// ("10.0.0.0/24"); "" means any address. Never set with RemoteGroupID.
	RemoteIPPrefix string `json:"remote_ip_prefix,omitempty"`
	// RemoteGroupID limits the remote end to the addresses of that
	// group's members (L2State.RemoteGroups); "" means no such limit.
	RemoteGroupID string `json:"remote_group_id,omitempty"`
}

// RemoteGroup is what a rule naming a group as remote group matches: the
// addresses of the group's member ports, on every host.
type RemoteGroup struct {
	ID string `json:"id"`
	// IPs are the members' fixed IPs and allowed-address-pair addresses,
	// IPv4 and IPv6 together, each an address ("10.0.0.5") or, for an
	// address pair given as a network, a CIDR with its host bits cleared
	// ("10.0.1.0/24"); sorted, without duplicates.
	IPs []string `json:"ips"`
	// Networks holds the same addresses by the members' network, with the
	// CIDRs of each network's subnets, so that an agent can match a member
	// address on its own network, and on another only from outside that
	// network's subnets (routed): another network's equal address stays
	// out (overlapping tenant networks). By network id. Servers
	// before this field send none: the agent then matches IPs on every
	// network, and agents before it ignore it (no version change needed).
	Networks []RemoteGroupNetwork `json:"networks,omitempty"`
}

// RemoteGroupNetwork is the part of a remote group on one network.
type RemoteGroupNetwork struct {
	ID string `json:"id"`
	// CIDRs are the network's subnets ("10.0.0.0/24"), sorted.
	CIDRs []string `json:"cidrs"`
	// IPs are the addresses of the group's members on this network, as
	// RemoteGroup.IPs spells them; sorted, without duplicates.
	IPs []string `json:"ips"`
}

// Network is a network as an agent needs it.
type Network struct {
	ID           string  `json:"id"`
	ProjectID    string  `json:"project_id"`
	AdminStateUp bool    `json:"admin_state_up"`
	MTU          int     `json:"mtu"`
	Segment      Segment `json:"segment"`
	// PortSecurityEnabled is the network's default for its ports.
	PortSecurityEnabled bool `json:"port_security_enabled"`
	// Revision is the network's revision_number.
	Revision int64 `json:"revision"`
	// CIDRs are the network's subnets ("10.0.0.0/24"), sorted, in the l2
	// agent's networks: inside them a remote-group member address of
	// another network never matches. Servers before this field send none
	// (the l2 agent then knows only the member networks' CIDRs, from
	// RemoteGroup.Networks); other agents ignore it.
	CIDRs []string `json:"cidrs,omitempty"`
}

// Segment is a network's provider segment.
type Segment struct {
	NetworkType     string `json:"network_type"`
	PhysicalNetwork string `json:"physical_network,omitempty"`
	// SegmentationID is the VLAN id or tunnel key (0 for flat and local).
	SegmentationID int64 `json:"segmentation_id,omitempty"`
}

// Port is a port as agents need it.
type Port struct {
	ID           string    `json:"id"`
	NetworkID    string    `json:"network_id"`
	ProjectID    string    `json:"project_id"`
	MAC          string    `json:"mac_address"`
	FixedIPs     []FixedIP `json:"fixed_ips"`
	AdminStateUp bool      `json:"admin_state_up"`
	DeviceOwner  string    `json:"device_owner"`
	DeviceID     string    `json:"device_id"`
	// Host is binding:host_id.
	Host string `json:"host,omitempty"`
	// VIFType is binding:vif_type ("ovs", "binding_failed", "unbound").
	VIFType string `json:"vif_type,omitempty"`
	// PortSecurityEnabled false turns off anti-spoofing and the firewall
	// for the port (it then has no SecurityGroups nor AllowedAddressPairs).
	PortSecurityEnabled bool `json:"port_security_enabled"`
	// AllowedAddressPairs are the addresses the port may use besides
	// FixedIPs and MAC.
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs,omitempty"`
	// SecurityGroups are the ids of the port's groups, sorted; the host's
	// L2State.SecurityGroups holds them.
	SecurityGroups []string     `json:"security_groups,omitempty"`
	ExtraDHCPOpts  []DHCPOption `json:"extra_dhcp_opts,omitempty"`
	// Status is the port's status as the server knows it.
	Status string `json:"status"`
	// Revision is the port's revision_number.
	Revision int64 `json:"revision"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// AddressPair is an allowed address pair: the port may also send from
// IPAddress (an address, or a CIDR as the user gave it, host bits
// included: "10.0.1.7/24" allows 10.0.1.0/24) with MACAddress (always
// set: the port's own MAC when the pair names none).
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address"`
}

// DHCPOption is an extra DHCP option of a port.
type DHCPOption struct {
	Name      string `json:"opt_name"`
	Value     string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
}

// TunnelEndpoint is another host's tunnel endpoint.
type TunnelEndpoint struct {
	Host        string   `json:"host"`
	IP          string   `json:"ip"`
	TunnelTypes []string `json:"tunnel_types"`
}

// NetworkFDB is the l2 population of one tunnelled network as seen from a
// host: which remote tunnel endpoint holds which MAC and addresses.
type NetworkFDB struct {
	NetworkID string  `json:"network_id"`
	Segment   Segment `json:"segment"`
	// FloodTo are the tunnel IPs of the other hosts with ports on the
	// network: broadcast and unknown unicast go to them only. Sorted.
	FloodTo []string `json:"flood_to"`
	// Entries are the remote ports, by MAC.
	Entries []FDBEntry `json:"entries"`
}

// FDBEntry places one remote port.
type FDBEntry struct {
	MAC string `json:"mac_address"`
	// IPs are the port's fixed addresses (for local ARP answers).
	IPs      []string `json:"ips"`
	TunnelIP string   `json:"tunnel_ip"`
	Host     string   `json:"host"`
	PortID   string   `json:"port_id"`
}

// DHCPState is the desired state of a host's dhcp role.
type DHCPState struct {
	// Networks are the networks scheduled to this host's DHCP agent, by id.
	Networks []DHCPNetwork `json:"networks"`
}

// DHCPNetwork is one network a DHCP agent serves.
type DHCPNetwork struct {
	ID           string  `json:"id"`
	ProjectID    string  `json:"project_id"`
	AdminStateUp bool    `json:"admin_state_up"`
	MTU          int     `json:"mtu"`
	Segment      Segment `json:"segment"`
	// Subnets are the network's subnets (with or without DHCP), by id.
	Subnets []Subnet `json:"subnets"`
	// DHCPPort is this agent's port on the network (device_owner
	// network:dhcp, bound to this host); nil until the server made it.
	DHCPPort *Port `json:"dhcp_port"`
	// Ports are all ports of the network, DHCP port included, by id.
	Ports    []Port `json:"ports"`
	Revision int64  `json:"revision"`
}

// Subnet is a subnet as the dhcp role needs it.
type Subnet struct {
	ID              string      `json:"id"`
	NetworkID       string      `json:"network_id"`
	IPVersion       int         `json:"ip_version"`
	CIDR            string      `json:"cidr"`
	GatewayIP       string      `json:"gateway_ip,omitempty"`
	EnableDHCP      bool        `json:"enable_dhcp"`
	DNSNameservers  []string    `json:"dns_nameservers,omitempty"`
	HostRoutes      []HostRoute `json:"host_routes,omitempty"`
	AllocationPools []IPRange   `json:"allocation_pools,omitempty"`
	// IPv6RAMode and IPv6AddressMode are "", "slaac", "dhcpv6-stateful"
	// or "dhcpv6-stateless".
	IPv6RAMode      string `json:"ipv6_ra_mode,omitempty"`
	IPv6AddressMode string `json:"ipv6_address_mode,omitempty"`
	Revision        int64  `json:"revision"`
}

// HostRoute is a static route handed to instances (DHCP option 121).
type HostRoute struct {
	Destination string `json:"destination"`
	Nexthop     string `json:"nexthop"`
}

// IPRange is an allocation pool.
type IPRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Notification tells a host's agent what changed. Its parts hold the
// current state of what changed (not a diff), so applying a notification
// twice, or one older than the state the agent has, is harmless.
//
// Seq numbers a host's notifications one by one within an Epoch. An agent
// that has applied state up to seq N applies N+1 next; a notification at or
// below N is already included and is skipped; one above N+1 means some were
// lost: the agent waits briefly for the missing ones (they may arrive out
// of order from different server replicas) and otherwise takes a full sync.
type Notification struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
	// Resync asks the agent for a full sync (the server could not say
	// what changed).
	Resync bool        `json:"resync,omitempty"`
	L2     *L2Update   `json:"l2,omitempty"`
	DHCP   *DHCPUpdate `json:"dhcp,omitempty"`
	L3     *L3Update   `json:"l3,omitempty"`
}

// L2Update changes part of a host's L2State.
type L2Update struct {
	// Ports are added or replaced, by id.
	Ports []Port `json:"ports,omitempty"`
	// DeletedPorts are removed (or no longer bound to this host).
	DeletedPorts []string `json:"deleted_ports,omitempty"`
	// Networks are added or replaced, by id.
	Networks []Network `json:"networks,omitempty"`
	// DeletedNetworks are gone from this host (no port of theirs is left
	// here); their FDB goes with them.
	DeletedNetworks []string `json:"deleted_networks,omitempty"`
	// FDB replaces the whole l2 population of each network listed.
	FDB []NetworkFDB `json:"fdb,omitempty"`
	// TunnelEndpoints, when not nil, replaces the whole list.
	TunnelEndpoints []TunnelEndpoint `json:"tunnel_endpoints,omitempty"`
	// TunnelEndpointsChanged says TunnelEndpoints is set, even when empty.
	TunnelEndpointsChanged bool `json:"tunnel_endpoints_changed,omitempty"`
	// SecurityGroups are added or replaced whole (rules included), by id.
	SecurityGroups []SecurityGroup `json:"security_groups,omitempty"`
	// DeletedSecurityGroups are no longer used by any port of this host.
	DeletedSecurityGroups []string `json:"deleted_security_groups,omitempty"`
	// RemoteGroups replace the member addresses of each group listed.
	RemoteGroups []RemoteGroup `json:"remote_groups,omitempty"`
	// DeletedRemoteGroups are no longer named by any rule of this host's
	// groups; their member addresses can go.
	DeletedRemoteGroups []string `json:"deleted_remote_groups,omitempty"`
}

// DHCPUpdate changes part of a host's DHCPState.
type DHCPUpdate struct {
	// Networks are added or replaced whole, by id.
	Networks []DHCPNetwork `json:"networks,omitempty"`
	// DeletedNetworks are no longer served by this host.
	DeletedNetworks []string `json:"deleted_networks,omitempty"`
	// Ports are added or replaced in their network, by id.
	Ports []Port `json:"ports,omitempty"`
	// DeletedPorts are removed from their network.
	DeletedPorts []PortRef `json:"deleted_ports,omitempty"`
}

// PortRef names a port of a network.
type PortRef struct {
	NetworkID string `json:"network_id"`
	ID        string `json:"id"`
}

// PortStatus reports ports an agent wired (Up) or unwired (Down).
type PortStatus struct {
	Version int      `json:"version"`
	Host    string   `json:"host"`
	Up      []string `json:"up,omitempty"`
	Down    []string `json:"down,omitempty"`
}

// PortStatusReply answers a PortStatus.
type PortStatusReply struct {
	Version int `json:"version"`
	// Unknown are the reported ports that do not exist or are not bound to
	// the reporting host; their status was left alone.
	Unknown []string `json:"unknown,omitempty"`
}

// Map returns the configurations as a ReportState carries them.
func (c L2Configurations) Map() map[string]any { return toMap(c) }

// Map returns the configurations as a ReportState carries them.
func (c DHCPConfigurations) Map() map[string]any { return toMap(c) }

// Map returns the configurations as a ReportState carries them.
func (c L3Configurations) Map() map[string]any { return toMap(c) }

// ParseL3Configurations reads an l3 agent's reported (or stored)
// configurations; unknown keys are ignored.
func ParseL3Configurations(m map[string]any) (L3Configurations, error) {
	return fromMap[L3Configurations](m)
}

// ParseL2Configurations reads an Open vSwitch agent's reported (or
// stored) configurations; unknown keys are ignored.
func ParseL2Configurations(m map[string]any) (L2Configurations, error) {
	return fromMap[L2Configurations](m)
}

func toMap(v any) map[string]any {
	data, err := json.Marshal(v)
	if err != nil {
		// Plain structs of strings, numbers and maps always encode.
		panic(fmt.Sprintf("msg: encode %T: %v", v, err))
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		panic(fmt.Sprintf("msg: decode %T: %v", v, err))
	}
	return m
}

func fromMap[T any](m map[string]any) (T, error) {
	var out T
	data, err := json.Marshal(m)
	if err != nil {
		return out, fmt.Errorf("msg: encode configurations: %w", err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("msg: configurations: %w", err)
	}
	return out, nil
}

// L3AgentModeLegacy is the only l3 agent mode neutrino has: every router
// lives whole (interfaces, SNAT, floating IPs) on one agent's host.
const L3AgentModeLegacy = "legacy"

// L3Configurations are what an l3 agent reports, with Neutron's keys.
type L3Configurations struct {
	// AgentMode is L3AgentModeLegacy.
	AgentMode string `json:"agent_mode"`
	// InterfaceDriver plugs router interfaces ("openvswitch").
	InterfaceDriver string `json:"interface_driver"`
	// HandleInternalOnlyRouters says routers without a gateway are
	// scheduled here too.
	HandleInternalOnlyRouters bool `json:"handle_internal_only_routers"`
	// GatewayExternalNetworkID limits the agent to one external network
	// ("" for any).
	GatewayExternalNetworkID string `json:"gateway_external_network_id"`
	// Routers, Interfaces, FloatingIPs and ExGWPorts count what the
	// agent serves.
	Routers     int `json:"routers"`
	Interfaces  int `json:"interfaces"`
	FloatingIPs int `json:"floating_ips"`
	ExGWPorts   int `json:"ex_gw_ports"`
	// LogAgentHeartbeats is always false here; Neutron reports it.
	LogAgentHeartbeats bool `json:"log_agent_heartbeats"`
}

// L3State is the desired state of a host's l3 role.
type L3State struct {
	// Routers are the routers scheduled to this host's l3 agent, by id.
	Routers []Router `json:"routers"`
}

// Router is a router as the l3 role needs it: everything its namespace
// holds. Notifications replace a router whole; the agent applies the
// difference to what it has.
type Router struct {
	ID           string `json:"id"`
	ProjectID    string `json:"project_id"`
	AdminStateUp bool   `json:"admin_state_up"`
	// EnableSNAT is external_gateway_info.enable_snat (false without a
	// gateway).
	EnableSNAT bool `json:"enable_snat"`
	// Gateway is the router's port on its external network; nil without
	// an external gateway.
	Gateway *RouterPort `json:"gateway"`
	// Interfaces are the router's ports on internal networks
	// (device_owner network:router_interface), by port id.
	Interfaces []RouterPort `json:"interfaces"`
	// Routes are the extra routes, by destination then nexthop.
	Routes []HostRoute `json:"routes"`
	// FloatingIPs are the floating IPs associated with a port through this
	// router, by id. Unassociated floating IPs are not here.
	FloatingIPs []FloatingIP `json:"floating_ips"`
	// Revision is the router's revision_number.
	Revision int64 `json:"revision"`
}

// RouterPort is a router's gateway port or one of its interfaces.
type RouterPort struct {
	// ID is the port's id; its device is named after it (qr-/qg- plus
	// the id's first 11 characters, as Neutron does).
	ID           string `json:"id"`
	MAC          string `json:"mac_address"`
	AdminStateUp bool   `json:"admin_state_up"`
	NetworkID    string `json:"network_id"`
	MTU          int    `json:"mtu"`
	// Segment is the network's provider segment (the external network's
	// for a gateway).
	Segment Segment `json:"segment"`
	// FixedIPs are the port's addresses with their subnets, by subnet
	// then address.
	FixedIPs []RouterIP `json:"fixed_ips"`
	// Status is the port's status as the server knows it.
	Status   string `json:"status"`
	Revision int64  `json:"revision"`
}

// RouterIP is one address of a router port and its subnet.
type RouterIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
	// CIDR is the subnet's; the address is configured with its prefix
	// length.
	CIDR      string `json:"cidr"`
	IPVersion int    `json:"ip_version"`
	// GatewayIP is the subnet's gateway ("" without one): on a gateway
	// port, the router's default route.
	GatewayIP string `json:"gateway_ip,omitempty"`
}

// FloatingIP is a 1:1 NAT of a router: traffic to FloatingIPAddress goes
// to FixedIPAddress of PortID, and that address's traffic leaves from
// FloatingIPAddress.
type FloatingIP struct {
	ID                string `json:"id"`
	FloatingIPAddress string `json:"floating_ip_address"`
	FixedIPAddress    string `json:"fixed_ip_address"`
	// PortID is the internal port the floating IP is associated with.
	PortID string `json:"port_id"`
	// FloatingNetworkID is the external network of the floating IP.
	FloatingNetworkID string `json:"floating_network_id"`
	// Status is the status as the server knows it ("ACTIVE", "DOWN").
	Status   string `json:"status"`
	Revision int64  `json:"revision"`
}

// L3Update changes part of a host's L3State.
type L3Update struct {
	// Routers are added or replaced whole, by id.
	Routers []Router `json:"routers,omitempty"`
	// DeletedRouters are gone from this host (deleted or scheduled
	// elsewhere): their namespaces go.
	DeletedRouters []string `json:"deleted_routers,omitempty"`
}

// FloatingIPStatus reports floating IPs an l3 agent configured (Active) or
// could not or no longer does (Down).
type FloatingIPStatus struct {
	Version int      `json:"version"`
	Host    string   `json:"host"`
	Active  []string `json:"active,omitempty"`
	Down    []string `json:"down,omitempty"`
}

// FloatingIPStatusReply answers a FloatingIPStatus.
type FloatingIPStatusReply struct {
	Version int `json:"version"`
	// Unknown are the reported floating IPs that do not exist or whose
	// router is not scheduled to the reporting host; their status was
	// left alone.
	Unknown []string `json:"unknown,omitempty"`
}

// MethodMetadataLookup finds the instance behind a metadata request
// (MetadataLookup → MetadataLookupReply).
const MethodMetadataLookup = "metadata_lookup"

// MetadataLookup asks which instance sent a metadata request: the port
// holding IP on one of the router's internal networks (RouterID) or on
// the network (NetworkID).
type MetadataLookup struct {
	Version   int    `json:"version"`
	RouterID  string `json:"router_id,omitempty"`
	NetworkID string `json:"network_id,omitempty"`
	IP        string `json:"ip"`
}

// MetadataLookupReply names the instance; Found is false when no port
// matched.
type MetadataLookupReply struct {
	Version    int    `json:"version"`
	Found      bool   `json:"found"`
	InstanceID string `json:"instance_id,omitempty"`
	ProjectID  string `json:"project_id,omitempty"`
	PortID     string `json:"port_id,omitempty"`
}
