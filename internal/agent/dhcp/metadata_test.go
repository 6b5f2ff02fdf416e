package dhcp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// With enable_isolated_metadata a network without a router tells its
// guests to reach 169.254.169.254 through the DHCP port (before the
// default route, which option 121 must then carry); one with a router
// interface, or without the option, does not.
func TestBuildTableIsolatedMetadataRoute(t *testing.T) {
	n := testNetwork()
	n.Subnets = n.Subnets[:1] // sub-a: gateway 10.0.0.1, a host route
	l := onlyLease(t, BuildTable(n, n.DHCPPort, Settings{IsolatedMetadata: true}), "fa:16:3e:00:00:05")
	want := []Route{route("192.168.0.0/16", "10.0.0.254"), route("169.254.169.254/32", "10.0.0.2"), route("0.0.0.0/0", "10.0.0.1")}
	if !slices.Equal(l.Routes, want) {
		t.Errorf("isolated network: routes %v, want %v", l.Routes, want)
	}
	l = onlyLease(t, BuildTable(n, n.DHCPPort, Settings{}), "fa:16:3e:00:00:05")
	if slices.Contains(l.Routes, route("169.254.169.254/32", "10.0.0.2")) {
		t.Errorf("without enable_isolated_metadata: routes %v", l.Routes)
	}
	n.Ports = append(n.Ports, msg.Port{ID: "router-if", NetworkID: "net-1", DeviceOwner: "network:router_interface",
		FixedIPs: []msg.FixedIP{fixedIP("sub-a", "10.0.0.1")}})
	l = onlyLease(t, BuildTable(n, n.DHCPPort, Settings{IsolatedMetadata: true}), "fa:16:3e:00:00:05")
	if slices.Contains(l.Routes, route("169.254.169.254/32", "10.0.0.2")) {
		t.Errorf("a network with a router gets metadata through it: routes %v", l.Routes)
	}
}

// The DHCP port of an isolated network holds the metadata address too
// (the role's address reconciliation would otherwise remove it).
func TestPlumbingIsolatedMetadataAddress(t *testing.T) {
	n := testNetwork()
	meta := netip.MustParsePrefix("169.254.169.254/32")
	cfg := Config{Settings: Settings{IsolatedMetadata: true}}
	p, err := cfg.plumbingFor(n)
	if err != nil || !slices.Contains(p.Addrs, meta) {
		t.Fatalf("isolated network: %+v %v", p, err)
	}
	if p, _ := (Config{}).plumbingFor(n); slices.Contains(p.Addrs, meta) {
		t.Errorf("without enable_isolated_metadata: %v", p.Addrs)
	}
	n.Ports = append(n.Ports, msg.Port{ID: "router-if", NetworkID: "net-1", DeviceOwner: "network:router_interface"})
	if p, _ := cfg.plumbingFor(n); slices.Contains(p.Addrs, meta) {
		t.Errorf("network with a router: %v", p.Addrs)
	}
}
