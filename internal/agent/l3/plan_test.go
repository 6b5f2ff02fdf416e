package l3

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// testRouter has a gateway on 203.0.113.0/24, interfaces on two internal
// subnets, an extra route and a floating IP.
func testRouter() msg.Router {
	return msg.Router{
		ID: "router-1", AdminStateUp: true, EnableSNAT: true,
		Gateway: &msg.RouterPort{
			ID: "gw-port-0123456789", MAC: "fa:16:3e:00:00:01", AdminStateUp: true, MTU: 1500,
			FixedIPs: []msg.RouterIP{{SubnetID: "ext", IPAddress: "203.0.113.10", CIDR: "203.0.113.0/24", IPVersion: 4, GatewayIP: "203.0.113.1"}},
		},
		Interfaces: []msg.RouterPort{
			{ID: "qr-b", MAC: "fa:16:3e:00:00:03", AdminStateUp: true, MTU: 1450,
				FixedIPs: []msg.RouterIP{{SubnetID: "s2", IPAddress: "10.0.1.1", CIDR: "10.0.1.0/24", IPVersion: 4}}},
			{ID: "qr-a", MAC: "fa:16:3e:00:00:02", AdminStateUp: true, MTU: 1450,
				FixedIPs: []msg.RouterIP{
					{SubnetID: "s1", IPAddress: "10.0.0.1", CIDR: "10.0.0.0/24", IPVersion: 4},
					{SubnetID: "s6", IPAddress: "fd00::1", CIDR: "fd00::/64", IPVersion: 6},
				}},
		},
		Routes:      []msg.HostRoute{{Destination: "192.168.7.0/24", Nexthop: "10.0.1.254"}},
		FloatingIPs: []msg.FloatingIP{{ID: "fip-1", FloatingIPAddress: "203.0.113.20", FixedIPAddress: "10.0.0.5", PortID: "vm-port"}},
	}
}

func TestPlanRouter(t *testing.T) {
	cfg := Config{NamespacePrefix: "qrouter-"}
	p := cfg.planRouter(testRouter())
	if len(p.Problems) > 0 {
		t.Fatalf("problems: %v", p.Problems)
	}
	if p.Netns != "qrouter-router-1" || len(p.Ports) != 3 {
		t.Fatalf("plan %+v", p)
	}
	gw, a, b := p.Ports[0], p.Ports[1], p.Ports[2]
	if gw.Dev != "qg-gw-port-012" || gw.Tap != "tapgw-port-012" || gw.MTU != 1500 ||
		!slices.Equal(gw.Addrs, []netip.Prefix{pfx("203.0.113.10/24"), pfx("203.0.113.20/32")}) ||
		gw.ExternalIDs[NetnsExternalID] != "qrouter-router-1" {
		t.Errorf("gateway: %+v", gw)
	}
	if a.Dev != "qr-qr-a" || !slices.Equal(a.Addrs, []netip.Prefix{pfx("10.0.0.1/24")}) || b.Dev != "qr-qr-b" {
		t.Errorf("interfaces (sorted by port id, IPv4 only): %+v %+v", a, b)
	}
	wantRoutes := []link.Route{
		{Dst: pfx("0.0.0.0/0"), Gateway: addr("203.0.113.1"), Dev: gw.Dev},
		{Dst: pfx("192.168.7.0/24"), Gateway: addr("10.0.1.254")},
	}
	if !slices.Equal(p.Routes, wantRoutes) {
		t.Errorf("routes %+v; want %+v", p.Routes, wantRoutes)
	}
	wantNAT := natRules{
		GatewayDev: gw.Dev, SNAT: addr("203.0.113.10"),
		Internal:    []netip.Prefix{pfx("10.0.0.0/24"), pfx("10.0.1.0/24")},
		FloatingIPs: []floatingIP{{Floating: addr("203.0.113.20"), Fixed: addr("10.0.0.5")}},
	}
	if !p.NAT.equal(wantNAT) {
		t.Errorf("NAT %+v; want %+v", p.NAT, wantNAT)
	}
}

func TestPlanRouterVariants(t *testing.T) {
	cfg := Config{NamespacePrefix: "qrouter-"}

	noSNAT := testRouter()
	noSNAT.EnableSNAT = false
	if p := cfg.planRouter(noSNAT); p.NAT.SNAT.IsValid() || len(p.NAT.Internal) != 0 || len(p.NAT.FloatingIPs) != 1 {
		t.Errorf("enable_snat false: %+v (floating IPs stay)", p.NAT)
	}

	internalOnly := testRouter()
	internalOnly.Gateway, internalOnly.FloatingIPs = nil, nil
	p := cfg.planRouter(internalOnly)
	if !p.NAT.empty() || len(p.Ports) != 2 || len(p.Routes) != 1 || len(p.Problems) != 0 {
		t.Errorf("router without a gateway: NAT %+v, %d ports, routes %v, problems %v", p.NAT, len(p.Ports), p.Routes, p.Problems)
	}

	bad := testRouter()
	bad.FloatingIPs = append(bad.FloatingIPs,
		msg.FloatingIP{ID: "fip-bad", FloatingIPAddress: "nope", FixedIPAddress: "10.0.0.6"},
		msg.FloatingIP{ID: "fip-dup", FloatingIPAddress: "203.0.113.20", FixedIPAddress: "10.0.0.7"})
	bad.Interfaces[0].MAC = "zz"
	bad.Routes = append(bad.Routes, msg.HostRoute{Destination: "fd00:1::/64", Nexthop: "fd00::2"})
	p = cfg.planRouter(bad)
	if len(p.Problems) != 4 || len(p.FloatingIPs) != 1 || len(p.Ports) != 2 || len(p.Routes) != 2 {
		t.Errorf("bad parts are left out, the rest planned: problems %q, %d floating IPs, %d ports, %d routes",
			p.Problems, len(p.FloatingIPs), len(p.Ports), len(p.Routes))
	}

	down := testRouter()
	down.Interfaces[0].AdminStateUp = false
	if p := cfg.planRouter(down); len(p.Ports) != 2 || slices.Contains(p.NAT.Internal, pfx("10.0.1.0/24")) {
		t.Errorf("an interface administratively down is not plugged: %d ports, internal %v", len(p.Ports), p.NAT.Internal)
	}
}

func TestGARPFrame(t *testing.T) {
	mac := []byte{0xfa, 0x16, 0x3e, 0, 0, 1}
	f := garpFrame(mac, addr("203.0.113.20"))
	if len(f) != 42 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x16, 0x3e, 0, 0, 1, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1,
		0xfa, 0x16, 0x3e, 0, 0, 1, 203, 0, 113, 20,
		0, 0, 0, 0, 0, 0, 203, 0, 113, 20,
	}
	if !slices.Equal(f, want) {
		t.Errorf("frame\n%x\nwant\n%x", f, want)
	}
}
