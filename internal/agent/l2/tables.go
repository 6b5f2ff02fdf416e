package l2

import "fmt"

// Table is an OpenFlow table of the l2 pipeline. Each table has one job;
// docs/pipeline.md describes them one by one. br-tun keeps the numbers of
// Neutron's OVS agent, whose tables there have the same jobs, so operators
// who know its dumps can read ours. br-int switches by flows instead of
// NORMAL, so its tables are numbered in the order a packet visits them
// (goto_table only goes forward), ten apart: each hook has room for the
// tables a later stage (port security, firewall) needs.
type Table uint8

// br-int tables, in the order a packet visits them.
const (
	// IntClassify admits packets by input port: a wired VIF gets its
	// network's local VLAN pushed (and reg6 set to it), a packet from a
	// physical bridge has its provider VLAN translated to the local one, a
	// packet from br-tun already carries its local VLAN. Unknown and
	// isolated ports are dropped.
	IntClassify Table = 0
	// IntSpoofGuard is port security: a VIF with it may send only from its
	// MAC and addresses (and allowed address pairs), ARP only for them, DHCP
	// and neighbour discovery as a client, and no DHCP server replies or
	// router advertisements. IP goes on to IntEgressFirewall; VIFs without
	// port security pass everything on.
	IntSpoofGuard Table = 10
	// IntEgressFirewall sends the IP packets of VIFs with port security
	// through conntrack (zone = reg6) to IntEgressRules; others pass on.
	IntEgressFirewall Table = 20
	// IntEgressRules allows replies of allowed connections and what the
	// security-group egress rules allow (committing new connections), and
	// drops the rest.
	IntEgressRules Table = 21
	// IntForward is the L2 switch: by local VLAN and destination MAC it
	// picks the local VIF (reg5 = its OpenFlow port, then IntIngressFirewall),
	// floods broadcast and multicast to the uplink and to every local VIF of
	// the network (each copy through IntIngressFirewall), and sends unknown
	// unicast to the uplink only.
	IntForward Table = 30
	// IntIngressFirewall is the hook for security-group ingress rules of
	// packets about to reach a local VIF (reg5). Unicast between two VIFs on
	// the same node passes here too, because nothing is switched by NORMAL.
	// For a VIF with port security it passes ARP, DHCP replies and
	// neighbour discovery, and sends IP through conntrack (zone = the
	// network's local VLAN, loaded into reg6) to IntIngressRules.
	IntIngressFirewall Table = 40
	// IntIngressRules allows replies of allowed connections and what the
	// security-group ingress rules allow (committing new connections), and
	// drops the rest.
	IntIngressRules Table = 41
	// IntOutput delivers to the VIF in reg5, untagged.
	IntOutput Table = 50
)

// br-tun tables.
const (
	// TunClassify sends packets from br-int to TunFromInt and packets from
	// each tunnel port to the table of its tunnel type.
	TunClassify Table = 0
	// TunFromInt splits packets from br-int: ARP broadcasts to
	// TunARPResponder, other unicast to TunUnicast, multicast to TunFlood.
	TunFromInt Table = 2
	// TunFromGRE, TunFromVXLAN and TunFromGeneve map a tunnel id of their
	// type to the network's local VLAN and hand the packet to br-int.
	TunFromGRE    Table = 3
	TunFromVXLAN  Table = 4
	TunFromGeneve Table = 6
	// TunUnicast sends a packet to a MAC known (by l2 population) to live on
	// another node straight to that node's tunnel; unknown MACs are flooded.
	TunUnicast Table = 20
	// TunARPResponder answers ARP requests for addresses known by l2
	// population locally, without sending them over any tunnel.
	TunARPResponder Table = 21
	// TunFlood sends broadcast and unknown unicast to the tunnels of the
	// nodes that have ports on the network, and to no other node.
	TunFlood Table = 22
)

// PhysEgress is the only table of a br-<physnet> bridge: packets from
// br-int have their local VLAN rewritten to the provider VLAN (or removed
// for a flat network) and are switched by NORMAL; everything else is
// switched by NORMAL too (the provider VLAN is translated back on br-int).
const PhysEgress Table = 0

// Registers the pipeline keeps per packet.
const (
	// regPort holds the OpenFlow port of the local VIF a packet is being
	// delivered to (IntIngressFirewall, IntOutput).
	regPort = "NXM_NX_REG5[]"
	// regNet holds the local VLAN of the network a packet from a VIF
	// belongs to (for conntrack zones of the firewall).
	regNet = "NXM_NX_REG6[]"
)

// Bridge roles the pipeline programs.
const (
	RoleIntegration = "integration"
	RoleTunnel      = "tunnel"
	RolePhysical    = "physical"
)

// tableNames name the tables in logs, metrics and docs.
var tableNames = map[string]map[Table]string{
	RoleIntegration: {
		IntClassify:        "classify",
		IntSpoofGuard:      "spoof-guard",
		IntEgressFirewall:  "egress-firewall",
		IntEgressRules:     "egress-rules",
		IntForward:         "forward",
		IntIngressFirewall: "ingress-firewall",
		IntIngressRules:    "ingress-rules",
		IntOutput:          "output",
	},
	RoleTunnel: {
		TunClassify:     "classify",
		TunFromInt:      "from-int",
		TunFromGRE:      "from-gre",
		TunFromVXLAN:    "from-vxlan",
		TunFromGeneve:   "from-geneve",
		TunUnicast:      "unicast-to-tunnel",
		TunARPResponder: "arp-responder",
		TunFlood:        "flood-to-tunnels",
	},
	RolePhysical: {
		PhysEgress: "provider-translate",
	},
}

// TableName names table t of a bridge with the given role.
func TableName(role string, t Table) string {
	if n, ok := tableNames[role][t]; ok {
		return n
	}
	return fmt.Sprintf("table-%d", t)
}
