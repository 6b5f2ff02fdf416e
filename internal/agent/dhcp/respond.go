package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// UDP ports of DHCPv4.
const (
	ServerPort = 67
	ClientPort = 68
)

// optionMSClasslessStaticRoute is Microsoft's copy of option 121, which
// Neutron sends too.
const optionMSClasslessStaticRoute = 249

// infiniteLease is the lease time value meaning "forever" (RFC 2131).
const infiniteLease = 0xffffffff

// Reply is a message the server sends and where to.
type Reply struct {
	Msg *dhcpv4.DHCPv4
	// Src is the source address: the server identifier of the subnet.
	Src netip.Addr
	// Dst is the client's address when it has one (renewing, informing),
	// the relay's, or the limited broadcast address.
	Dst netip.AddrPort
}

// Respond answers one client message from the table, as RFC 2131 says: an
// OFFER for a DISCOVER, an ACK for a REQUEST of the client's address or a
// NAK for a REQUEST of any other, an ACK without lease for an INFORM. A
// MAC the table does not know gets no answer, nor does a REQUEST that
// names another server (the client took another server's offer), nor
// DECLINE or RELEASE (the addresses are fixed: there is nothing to free).
func Respond(t *Table, req *dhcpv4.DHCPv4) (Reply, bool) {
	if req == nil || req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return Reply{}, false
	}
	leases := t.Lookup(req.ClientHWAddr)
	if len(leases) == 0 {
		return Reply{}, false
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		l := leases[0]
		if m, ok := match(leases, addrOf(req.RequestedIPAddress())); ok {
			l = m
		}
		return leaseReply(req, l, dhcpv4.MessageTypeOffer), true
	case dhcpv4.MessageTypeRequest:
		if sid := addrOf(req.ServerIdentifier()); sid.IsValid() && !t.IsServer(sid) {
			return Reply{}, false
		}
		want := addrOf(req.RequestedIPAddress())
		if !want.IsValid() {
			want = addrOf(req.ClientIPAddr)
		}
		if l, ok := match(leases, want); ok {
			return leaseReply(req, l, dhcpv4.MessageTypeAck), true
		}
		return nak(req, leases[0].ServerID), true
	case dhcpv4.MessageTypeInform:
		l, ok := match(leases, addrOf(req.ClientIPAddr))
		if !ok {
			return Reply{}, false
		}
		r := leaseReply(req, l, dhcpv4.MessageTypeAck)
		// An INFORM gets the options only: no address, no lease (RFC 2131 4.3.5).
		r.Msg.YourIPAddr = net.IPv4zero
		for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue} {
			r.Msg.Options.Del(code)
		}
		return r, true
	}
	return Reply{}, false
}

// match finds the lease of addr.
func match(leases []Lease, addr netip.Addr) (Lease, bool) {
	for _, l := range leases {
		if addr.IsValid() && l.Addr == addr {
			return l, true
		}
	}
	return Lease{}, false
}

// addrOf converts an IPv4 address from the codec; unset and 0.0.0.0 are
// invalid.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// destination is where a reply to req goes (RFC 2131 4.1): to the relay,
// to the client's own address when it has one, else broadcast.
func destination(req *dhcpv4.DHCPv4, nak bool) netip.AddrPort {
	if relay := addrOf(req.GatewayIPAddr); relay.IsValid() {
		return netip.AddrPortFrom(relay, ServerPort)
	}
	if ci := addrOf(req.ClientIPAddr); ci.IsValid() && !nak {
		return netip.AddrPortFrom(ci, ClientPort)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), ClientPort)
}

func leaseReply(req *dhcpv4.DHCPv4, l Lease, mt dhcpv4.MessageType) Reply {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(l.Addr.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(l.ServerID.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(l.Subnet.Bits(), 32)),
		dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(broadcast(l.Subnet).AsSlice())),
	}
	if l.NextServer.IsValid() {
		mods = append(mods, dhcpv4.WithServerIP(l.NextServer.AsSlice()))
	}
	if l.LeaseTime < 0 {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionIPAddressLeaseTime, binary.BigEndian.AppendUint32(nil, infiniteLease)))
	} else {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(capLease(l.LeaseTime))))
		if l.Renewal > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(capLease(l.Renewal))))
		}
		if l.Rebinding > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(capLease(l.Rebinding))))
		}
	}
	if len(l.Routers) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(ips(l.Routers)...)))
	}
	if len(l.DNS) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(ips(l.DNS)...)))
	}
	if len(l.NTP) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptNTPServers(ips(l.NTP)...)))
	}
	if l.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(l.Hostname)))
	}
	if l.DomainName != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(l.DomainName)))
	}
	if len(l.DomainSearch) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: l.DomainSearch})))
	}
	if l.MTU > 0 {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, binary.BigEndian.AppendUint16(nil, uint16(l.MTU))))
	}
	if len(l.Routes) > 0 {
		routes := make(dhcpv4.Routes, 0, len(l.Routes))
		for _, r := range l.Routes {
			routes = append(routes, &dhcpv4.Route{
				Dest:   &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
				Router: r.Via.AsSlice(),
			})
		}
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(routes...)),
			dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(optionMSClasslessStaticRoute), routes.ToBytes()))
	}
	if l.TFTPServer != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptTFTPServerName(l.TFTPServer)))
	}
	if l.BootFile != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(l.BootFile)))
	}
	m, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		// New fails only when it cannot draw a random transaction id,
		// which a reply copies from the request instead.
		panic("dhcp: build reply: " + err.Error())
	}
	return Reply{Msg: m, Src: l.ServerID, Dst: destination(req, false)}
}

func nak(req *dhcpv4.DHCPv4, serverID netip.Addr) Reply {
	m, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverID.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage("requested address is not this client's")),
	)
	if err != nil {
		panic("dhcp: build NAK: " + err.Error())
	}
	return Reply{Msg: m, Src: serverID, Dst: destination(req, true)}
}

// broadcast is the subnet's broadcast address.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := binary.BigEndian.Uint32(a[:]) | host
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// capLease keeps a duration within what option fields can carry, below
// the value that means "infinite".
func capLease(d time.Duration) time.Duration {
	return min(d, time.Duration(infiniteLease-1)*time.Second)
}

func ips(addrs []netip.Addr) []net.IP {
	out := make([]net.IP, len(addrs))
	for i, a := range addrs {
		out[i] = a.AsSlice()
	}
	return out
}
