// Package l2 owns the l2 role of the agent: the Open vSwitch dataplane of a
// node. It keeps br-int (every VIF, a node-local VLAN per network, switching
// by flows, port security against spoofed MAC, IP, ARP, DHCP servers and
// router advertisements, and security groups as a conntrack firewall with
// remote groups as conjunctive matches: firewall.go), br-tun
// (tunnels to the other nodes, local VLAN ↔ tunnel id, l2 population:
// unicast straight to the right tunnel, flooding only to nodes that have
// ports on the network, local ARP answers) and one br-<physnet> per bridge
// mapping (local VLAN ↔ provider VLAN, untagged for flat) in the state the
// server wants, notices VIFs being plugged and unplugged from OVSDB events,
// and reports ports up and down.
//
// The flows are a pure function of the desired state (Compile, the tables
// in tables.go, docs/pipeline.md); the reconciler installs the difference
// with atomic OpenFlow 1.4 bundles, stamping every flow with a cookie of the
// agent's run, so a restarted agent replaces its flows in place and deletes
// only stale ones without interrupting traffic.
package l2
