package l2

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
)

// OVSView is what the role reads from OVSDB: the bridges with their ports.
// Each port is taken to have one interface (VIFs, patch and tunnel ports).
type OVSView struct {
	Bridges map[string]OVSBridge
}

// OVSBridge is a bridge in OVSDB.
type OVSBridge struct {
	Name        string
	ExternalIDs map[string]string
	Ports       map[string]OVSPort
}

// OVSPort is a port (and its interface) in OVSDB.
type OVSPort struct {
	Name string
	// Type is the interface type ("" for a system device, "patch", "vxlan"…).
	Type string
	// OFPort is the OpenFlow port number; 0 while ovs-vswitchd has not
	// numbered it, -1 when it failed to open it.
	OFPort      int
	Options     map[string]string
	ExternalIDs map[string]string
}

// BridgeSpec is a bridge the role needs.
type BridgeSpec struct {
	Name         string
	DatapathType string
	// Secure sets fail_mode=secure: without flows the bridge drops
	// everything instead of switching like a plain learning switch.
	Secure bool
}

// PortSpec is a port the role creates (patch and tunnel ports).
type PortSpec struct {
	Bridge, Name, Type string
	Options            map[string]string
}

// OVSChanges are OVSDB changes made in one transaction.
type OVSChanges struct {
	Bridges  []BridgeSpec
	AddPorts []PortSpec
	// DelPorts are ports to remove, as bridge → port names.
	DelPorts map[string][]string
	// SetBridgeIDs and DelBridgeIDs edit bridges' external_ids keys.
	SetBridgeIDs map[string]map[string]string
	DelBridgeIDs map[string][]string
}

// Empty reports whether there is nothing to change.
func (c OVSChanges) Empty() bool {
	return len(c.Bridges) == 0 && len(c.AddPorts) == 0 && len(c.DelPorts) == 0 &&
		len(c.SetBridgeIDs) == 0 && len(c.DelBridgeIDs) == 0
}

// OVSDB is the node's Open vSwitch database as the role uses it.
type OVSDB interface {
	// View returns the current contents; ok is false until the first
	// full read (monitor) of the database has arrived.
	View() (view OVSView, ok bool)
	// Apply makes the changes in one transaction. Bridges already present
	// are updated to the spec; ports already present are left alone.
	Apply(ctx context.Context, c OVSChanges) error
	// OnChange registers fn, called (without blocking) after every change
	// of bridges, ports or interfaces.
	OnChange(fn func())
}

// OpenFlow programs bridges' flow tables.
type OpenFlow interface {
	// Program changes bridge's flows in one OpenFlow 1.4 bundle, all or
	// nothing: it adds (or replaces) add, deletes exactly the flows del
	// (same table, priority and match), and deletes every flow whose
	// cookie belongs to one of deleteRuns.
	Program(ctx context.Context, bridge string, add, del []Flow, deleteRuns []uint64) error
	// Cookies returns the distinct cookies of the bridge's flows.
	Cookies(ctx context.Context, bridge string) ([]uint64, error)
}

// Port names, as Neutron's OVS agent gives them.
const (
	// PatchIntName is the patch port on br-int towards br-tun, PatchTunName
	// its peer on br-tun.
	PatchIntName = "patch-tun"
	PatchTunName = "patch-int"
)

// IntPhysPatchName is the patch port on br-int towards physical bridge br.
func IntPhysPatchName(br string) string { return truncateName("int-" + br) }

// PhysPatchName is the patch port on physical bridge br towards br-int.
func PhysPatchName(br string) string { return truncateName("phy-" + br) }

// TunnelPortName names the tunnel port of a type to a remote IP:
// "vxlan-c0000202" for 192.0.2.2 (Neutron's form), a hash for IPv6.
func TunnelPortName(networkType, remoteIP string) string {
	prefix := networkType
	if len(prefix) > 6 {
		prefix = prefix[:6]
	}
	if a, err := netip.ParseAddr(remoteIP); err == nil && a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%s-%02x%02x%02x%02x", prefix, b[0], b[1], b[2], b[3])
	}
	h := fnv.New32a()
	h.Write([]byte(remoteIP))
	return fmt.Sprintf("%s-%08x", prefix, h.Sum32())
}

// truncateName keeps a port name within a Linux device name's 15 bytes.
func truncateName(name string) string {
	if len(name) > 15 {
		return name[:15]
	}
	return name
}
