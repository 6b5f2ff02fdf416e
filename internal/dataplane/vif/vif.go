// Package vif owns plugging an interface of another network namespace
// into an OVS bridge the way Nova's VIF driver plugs a VM: a veth pair
// whose namespace end carries the Neutron port's MAC, MTU and addresses
// and whose bridge end is an OVS port with external_ids iface-id,
// attached-mac and iface-status, so the l2 role wires it like any VIF.
// Both ends get TX checksum offload off (the userspace datapath needs it).
// The agent roles that own namespaces (dhcp, l3) share it; each tags its
// OVS interfaces with an external_ids key of its own naming the namespace,
// so a restarted agent finds and removes what it no longer wants.
package vif

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// Spec is how one port is plugged: Dev in namespace Netns, Tap on the
// bridge.
type Spec struct {
	Netns, Dev, Tap string
	PortID          string
	MAC             net.HardwareAddr
	// MTU of both ends; 0 keeps the kernel's.
	MTU int
	// Addrs are exactly the addresses Dev holds (others are removed).
	Addrs []netip.Prefix
	// ExternalIDs are added to the OVS interface's (the owner's tag).
	ExternalIDs map[string]string
}

// Equal tells whether two specs plug the same way.
func (s *Spec) Equal(o *Spec) bool {
	return s != nil && o != nil && s.Netns == o.Netns && s.Dev == o.Dev && s.Tap == o.Tap && s.PortID == o.PortID &&
		s.MAC.String() == o.MAC.String() && s.MTU == o.MTU && slices.Equal(s.Addrs, o.Addrs) &&
		maps.Equal(s.ExternalIDs, o.ExternalIDs)
}

// ShortID is the part of a port id that device names carry, as Neutron's
// interface drivers cut it (device names have at most 15 characters).
func ShortID(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// TapName is the bridge end's name of a port's veth pair.
func TapName(portID string) string { return "tap" + ShortID(portID) }

// Plugger plugs into one bridge of one Open vSwitch.
type Plugger struct {
	DB     *ovs.Client
	Bridge string
	// BridgeNetns is where ovs-vswitchd runs ("" for this process's own).
	BridgeNetns string
}

// Plug makes the plumbing exist as s says, adopting what is there already
// (a restarted agent keeps its interfaces). It reports whether it had to
// (re)create the namespace end, which sockets bound to it must follow.
// The namespace is created if missing, with loopback up.
func (p Plugger) Plug(ctx context.Context, s *Spec) (recreated bool, err error) {
	if !netns.Exists(s.Netns) {
		if err := netns.Create(s.Netns); err != nil {
			return false, err
		}
	}
	inside, err := link.Open(s.Netns)
	if err != nil {
		return false, err
	}
	defer inside.Close()
	host, err := link.Open(p.BridgeNetns)
	if err != nil {
		return false, err
	}
	defer host.Close()
	if err := inside.SetUp("lo"); err != nil {
		return false, err
	}
	keep, err := reusable(inside, host, s)
	if err != nil {
		return false, err
	}
	if !keep {
		// Whatever half of the pair is left goes (a veth takes its peer).
		if err := inside.Delete(s.Dev); err != nil {
			return false, err
		}
		if err := host.Delete(s.Tap); err != nil {
			return false, err
		}
		if err := host.AddVeth(link.Veth{Name: s.Tap, PeerName: s.Dev, PeerNetns: s.Netns, MTU: s.MTU, PeerMAC: s.MAC}); err != nil {
			return false, err
		}
		recreated = true
	}
	for _, step := range []func() error{
		func() error { return host.DisableTXChecksum(s.Tap) },
		func() error { return inside.DisableTXChecksum(s.Dev) },
		func() error { return setMTU(host, s.Tap, s.MTU) },
		func() error { return setMTU(inside, s.Dev, s.MTU) },
		func() error { return SetAddrs(inside, s.Dev, s.Addrs) },
		func() error { return host.SetUp(s.Tap) },
		func() error { return inside.SetUp(s.Dev) },
	} {
		if err := step(); err != nil {
			return recreated, err
		}
	}
	ids := map[string]string{"iface-id": s.PortID, "attached-mac": s.MAC.String(), "iface-status": "active"}
	maps.Copy(ids, s.ExternalIDs)
	if err := p.DB.EnsurePort(ctx, p.Bridge, ovs.Port{Name: s.Tap, ExternalIDs: ids}); err != nil {
		return recreated, fmt.Errorf("vif: plug %s into %s: %w", s.Tap, p.Bridge, err)
	}
	return recreated, nil
}

// reusable tells whether the veth pair that exists already can stay: both
// ends there with the right MAC.
func reusable(inside, host *link.Handle, s *Spec) (bool, error) {
	info, err := inside.Get(s.Dev)
	if errors.Is(err, link.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return host.Exists(s.Tap) && info.MAC.String() == s.MAC.String(), nil
}

// SetAddrs makes want exactly the global addresses of dev: missing ones
// are added, others removed, the ones that stay are not touched.
func SetAddrs(h *link.Handle, dev string, want []netip.Prefix) error {
	have, err := h.Addrs(dev)
	if err != nil {
		return err
	}
	for _, a := range want {
		if !slices.Contains(have, a) {
			if err := h.AddAddr(dev, a); err != nil {
				return err
			}
		}
	}
	for _, a := range have {
		if !slices.Contains(want, a) {
			if err := h.DelAddr(dev, a); err != nil {
				return err
			}
		}
	}
	return nil
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

// Unplug removes from OVS every interface whose external_ids[key] is
// value, with its veth. Parts already gone are fine.
func (p Plugger) Unplug(ctx context.Context, key, value string) error {
	host, err := link.Open(p.BridgeNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	for _, iface := range p.DB.Interfaces() {
		if iface.ExternalIDs[key] != value {
			continue
		}
		if err := p.UnplugPort(ctx, host, iface.Name); err != nil {
			return err
		}
	}
	return nil
}

// UnplugPort removes one OVS port and its veth (through its bridge end,
// host being a handle on BridgeNetns).
func (p Plugger) UnplugPort(ctx context.Context, host *link.Handle, tap string) error {
	if err := p.DB.DeletePort(ctx, tap); err != nil && !errors.Is(err, ovs.ErrNotFound) {
		return fmt.Errorf("vif: unplug %s: %w", tap, err)
	}
	// Deleted here, the veth goes at once; a namespace is freed later.
	return host.Delete(tap)
}

// RemoveNamespace unplugs every interface tagged key=ns and deletes the
// namespace ns.
func (p Plugger) RemoveNamespace(ctx context.Context, key, ns string) error {
	if err := p.Unplug(ctx, key, ns); err != nil {
		return err
	}
	return netns.Delete(ns)
}

// Tagged returns the values of external_ids[key] over the OVS interfaces
// that have it, with the interfaces' names under each.
func (p Plugger) Tagged(key string) map[string][]string {
	out := map[string][]string{}
	for _, iface := range p.DB.Interfaces() {
		if v := iface.ExternalIDs[key]; v != "" {
			out[v] = append(out[v], iface.Name)
		}
	}
	return out
}
