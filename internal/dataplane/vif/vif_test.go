package vif_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/vif"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlugAdoptsChangesAndUnplugs plugs a namespace's interface into a
// test-bed node's OVS, changes its addresses in place, and unplugs it.
func TestPlugAdoptsChangesAndUnplugs(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	bed := testbed.New(t, testbed.Spec{Nodes: 1})
	node := bed.Nodes[0]
	db := node.OVSDB(t)
	ctx := context.Background()
	must(t, db.EnsureBridge(ctx, ovs.Bridge{Name: "br-int", DatapathType: "netdev", FailMode: "secure"}))
	ns := bed.Prefix + "-vif"
	t.Cleanup(func() { netns.Delete(ns) })

	pl := vif.Plugger{DB: db, Bridge: "br-int", BridgeNetns: node.Netns}
	mac, _ := net.ParseMAC("fa:16:3e:00:00:09")
	spec := &vif.Spec{
		Netns: ns, Dev: "qr-port1", Tap: vif.TapName("port1"), PortID: "port1", MAC: mac, MTU: 1450,
		Addrs:       []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.1.1/24")},
		ExternalIDs: map[string]string{"owner": ns},
	}
	recreated, err := pl.Plug(ctx, spec)
	must(t, err)
	if !recreated {
		t.Error("first plug did not report a new interface")
	}
	iface, err := db.Interface("tapport1")
	must(t, err)
	if iface.Bridge != "br-int" || iface.IfaceID != "port1" || iface.AttachedMAC != mac.String() || iface.ExternalIDs["owner"] != ns {
		t.Errorf("OVS interface %+v", iface)
	}

	inside, err := link.Open(ns)
	must(t, err)
	defer inside.Close()
	before, err := inside.Get("qr-port1")
	must(t, err)
	csum, err := inside.TXChecksum("qr-port1")
	must(t, err)
	if before.MTU != 1450 || !before.Up || csum || before.MAC.String() != mac.String() {
		t.Errorf("namespace end %+v, TX checksum offload %v", before, csum)
	}

	// One address goes, another comes: in place, same interface.
	spec.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("203.0.113.9/32")}
	recreated, err = pl.Plug(ctx, spec)
	must(t, err)
	after, err := inside.Get("qr-port1")
	must(t, err)
	addrs, err := inside.Addrs("qr-port1")
	must(t, err)
	slices.SortFunc(addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if recreated || after.Index != before.Index || !slices.Equal(addrs, spec.Addrs) {
		t.Errorf("after an address change: recreated %v, index %d (was %d), addresses %v; want %v", recreated, after.Index, before.Index, addrs, spec.Addrs)
	}
	if got := pl.Tagged("owner"); !slices.Equal(got[ns], []string{"tapport1"}) {
		t.Errorf("Tagged: %v", got)
	}

	must(t, pl.RemoveNamespace(ctx, "owner", ns))
	if _, err := db.Interface("tapport1"); !errors.Is(err, ovs.ErrNotFound) {
		t.Errorf("OVS interface left: %v", err)
	}
	if node.Links(t).Exists("tapport1") {
		t.Error("veth left in the node")
	}
	if netns.Exists(ns) {
		t.Error("namespace left")
	}
}
