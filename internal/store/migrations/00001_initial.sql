-- +goose Up
-- Every API resource has a table with id, project_id, revision_number and
-- its JSON document (data), plus indexed columns for the attributes that
-- lists filter on. Relational constraints keep the data true under
-- concurrency across server replicas.

CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id);

-- One row per network segment; the unique key keeps two networks from
-- sharing a VLAN, VNI or flat physical network.
CREATE TABLE segments (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL DEFAULT '',
    segmentation_id BIGINT NOT NULL DEFAULT 0,
    UNIQUE (network_type, physical_network, segmentation_id)
);
CREATE INDEX segments_network ON segments (network_id);

CREATE TABLE subnetpools (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX subnetpools_project ON subnetpools (project_id);

-- At most one default subnet pool per IP version, even when several
-- servers mark pools default at the same time.
CREATE TABLE default_subnetpools (
    ip_version INTEGER PRIMARY KEY,
    subnetpool_id TEXT NOT NULL UNIQUE REFERENCES subnetpools (id) ON DELETE CASCADE
);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    cidr TEXT,
    subnetpool_id TEXT
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_pool ON subnets (subnetpool_id);
CREATE INDEX subnets_project ON subnets (project_id);

CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    mac_address TEXT,
    device_id TEXT,
    device_owner TEXT,
    binding_host_id TEXT,
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_network ON ports (network_id);
CREATE INDEX ports_device ON ports (device_id);
CREATE INDEX ports_project ON ports (project_id);
CREATE INDEX ports_host ON ports (binding_host_id);
CREATE INDEX ports_device_owner ON ports (device_owner);
CREATE INDEX ports_mac_address ON ports (mac_address);

-- One row per allocated address; the primary key keeps two ports from
-- holding the same address on a network, across server replicas. ip_sort
-- is a fixed-width hex form that sorts in address order, so free addresses
-- are found without scanning the subnet.
CREATE TABLE ipallocations (
    network_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    ip_sort TEXT NOT NULL,
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    PRIMARY KEY (network_id, ip_address)
);
CREATE INDEX ipallocations_subnet ON ipallocations (subnet_id, ip_sort);
CREATE INDEX ipallocations_port ON ipallocations (port_id);

CREATE TABLE routers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    gw_port_id TEXT
);
CREATE INDEX routers_project ON routers (project_id);

-- A floating IP holds its floating port; its association points at the
-- fixed port and the router that reaches it, so neither can disappear
-- under it. One floating IP per (fixed port, fixed IP) and external network.
CREATE TABLE floatingips (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    floating_network_id TEXT NOT NULL REFERENCES networks (id),
    floating_ip_address TEXT,
    floating_port_id TEXT REFERENCES ports (id),
    router_id TEXT REFERENCES routers (id),
    port_id TEXT REFERENCES ports (id),
    fixed_ip_address TEXT,
    UNIQUE (floating_network_id, port_id, fixed_ip_address)
);
CREATE INDEX floatingips_port ON floatingips (port_id);
CREATE INDEX floatingips_router ON floatingips (router_id);
CREATE INDEX floatingips_project ON floatingips (project_id);
CREATE INDEX floatingips_network ON floatingips (floating_network_id);

CREATE TABLE security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id);

-- Exactly one default security group per project.
CREATE TABLE default_security_groups (
    project_id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE
);

-- A group's rules, and the rules of other groups naming it as their remote
-- group, go with it (as in Neutron). rule_key is the rule's canonical form
-- (group included), written by package secgroup in the transaction that
-- adds the rule: its unique index keeps replicas adding the same rule at
-- once from both succeeding.
CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    remote_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
    rule_key TEXT
);
CREATE UNIQUE INDEX security_group_rules_key ON security_group_rules (rule_key);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id);
CREATE INDEX security_group_rules_project ON security_group_rules (project_id);

-- Which groups each port uses. The foreign key keeps a group from being
-- deleted while a port uses it, across server replicas.
CREATE TABLE security_group_port_bindings (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX security_group_port_bindings_group ON security_group_port_bindings (security_group_id);

CREATE TABLE rbac_policies (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_tenant TEXT NOT NULL,
    UNIQUE (object_type, object_id, action, target_tenant)
);
CREATE INDEX rbac_policies_object ON rbac_policies (object_id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    revision_number BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    agent_type TEXT NOT NULL,
    host TEXT NOT NULL,
    UNIQUE (agent_type, host)
);

-- Which DHCP agents serve which networks (dhcp_agent_scheduler).
CREATE TABLE network_dhcp_agents (
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (network_id, agent_id)
);
CREATE INDEX network_dhcp_agents_agent ON network_dhcp_agents (agent_id);

-- Routers are legacy (not HA, not distributed): one l3 agent each, so the
-- router is the key and two replicas cannot both schedule one.
CREATE TABLE router_l3_agents (
    router_id TEXT PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX router_l3_agents_agent ON router_l3_agents (agent_id);

-- Agent notifications. A change writes, in its own transaction, one row
-- per host that must hear of it; any server replica drains the rows,
-- numbers each host's notifications in host_sequences and publishes them.
-- A change is thus never lost: its row stays until a server numbers it,
-- and an agent that misses a number (a server died before publishing)
-- resyncs. A new epoch (a new database) tells agents that numbering
-- started again.
CREATE TABLE agent_outbox (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    network_id TEXT NOT NULL DEFAULT '',
    port_id TEXT NOT NULL DEFAULT '',
    security_group_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE host_sequences (
    host TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL
);

-- Instance metadata of instances neutrino itself runs (`neutrino vm`),
-- served by the built-in metadata service, keyed by the ports' device_id.
CREATE TABLE instance_metadata (
    device_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- One row per project and quota resource, locked (by an upsert) by every
-- quota check before it counts, so that checks of one project's resource
-- take turns across replicas and two creates cannot both take the last
-- slot.
CREATE TABLE quota_locks (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- +goose Down
DROP TABLE quota_locks;
DROP TABLE quotas;
DROP TABLE instance_metadata;
DROP TABLE host_sequences;
DROP TABLE agent_outbox;
DROP TABLE router_l3_agents;
DROP TABLE network_dhcp_agents;
DROP TABLE agents;
DROP TABLE rbac_policies;
DROP TABLE security_group_port_bindings;
DROP TABLE security_group_rules;
DROP TABLE default_security_groups;
DROP TABLE security_groups;
DROP TABLE floatingips;
DROP TABLE routers;
DROP TABLE ipallocations;
DROP TABLE ports;
DROP TABLE subnets;
DROP TABLE default_subnetpools;
DROP TABLE subnetpools;
DROP TABLE segments;
DROP TABLE networks;
