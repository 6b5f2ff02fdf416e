package l2

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// TunnelKey names one tunnel port: its type and the remote node's tunnel IP.
type TunnelKey struct {
	Type     string
	RemoteIP string
}

// PhysicalBridge is a br-<physnet> bridge with its patch pair to br-int.
type PhysicalBridge struct {
	Bridge string
	// IntPort is the OpenFlow port of the patch on br-int (int-br-…),
	// PhysPort the one of its peer on the physical bridge (phy-br-…);
	// 0 while OVS has not numbered them yet.
	IntPort, PhysPort int
}

// Wiring is the complete state the flows are compiled from, every port
// already resolved to its OpenFlow port number. Ports OVS has not numbered
// yet (0) are left out of the flows that would need them.
type Wiring struct {
	// Run is the agent run stamped into every cookie.
	Run uint64
	// IntBridge and TunBridge name br-int and br-tun.
	IntBridge, TunBridge string
	// PatchInt is the OpenFlow port on br-int of the patch to br-tun,
	// PatchTun the one on br-tun of the patch to br-int.
	PatchInt, PatchTun int
	// Physical maps each physical network to its bridge.
	Physical map[string]PhysicalBridge
	// Tunnels maps tunnel ports to their OpenFlow ports on br-tun.
	Tunnels map[TunnelKey]int
	// Networks are the networks with ports on this node.
	Networks []LocalNetwork
	// SecurityGroups are the groups of the ports with port security, by id.
	SecurityGroups map[string]msg.SecurityGroup
	// RemoteGroups are the members of every group a rule names as its
	// remote group (their addresses, and by network when the server says),
	// by group id.
	RemoteGroups map[string]msg.RemoteGroup
	// Isolated are VIFs plugged into br-int that must not pass any packet:
	// their desired state is not known yet, their port is administratively
	// down, or their network cannot be wired here (Neutron's dead VLAN).
	Isolated []int
}

// LocalNetwork is a network with ports on this node.
type LocalNetwork struct {
	ID string
	// VLAN is the network's node-local VLAN on br-int (1-4094).
	VLAN    uint16
	Segment msg.Segment
	// Ports are its wired VIFs on this node.
	Ports []LocalPort
	// FloodTo are the tunnel IPs of the other nodes with ports on a
	// tunnelled network: broadcast and unknown unicast go to them only.
	FloodTo []string
	// Remote are the ports on other nodes (l2 population).
	Remote []msg.FDBEntry
	// CIDRs are its subnets, as the server sent them (msg.Network.CIDRs).
	CIDRs []string
}

// LocalPort is a wired VIF.
type LocalPort struct {
	ID     string
	OFPort int
	// MACs are the addresses delivered to the port: its own, and those of
	// its allowed address pairs.
	MACs []string
	// Security is its port security and firewall; nil passes everything.
	Security *PortSecurity
}

// Compiled is the flows of every bridge, by bridge name.
type Compiled struct {
	Bridges map[string]FlowSet
	// Problems lists entries that were left out because they are invalid or
	// contradict another entry (duplicate MAC on a network, bad address…).
	Problems []string
}

type compiler struct {
	w   Wiring
	out Compiled
	// secured collects the wired VIFs with port security for the firewall.
	secured []LocalPort
}

// Compile turns the wiring into the complete flows of br-int, br-tun and
// every physical bridge. It is pure: the same wiring always gives the same
// flows.
func Compile(w Wiring) Compiled {
	c := &compiler{w: w, out: Compiled{Bridges: map[string]FlowSet{}}}
	c.bridge(w.IntBridge)
	c.bridge(w.TunBridge)
	for _, pb := range w.Physical {
		c.bridge(pb.Bridge)
	}
	c.integrationBase()
	c.tunnelBase()
	physnets := make([]string, 0, len(w.Physical))
	for name := range w.Physical {
		physnets = append(physnets, name)
	}
	sort.Strings(physnets)
	for _, name := range physnets {
		c.physicalBase(w.Physical[name])
	}
	for _, port := range w.Isolated {
		if port > 0 {
			// Neutron's dead VLAN: nothing from this port enters the pipeline.
			c.add(w.IntBridge, IntClassify, 2, "in_port="+itoa(port), "drop")
		}
	}
	nets := append([]LocalNetwork(nil), w.Networks...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].VLAN < nets[j].VLAN })
	for _, n := range nets {
		c.network(n)
	}
	if len(c.secured) > 0 {
		c.firewallBase()
		c.firewall(c.secured)
	}
	return c.out
}

func (c *compiler) bridge(name string) {
	if name != "" && c.out.Bridges[name] == nil {
		c.out.Bridges[name] = FlowSet{}
	}
}

func (c *compiler) problem(format string, args ...any) {
	c.out.Problems = append(c.out.Problems, fmt.Sprintf(format, args...))
}

// add adds a flow; a second flow with the same identity is a compiler bug.
func (c *compiler) add(bridge string, t Table, prio uint16, match, actions string) {
	set := c.out.Bridges[bridge]
	if set == nil {
		return
	}
	f := Flow{Table: t, Priority: prio, Match: match, Actions: actions, Cookie: Cookie(c.w.Run, t)}
	if old, dup := set[f.Key()]; dup && old.Actions != actions {
		c.problem("bridge %s: flow %s given twice (actions %q and %q); keeping the first", bridge, f.matchPart(), old.Actions, actions)
		return
	}
	set[f.Key()] = f
}

func gotoTable(t Table) string { return "goto_table:" + itoa(int(t)) }

func itoa(n int) string { return strconv.Itoa(n) }

// integrationBase is the part of br-int that does not depend on networks:
// default drops, the hook tables passing packets on, and packets from br-tun.
func (c *compiler) integrationBase() {
	b := c.w.IntBridge
	c.add(b, IntClassify, 0, "", "drop")
	c.add(b, IntSpoofGuard, 0, "", gotoTable(IntEgressFirewall))
	c.add(b, IntEgressFirewall, 0, "", gotoTable(IntForward))
	c.add(b, IntForward, 0, "", "drop")
	c.add(b, IntIngressFirewall, 0, "", gotoTable(IntOutput))
	c.add(b, IntOutput, 0, "", "drop")
	if c.w.PatchInt > 0 {
		// br-tun only hands over packets it has tagged with a local VLAN.
		c.add(b, IntClassify, 10, "in_port="+itoa(c.w.PatchInt), gotoTable(IntForward))
	}
}

// tunnelBase is the part of br-tun that does not depend on networks.
func (c *compiler) tunnelBase() {
	b := c.w.TunBridge
	if b == "" {
		return
	}
	c.add(b, TunClassify, 0, "", "drop")
	if c.w.PatchTun > 0 {
		c.add(b, TunClassify, 1, "in_port="+itoa(c.w.PatchTun), gotoTable(TunFromInt))
	}
	keys := make([]TunnelKey, 0, len(c.w.Tunnels))
	for k := range c.w.Tunnels {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c.w.Tunnels[keys[i]] < c.w.Tunnels[keys[j]] })
	for _, k := range keys {
		port := c.w.Tunnels[k]
		if t, ok := fromTunnelTable(k.Type); ok && port > 0 {
			c.add(b, TunClassify, 1, "in_port="+itoa(port), gotoTable(t))
		}
	}
	c.add(b, TunFromInt, 1, "arp,dl_dst=ff:ff:ff:ff:ff:ff", gotoTable(TunARPResponder))
	c.add(b, TunFromInt, 0, "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00", gotoTable(TunUnicast))
	c.add(b, TunFromInt, 0, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", gotoTable(TunFlood))
	for _, t := range []Table{TunFromGRE, TunFromVXLAN, TunFromGeneve} {
		c.add(b, t, 0, "", "drop")
	}
	c.add(b, TunUnicast, 0, "", gotoTable(TunFlood))
	c.add(b, TunARPResponder, 0, "", gotoTable(TunFlood))
	c.add(b, TunFlood, 0, "", "drop")
}

func fromTunnelTable(networkType string) (Table, bool) {
	switch networkType {
	case msg.NetworkTypeVXLAN:
		return TunFromVXLAN, true
	case msg.NetworkTypeGRE:
		return TunFromGRE, true
	case msg.NetworkTypeGeneve:
		return TunFromGeneve, true
	}
	return 0, false
}

// physicalBase is the part of a physical bridge that does not depend on
// networks: only translated packets from br-int leave, everything from the
// provider side is switched normally (br-int admits what it knows).
func (c *compiler) physicalBase(pb PhysicalBridge) {
	c.add(pb.Bridge, PhysEgress, 0, "", "NORMAL")
	if pb.PhysPort > 0 {
		c.add(pb.Bridge, PhysEgress, 2, "in_port="+itoa(pb.PhysPort), "drop")
	}
}

// uplink returns the br-int port towards the network's other nodes (0 if
// none is wired).
func (c *compiler) uplink(n LocalNetwork) int {
	if msg.IsTunnel(n.Segment.NetworkType) {
		return c.w.PatchInt
	}
	return c.w.Physical[n.Segment.PhysicalNetwork].IntPort
}

func (c *compiler) network(n LocalNetwork) {
	if n.VLAN < 1 || n.VLAN > 4094 {
		c.problem("network %s: local VLAN %d out of range", n.ID, n.VLAN)
		return
	}
	switch n.Segment.NetworkType {
	case msg.NetworkTypeVXLAN, msg.NetworkTypeGRE, msg.NetworkTypeGeneve:
		if id := n.Segment.SegmentationID; id <= 0 || id > 1<<32-1 {
			c.problem("network %s: %s segmentation id %d out of range", n.ID, n.Segment.NetworkType, id)
			return
		}
	case msg.NetworkTypeVLAN:
		if id := n.Segment.SegmentationID; id < 1 || id > 4094 {
			c.problem("network %s: provider VLAN %d out of range", n.ID, id)
			return
		}
		fallthrough
	case msg.NetworkTypeFlat:
		if _, ok := c.w.Physical[n.Segment.PhysicalNetwork]; !ok {
			c.problem("network %s: physical network %q has no bridge mapping", n.ID, n.Segment.PhysicalNetwork)
			return
		}
	default:
		c.problem("network %s: network type %q not supported", n.ID, n.Segment.NetworkType)
		return
	}
	c.integrationNetwork(n)
	if msg.IsTunnel(n.Segment.NetworkType) {
		c.tunnelNetwork(n)
	} else {
		c.physicalNetwork(n)
	}
}

func (c *compiler) integrationNetwork(n LocalNetwork) {
	b := c.w.IntBridge
	lv := itoa(int(n.VLAN))
	vlan := "dl_vlan=" + lv
	ports := append([]LocalPort(nil), n.Ports...)
	sort.Slice(ports, func(i, j int) bool { return ports[i].OFPort < ports[j].OFPort })
	var flood []string
	uplink := c.uplink(n)
	if uplink > 0 {
		// The uplink gets the packet tagged with the local VLAN; br-tun and
		// the physical bridges translate it.
		flood = append(flood, "output:"+itoa(uplink))
	}
	for _, p := range ports {
		if p.OFPort <= 0 {
			continue
		}
		port := itoa(p.OFPort)
		if p.Security != nil {
			c.spoofGuard(n, p)
			c.secured = append(c.secured, p)
		}
		// Only untagged frames: a VIF must not reach another VLAN by tagging.
		c.add(b, IntClassify, 10, "in_port="+port+",vlan_tci=0x0000/0x1fff",
			"mod_vlan_vid:"+lv+",load:"+hex(uint64(n.VLAN))+"->"+regNet+","+gotoTable(IntSpoofGuard))
		for _, m := range p.MACs {
			mac, err := normalMAC(m)
			if err != nil {
				c.problem("port %s: %v", p.ID, err)
				continue
			}
			c.add(b, IntForward, 20, vlan+",dl_dst="+mac, "load:"+hex(uint64(p.OFPort))+"->"+regPort+","+gotoTable(IntIngressFirewall))
		}
		// Every copy of a flooded packet goes through the ingress hook for
		// its own port; clone keeps the copies from touching each other.
		flood = append(flood, "clone(load:"+hex(uint64(p.OFPort))+"->"+regPort+",resubmit(,"+itoa(int(IntIngressFirewall))+"))")
		// OpenFlow 1.1+ only pops a VLAN the match guarantees.
		c.add(b, IntOutput, 10, "reg5="+port+",vlan_tci=0x1000/0x1000", "strip_vlan,output:"+port)
	}
	if len(flood) > 0 {
		c.add(b, IntForward, 10, vlan+",dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", strings.Join(flood, ","))
	}
	if uplink > 0 {
		c.add(b, IntForward, 5, vlan, "output:"+itoa(uplink))
		phys := c.w.Physical[n.Segment.PhysicalNetwork]
		switch n.Segment.NetworkType {
		case msg.NetworkTypeVLAN:
			c.add(b, IntClassify, 10, "in_port="+itoa(phys.IntPort)+",dl_vlan="+itoa(int(n.Segment.SegmentationID)),
				"mod_vlan_vid:"+lv+","+gotoTable(IntForward))
		case msg.NetworkTypeFlat:
			c.add(b, IntClassify, 10, "in_port="+itoa(phys.IntPort)+",vlan_tci=0x0000/0x1fff",
				"mod_vlan_vid:"+lv+","+gotoTable(IntForward))
		}
	}
}

func (c *compiler) tunnelNetwork(n LocalNetwork) {
	b := c.w.TunBridge
	if b == "" {
		return
	}
	lv := itoa(int(n.VLAN))
	vlan := "dl_vlan=" + lv
	seg := hex(uint64(n.Segment.SegmentationID))
	fromTable, _ := fromTunnelTable(n.Segment.NetworkType)
	if c.w.PatchTun > 0 {
		c.add(b, fromTable, 1, "tun_id="+seg, "mod_vlan_vid:"+lv+",output:"+itoa(c.w.PatchTun))
	}
	tunnel := func(ip string) int { return c.w.Tunnels[TunnelKey{n.Segment.NetworkType, ip}] }
	var flood []string
	seen := map[int]bool{}
	for _, ip := range sortedUnique(n.FloodTo) {
		if port := tunnel(ip); port > 0 && !seen[port] {
			seen[port] = true
			flood = append(flood, "output:"+itoa(port))
		}
	}
	if len(flood) > 0 {
		c.add(b, TunFlood, 1, vlan, "strip_vlan,set_tunnel:"+seg+","+strings.Join(flood, ","))
	}
	remote := append([]msg.FDBEntry(nil), n.Remote...)
	sort.Slice(remote, func(i, j int) bool { return remote[i].MAC < remote[j].MAC })
	for _, e := range remote {
		port := tunnel(e.TunnelIP)
		if port <= 0 {
			continue
		}
		mac, err := normalMAC(e.MAC)
		if err != nil {
			c.problem("network %s: remote port %s on %s: %v", n.ID, e.PortID, e.TunnelIP, err)
			continue
		}
		c.add(b, TunUnicast, 1, vlan+",dl_dst="+mac, "strip_vlan,set_tunnel:"+seg+",output:"+itoa(port))
		for _, ip := range e.IPs {
			addr, err := netip.ParseAddr(ip)
			if err != nil || !addr.Is4() {
				continue // ARP is IPv4 only; IPv6 neighbours are found by flooding
			}
			c.add(b, TunARPResponder, 1, "arp,"+vlan+",arp_op=1,arp_tpa="+addr.String(), arpReply(mac, addr))
		}
	}
}

func sortedUnique(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return slices.Compact(out)
}

// arpReply turns an ARP request for addr into the reply from mac, sent back
// where the request came from.
func arpReply(mac string, addr netip.Addr) string {
	hw, _ := net.ParseMAC(mac)
	var macNum uint64
	for _, b := range hw {
		macNum = macNum<<8 | uint64(b)
	}
	ip4 := addr.As4()
	ipNum := uint64(ip4[0])<<24 | uint64(ip4[1])<<16 | uint64(ip4[2])<<8 | uint64(ip4[3])
	return strings.Join([]string{
		"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
		"mod_dl_src:" + mac,
		"load:0x2->NXM_OF_ARP_OP[]",
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]",
		"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
		"load:" + hex(macNum) + "->NXM_NX_ARP_SHA[]",
		"load:" + hex(ipNum) + "->NXM_OF_ARP_SPA[]",
		"IN_PORT",
	}, ",")
}

func (c *compiler) physicalNetwork(n LocalNetwork) {
	pb := c.w.Physical[n.Segment.PhysicalNetwork]
	if pb.PhysPort <= 0 {
		return
	}
	translate := "strip_vlan"
	if n.Segment.NetworkType == msg.NetworkTypeVLAN {
		translate = "mod_vlan_vid:" + itoa(int(n.Segment.SegmentationID))
	}
	c.add(pb.Bridge, PhysEgress, 4, "in_port="+itoa(pb.PhysPort)+",dl_vlan="+itoa(int(n.VLAN)), translate+",NORMAL")
}

// normalMAC returns mac in the lower-case colon form OpenFlow shows.
func normalMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("invalid MAC address %q", mac)
	}
	return hw.String(), nil
}
