package l3

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/vif"
)

// NetnsExternalID is the external_ids key of the OVS interfaces the role
// plugs, naming the router namespace behind them, so a restarted agent
// finds and removes the ones of routers it no longer has.
const NetnsExternalID = "neutrino-l3-netns"

// Device name prefixes, as Neutron's l3 agent names them.
const (
	interfacePrefix = "qr-"
	gatewayPrefix   = "qg-"
)

// routerPlan is what one router's namespace should hold.
type routerPlan struct {
	Netns string
	// Ports are the plugged interfaces, the gateway (if any) first, then
	// the interfaces by port id.
	Ports []*vif.Spec
	// Routes are the default route (through the external subnet's
	// gateway) and the extra routes.
	Routes []link.Route
	NAT    natRules
	// FloatingIPs are the floating IPs configured, by id.
	FloatingIPs map[string]floatingIP
	// Problems are the parts of the router that could not be planned
	// (bad addresses); the rest is configured.
	Problems []string
}

// floatingIP is one 1:1 NAT.
type floatingIP struct {
	Floating, Fixed netip.Addr
}

// natRules are a router's NAT, the input of its nftables table.
type natRules struct {
	// GatewayDev is the gateway interface ("" without a gateway: no NAT).
	GatewayDev string
	// SNAT is the gateway address the internal subnets are translated to
	// (invalid without enable_snat).
	SNAT netip.Addr
	// Internal are the internal subnets SNAT applies to, sorted.
	Internal []netip.Prefix
	// FloatingIPs are the 1:1 NATs, by floating IP.
	FloatingIPs []floatingIP
}

func (n natRules) equal(o natRules) bool {
	return n.GatewayDev == o.GatewayDev && n.SNAT == o.SNAT && slices.Equal(n.Internal, o.Internal) &&
		slices.Equal(n.FloatingIPs, o.FloatingIPs)
}

// empty tells whether the rules translate nothing.
func (n natRules) empty() bool {
	return n.GatewayDev == "" || (!n.SNAT.IsValid() && len(n.FloatingIPs) == 0)
}

// gatewayDev and interfaceDev name a router port's namespace end.
func gatewayDev(portID string) string   { return gatewayPrefix + vif.ShortID(portID) }
func interfaceDev(portID string) string { return interfacePrefix + vif.ShortID(portID) }

// planRouter computes what router r's namespace holds. Only IPv4 is
// routed and translated; IPv6 addresses of router ports are left out.
func (c Config) planRouter(r msg.Router) *routerPlan {
	ns := c.NamespacePrefix + r.ID
	p := &routerPlan{Netns: ns, FloatingIPs: map[string]floatingIP{}}
	problem := func(format string, args ...any) { p.Problems = append(p.Problems, fmt.Sprintf(format, args...)) }

	var gw *vif.Spec
	var gwAddr, defaultGW netip.Addr
	if r.Gateway != nil {
		spec, addrs, ok := portSpec(ns, gatewayDev(r.Gateway.ID), *r.Gateway, problem)
		if ok {
			gw = spec
			p.Ports = append(p.Ports, spec)
			for _, a := range addrs {
				if !gwAddr.IsValid() {
					gwAddr = a.addr.Addr()
				}
				if !defaultGW.IsValid() && a.gateway.IsValid() {
					defaultGW = a.gateway
				}
			}
		}
	}
	var internal []netip.Prefix
	ifaces := slices.Clone(r.Interfaces)
	slices.SortFunc(ifaces, func(a, b msg.RouterPort) int { return strings.Compare(a.ID, b.ID) })
	for _, port := range ifaces {
		if !port.AdminStateUp {
			continue
		}
		spec, addrs, ok := portSpec(ns, interfaceDev(port.ID), port, problem)
		if !ok {
			continue
		}
		p.Ports = append(p.Ports, spec)
		for _, a := range addrs {
			internal = append(internal, a.addr.Masked())
		}
	}
	slices.SortFunc(internal, comparePrefixes)
	internal = slices.Compact(internal)

	if gw != nil {
		p.NAT.GatewayDev = gw.Dev
		if r.EnableSNAT && gwAddr.IsValid() {
			p.NAT.SNAT = gwAddr
			p.NAT.Internal = internal
		}
		if defaultGW.IsValid() {
			p.Routes = append(p.Routes, link.Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: defaultGW, Dev: gw.Dev})
		}
		seen := map[netip.Addr]bool{}
		for _, f := range r.FloatingIPs {
			fip, err1 := netip.ParseAddr(f.FloatingIPAddress)
			fixed, err2 := netip.ParseAddr(f.FixedIPAddress)
			if err1 != nil || err2 != nil || !fip.Is4() || !fixed.Is4() {
				problem("floating IP %s: addresses %q → %q", f.ID, f.FloatingIPAddress, f.FixedIPAddress)
				continue
			}
			if seen[fip] {
				problem("floating IP %s: address %s twice", f.ID, fip)
				continue
			}
			seen[fip] = true
			p.FloatingIPs[f.ID] = floatingIP{Floating: fip, Fixed: fixed}
			p.NAT.FloatingIPs = append(p.NAT.FloatingIPs, floatingIP{Floating: fip, Fixed: fixed})
			gw.Addrs = append(gw.Addrs, netip.PrefixFrom(fip, 32))
		}
		slices.SortFunc(p.NAT.FloatingIPs, func(a, b floatingIP) int { return a.Floating.Compare(b.Floating) })
		slices.SortFunc(gw.Addrs, comparePrefixes)
		gw.Addrs = slices.Compact(gw.Addrs)
	} else if len(r.FloatingIPs) > 0 {
		problem("%d floating IPs without a gateway", len(r.FloatingIPs))
	}

	for _, rt := range r.Routes {
		dst, err1 := netip.ParsePrefix(rt.Destination)
		hop, err2 := netip.ParseAddr(rt.Nexthop)
		if err1 != nil || err2 != nil || !dst.Addr().Is4() || !hop.Is4() {
			problem("route %s via %s: not an IPv4 route", rt.Destination, rt.Nexthop)
			continue
		}
		p.Routes = append(p.Routes, link.Route{Dst: dst.Masked(), Gateway: hop})
	}
	return p
}

// routerAddr is one IPv4 address of a router port and its subnet's gateway.
type routerAddr struct {
	addr    netip.Prefix
	gateway netip.Addr
}

// portSpec plans one router port's plumbing.
func portSpec(ns, dev string, port msg.RouterPort, problem func(string, ...any)) (*vif.Spec, []routerAddr, bool) {
	mac, err := net.ParseMAC(port.MAC)
	if err != nil || len(mac) != 6 {
		problem("port %s: MAC %q", port.ID, port.MAC)
		return nil, nil, false
	}
	spec := &vif.Spec{
		Netns: ns, Dev: dev, Tap: vif.TapName(port.ID), PortID: port.ID, MAC: mac, MTU: port.MTU,
		ExternalIDs: map[string]string{NetnsExternalID: ns},
	}
	var addrs []routerAddr
	for _, ip := range port.FixedIPs {
		addr, err1 := netip.ParseAddr(ip.IPAddress)
		cidr, err2 := netip.ParsePrefix(ip.CIDR)
		if err1 != nil || err2 != nil || !cidr.Contains(addr) {
			problem("port %s: address %q in %q", port.ID, ip.IPAddress, ip.CIDR)
			continue
		}
		if !addr.Is4() {
			continue // IPv6 routing is not done yet
		}
		a := routerAddr{addr: netip.PrefixFrom(addr, cidr.Bits())}
		if gw, err := netip.ParseAddr(ip.GatewayIP); err == nil && gw.Is4() {
			a.gateway = gw
		}
		addrs = append(addrs, a)
		spec.Addrs = append(spec.Addrs, a.addr)
	}
	slices.SortFunc(spec.Addrs, comparePrefixes)
	return spec, addrs, true
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
