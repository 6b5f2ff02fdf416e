package l2

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
)

// PortSecurity is what port security and the firewall enforce for one VIF.
// A LocalPort without it (port_security_enabled=false, or a trusted
// network:* port such as a DHCP or router interface) passes unfiltered.
type PortSecurity struct {
	// MAC is the port's own MAC address.
	MAC string
	// IPs are the port's fixed IPs.
	IPs []string
	// Pairs are its allowed address pairs (an address or a CIDR, with a
	// MAC: the port's own when the pair names none).
	Pairs []msg.AddressPair
	// Groups are the ids of its security groups (Wiring.SecurityGroups).
	Groups []string
}

// Priorities of the port-security and firewall flows; within a table the
// higher one decides.
const (
	prioSpoofDrop   = 100 // DHCP/RA server traffic from a VM
	prioSpoofBypass = 90  // DHCP client, neighbour discovery: no firewall
	prioSpoofARP    = 70
	prioSpoofIP     = 60
	prioPortDefault = 10 // the port's last resort: drop

	prioCTInvalid   = 100
	prioCTReturn    = 90
	prioRule        = 70 // a rule without remote group
	prioConjOnLink  = 62 // remote-group rules, members on the packet's network
	prioForeignDrop = 61 // another network's address inside this one's subnets
	prioConjunction = 60 // remote-group rules, members anywhere (routed)
)

// ctZone is the conntrack zone of a packet: reg6, its network's local VLAN.
const ctZone = "zone=NXM_NX_REG6[0..15]"

// Connection states a rule is checked against, as Neutron's OVS firewall
// does: the first packet of a connection, and every later packet in the
// direction that opened it. Packets of an allowed connection in the reply
// direction (and related ones, such as ICMP errors) pass without the rules.
// So removing a rule stops new connections and the further packets of
// existing ones in the direction the rule allowed.
const (
	ctNew         = "+new-est+trk"
	ctEstablished = "+est-rel-rpl+trk"
)

// icmpv6 types a port may send without the firewall (MLD, router and
// neighbour solicitation; neighbour advertisements are checked per target)
// and receive without it (MLD query, router advertisement, neighbour
// solicitation and advertisement), as Neutron allows them.
var (
	ndEgressTypes  = []int{130, 131, 132, 133, 135, 143}
	ndIngressTypes = []int{130, 134, 135, 136}
)

// source is one (MAC, address or prefix) a port may send from.
type source struct {
	mac    string
	prefix netip.Prefix
}

// portSources lists the sources a port may use: its MAC with each fixed
// IP and its IPv6 link-local address, and each allowed address pair (with
// the link-local address of a pair's own MAC).
func (c *compiler) portSources(id string, s *PortSecurity) []source {
	var out []source
	seenLLA := map[string]bool{}
	addLLA := func(mac string) {
		if seenLLA[mac] {
			return
		}
		seenLLA[mac] = true
		hw, _ := net.ParseMAC(mac)
		lla, err := ipam.EUI64(netip.MustParsePrefix("fe80::/64"), hw)
		if err != nil {
			c.problem("port %s: link-local address of %s: %v", id, mac, err)
			return
		}
		out = append(out, source{mac, netip.PrefixFrom(lla, 128)})
	}
	mac, err := normalMAC(s.MAC)
	if err != nil {
		c.problem("port %s: %v", id, err)
		return nil
	}
	addLLA(mac)
	for _, ip := range s.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			c.problem("port %s: fixed IP %q: %v", id, ip, err)
			continue
		}
		out = append(out, source{mac, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())})
	}
	for _, pair := range s.Pairs {
		pmac := mac
		if pair.MACAddress != "" {
			if pmac, err = normalMAC(pair.MACAddress); err != nil {
				c.problem("port %s: allowed address pair: %v", id, err)
				continue
			}
		}
		p, err := parsePrefix(pair.IPAddress)
		if err != nil {
			c.problem("port %s: allowed address pair %q: %v", id, pair.IPAddress, err)
			continue
		}
		out = append(out, source{pmac, p})
		addLLA(pmac)
	}
	return out
}

// parsePrefix reads an address or a CIDR (host bits cleared).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ovsPrefix renders a prefix as OpenFlow shows it: a bare address for a
// host prefix, address/length otherwise.
func ovsPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// spoofGuard fills spoof-guard (10) and the entry flows of the firewall
// tables (20, 40) for a VIF with port security.
func (c *compiler) spoofGuard(n LocalNetwork, p LocalPort) {
	b := c.w.IntBridge
	in := "in_port=" + itoa(p.OFPort)
	toForward, toEgress := gotoTable(IntForward), gotoTable(IntEgressFirewall)

	// A VM is no DHCP server nor router.
	c.add(b, IntSpoofGuard, prioSpoofDrop, in+",udp,tp_src=67", "drop")
	c.add(b, IntSpoofGuard, prioSpoofDrop, in+",udp6,tp_src=547", "drop")
	c.add(b, IntSpoofGuard, prioSpoofDrop, in+",icmp6,icmp_type=134", "drop")
	// DHCP clients send before they have an address.
	if mac, err := normalMAC(p.Security.MAC); err == nil {
		c.add(b, IntSpoofGuard, prioSpoofBypass, in+",udp,dl_src="+mac+",tp_src=68,tp_dst=67", toForward)
		c.add(b, IntSpoofGuard, prioSpoofBypass, in+",udp6,dl_src="+mac+",tp_src=546,tp_dst=547", toForward)
		// Duplicate address detection and MLD reports come from ::.
		for _, t := range []int{131, 135, 143} {
			c.add(b, IntSpoofGuard, prioSpoofBypass, in+",icmp6,dl_src="+mac+",ipv6_src=::,icmp_type="+itoa(t), toForward)
		}
	}
	for _, s := range c.portSources(p.ID, p.Security) {
		src := ovsPrefix(s.prefix)
		if s.prefix.Addr().Is4() {
			c.add(b, IntSpoofGuard, prioSpoofARP, in+",arp,dl_src="+s.mac+",arp_spa="+src+",arp_sha="+s.mac, toForward)
			c.add(b, IntSpoofGuard, prioSpoofIP, in+",ip,dl_src="+s.mac+",nw_src="+src, toEgress)
			continue
		}
		for _, t := range ndEgressTypes {
			c.add(b, IntSpoofGuard, prioSpoofBypass, in+",icmp6,dl_src="+s.mac+",ipv6_src="+src+",icmp_type="+itoa(t), toForward)
		}
		// A neighbour advertisement only for an address of the port.
		c.add(b, IntSpoofGuard, prioSpoofBypass, in+",icmp6,dl_src="+s.mac+",icmp_type=136,nd_target="+src, toForward)
		c.add(b, IntSpoofGuard, prioSpoofIP, in+",ipv6,dl_src="+s.mac+",ipv6_src="+src, toEgress)
	}
	c.add(b, IntSpoofGuard, prioPortDefault, in, "drop")

	// Egress: every IP packet that passed the guard is tracked in its
	// network's zone, then checked in egress-rules.
	c.add(b, IntEgressFirewall, prioPortDefault, in+",ip", "ct(table="+itoa(int(IntEgressRules))+","+ctZone+")")
	c.add(b, IntEgressFirewall, prioPortDefault, in+",ipv6", "ct(table="+itoa(int(IntEgressRules))+","+ctZone+")")

	// Ingress: ARP, DHCP replies and neighbour discovery pass; IP is
	// tracked in the zone of the port's network (reg6 is loaded because
	// packets from other nodes have none) and checked in ingress-rules.
	to := "reg5=" + itoa(p.OFPort)
	toOutput := gotoTable(IntOutput)
	c.add(b, IntIngressFirewall, prioSpoofBypass, to+",arp", toOutput)
	c.add(b, IntIngressFirewall, prioSpoofBypass, to+",udp,tp_src=67,tp_dst=68", toOutput)
	c.add(b, IntIngressFirewall, prioSpoofBypass, to+",udp6,tp_src=547,tp_dst=546", toOutput)
	for _, t := range ndIngressTypes {
		c.add(b, IntIngressFirewall, prioSpoofBypass, to+",icmp6,icmp_type="+itoa(t), toOutput)
	}
	track := "load:" + hex(uint64(n.VLAN)) + "->" + regNet + ",ct(table=" + itoa(int(IntIngressRules)) + "," + ctZone + ")"
	c.add(b, IntIngressFirewall, prioSpoofIP, to+",ip", track)
	c.add(b, IntIngressFirewall, prioSpoofIP, to+",ipv6", track)
	c.add(b, IntIngressFirewall, prioPortDefault, to, "drop")
}

// firewallBase is the part of egress-rules and ingress-rules shared by all
// ports: invalid packets are dropped, the replies and related packets of
// allowed connections pass, everything no rule allows is dropped.
func (c *compiler) firewallBase() {
	b := c.w.IntBridge
	for t, next := range map[Table]Table{IntEgressRules: IntForward, IntIngressRules: IntOutput} {
		c.add(b, t, 0, "", "drop")
		c.add(b, t, prioCTInvalid, "ct_state=+inv+trk", "drop")
		c.add(b, t, prioCTReturn, "ct_state=+est-rel+rpl+trk", gotoTable(next))
		c.add(b, t, prioCTReturn, "ct_state=-new-est+rel-inv+trk", gotoTable(next))
	}
}

// conjKey names one conjunctive match: the rules of one direction and
// ethertype whose remote end is the members of one group, for one
// connection state.
type conjKey struct {
	direction, ethertype, remoteGroup, ctState string
	stateful                                   bool
	// onLink keys match the members on the packet's own network (reg6).
	onLink bool
}

// priority is where the key's flows live.
func (k conjKey) priority() uint16 {
	if k.onLink {
		return prioConjOnLink
	}
	return prioConjunction
}

// ruleUse is one rule applied to one port.
type ruleUse struct {
	port     LocalPort
	rule     msg.SecurityGroupRule
	stateful bool
}

// firewall compiles the security-group rules of every port with port
// security into egress-rules and ingress-rules. A rule with a remote
// group becomes a two-dimensional conjunctive match: one flow per member
// address (dimension 1, shared by every port and rule naming the group)
// and one per port and rule (dimension 2), so the flows grow with
// members + rules, not members × rules.
//
// When the server tells the members' networks, that is done twice: at
// prioConjOnLink with each member address tied to its network's local
// VLAN (reg6), and at prioConjunction for any network, as for routed
// traffic; between them, prioForeignDrop drops the packets of a network
// whose remote address lies in that network's own subnets, so that a
// member address of another network with the same CIDR never matches
// there.
func (c *compiler) firewall(ports []LocalPort) {
	var uses []ruleUse
	for _, p := range ports {
		for _, gid := range sortedUnique(p.Security.Groups) {
			g, ok := c.w.SecurityGroups[gid]
			if !ok {
				c.problem("port %s: security group %s unknown", p.ID, gid)
				continue
			}
			for _, r := range g.Rules {
				uses = append(uses, ruleUse{p, r, g.Stateful})
			}
		}
	}
	// Conjunction ids, stable while the set of keys does not change.
	keys := map[conjKey]bool{}
	for _, u := range uses {
		if u.rule.RemoteGroupID != "" {
			for _, st := range []string{ctNew, ctEstablished} {
				for _, onLink := range c.layers(u.rule.RemoteGroupID) {
					keys[conjKey{u.rule.Direction, u.rule.Ethertype, u.rule.RemoteGroupID, st, u.stateful, onLink}] = true
				}
			}
		}
	}
	ids := conjIDs(keys)
	conj := map[FlowKey][]string{} // conjunction actions merged per flow

	b := c.w.IntBridge
	for _, u := range uses {
		table, portMatch, next := IntEgressRules, "in_port="+itoa(u.port.OFPort), IntForward
		remoteField := map[bool]string{true: "nw_dst", false: "ipv6_dst"}
		if u.rule.Direction == msg.DirectionIngress {
			table, portMatch, next = IntIngressRules, "reg5="+itoa(u.port.OFPort), IntOutput
			remoteField = map[bool]string{true: "nw_src", false: "ipv6_src"}
		} else if u.rule.Direction != msg.DirectionEgress {
			c.problem("port %s: rule %s: direction %q", u.port.ID, u.rule.ID, u.rule.Direction)
			continue
		}
		v4 := u.rule.Ethertype == msg.EthertypeIPv4
		if !v4 && u.rule.Ethertype != msg.EthertypeIPv6 {
			c.problem("port %s: rule %s: ethertype %q", u.port.ID, u.rule.ID, u.rule.Ethertype)
			continue
		}
		protos := ruleMatches(u.rule, v4)
		remote := ""
		if u.rule.RemoteIPPrefix != "" {
			p, err := parsePrefix(u.rule.RemoteIPPrefix)
			if err != nil || p.Addr().Is4() != v4 {
				c.problem("port %s: rule %s: remote_ip_prefix %q does not fit %s", u.port.ID, u.rule.ID, u.rule.RemoteIPPrefix, u.rule.Ethertype)
				continue
			}
			if p.Bits() > 0 {
				remote = "," + remoteField[v4] + "=" + ovsPrefix(p)
			}
		}
		for _, st := range []string{ctNew, ctEstablished} {
			accept := gotoTable(next)
			if st == ctNew && u.stateful {
				accept = "ct(commit," + ctZone + ")," + accept
			}
			if u.rule.RemoteGroupID == "" {
				for _, pm := range protos {
					c.add(b, table, prioRule, portMatch+",ct_state="+st+","+pm+remote, accept)
				}
				continue
			}
			for _, onLink := range c.layers(u.rule.RemoteGroupID) {
				k := conjKey{u.rule.Direction, u.rule.Ethertype, u.rule.RemoteGroupID, st, u.stateful, onLink}
				id := ids[k]
				for _, pm := range protos {
					fk := FlowKey{table, k.priority(), portMatch + ",ct_state=" + st + "," + pm}
					conj[fk] = append(conj[fk], fmt.Sprintf("conjunction(%d,2/2)", id))
				}
				// ct needs the ethertype in the match.
				c.add(b, table, k.priority(), fmt.Sprintf("conj_id=%d,%s", id, map[bool]string{true: "ip", false: "ipv6"}[v4]), accept)
			}
		}
	}
	// Dimension 1: each member address of each remote group, once per
	// table (and network, on link), with the conjunctions of every key
	// naming the group.
	vlans := map[string]uint16{}
	for _, n := range c.w.Networks {
		vlans[n.ID] = n.VLAN
	}
	foreign := map[remoteField]bool{} // tables and families needing prioForeignDrop
	for k, id := range ids {
		f := remoteFieldOf(k.direction, k.ethertype == msg.EthertypeIPv4)
		rg := c.w.RemoteGroups[k.remoteGroup]
		if !k.onLink {
			for _, ip := range rg.IPs {
				if p, ok := c.memberPrefix(k.remoteGroup, ip, f.v4); ok {
					fk := FlowKey{f.table, prioConjunction, f.match(p)}
					conj[fk] = append(conj[fk], fmt.Sprintf("conjunction(%d,1/2)", id))
				}
			}
			continue
		}
		foreign[f] = true
		for _, n := range rg.Networks {
			vlan, local := vlans[n.ID]
			if !local {
				continue // reaches this node only routed
			}
			for _, ip := range n.IPs {
				if p, ok := c.memberPrefix(k.remoteGroup, ip, f.v4); ok {
					fk := FlowKey{f.table, prioConjOnLink, "reg6=" + itoa(int(vlan)) + "," + f.match(p)}
					conj[fk] = append(conj[fk], fmt.Sprintf("conjunction(%d,1/2)", id))
				}
			}
		}
	}
	for k, actions := range conj {
		c.add(b, k.Table, k.Priority, k.Match, strings.Join(sortedUnique(actions), ","))
	}
	c.foreignDrops(foreign, vlans)
}

// layers tells which conjunction layers a remote group's rules get: on
// link and anywhere when the server sent its members by network, anywhere
// only when it did not (a server from before RemoteGroup.Networks).
func (c *compiler) layers(remoteGroup string) []bool {
	if len(c.w.RemoteGroups[remoteGroup].Networks) > 0 {
		return []bool{false, true}
	}
	return []bool{false}
}

// remoteField is where a rule's remote address is in a packet: the
// source in ingress-rules, the destination in egress-rules.
type remoteField struct {
	table Table
	v4    bool
}

func remoteFieldOf(direction string, v4 bool) remoteField {
	if direction == msg.DirectionIngress {
		return remoteField{IntIngressRules, v4}
	}
	return remoteField{IntEgressRules, v4}
}

// match renders the remote address p.
func (f remoteField) match(p netip.Prefix) string {
	name := map[bool]string{true: "nw_", false: "ipv6_"}[f.v4] + map[bool]string{true: "src=", false: "dst="}[f.table == IntIngressRules]
	return map[bool]string{true: "ip,", false: "ipv6,"}[f.v4] + name + ovsPrefix(p)
}

// memberPrefix parses a member address of the family v4.
func (c *compiler) memberPrefix(group, ip string, v4 bool) (netip.Prefix, bool) {
	p, err := parsePrefix(ip)
	if err != nil {
		c.problem("remote group %s: member address %q: %v", group, ip, err)
		return p, false
	}
	return p, p.Addr().Is4() == v4
}

// foreignDrops adds, for each local network, a drop of the packets whose
// remote address lies in its subnets, below the on-link members and above
// the members anywhere: inside its own subnets a network's packets match
// its own members only. The subnets are the network's own (servers that
// send them) and those the members' networks carry.
func (c *compiler) foreignDrops(fields map[remoteField]bool, vlans map[string]uint16) {
	cidrs := map[string][]string{}
	for _, n := range c.w.Networks {
		cidrs[n.ID] = append(cidrs[n.ID], n.CIDRs...)
	}
	for _, rg := range c.w.RemoteGroups {
		for _, n := range rg.Networks {
			cidrs[n.ID] = append(cidrs[n.ID], n.CIDRs...)
		}
	}
	for netID, list := range cidrs {
		vlan, local := vlans[netID]
		if !local {
			continue
		}
		for _, cidr := range sortedUnique(list) {
			p, err := parsePrefix(cidr)
			if err != nil {
				c.problem("network %s: subnet %q: %v", netID, cidr, err)
				continue
			}
			for f := range fields {
				if p.Addr().Is4() == f.v4 {
					c.add(c.w.IntBridge, f.table, prioForeignDrop, "reg6="+itoa(int(vlan))+","+f.match(p), "drop")
				}
			}
		}
	}
}

// conjIDs gives every key a conjunction id derived from the key, so that
// adding or removing one remote group leaves the others' flows alone.
func conjIDs(keys map[conjKey]bool) map[conjKey]uint32 {
	sorted := make([]conjKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool { return fmt.Sprint(sorted[i]) < fmt.Sprint(sorted[j]) })
	ids := map[conjKey]uint32{}
	taken := map[uint32]bool{}
	for _, k := range sorted {
		h := fnv.New32a()
		fmt.Fprint(h, k)
		id := h.Sum32()&0x7fffffff | 1
		for taken[id] {
			id = (id + 2) & 0x7fffffff
		}
		taken[id] = true
		ids[k] = id
	}
	return ids
}

// ruleMatches renders a rule's ethertype, protocol and port or ICMP
// ranges as OpenFlow matches (several when a port range needs more than
// one mask).
func ruleMatches(r msg.SecurityGroupRule, v4 bool) []string {
	eth := map[bool]string{true: "ip", false: "ipv6"}[v4]
	if r.Protocol == nil || *r.Protocol == 0 {
		return []string{eth}
	}
	proto := *r.Protocol
	if proto == 1 && !v4 {
		proto = 58 // Neutron takes icmp with IPv6 as ICMPv6
	}
	six := map[bool]string{true: "", false: "6"}[v4]
	switch proto {
	case 6, 17, 132:
		name := map[int]string{6: "tcp", 17: "udp", 132: "sctp"}[proto] + six
		if r.PortRangeMin == nil || r.PortRangeMax == nil || *r.PortRangeMin <= 0 && *r.PortRangeMax >= 0xffff {
			return []string{name}
		}
		var out []string
		for _, m := range portMasks(*r.PortRangeMin, *r.PortRangeMax) {
			out = append(out, name+",tp_dst="+m)
		}
		return out
	case 1, 58:
		m := "icmp"
		if proto == 58 {
			m = "icmp6"
		}
		if proto == 1 && !v4 || proto == 58 && v4 {
			m = eth + ",nw_proto=" + itoa(proto)
			return []string{m}
		}
		if r.PortRangeMin != nil && *r.PortRangeMin >= 0 && *r.PortRangeMin <= 255 {
			m += ",icmp_type=" + itoa(*r.PortRangeMin)
			if r.PortRangeMax != nil && *r.PortRangeMax >= 0 && *r.PortRangeMax <= 255 {
				m += ",icmp_code=" + itoa(*r.PortRangeMax)
			}
		}
		return []string{m}
	}
	return []string{eth + ",nw_proto=" + itoa(proto)}
}

// portMasks covers [min, max] with value/mask matches of a 16-bit port:
// at most 2×16 of them, usually a handful.
func portMasks(lo, hi int) []string {
	lo, hi = max(lo, 0), min(hi, 0xffff)
	if lo > hi {
		return nil
	}
	var out []string
	for lo <= hi {
		// The largest aligned block starting at lo that stays within hi.
		size := 1
		for lo%(size*2) == 0 && lo+size*2-1 <= hi && size*2 <= 0x10000 {
			size *= 2
		}
		if size == 1 {
			out = append(out, itoa(lo))
		} else {
			out = append(out, fmt.Sprintf("%s/%s", hex(uint64(lo)), hex(uint64(0xffff&^(size-1)))))
		}
		lo += size
	}
	return out
}
