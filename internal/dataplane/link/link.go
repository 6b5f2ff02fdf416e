// Package link owns network links inside network namespaces: veth pairs
// (with the peer in another namespace), Linux bridges, link state, MTU, MAC,
// addresses and routes through netlink, and TX checksum offload through the
// ethtool ioctl. Every operation goes through a Handle bound to one
// namespace, so no OS thread has to switch namespaces per call.
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// ErrNotFound is wrapped by errors about a link that does not exist.
var ErrNotFound = errors.New("link not found")

// Handle operates on the links of one network namespace. It holds a netlink
// socket and an ioctl socket opened inside that namespace; Close releases
// them. A Handle is safe for use by one goroutine at a time.
type Handle struct {
	ns      string
	nl      *netlink.Handle
	ioctlFD int
	nsFDs   map[string]int // namespaces this handle moved links into, by name
}

// Open returns a Handle on the named namespace; "" is this process's own.
func Open(ns string) (*Handle, error) {
	h := &Handle{ns: ns, ioctlFD: -1, nsFDs: map[string]int{}}
	open := func() error {
		nl, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			nl.Close()
			return fmt.Errorf("ioctl socket: %w", err)
		}
		h.nl, h.ioctlFD = nl, fd
		return nil
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = netns.Do(ns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("link: open namespace %q: %w", ns, err)
	}
	return h, nil
}

// Namespace is the name of the namespace the handle works in ("" for this
// process's own).
func (h *Handle) Namespace() string { return h.ns }

// Close releases the handle's sockets.
func (h *Handle) Close() {
	if h.nl != nil {
		h.nl.Close()
		h.nl = nil
	}
	if h.ioctlFD >= 0 {
		unix.Close(h.ioctlFD)
		h.ioctlFD = -1
	}
	for name, fd := range h.nsFDs {
		unix.Close(fd)
		delete(h.nsFDs, name)
	}
}

// where names the handle's namespace in errors.
func (h *Handle) where() string {
	if h.ns == "" {
		return "host namespace"
	}
	return "namespace " + h.ns
}

func (h *Handle) wrap(op, name string, err error) error {
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		err = ErrNotFound
	}
	return fmt.Errorf("link: %s %s in %s: %w", op, name, h.where(), err)
}

// nsFD returns an open descriptor of the named namespace, kept until Close.
func (h *Handle) nsFD(ns string) (int, error) {
	if fd, ok := h.nsFDs[ns]; ok {
		return fd, nil
	}
	fd, err := unix.Open(netns.Path(ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	h.nsFDs[ns] = fd
	return fd, nil
}

func (h *Handle) get(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, h.wrap("find", name, err)
	}
	return l, nil
}

// Veth describes a veth pair: Name in the handle's namespace and PeerName in
// PeerNetns ("" for the handle's namespace). Zero MTU and nil MACs keep the
// kernel's defaults. Both ends start down.
type Veth struct {
	Name, PeerName string
	PeerNetns      string
	MTU            int
	MAC, PeerMAC   net.HardwareAddr
}

// AddVeth creates a veth pair, the peer directly in its namespace.
func (h *Handle) AddVeth(v Veth) error {
	if v.Name == "" || v.PeerName == "" {
		return fmt.Errorf("link: veth needs both names, got %q and %q", v.Name, v.PeerName)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.HardwareAddr = v.Name, v.MTU, v.MAC
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: v.PeerName, PeerHardwareAddr: v.PeerMAC, PeerMTU: uint32(v.MTU)}
	if v.PeerNetns != "" && v.PeerNetns != h.ns {
		fd, err := h.nsFD(v.PeerNetns)
		if err != nil {
			return h.wrap("create veth", v.Name, err)
		}
		veth.PeerNamespace = netlink.NsFd(fd)
	}
	if err := h.nl.LinkAdd(veth); err != nil {
		return h.wrap("create veth", v.Name+"/"+v.PeerName, err)
	}
	return nil
}

// AddBridge creates a Linux bridge (STP off) and sets it up.
func (h *Handle) AddBridge(name string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return h.wrap("create bridge", name, err)
	}
	return h.SetUp(name)
}

// SetMaster enslaves link name to bridge (both in the handle's namespace).
func (h *Handle) SetMaster(name, bridge string) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	br, err := h.get(bridge)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetMaster(l, br); err != nil {
		return h.wrap("attach to "+bridge, name, err)
	}
	return nil
}

// SetUp sets the link administratively up.
func (h *Handle) SetUp(name string) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return h.wrap("set up", name, err)
	}
	return nil
}

// SetDown sets the link administratively down.
func (h *Handle) SetDown(name string) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetDown(l); err != nil {
		return h.wrap("set down", name, err)
	}
	return nil
}

// SetMTU sets the link's MTU.
func (h *Handle) SetMTU(name string, mtu int) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetMTU(l, mtu); err != nil {
		return h.wrap(fmt.Sprintf("set MTU %d on", mtu), name, err)
	}
	return nil
}

// SetMAC sets the link's hardware address.
func (h *Handle) SetMAC(name string, mac net.HardwareAddr) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetHardwareAddr(l, mac); err != nil {
		return h.wrap("set MAC "+mac.String()+" on", name, err)
	}
	return nil
}

// MoveTo moves the link into namespace ns. Its addresses are lost.
func (h *Handle) MoveTo(name, ns string) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	fd, err := h.nsFD(ns)
	if err != nil {
		return h.wrap("move", name, err)
	}
	if err := h.nl.LinkSetNsFd(l, fd); err != nil {
		return h.wrap("move to namespace "+ns, name, err)
	}
	return nil
}

// Delete deletes the link (a veth pair goes with its peer). A missing link is
// not an error, so cleanups can call it unconditionally.
func (h *Handle) Delete(name string) error {
	l, err := h.get(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.nl.LinkDel(l); err != nil {
		if errors.Is(err, syscall.ENODEV) {
			// The kernel removed it meanwhile (a veth whose peer's
			// namespace was just deleted): gone is what was asked.
			return nil
		}
		return h.wrap("delete", name, err)
	}
	return nil
}

// Info is what tests and agents read back about a link.
type Info struct {
	Name        string
	Index       int
	MTU         int
	MAC         net.HardwareAddr
	Up          bool // administratively up
	MasterIndex int  // the bridge it is enslaved to, 0 if none
}

// Get returns the link's current attributes; the error wraps ErrNotFound
// when there is no such link.
func (h *Handle) Get(name string) (Info, error) {
	l, err := h.get(name)
	if err != nil {
		return Info{}, err
	}
	a := l.Attrs()
	return Info{
		Name: a.Name, Index: a.Index, MTU: a.MTU, MAC: a.HardwareAddr,
		Up: a.Flags&net.FlagUp != 0, MasterIndex: a.MasterIndex,
	}, nil
}

// Exists reports whether the link exists.
func (h *Handle) Exists(name string) bool {
	_, err := h.get(name)
	return err == nil
}

// AddAddr adds addr (an address with its prefix length, e.g. 10.0.0.5/24) to
// the link. Adding an address the link already has is not an error.
func (h *Handle) AddAddr(name string, addr netip.Prefix) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	nlAddr := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}}
	if err := h.nl.AddrReplace(l, nlAddr); err != nil {
		return h.wrap("add address "+addr.String()+" to", name, err)
	}
	return nil
}

// Addrs lists the link's addresses of global scope (no IPv6 link-local).
func (h *Handle) Addrs(name string) ([]netip.Prefix, error) {
	l, err := h.get(name)
	if err != nil {
		return nil, err
	}
	addrs, err := h.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, h.wrap("list addresses of", name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// Route is a route in the handle's namespace: to Dst (0.0.0.0/0 for the
// default route) through Gateway if valid, out of Dev if not empty.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Dev     string
}

// AddRoute adds or replaces the route to r.Dst.
func (h *Handle) AddRoute(r Route) error {
	if !r.Dst.IsValid() {
		return fmt.Errorf("link: route without destination in %s", h.where())
	}
	dst := r.Dst.Masked()
	nlRoute := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}}
	if r.Gateway.IsValid() {
		nlRoute.Gw = r.Gateway.AsSlice()
	}
	if r.Dev != "" {
		l, err := h.get(r.Dev)
		if err != nil {
			return err
		}
		nlRoute.LinkIndex = l.Attrs().Index
	}
	if err := h.nl.RouteReplace(nlRoute); err != nil {
		return fmt.Errorf("link: add route %s via %v dev %q in %s: %w", r.Dst, r.Gateway, r.Dev, h.where(), err)
	}
	return nil
}

// DelAddr removes addr from the link. Removing an address the link does
// not have is not an error.
func (h *Handle) DelAddr(name string, addr netip.Prefix) error {
	l, err := h.get(name)
	if err != nil {
		return err
	}
	nlAddr := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}}
	if err := h.nl.AddrDel(l, nlAddr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return h.wrap("remove address "+addr.String()+" from", name, err)
	}
	return nil
}

// Routes lists the IPv4 routes of the main table that go through a
// gateway (static routes, not the kernel's connected ones).
func (h *Handle) Routes() ([]Route, error) {
	routes, err := h.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("link: list routes in %s: %w", h.where(), err)
	}
	var out []Route
	for _, r := range routes {
		gw, ok := netip.AddrFromSlice(r.Gw)
		if !ok {
			continue
		}
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(ip.Unmap(), ones)
		}
		rt := Route{Dst: dst, Gateway: gw.Unmap()}
		if l, err := h.nl.LinkByIndex(r.LinkIndex); err == nil {
			rt.Dev = l.Attrs().Name
		}
		out = append(out, rt)
	}
	return out, nil
}

// DelRoute removes the route to r.Dst. A missing route is not an error.
func (h *Handle) DelRoute(r Route) error {
	dst := r.Dst.Masked()
	nlRoute := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}}
	if err := h.nl.RouteDel(nlRoute); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("link: remove route %s in %s: %w", r.Dst, h.where(), err)
	}
	return nil
}

// DisableTXChecksum turns TX checksum offload off on the link, as `ethtool
// -K name tx off` does. Kernel endpoints whose packets reach the OVS
// userspace datapath through a veth need it, or their TCP and UDP packets
// arrive with bad checksums.
func (h *Handle) DisableTXChecksum(name string) error {
	if err := h.ethtoolValue(name, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return h.wrap("disable TX checksum offload on", name, err)
	}
	return nil
}

// TXChecksum reports whether TX checksum offload is on.
func (h *Handle) TXChecksum(name string) (bool, error) {
	var on uint32
	if err := h.ethtoolGet(name, unix.ETHTOOL_GTXCSUM, &on); err != nil {
		return false, h.wrap("read TX checksum offload of", name, err)
	}
	return on != 0, nil
}
