package resource

// Extension is one API extension as GET /v2.0/extensions lists it.
type Extension struct {
	Alias       string `json:"alias"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Updated     string `json:"updated"`
	Links       []any  `json:"links"`
}

// Extensions lists the extensions neutrino implements. Clients and Tempest
// decide what to call from this list, so it names only what really works.
func Extensions() []Extension {
	ext := func(alias, name, desc string) Extension {
		return Extension{Alias: alias, Name: name, Description: desc, Updated: "2026-11-24T00:00:00-00:00", Links: []any{}}
	}
	return []Extension{
		ext("agent", "agent", "The agent management extension."),
		ext("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
		ext("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
		ext("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
		ext("dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents"),
		ext("external-net", "Neutron external network", "Adds external network attribute to network resource."),
		ext("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)"),
		ext("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
		ext("extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side by atomically adding/removing extra routes"),
		ext("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
		ext("l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents"),
		ext("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
		ext("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."),
		ext("network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and subnet."),
		ext("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
		ext("port-security", "Port Security", "Provides port security"),
		ext("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
		ext("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
		ext("quotas", "Quota management support", "Expose functions for quotas management per project"),
		ext("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"),
		ext("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access to resources."),
		ext("revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported."),
		ext("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."),
		ext("security-group", "security-group", "The security groups extension."),
		ext("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
		ext("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
		ext("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."),
		ext("standard-attr-tag", "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip", "Enables to set tag on resources with standard attribute."),
		ext("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
		ext("subnetpool-prefix-ops", "Subnet Pool Prefix Operations", "Provides support for adjusting the prefix list of subnet pools"),
		ext("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
	}
}
