package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/agent/metadata"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/vif"
)

// NetnsExternalID is the external_ids key of the OVS interfaces the role
// plugs, naming the namespace behind them, so a restarted agent finds and
// removes the ones of networks it no longer serves.
const NetnsExternalID = "neutrino-dhcp-netns"

// plumbing is how one network's DHCP port is plugged (see package vif),
// tagged with NetnsExternalID.
type plumbing = vif.Spec

// Device names, as Neutron's OVS interface driver names a veth pair.
func tapName(portID string) string { return vif.TapName(portID) }
func devName(portID string) string { return "ns-" + vif.ShortID(portID) }

func shortID(id string) string { return vif.ShortID(id) }

// plumbingFor returns how network n's DHCP port should be plugged, or nil
// when the network gets no DHCP here: administratively down, no DHCP port
// yet, or no subnet with DHCP enabled.
func (c Config) plumbingFor(n msg.DHCPNetwork) (*plumbing, error) {
	if !n.AdminStateUp || n.DHCPPort == nil || !slices.ContainsFunc(n.Subnets, func(s msg.Subnet) bool { return s.EnableDHCP }) {
		return nil, nil
	}
	port := n.DHCPPort
	mac, err := net.ParseMAC(port.MAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("dhcp: network %s: DHCP port %s has MAC %q", n.ID, port.ID, port.MAC)
	}
	p := &plumbing{
		Netns: c.NamespacePrefix + n.ID, Dev: devName(port.ID), Tap: tapName(port.ID),
		PortID: port.ID, MAC: mac, MTU: n.MTU,
		ExternalIDs: map[string]string{NetnsExternalID: c.NamespacePrefix + n.ID},
	}
	for _, f := range port.FixedIPs {
		addr, err := netip.ParseAddr(f.IPAddress)
		if err != nil || !addr.Is4() {
			continue // IPv6 is not served (no DHCPv6 yet)
		}
		for _, s := range n.Subnets {
			if pfx, err := netip.ParsePrefix(s.CIDR); err == nil && s.ID == f.SubnetID && pfx.Contains(addr) {
				p.Addrs = append(p.Addrs, netip.PrefixFrom(addr, pfx.Bits()))
			}
		}
	}
	if c.IsolatedMetadata && len(p.Addrs) > 0 && metadata.IsolatedNetwork(n) {
		// The metadata role listens on it; as Neutron's DHCP agent, the
		// port holds it so that the guests' route to it ends here.
		p.Addrs = append(p.Addrs, netip.MustParsePrefix(metadata.Address+"/32"))
	}
	slices.SortFunc(p.Addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return p, nil
}

// plumber makes and removes the plumbing of DHCP ports.
type plumber struct {
	cfg Config
	db  *ovs.Client
}

func (pl *plumber) vif() vif.Plugger {
	return vif.Plugger{DB: pl.db, Bridge: pl.cfg.IntegrationBridge, BridgeNetns: pl.cfg.BridgeNetns}
}

// ensure makes the plumbing exist as p says, adopting what is there
// already (a restarted agent adopts its namespaces). It reports whether it
// had to (re)create the namespace end, which a server bound to it must
// follow.
func (pl *plumber) ensure(ctx context.Context, p *plumbing) (recreated bool, err error) {
	recreated, err = pl.vif().Plug(ctx, p)
	if err != nil {
		return recreated, fmt.Errorf("dhcp: %w", err)
	}
	return recreated, nil
}

// remove unplugs and deletes the plumbing of namespace ns: every OVS
// interface that names it (and its veth), then the namespace. Parts
// already gone are fine.
func (pl *plumber) remove(ctx context.Context, ns string) error {
	return pl.vif().RemoveNamespace(ctx, NetnsExternalID, ns)
}
