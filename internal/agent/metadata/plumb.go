package metadata

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/nft"
)

// TableName is the nftables table (family ip) the role keeps in each
// router namespace, beside the l3 role's own.
const TableName = "neutrino-metadata"

var metadataPrefix = netip.MustParsePrefix(Address + "/32")

// plumb makes namespace t ready for its listener: in a router namespace
// the redirect of 169.254.169.254:80 to the listener port and the input
// rules that let only redirected connections reach it (a listener on
// 0.0.0.0 would otherwise answer on every router address, from outside
// too); in a DHCP namespace the metadata address on the DHCP port.
func (r *Role) plumb(t target) error {
	if t.dhcpAddr != "" {
		return addMetadataAddress(t.ns, t.dhcpAddr)
	}
	ok, err := nft.InPlace(t.ns, TableName, map[string]int{"prerouting": 1, "input": 2})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if ok {
		return nil
	}
	err = nft.Replace(t.ns, TableName, func(c *nftables.Conn, table *nftables.Table) {
		pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
		accept := nftables.ChainPolicyAccept
		in := c.AddChain(&nftables.Chain{Name: "input", Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		port := binaryutil.BigEndian.PutUint16(uint16(r.cfg.ListenPort))
		meta := metadataPrefix.Addr().As4()
		// ip daddr 169.254.169.254 tcp dport 80 redirect to :PORT
		redirect := append([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: meta[:]},
		}, matchTCPPort(binaryutil.BigEndian.PutUint16(80))...)
		redirect = append(redirect,
			&expr.Immediate{Register: 1, Data: port},
			&expr.Redir{RegisterProtoMin: 1},
		)
		c.AddRule(&nftables.Rule{Table: table, Chain: pre, Exprs: redirect})
		// tcp dport PORT ct status dnat accept; tcp dport PORT drop
		allowed := append(matchTCPPort(port), nft.MatchDNATed()...)
		allowed = append(allowed, &expr.Verdict{Kind: expr.VerdictAccept})
		c.AddRule(&nftables.Rule{Table: table, Chain: in, Exprs: allowed})
		c.AddRule(&nftables.Rule{Table: table, Chain: in, Exprs: append(matchTCPPort(port), &expr.Verdict{Kind: expr.VerdictDrop})})
	})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

// matchTCPPort matches TCP to destination port (2 bytes, network order).
func matchTCPPort(port []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
	}
}

// unplumb undoes plumb in a namespace that stays.
func (r *Role) unplumb(t target) error {
	if t.dhcpAddr != "" {
		return netns.Do(t.ns, func() error {
			h, dev, err := linkWithAddress(t.dhcpAddr)
			if err != nil || dev == nil {
				return err
			}
			defer h.Close()
			err = h.AddrDel(dev, &netlink.Addr{IPNet: ipNet(metadataPrefix)})
			if err != nil && err != unix.EADDRNOTAVAIL {
				return fmt.Errorf("metadata: remove %s in %s: %w", Address, t.ns, err)
			}
			return nil
		})
	}
	if err := nft.Replace(t.ns, TableName, nil); err != nil {
		return fmt.Errorf("metadata: delete: %w", err)
	}
	return nil
}

// addMetadataAddress puts 169.254.169.254/32 on the interface of ns that
// holds the DHCP port's address dhcpAddr.
func addMetadataAddress(ns, dhcpAddr string) error {
	return netns.Do(ns, func() error {
		h, dev, err := linkWithAddress(dhcpAddr)
		if err != nil {
			return err
		}
		if dev == nil {
			return fmt.Errorf("metadata: no interface holds the DHCP port's address %s in %s yet", dhcpAddr, ns)
		}
		defer h.Close()
		if err := h.AddrReplace(dev, &netlink.Addr{IPNet: ipNet(metadataPrefix)}); err != nil {
			return fmt.Errorf("metadata: add %s in %s: %w", Address, ns, err)
		}
		return nil
	})
}

// linkWithAddress finds the interface holding addr, in the namespace of
// the calling thread; dev is nil when none does.
func linkWithAddress(addr string) (*netlink.Handle, netlink.Link, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: netlink: %w", err)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("metadata: list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IP.String() == addr {
			dev, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				h.Close()
				return nil, nil, fmt.Errorf("metadata: link of %s: %w", addr, err)
			}
			return h, dev, nil
		}
	}
	h.Close()
	return nil, nil, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// dhcpV4Address is the DHCP port's first address on a DHCP-enabled IPv4
// subnet.
func dhcpV4Address(n msg.DHCPNetwork) string {
	dhcp := map[string]bool{}
	for _, s := range n.Subnets {
		if s.IPVersion == 4 && s.EnableDHCP {
			dhcp[s.ID] = true
		}
	}
	for _, f := range n.DHCPPort.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is4() && dhcp[f.SubnetID] {
			return a.String()
		}
	}
	return ""
}
