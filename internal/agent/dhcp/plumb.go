package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// NetnsExternalID is the external_ids key of the OVS interfaces the role
// plugs, naming the namespace behind them, so a restarted agent finds and
// removes the ones of networks it no longer serves.
const NetnsExternalID = "neutrino-dhcp-netns"

// plumbing is how one network's DHCP port is plugged: a veth pair whose
// namespace end (Dev, with the port's MAC, addresses and MTU) is in
// Netns and whose bridge end (Tap) is on the integration bridge, with
// external_ids as Nova's VIF driver sets them.
type plumbing struct {
	Netns, Dev, Tap string
	PortID          string
	MAC             net.HardwareAddr
	MTU             int
	Addrs           []netip.Prefix
}

func (p *plumbing) equal(o *plumbing) bool {
	return p != nil && o != nil && p.Netns == o.Netns && p.Dev == o.Dev && p.Tap == o.Tap && p.PortID == o.PortID &&
		p.MAC.String() == o.MAC.String() && p.MTU == o.MTU && slices.Equal(p.Addrs, o.Addrs)
}

// Device names, as Neutron's OVS interface driver names a veth pair.
func tapName(portID string) string { return "tap" + shortID(portID) }
func devName(portID string) string { return "ns-" + shortID(portID) }

func shortID(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

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
	slices.SortFunc(p.Addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return p, nil
}

// plumber makes and removes the plumbing of DHCP ports.
type plumber struct {
	cfg Config
	db  *ovs.Client
}

// ensure makes the plumbing exist as p says, checking what is there
// already (a restarted agent adopts its namespaces). It reports whether it
// had to (re)create the namespace end, which a server bound to it must
// follow.
func (pl *plumber) ensure(ctx context.Context, p *plumbing) (recreated bool, err error) {
	if !netns.Exists(p.Netns) {
		if err := netns.Create(p.Netns); err != nil {
			return false, err
		}
	}
	inside, err := link.Open(p.Netns)
	if err != nil {
		return false, err
	}
	defer inside.Close()
	host, err := link.Open(pl.cfg.BridgeNetns)
	if err != nil {
		return false, err
	}
	defer host.Close()
	if err := inside.SetUp("lo"); err != nil {
		return false, err
	}

	fresh, err := pl.reusable(inside, host, p)
	if err != nil {
		return false, err
	}
	if !fresh {
		// Whatever half of the pair is left goes (a veth takes its peer).
		if err := inside.Delete(p.Dev); err != nil {
			return false, err
		}
		if err := host.Delete(p.Tap); err != nil {
			return false, err
		}
		if err := host.AddVeth(link.Veth{Name: p.Tap, PeerName: p.Dev, PeerNetns: p.Netns, MTU: p.MTU, PeerMAC: p.MAC}); err != nil {
			return false, err
		}
		recreated = true
	}
	for _, step := range []func() error{
		func() error { return host.DisableTXChecksum(p.Tap) },
		func() error { return inside.DisableTXChecksum(p.Dev) },
		func() error { return setMTU(host, p.Tap, p.MTU) },
		func() error { return setMTU(inside, p.Dev, p.MTU) },
		func() error {
			for _, a := range p.Addrs {
				if err := inside.AddAddr(p.Dev, a); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return host.SetUp(p.Tap) },
		func() error { return inside.SetUp(p.Dev) },
	} {
		if err := step(); err != nil {
			return recreated, err
		}
	}
	err = pl.db.EnsurePort(ctx, pl.cfg.IntegrationBridge, ovs.Port{Name: p.Tap, ExternalIDs: map[string]string{
		"iface-id": p.PortID, "attached-mac": p.MAC.String(), "iface-status": "active",
		NetnsExternalID: p.Netns,
	}})
	if err != nil {
		return recreated, fmt.Errorf("dhcp: plug %s into %s: %w", p.Tap, pl.cfg.IntegrationBridge, err)
	}
	return recreated, nil
}

// reusable tells whether the veth pair that exists already can stay: both
// ends there, the right MAC, and no address that should not be there
// (addresses are only ever added in place).
func (pl *plumber) reusable(inside, host *link.Handle, p *plumbing) (bool, error) {
	info, err := inside.Get(p.Dev)
	if errors.Is(err, link.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !host.Exists(p.Tap) || info.MAC.String() != p.MAC.String() {
		return false, nil
	}
	addrs, err := inside.Addrs(p.Dev)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if !slices.Contains(p.Addrs, a) {
			return false, nil
		}
	}
	return true, nil
}

func setMTU(h *link.Handle, dev string, mtu int) error {
	if mtu <= 0 {
		return nil
	}
	info, err := h.Get(dev)
	if err != nil {
		return err
	}
	if info.MTU == mtu {
		return nil
	}
	return h.SetMTU(dev, mtu)
}

// remove unplugs and deletes the plumbing of namespace ns: every OVS
// interface that names it (and its veth), then the namespace. Parts
// already gone are fine.
func (pl *plumber) remove(ctx context.Context, ns string) error {
	host, err := link.Open(pl.cfg.BridgeNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	for _, iface := range pl.db.Interfaces() {
		if iface.ExternalIDs[NetnsExternalID] != ns {
			continue
		}
		if err := pl.db.DeletePort(ctx, iface.Name); err != nil {
			return fmt.Errorf("dhcp: unplug %s: %w", iface.Name, err)
		}
		// Deleted here, the veth goes at once; a namespace is freed later.
		if err := host.Delete(iface.Name); err != nil {
			return err
		}
	}
	return netns.Delete(ns)
}

// plugged lists the namespaces that OVS interfaces of this role name.
func (pl *plumber) plugged() map[string]bool {
	out := map[string]bool{}
	for _, iface := range pl.db.Interfaces() {
		if ns := iface.ExternalIDs[NetnsExternalID]; ns != "" {
			out[ns] = true
		}
	}
	return out
}
