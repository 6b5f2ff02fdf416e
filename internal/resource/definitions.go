package resource

import "strings"

// Neutron's limits on names and descriptions.
const (
	nameLen = 255
	idLen   = 255
)

var (
	name = func() *Attr {
		return &Attr{Name: "name", Type: StringType{MaxLen: nameLen}, Post: true, Put: true, Default: ""}
	}
	adminUp = func() *Attr {
		return &Attr{Name: "admin_state_up", Type: BoolType{}, Post: true, Put: true, Default: true}
	}
	status    = func() *Attr { return &Attr{Name: "status", Type: StringType{}} }
	optUUID   = Nullable{Of: UUIDType{}}
	ipList    = ListType{Of: IPType{}} // the subnet plugin reports duplicates as Neutron does
	routeList = ListType{Of: DictType{
		Fields:   map[string]Type{"destination": CIDRType{}, "nexthop": IPType{}},
		Required: []string{"destination", "nexthop"},
	}}
	fixedIPList = ListType{Of: DictType{
		Fields: map[string]Type{"subnet_id": UUIDType{}, "ip_address": IPType{}},
	}}
)

// fixedIPFilterList is a port's fixed_ips, filtered in lists as
// fixed_ips=ip_address=10.0.0.5 or fixed_ips=subnet_id=<id> (what
// "openstack port list --fixed-ip" sends).
type fixedIPFilterList struct{ ListType }

func (t fixedIPFilterList) ParseFilter(s string) (any, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || (k != "ip_address" && k != "subnet_id") {
		return nil, invalidf("'%s' is not a valid fixed_ips filter, expected ip_address=<ip> or subnet_id=<id>", s)
	}
	return k + "=" + v, nil
}

// Network is the networks collection, with the provider, external-net,
// net-mtu and port-security extensions.
func Network() *Resource {
	return &Resource{
		Singular: "network", Plural: "networks", Table: "networks",
		NotFoundType: "NetworkNotFound", Display: "Network", Standard: true,
		Attrs: []*Attr{
			name(), adminUp(), status(),
			{Name: "subnets", Type: ListType{Of: UUIDType{}}, Default: []any{}, NoSort: true},
			{Name: "shared", Type: BoolType{}, Post: true, Put: true, Default: false},
			{Name: "mtu", Type: IntType{Min: 68, Max: 65535}, Post: true, Put: true, Extension: "net-mtu-writable"},
			{Name: "provider:network_type", Type: Nullable{Of: StringType{MaxLen: 255}}, Post: true, AdminOnly: true, AdminVisible: true, Extension: "provider"},
			{Name: "provider:physical_network", Type: Nullable{Of: StringType{MaxLen: 64}}, Post: true, AdminOnly: true, AdminVisible: true, Extension: "provider"},
			{Name: "provider:segmentation_id", Type: Nullable{Of: IntType{Min: 0, Max: 1<<32 - 1}}, Post: true, AdminOnly: true, AdminVisible: true, Extension: "provider"},
			{Name: "router:external", Type: BoolType{}, Post: true, Put: true, Default: false, AdminOnly: true, Extension: "external-net"},
			// is_default marks the one default external network (Neutron's
			// auto-allocated-topology attribute; its topology API is not
			// implemented, so the extension is not listed).
			{Name: "is_default", Type: BoolType{}, Post: true, Put: true, Default: false, AdminOnly: true},
			{Name: "port_security_enabled", Type: BoolType{}, Post: true, Put: true, Default: true, Extension: "port-security"},
			{Name: "availability_zone_hints", Type: ListType{Of: StringType{MaxLen: 255}}, Default: []any{}, NoSort: true, NoFilter: true},
			{Name: "availability_zones", Type: ListType{Of: StringType{}}, Default: []any{}, NoSort: true, NoFilter: true},
		},
	}
}

// IPv6 modes a subnet may use.
var ipv6Modes = []string{"slaac", "dhcpv6-stateful", "dhcpv6-stateless"}

// Subnet is the subnets collection.
func Subnet() *Resource {
	return &Resource{
		Singular: "subnet", Plural: "subnets", Table: "subnets",
		NotFoundType: "SubnetNotFound", Display: "Subnet", Standard: true,
		Attrs: []*Attr{
			name(),
			{Name: "network_id", Type: UUIDType{}, Post: true, Required: true, Column: true},
			{Name: "ip_version", Type: IntType{Min: 4, Max: 6}, Post: true, Required: true},
			{Name: "cidr", Type: Nullable{Of: CIDRType{}}, Post: true, Column: true},
			{Name: "subnetpool_id", Type: optUUID, Post: true, Column: true, Extension: "subnet_allocation"},
			{Name: "prefixlen", Type: IntType{Min: 0, Max: 128}, Post: true, Hidden: true},
			{Name: "use_default_subnetpool", Type: BoolType{}, Post: true, Hidden: true},
			// shared is not shown but filters: whether the subnet's network
			// is shared with the caller.
			{Name: "shared", Type: BoolType{}, Hidden: true, Filter: true, NoSort: true},
			{Name: "gateway_ip", Type: Nullable{Of: IPType{}}, Post: true, Put: true},
			{Name: "allocation_pools", Type: ListType{Of: DictType{
				Fields:   map[string]Type{"start": IPType{}, "end": IPType{}},
				Required: []string{"start", "end"},
			}}, Post: true, Put: true, NoSort: true, NoFilter: true},
			{Name: "dns_nameservers", Type: ipList, Post: true, Put: true, Default: []any{}, NoSort: true},
			{Name: "host_routes", Type: routeList, Post: true, Put: true, Default: []any{}, NoSort: true, NoFilter: true},
			{Name: "enable_dhcp", Type: BoolType{}, Post: true, Put: true, Default: true},
			{Name: "ipv6_ra_mode", Type: Nullable{Of: StringType{Enum: ipv6Modes}}, Post: true},
			{Name: "ipv6_address_mode", Type: Nullable{Of: StringType{Enum: ipv6Modes}}, Post: true},
		},
	}
}

// VNIC types a port binding may request, as Neutron lists them.
var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "vdpa", "remote-managed"}

// Port is the ports collection, with binding, port-security,
// allowed-address-pairs and extra_dhcp_opt.
func Port() *Resource {
	return &Resource{
		Singular: "port", Plural: "ports", Table: "ports",
		NotFoundType: "PortNotFound", Display: "Port", Standard: true,
		Attrs: []*Attr{
			name(), adminUp(), status(),
			{Name: "network_id", Type: UUIDType{}, Post: true, Required: true, Column: true},
			{Name: "mac_address", Type: MACType{}, Post: true, Put: true, Column: true},
			{Name: "fixed_ips", Type: fixedIPFilterList{fixedIPList}, Post: true, Put: true, NoSort: true},
			{Name: "device_id", Type: StringType{MaxLen: idLen}, Post: true, Put: true, Default: "", Column: true},
			{Name: "device_owner", Type: StringType{MaxLen: idLen}, Post: true, Put: true, Default: "", Column: true},
			{Name: "security_groups", Type: ListType{Of: UUIDType{}, Unique: true}, Post: true, Put: true, NoSort: true, Extension: "security-group"},
			{Name: "port_security_enabled", Type: BoolType{}, Post: true, Put: true, Extension: "port-security"},
			{Name: "allowed_address_pairs", Type: ListType{Of: DictType{
				// The port plugin validates ip_address (an address or a CIDR,
				// shown as given).
				Fields:   map[string]Type{"ip_address": StringType{MaxLen: 64}, "mac_address": MACType{}},
				Required: []string{"ip_address"},
			}}, Post: true, Put: true, Default: []any{}, NoSort: true, NoFilter: true, Extension: "allowed-address-pairs"},
			{Name: "extra_dhcp_opts", Type: ListType{Of: DictType{
				Fields: map[string]Type{
					"opt_name": StringType{MaxLen: 255}, "opt_value": Nullable{Of: StringType{MaxLen: 255}},
					"ip_version": Nullable{Of: IntType{Min: 4, Max: 6}},
				},
				Required: []string{"opt_name"},
			}}, Post: true, Put: true, Default: []any{}, NoSort: true, NoFilter: true, Extension: "extra_dhcp_opt"},
			{Name: "binding:host_id", Type: StringType{MaxLen: 255}, Post: true, Put: true, Default: "", AdminOnly: true, AdminVisible: true, Column: true, Extension: "binding"},
			{Name: "binding:vnic_type", Type: StringType{Enum: vnicTypes}, Post: true, Put: true, Default: "normal", Extension: "binding"},
			{Name: "binding:profile", Type: Nullable{Of: AnyType{}}, Post: true, Put: true, Default: map[string]any{}, AdminOnly: true, AdminVisible: true, NoFilter: true, NoSort: true, Extension: "binding"},
			{Name: "binding:vif_type", Type: StringType{}, Default: "unbound", AdminVisible: true, Extension: "binding"},
			{Name: "binding:vif_details", Type: AnyType{}, Default: map[string]any{}, AdminVisible: true, NoFilter: true, NoSort: true, Extension: "binding"},
		},
	}
}

// Router is the routers collection with extraroute and ext-gw-mode.
func Router() *Resource {
	return &Resource{
		Singular: "router", Plural: "routers", Table: "routers",
		NotFoundType: "RouterNotFound", Display: "Router", Standard: true,
		Attrs: []*Attr{
			name(), adminUp(), status(),
			// network_id is required unless the dict is empty, which
			// (like null) clears the gateway; the l3 hooks check it.
			{Name: "external_gateway_info", Type: Nullable{Of: DictType{
				Fields: map[string]Type{
					"network_id": UUIDType{}, "enable_snat": BoolType{},
					"external_fixed_ips": fixedIPList,
				},
			}}, Post: true, Put: true, NoSort: true, NoFilter: true},
			{Name: "routes", Type: routeList, Put: true, Default: []any{}, NoSort: true, NoFilter: true, Extension: "extraroute"},
			{Name: "gw_port_id", Type: Nullable{Of: UUIDType{}}, Hidden: true, Column: true},
		},
	}
}

// FloatingIP is the floatingips collection.
func FloatingIP() *Resource {
	return &Resource{
		Singular: "floatingip", Plural: "floatingips", Table: "floatingips",
		NotFoundType: "FloatingIPNotFound", Display: "Floating IP", Standard: true,
		Attrs: []*Attr{
			status(),
			{Name: "floating_ip_address", Type: Nullable{Of: IPType{}}, Post: true, Column: true},
			{Name: "floating_network_id", Type: UUIDType{}, Post: true, Required: true, Column: true},
			{Name: "subnet_id", Type: optUUID, Post: true, Hidden: true},
			{Name: "router_id", Type: optUUID, Column: true},
			{Name: "port_id", Type: optUUID, Post: true, Put: true, Column: true},
			{Name: "fixed_ip_address", Type: Nullable{Of: IPType{}}, Post: true, Put: true, Column: true},
			{Name: "floating_port_id", Type: optUUID, Hidden: true, Column: true},
		},
	}
}

// SecurityGroup is the security-groups collection.
func SecurityGroup() *Resource {
	return &Resource{
		Singular: "security_group", Plural: "security-groups", Table: "security_groups",
		NotFoundType: "SecurityGroupNotFound", Display: "Security group", NotFoundFormat: "Security group %s does not exist", Standard: true,
		Attrs: []*Attr{
			name(),
			{Name: "security_group_rules", Type: ListType{Of: AnyType{}}, Default: []any{}, NoSort: true, NoFilter: true},
			{Name: "stateful", Type: BoolType{}, Default: true},
		},
	}
}

// SecurityGroupRule is the security-group-rules collection.
func SecurityGroupRule() *Resource {
	return &Resource{
		Singular: "security_group_rule", Plural: "security-group-rules", Table: "security_group_rules",
		NotFoundType: "SecurityGroupRuleNotFound", Display: "Security group rule", NotFoundFormat: "Security group rule %s does not exist", Standard: true,
		Attrs: []*Attr{
			{Name: "security_group_id", Type: UUIDType{}, Post: true, Required: true, Column: true},
			// Not checked as a UUID: as in Neutron, a remote group that
			// does not exist is a 404 SecurityGroupNotFound, whatever its id.
			{Name: "remote_group_id", Type: Nullable{Of: StringType{MaxLen: 255}}, Post: true, Column: true},
			{Name: "direction", Type: StringType{Enum: []string{"ingress", "egress"}}, Post: true, Required: true},
			// Protocol, ports, ethertype and prefix are converted by the
			// secgroup package, which raises Neutron's own error types.
			{Name: "protocol", Type: Nullable{Of: AnyType{}}, Post: true},
			{Name: "port_range_min", Type: Nullable{Of: AnyType{}}, Post: true},
			{Name: "port_range_max", Type: Nullable{Of: AnyType{}}, Post: true},
			{Name: "ethertype", Type: AnyType{}, Post: true, Default: "IPv4"},
			{Name: "remote_ip_prefix", Type: Nullable{Of: AnyType{}}, Post: true},
		},
	}
}

// SubnetPool is the subnetpools collection (subnet_allocation).
func SubnetPool() *Resource {
	return &Resource{
		Singular: "subnetpool", Plural: "subnetpools", Table: "subnetpools",
		NotFoundType: "SubnetPoolNotFound", Display: "Subnet pool", Standard: true,
		Attrs: []*Attr{
			{Name: "name", Type: StringType{MaxLen: nameLen}, Post: true, Put: true, Required: true},
			{Name: "prefixes", Type: ListType{Of: CIDRType{}}, Post: true, Put: true, Required: true, NoSort: true},
			{Name: "default_prefixlen", Type: IntType{Min: 0, Max: 128}, Post: true, Put: true},
			{Name: "min_prefixlen", Type: IntType{Min: 0, Max: 128}, Post: true, Put: true},
			{Name: "max_prefixlen", Type: IntType{Min: 0, Max: 128}, Post: true, Put: true},
			{Name: "ip_version", Type: IntType{Min: 4, Max: 6}},
			{Name: "shared", Type: BoolType{}, Post: true, Default: false, AdminOnly: true},
			{Name: "is_default", Type: BoolType{}, Post: true, Put: true, Default: false, AdminOnly: true},
			{Name: "default_quota", Type: Nullable{Of: IntType{Min: 0, Max: 1 << 31}}, Post: true, Put: true},
			{Name: "address_scope_id", Type: optUUID},
		},
	}
}

// RBACPolicy is the rbac-policies collection.
func RBACPolicy() *Resource {
	return &Resource{
		Singular: "rbac_policy", Plural: "rbac-policies", Table: "rbac_policies",
		NotFoundType: "RbacPolicyNotFound", Display: "RBAC policy",
		Attrs: []*Attr{
			{Name: "object_type", Type: StringType{Enum: []string{"network"}}, Post: true, Required: true, Column: true},
			{Name: "object_id", Type: UUIDType{}, Post: true, Required: true, Column: true},
			{Name: "action", Type: StringType{Enum: []string{"access_as_shared", "access_as_external"}}, Post: true, Required: true, Column: true},
			{Name: "target_tenant", Type: StringType{MaxLen: 255}, Post: true, Put: true, Required: true, Column: true},
		},
	}
}

// Agent is the agents collection; agents create themselves over the bus.
func Agent() *Resource {
	return &Resource{
		Singular: "agent", Plural: "agents", Table: "agents",
		NotFoundType: "AgentNotFound", Display: "Agent", NoProject: true,
		Attrs: []*Attr{
			{Name: "agent_type", Type: StringType{}, Column: true},
			{Name: "binary", Type: StringType{}},
			{Name: "topic", Type: StringType{}},
			{Name: "host", Type: StringType{}, Column: true},
			{Name: "admin_state_up", Type: BoolType{}, Put: true, Default: true},
			{Name: "alive", Type: BoolType{}},
			{Name: "availability_zone", Type: Nullable{Of: StringType{}}},
			{Name: "description", Type: Nullable{Of: StringType{MaxLen: 255}}, Put: true},
			{Name: "configurations", Type: AnyType{}, NoFilter: true, NoSort: true},
			{Name: "resources_synced", Type: Nullable{Of: BoolType{}}},
			{Name: "created_at", Type: StringType{}},
			{Name: "started_at", Type: StringType{}},
			{Name: "heartbeat_timestamp", Type: StringType{}},
		},
	}
}

// All returns every resource description the API serves.
func All() []*Resource {
	return []*Resource{
		Network(), Subnet(), Port(), Router(), FloatingIP(),
		SecurityGroup(), SecurityGroupRule(), SubnetPool(), RBACPolicy(), Agent(),
	}
}
