package link_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// newNetns creates a namespace for this test only and deletes it (with every
// link inside) when the test ends.
func newNetns(t *testing.T, role string) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := "nt-link-" + hex.EncodeToString(b) + "-" + role
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

func open(t *testing.T, ns string) *link.Handle {
	t.Helper()
	h, err := link.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ping(t *testing.T, ns, addr string) error {
	t.Helper()
	out, err := netns.Command(ns, "ping", "-c", "1", "-W", "2", addr).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

// Two namespaces joined by a veth pair through a Linux bridge in a third
// one: addresses, MTU, MAC, offload, routes and deletion as a user sees them.
func TestVethBridgeAddressesRoutes(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.LookPathOrSkip(t, "ping", "apt-get install iputils-ping")
	a, b, sw := newNetns(t, "a"), newNetns(t, "b"), newNetns(t, "sw")
	ha, hb, hsw := open(t, a), open(t, b), open(t, sw)

	must(t, hsw.AddBridge("br0"))
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	must(t, hsw.AddVeth(link.Veth{Name: "sw-a", PeerName: "eth0", PeerNetns: a, MTU: 1450, PeerMAC: mac}))
	must(t, hsw.AddVeth(link.Veth{Name: "sw-b", PeerName: "eth0", PeerNetns: b}))
	for _, port := range []string{"sw-a", "sw-b"} {
		must(t, hsw.SetMaster(port, "br0"))
		must(t, hsw.SetUp(port))
	}

	info, err := ha.Get("eth0")
	must(t, err)
	if info.MTU != 1450 || info.MAC.String() != mac.String() || info.Up {
		t.Fatalf("peer in %s: MTU %d MAC %s up %v; want 1450, %s, down", a, info.MTU, info.MAC, info.Up, mac)
	}
	br, err := hsw.Get("br0")
	must(t, err)
	if port, err := hsw.Get("sw-a"); err != nil || port.MasterIndex != br.Index {
		t.Fatalf("sw-a master %d (%v), want br0 (%d)", port.MasterIndex, err, br.Index)
	}
	if hsw.Exists("eth0") {
		t.Fatal("the peer also exists in the bridge's namespace")
	}

	must(t, hb.SetMTU("eth0", 1450))
	newMAC := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}
	must(t, hb.SetMAC("eth0", newMAC))
	for _, h := range []*link.Handle{ha, hb} {
		on, err := h.TXChecksum("eth0")
		must(t, err)
		if !on {
			t.Fatalf("TX checksum offload already off on a new veth in %s", h.Namespace())
		}
		must(t, h.DisableTXChecksum("eth0"))
		if on, err := h.TXChecksum("eth0"); err != nil || on {
			t.Fatalf("TX checksum offload after DisableTXChecksum: %v, %v", on, err)
		}
		must(t, h.SetUp("eth0"))
		must(t, h.SetUp("lo"))
	}
	if info, _ := hb.Get("eth0"); info.MAC.String() != newMAC.String() || info.MTU != 1450 || !info.Up {
		t.Fatalf("after updates: %+v", info)
	}

	must(t, ha.AddAddr("eth0", netip.MustParsePrefix("10.9.0.1/24")))
	must(t, ha.AddAddr("eth0", netip.MustParsePrefix("10.9.0.1/24"))) // again: no error
	must(t, hb.AddAddr("eth0", netip.MustParsePrefix("10.9.0.2/24")))
	addrs, err := ha.Addrs("eth0")
	must(t, err)
	if !slices.Equal(addrs, []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}) {
		t.Fatalf("addresses of eth0 in %s: %v", a, addrs)
	}
	if err := ping(t, a, "10.9.0.2"); err != nil {
		t.Fatalf("ping across the bridge: %v", err)
	}

	// An address behind b, reachable from a only through a route.
	must(t, hb.AddAddr("lo", netip.MustParsePrefix("192.0.2.7/32")))
	if err := ping(t, a, "192.0.2.7"); err == nil {
		t.Fatal("192.0.2.7 reachable before the route exists")
	}
	must(t, ha.AddRoute(link.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.9.0.2")}))
	if err := ping(t, a, "192.0.2.7"); err != nil {
		t.Fatalf("ping through the default route: %v", err)
	}

	// Moving a link, and deleting one deletes its peer.
	must(t, ha.AddVeth(link.Veth{Name: "move-me", PeerName: "move-peer"}))
	must(t, ha.MoveTo("move-me", b))
	if ha.Exists("move-me") || !hb.Exists("move-me") {
		t.Fatal("move-me did not move to b")
	}
	must(t, hb.Delete("move-me"))
	if ha.Exists("move-peer") {
		t.Fatal("deleting one end of a veth left its peer")
	}
	must(t, hb.Delete("move-me")) // missing: not an error
	if _, err := ha.Get("nope"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("Get of a missing link: %v, want ErrNotFound", err)
	}
	if err := ha.SetUp("nope"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("SetUp of a missing link: %v, want ErrNotFound", err)
	}
}

func TestVethNeedsNames(t *testing.T) {
	testenv.RequireRoot(t)
	h := open(t, newNetns(t, "x"))
	if err := h.AddVeth(link.Veth{Name: "only-one"}); err == nil {
		t.Fatal("veth without a peer name was created")
	}
}
