package l3

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/nft"
)

// TableName is the nftables table (family ip) of every router namespace.
const TableName = "neutrino"

// Chain names of the router table.
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
)

// applyNAT makes the router table of namespace ns hold exactly rules, in
// one nftables transaction (nft.Replace), so at no moment is a half-built
// table in use. Conntrack entries of established connections keep their
// translation.
func applyNAT(ns string, rules natRules) error {
	var build func(*nftables.Conn, *nftables.Table)
	if !rules.empty() {
		build = func(c *nftables.Conn, table *nftables.Table) { buildTable(c, table, rules) }
	}
	if err := nft.Replace(ns, TableName, build); err != nil {
		return fmt.Errorf("l3: %w", err)
	}
	return nil
}

// buildTable adds table's chains and rules to c's transaction.
func buildTable(c *nftables.Conn, table *nftables.Table, rules natRules) {
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{
			Name: name, Table: table, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio,
		})
	}
	pre := nat(chainPrerouting, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := nat(chainOutput, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := nat(chainPostrouting, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	add := func(ch *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs})
	}
	for _, f := range rules.FloatingIPs {
		// ip daddr FIP dnat to FIXED (from outside, and from the router).
		add(pre, append(matchAddr(offsetDst, netip.PrefixFrom(f.Floating, 32)), natTo(expr.NATTypeDestNAT, f.Fixed)...)...)
		add(out, append(matchAddr(offsetDst, netip.PrefixFrom(f.Floating, 32)), natTo(expr.NATTypeDestNAT, f.Fixed)...)...)
	}
	// Floating IPs before the router's SNAT: the first match wins.
	for _, f := range rules.FloatingIPs {
		// oifname GW ip saddr FIXED snat to FIP
		e := matchOif(rules.GatewayDev)
		e = append(e, matchAddr(offsetSrc, netip.PrefixFrom(f.Fixed, 32))...)
		add(post, append(e, natTo(expr.NATTypeSourceNAT, f.Floating)...)...)
	}
	if rules.SNAT.IsValid() {
		for _, p := range rules.Internal {
			// oifname GW ip saddr INTERNAL snat to GWIP
			e := matchOif(rules.GatewayDev)
			e = append(e, matchAddr(offsetSrc, p)...)
			add(post, append(e, natTo(expr.NATTypeSourceNAT, rules.SNAT)...)...)
		}
		if len(rules.FloatingIPs) > 0 {
			// iifname != GW ct status dnat snat to GWIP: a VM reaching a
			// floating IP of its own router (hairpin) gets the answer
			// back through the router, not straight from its neighbour.
			e := matchIif(rules.GatewayDev, expr.CmpOpNeq)
			e = append(e, nft.MatchDNATed()...)
			add(post, append(e, natTo(expr.NATTypeSourceNAT, rules.SNAT)...)...)
		}
	}
}

// hairpinRules is the number of hairpin rules of rules (see buildTable).
func hairpinRules(rules natRules) int {
	if rules.SNAT.IsValid() && len(rules.FloatingIPs) > 0 {
		return 1
	}
	return 0
}

// Offsets of the IPv4 header's addresses.
const (
	offsetSrc = 12
	offsetDst = 16
)

// matchOif matches the output interface by name.
func matchOif(dev string) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

// matchIif compares the input interface's name with dev.
func matchIif(dev string, op expr.CmpOp) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: name},
	}
}

// matchAddr matches the IPv4 source or destination address against p.
func matchAddr(offset uint32, p netip.Prefix) []expr.Any {
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
	if p.Bits() < 32 {
		mask := net.CIDRMask(p.Bits(), 32)
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
	}
	a := p.Masked().Addr().As4()
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
}

// natTo translates the source or destination address to addr.
func natTo(kind expr.NATType, addr netip.Addr) []expr.Any {
	a := addr.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.NAT{Type: kind, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}

// natInPlace tells whether namespace ns holds the router table of rules,
// judged by its chains' rule counts: a full sync rebuilds a table that
// someone removed or changed, and leaves a correct one alone.
func natInPlace(ns string, rules natRules) (bool, error) {
	if rules.empty() {
		return nft.InPlace(ns, TableName, nil)
	}
	snat := 0
	if rules.SNAT.IsValid() {
		snat = len(rules.Internal)
	}
	return nft.InPlace(ns, TableName, map[string]int{
		chainPrerouting:  len(rules.FloatingIPs),
		chainOutput:      len(rules.FloatingIPs),
		chainPostrouting: len(rules.FloatingIPs) + snat + hairpinRules(rules),
	})
}

// flushConntrack deletes the conntrack entries of floating IP fip in
// namespace ns: connections to it (DNATed) and connections translated to
// it (SNATed), so that a floating IP that went away or moved stops at once.
func flushConntrack(ns string, fip netip.Addr) error {
	return netns.Do(ns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("l3: conntrack in %s: %w", ns, err)
		}
		defer h.Close()
		to := &netlink.ConntrackFilter{}
		from := &netlink.ConntrackFilter{}
		errs := []error{
			to.AddIP(netlink.ConntrackOrigDstIP, fip.AsSlice()),
			from.AddIP(netlink.ConntrackReplyDstIP, fip.AsSlice()),
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, to, from); err != nil {
			return fmt.Errorf("l3: flush conntrack of %s in %s: %w", fip, ns, err)
		}
		return nil
	})
}
