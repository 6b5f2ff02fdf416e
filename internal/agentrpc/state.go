package agentrpc

import (
	"context"
	"slices"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/scheduler"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// view reads what agents need from one transaction, caching what several
// parts of a message share (agents, networks, subnets).
type view struct {
	s  *Server
	tx *store.Tx
	// l2Agents maps a host to its Open vSwitch agent's configurations.
	l2Agents map[string]msg.L2Configurations
	nets     map[string]resource.Object // nil value: gone
	netPorts map[string][]resource.Object
	sg       groupCache
}

func (s *Server) newView(ctx context.Context, tx *store.Tx) (*view, error) {
	v := &view{s: s, tx: tx, l2Agents: map[string]msg.L2Configurations{}, nets: map[string]resource.Object{}, netPorts: map[string][]resource.Object{}, sg: newGroupCache()}
	agents, err := tx.List(ctx, s.agents, store.Where{"agent_type": {msg.AgentTypeOVS}})
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		raw, _ := a["configurations"].(map[string]any)
		conf, err := msg.ParseL2Configurations(raw)
		if err != nil {
			s.log.Warn("unreadable Open vSwitch agent configurations", "host", a["host"], "err", err)
			continue
		}
		v.l2Agents[a["host"].(string)] = conf
	}
	return v, nil
}

func (v *view) network(ctx context.Context, id string) (resource.Object, error) {
	if n, ok := v.nets[id]; ok {
		return n, nil
	}
	n, err := v.tx.Get(ctx, v.s.nets, id)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	v.nets[id] = n
	return n, nil
}

func (v *view) portsOf(ctx context.Context, netID string) ([]resource.Object, error) {
	if ps, ok := v.netPorts[netID]; ok {
		return ps, nil
	}
	ps, err := v.tx.List(ctx, v.s.ports, store.Where{"network_id": {netID}})
	if err != nil {
		return nil, err
	}
	v.netPorts[netID] = ps
	return ps, nil
}

// wiredHere tells whether the l2 agent of host wires the port: bound to
// this host's Open vSwitch agent.
func wiredHere(p resource.Object, host string) bool {
	return p["binding:host_id"] == host && p["binding:vif_type"] == "ovs"
}

// hostState builds the full desired state of a host for the given roles.
func (v *view) hostState(ctx context.Context, host string, roles []string) (*msg.HostState, error) {
	st := &msg.HostState{Version: msg.Version, Host: host}
	all := len(roles) == 0
	if all || slices.Contains(roles, msg.RoleL2) {
		l2, err := v.l2State(ctx, host)
		if err != nil {
			return nil, err
		}
		st.L2 = l2
	}
	if all || slices.Contains(roles, msg.RoleDHCP) {
		d, err := v.dhcpState(ctx, host)
		if err != nil {
			return nil, err
		}
		st.DHCP = d
	}
	if all || slices.Contains(roles, msg.RoleL3) {
		l3, err := v.l3State(ctx, host)
		if err != nil {
			return nil, err
		}
		st.L3 = l3
	}
	return st, nil
}

func (v *view) l2State(ctx context.Context, host string) (*msg.L2State, error) {
	st := &msg.L2State{Ports: []msg.Port{}, Networks: []msg.Network{}, FDB: []msg.NetworkFDB{}}
	ports, err := v.tx.List(ctx, v.s.ports, store.Where{"binding:host_id": {host}})
	if err != nil {
		return nil, err
	}
	var netIDs []string
	for _, p := range ports {
		if wiredHere(p, host) {
			st.Ports = append(st.Ports, portMsg(p))
			netIDs = append(netIDs, p["network_id"].(string))
		}
	}
	slices.Sort(netIDs)
	netIDs = slices.Compact(netIDs)
	if err := v.loadCIDRs(ctx, netIDs); err != nil {
		return nil, err
	}
	for _, id := range netIDs {
		n, err := v.network(ctx, id)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue
		}
		st.Networks = append(st.Networks, v.l2NetworkMsg(n))
		if fdb, ok, err := v.fdb(ctx, n, host); err != nil {
			return nil, err
		} else if ok {
			st.FDB = append(st.FDB, fdb)
		}
	}
	st.TunnelEndpoints = v.endpoints(host)
	if st.SecurityGroups, st.RemoteGroups, err = v.securityState(ctx, st.Ports); err != nil {
		return nil, err
	}
	return st, nil
}

// endpoints lists the tunnel endpoints of the other hosts.
func (v *view) endpoints(except string) []msg.TunnelEndpoint {
	out := []msg.TunnelEndpoint{}
	for h, c := range v.l2Agents {
		if h != except && c.TunnelingIP != "" {
			out = append(out, msg.TunnelEndpoint{Host: h, IP: c.TunnelingIP, TunnelTypes: slices.Clone(c.TunnelTypes)})
		}
	}
	slices.SortFunc(out, func(a, b msg.TunnelEndpoint) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// fdb is the l2 population of a tunnelled network seen from host: its
// ports wired on other hosts that have a tunnel endpoint.
func (v *view) fdb(ctx context.Context, n resource.Object, host string) (msg.NetworkFDB, bool, error) {
	nm := networkMsg(n)
	if !msg.IsTunnel(nm.Segment.NetworkType) {
		return msg.NetworkFDB{}, false, nil
	}
	ports, err := v.portsOf(ctx, nm.ID)
	if err != nil {
		return msg.NetworkFDB{}, false, err
	}
	out := msg.NetworkFDB{NetworkID: nm.ID, Segment: nm.Segment, FloodTo: []string{}, Entries: []msg.FDBEntry{}}
	for _, p := range ports {
		h, _ := p["binding:host_id"].(string)
		if h == host || !wiredHere(p, h) {
			continue
		}
		conf, ok := v.l2Agents[h]
		if !ok || conf.TunnelingIP == "" {
			continue
		}
		e := msg.FDBEntry{MAC: str(p["mac_address"]), TunnelIP: conf.TunnelingIP, Host: h, PortID: str(p["id"]), IPs: []string{}}
		for _, f := range port.FixedIPsOf(p) {
			e.IPs = append(e.IPs, f.IP.String())
		}
		out.Entries = append(out.Entries, e)
		out.FloodTo = append(out.FloodTo, conf.TunnelingIP)
	}
	slices.Sort(out.FloodTo)
	out.FloodTo = slices.Compact(out.FloodTo)
	slices.SortFunc(out.Entries, func(a, b msg.FDBEntry) int { return strings.Compare(a.MAC, b.MAC) })
	return out, true, nil
}

// dhcpAgent returns the id of the host's DHCP agent, or "".
func (v *view) dhcpAgent(ctx context.Context, host string) (string, error) {
	found, err := v.tx.List(ctx, v.s.agents, store.Where{"agent_type": {msg.AgentTypeDHCP}, "host": {host}})
	if err != nil || len(found) == 0 {
		return "", err
	}
	return found[0]["id"].(string), nil
}

func (v *view) dhcpState(ctx context.Context, host string) (*msg.DHCPState, error) {
	st := &msg.DHCPState{Networks: []msg.DHCPNetwork{}}
	agentID, err := v.dhcpAgent(ctx, host)
	if err != nil || agentID == "" {
		return st, err
	}
	ids, err := queryStrings(ctx, v.tx, `SELECT network_id FROM network_dhcp_agents WHERE agent_id = ? ORDER BY network_id`, agentID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		dn, ok, err := v.dhcpNetwork(ctx, id, host)
		if err != nil {
			return nil, err
		}
		if ok {
			st.Networks = append(st.Networks, dn)
		}
	}
	return st, nil
}

// hosts tells whether the DHCP agent agentID serves the network.
func (v *view) hosts(ctx context.Context, agentID, netID string) (bool, error) {
	if agentID == "" {
		return false, nil
	}
	ids, err := queryStrings(ctx, v.tx, `SELECT agent_id FROM network_dhcp_agents WHERE agent_id = ? AND network_id = ?`, agentID, netID)
	return len(ids) > 0, err
}

func (v *view) dhcpNetwork(ctx context.Context, netID, host string) (msg.DHCPNetwork, bool, error) {
	n, err := v.network(ctx, netID)
	if err != nil || n == nil {
		return msg.DHCPNetwork{}, false, err
	}
	nm := networkMsg(n)
	dn := msg.DHCPNetwork{ID: nm.ID, ProjectID: nm.ProjectID, AdminStateUp: nm.AdminStateUp, MTU: nm.MTU,
		Segment: nm.Segment, Revision: nm.Revision, Subnets: []msg.Subnet{}, Ports: []msg.Port{}}
	subs, err := v.tx.List(ctx, v.s.subnets, store.Where{"network_id": {netID}})
	if err != nil {
		return dn, false, err
	}
	for _, sub := range subs {
		dn.Subnets = append(dn.Subnets, subnetMsg(sub))
	}
	ports, err := v.portsOf(ctx, netID)
	if err != nil {
		return dn, false, err
	}
	deviceID := scheduler.DeviceID(host, netID)
	for _, p := range ports {
		pm := portMsg(p)
		dn.Ports = append(dn.Ports, pm)
		if pm.DeviceOwner == port.OwnerDHCP && pm.DeviceID == deviceID {
			dhcpPort := pm
			dn.DHCPPort = &dhcpPort
		}
	}
	return dn, true, nil
}

// notification builds one host's notification from its claimed entries;
// every part holds the current state of what the entries name.
func (v *view) notification(ctx context.Context, b outbox.Batch) (*msg.Notification, error) {
	n := &msg.Notification{Version: msg.Version, Host: b.Host, Epoch: b.Epoch, Seq: b.Seq}
	full := map[string]bool{}        // networks to refresh whole
	portIDs := map[string][]string{} // network → ports to refresh
	var netIDs []string
	endpoints := false
	var routerIDs []string
	for _, e := range b.Entries {
		switch e.Kind {
		case outbox.KindResync:
			n.Resync = true
			return n, nil
		case outbox.KindEndpoints:
			endpoints = true
		case outbox.KindRouter:
			routerIDs = append(routerIDs, e.RouterID())
		case outbox.KindNetwork:
			full[e.NetworkID] = true
			netIDs = append(netIDs, e.NetworkID)
		case outbox.KindPort:
			portIDs[e.NetworkID] = append(portIDs[e.NetworkID], e.PortID)
			netIDs = append(netIDs, e.NetworkID)
		}
	}
	slices.Sort(netIDs)
	netIDs = slices.Compact(netIDs)
	l2 := &msg.L2Update{}
	dhcp := &msg.DHCPUpdate{}
	agentID, err := v.dhcpAgent(ctx, b.Host)
	if err != nil {
		return nil, err
	}
	for _, netID := range netIDs {
		if err := v.l2Part(ctx, l2, b.Host, netID, full[netID], portIDs[netID]); err != nil {
			return nil, err
		}
		if err := v.dhcpPart(ctx, dhcp, b.Host, agentID, netID, full[netID], portIDs[netID]); err != nil {
			return nil, err
		}
	}
	if endpoints {
		l2.TunnelEndpoints, l2.TunnelEndpointsChanged = v.endpoints(b.Host), true
	}
	groupIDs, remoteIDs := securityEntries(b)
	if err := v.securityPart(ctx, l2, b.Host, groupIDs, remoteIDs); err != nil {
		return nil, err
	}
	if !emptyL2(l2) {
		n.L2 = l2
	}
	if len(dhcp.Networks)+len(dhcp.DeletedNetworks)+len(dhcp.Ports)+len(dhcp.DeletedPorts) > 0 {
		n.DHCP = dhcp
	}
	if len(routerIDs) > 0 {
		if n.L3, err = v.l3Part(ctx, b.Host, routerIDs); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func emptyL2(u *msg.L2Update) bool {
	return len(u.Ports)+len(u.DeletedPorts)+len(u.Networks)+len(u.DeletedNetworks)+len(u.FDB) == 0 && !u.TunnelEndpointsChanged &&
		len(u.SecurityGroups)+len(u.DeletedSecurityGroups)+len(u.RemoteGroups)+len(u.DeletedRemoteGroups) == 0
}

// l2Part adds one network's state on host: the named ports (or all of the
// host's ports on it), the network and its l2 population, or the
// network's removal when no port of it is wired here any more.
func (v *view) l2Part(ctx context.Context, u *msg.L2Update, host, netID string, full bool, ids []string) error {
	n, err := v.network(ctx, netID)
	if err != nil {
		return err
	}
	var ports []resource.Object
	if n != nil {
		if ports, err = v.portsOf(ctx, netID); err != nil {
			return err
		}
	}
	local := map[string]resource.Object{}
	for _, p := range ports {
		if wiredHere(p, host) {
			local[p["id"].(string)] = p
		}
	}
	if full {
		for _, p := range ports {
			if wiredHere(p, host) {
				u.Ports = append(u.Ports, portMsg(p))
			}
		}
	}
	for _, id := range uniq(ids) {
		if p, ok := local[id]; ok {
			if !full {
				u.Ports = append(u.Ports, portMsg(p))
			}
		} else {
			u.DeletedPorts = append(u.DeletedPorts, id)
		}
	}
	if len(local) == 0 {
		u.DeletedNetworks = append(u.DeletedNetworks, netID)
		return nil
	}
	if err := v.loadCIDRs(ctx, []string{netID}); err != nil {
		return err
	}
	u.Networks = append(u.Networks, v.l2NetworkMsg(n))
	fdb, ok, err := v.fdb(ctx, n, host)
	if err != nil {
		return err
	}
	if ok {
		u.FDB = append(u.FDB, fdb)
	}
	return nil
}

// dhcpPart adds one network's DHCP state for host's DHCP agent: the whole
// network, or the named ports, or its removal when the agent no longer
// serves it.
func (v *view) dhcpPart(ctx context.Context, u *msg.DHCPUpdate, host, agentID, netID string, full bool, ids []string) error {
	if agentID == "" {
		return nil
	}
	served, err := v.hosts(ctx, agentID, netID)
	if err != nil {
		return err
	}
	if !served {
		if full {
			u.DeletedNetworks = append(u.DeletedNetworks, netID)
		}
		return nil
	}
	if full {
		dn, ok, err := v.dhcpNetwork(ctx, netID, host)
		if err != nil {
			return err
		}
		if ok {
			u.Networks = append(u.Networks, dn)
		} else {
			u.DeletedNetworks = append(u.DeletedNetworks, netID)
		}
		return nil
	}
	ports, err := v.portsOf(ctx, netID)
	if err != nil {
		return err
	}
	byID := map[string]resource.Object{}
	for _, p := range ports {
		byID[p["id"].(string)] = p
	}
	for _, id := range uniq(ids) {
		if p, ok := byID[id]; ok {
			u.Ports = append(u.Ports, portMsg(p))
		} else {
			u.DeletedPorts = append(u.DeletedPorts, msg.PortRef{NetworkID: netID, ID: id})
		}
	}
	return nil
}

func uniq(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func int64Of(v any) int64 {
	n, _ := v.(int64)
	return n
}

func strings0(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func networkMsg(n resource.Object) msg.Network {
	up, _ := n["admin_state_up"].(bool)
	psec, ok := n["port_security_enabled"].(bool)
	return msg.Network{
		ID: str(n["id"]), ProjectID: str(n["project_id"]), AdminStateUp: up,
		MTU: int(int64Of(n["mtu"])), PortSecurityEnabled: psec || !ok, Revision: int64Of(n["revision_number"]),
		Segment: msg.Segment{
			NetworkType:     str(n["provider:network_type"]),
			PhysicalNetwork: str(n["provider:physical_network"]),
			SegmentationID:  int64Of(n["provider:segmentation_id"]),
		},
	}
}

// l2NetworkMsg is a network as the l2 agent needs it: with its subnets'
// CIDRs (loaded with loadCIDRs).
func (v *view) l2NetworkMsg(n resource.Object) msg.Network {
	m := networkMsg(n)
	m.CIDRs = slices.Clone(v.sg.cidrs[m.ID])
	return m
}

func portMsg(p resource.Object) msg.Port {
	up, _ := p["admin_state_up"].(bool)
	psec, _ := p["port_security_enabled"].(bool)
	m := msg.Port{
		ID: str(p["id"]), NetworkID: str(p["network_id"]), ProjectID: str(p["project_id"]),
		MAC: str(p["mac_address"]), AdminStateUp: up, DeviceOwner: str(p["device_owner"]),
		DeviceID: str(p["device_id"]), Host: str(p["binding:host_id"]), VIFType: str(p["binding:vif_type"]),
		PortSecurityEnabled: psec, SecurityGroups: strings0(p["security_groups"]),
		Status: str(p["status"]), Revision: int64Of(p["revision_number"]), FixedIPs: []msg.FixedIP{},
	}
	for _, f := range port.FixedIPsOf(p) {
		m.FixedIPs = append(m.FixedIPs, msg.FixedIP{SubnetID: f.SubnetID, IPAddress: f.IP.String()})
	}
	slices.Sort(m.SecurityGroups)
	for _, e := range listOf(p["allowed_address_pairs"]) {
		pair, _ := e.(map[string]any)
		mac := str(pair["mac_address"])
		if mac == "" {
			mac = m.MAC
		}
		m.AllowedAddressPairs = append(m.AllowedAddressPairs, msg.AddressPair{IPAddress: str(pair["ip_address"]), MACAddress: mac})
	}
	for _, e := range listOf(p["extra_dhcp_opts"]) {
		o, _ := e.(map[string]any)
		v := int(int64Of(o["ip_version"]))
		if v == 0 {
			v = 4
		}
		m.ExtraDHCPOpts = append(m.ExtraDHCPOpts, msg.DHCPOption{Name: str(o["opt_name"]), Value: str(o["opt_value"]), IPVersion: v})
	}
	return m
}

func subnetMsg(s resource.Object) msg.Subnet {
	on, _ := s["enable_dhcp"].(bool)
	m := msg.Subnet{
		ID: str(s["id"]), NetworkID: str(s["network_id"]), IPVersion: int(int64Of(s["ip_version"])),
		CIDR: str(s["cidr"]), GatewayIP: str(s["gateway_ip"]), EnableDHCP: on,
		DNSNameservers: strings0(s["dns_nameservers"]), IPv6RAMode: str(s["ipv6_ra_mode"]),
		IPv6AddressMode: str(s["ipv6_address_mode"]), Revision: int64Of(s["revision_number"]),
	}
	for _, e := range listOf(s["host_routes"]) {
		r, _ := e.(map[string]any)
		m.HostRoutes = append(m.HostRoutes, msg.HostRoute{Destination: str(r["destination"]), Nexthop: str(r["nexthop"])})
	}
	for _, e := range listOf(s["allocation_pools"]) {
		r, _ := e.(map[string]any)
		m.AllocationPools = append(m.AllocationPools, msg.IPRange{Start: str(r["start"]), End: str(r["end"])})
	}
	return m
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}
