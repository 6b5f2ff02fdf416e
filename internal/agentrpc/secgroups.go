package agentrpc

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/secgroup"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// listChunk bounds the ids of one IN (…) query, well under the bind
// variable limits of SQLite and PostgreSQL.
const listChunk = 500

// groupCache holds the security groups, rules and members one view has
// read, so that the hosts of one drain share them.
type groupCache struct {
	groups  map[string]resource.Object   // nil value: gone
	rules   map[string][]resource.Object // by security_group_id
	members map[string][]string          // remote group → member addresses
	// memberNets splits members by the members' network.
	memberNets map[string]map[string][]string // remote group → network → addresses
	cidrs      map[string][]string            // network → its subnets' CIDRs
	// hostGroups maps a host to the groups of its wired ports.
	hostGroups map[string][]string
}

func newGroupCache() groupCache {
	return groupCache{groups: map[string]resource.Object{}, rules: map[string][]resource.Object{},
		members: map[string][]string{}, memberNets: map[string]map[string][]string{},
		cidrs: map[string][]string{}, hostGroups: map[string][]string{}}
}

// loadGroups reads the groups not yet cached, and their rules, in bulk.
func (v *view) loadGroups(ctx context.Context, ids []string) error {
	var missing []any
	for _, id := range uniq(ids) {
		if _, ok := v.sg.groups[id]; !ok {
			missing = append(missing, id)
			v.sg.groups[id] = nil
		}
	}
	for chunk := range slices.Chunk(missing, listChunk) {
		groups, err := v.tx.List(ctx, v.s.groups, store.Where{"id": chunk})
		if err != nil {
			return err
		}
		for _, g := range groups {
			v.sg.groups[str(g["id"])] = g
		}
		rules, err := v.tx.List(ctx, v.s.rules, store.Where{"security_group_id": chunk})
		if err != nil {
			return err
		}
		for _, r := range rules {
			gid := str(r["security_group_id"])
			v.sg.rules[gid] = append(v.sg.rules[gid], r)
		}
	}
	return nil
}

// remotesOf returns the remote groups the rules of the (loaded) groups name.
func (v *view) remotesOf(groupIDs []string) []string {
	var out []string
	for _, g := range groupIDs {
		for _, r := range v.sg.rules[g] {
			if id := str(r["remote_group_id"]); id != "" {
				out = append(out, id)
			}
		}
	}
	return uniq(out)
}

// loadMembers reads the member addresses of the groups not yet cached, in
// bulk: the bindings of all groups in one query, then their ports.
func (v *view) loadMembers(ctx context.Context, ids []string) error {
	missing := uncached(v.sg.members, ids, func() []string { return []string{} })
	for _, id := range missing {
		v.sg.memberNets[id] = map[string][]string{}
	}
	if len(missing) == 0 {
		return nil
	}
	portGroups := map[string][]string{} // port → its groups among missing
	for chunk := range slices.Chunk(missing, listChunk) {
		rows, err := v.tx.Query(ctx, `SELECT port_id, security_group_id FROM security_group_port_bindings WHERE security_group_id IN (`+
			placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p, g string
			if err := rows.Scan(&p, &g); err != nil {
				rows.Close()
				return err
			}
			portGroups[p] = append(portGroups[p], g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	portIDs := make([]any, 0, len(portGroups))
	for id := range portGroups {
		portIDs = append(portIDs, id)
	}
	for chunk := range slices.Chunk(portIDs, listChunk) {
		ports, err := v.tx.List(ctx, v.s.ports, store.Where{"id": chunk})
		if err != nil {
			return err
		}
		for _, p := range ports {
			addrs, netID := memberAddresses(p), str(p["network_id"])
			for _, g := range portGroups[str(p["id"])] {
				v.sg.members[g] = append(v.sg.members[g], addrs...)
				v.sg.memberNets[g][netID] = append(v.sg.memberNets[g][netID], addrs...)
			}
		}
	}
	var nets []string
	for _, g := range missing {
		v.sg.members[g] = uniq(v.sg.members[g])
		for netID, addrs := range v.sg.memberNets[g] {
			v.sg.memberNets[g][netID] = uniq(addrs)
			nets = append(nets, netID)
		}
	}
	return v.loadCIDRs(ctx, nets)
}

// loadCIDRs reads the subnet CIDRs of the networks not yet cached, in bulk.
func (v *view) loadCIDRs(ctx context.Context, netIDs []string) error {
	missing := uncached(v.sg.cidrs, netIDs, func() []string { return []string{} })
	for chunk := range slices.Chunk(anys(missing), listChunk) {
		subnets, err := v.tx.List(ctx, v.s.subnets, store.Where{"network_id": chunk})
		if err != nil {
			return fmt.Errorf("subnets of remote group member networks: %w", err)
		}
		for _, sub := range subnets {
			if p, err := netip.ParsePrefix(str(sub["cidr"])); err == nil {
				netID := str(sub["network_id"])
				v.sg.cidrs[netID] = append(v.sg.cidrs[netID], p.Masked().String())
			}
		}
	}
	for _, id := range missing {
		v.sg.cidrs[id] = uniq(v.sg.cidrs[id])
	}
	return nil
}

// uncached returns the ids not yet in cache, entering each as empty() so
// that one missing from the database is not looked up again.
func uncached[V any](cache map[string]V, ids []string, empty func() V) []string {
	var out []string
	for _, id := range uniq(ids) {
		if _, ok := cache[id]; !ok {
			out = append(out, id)
			cache[id] = empty()
		}
	}
	return out
}

// remoteGroupMsg is a loaded remote group's members, all together and by
// network.
func (v *view) remoteGroupMsg(id string) msg.RemoteGroup {
	g := msg.RemoteGroup{ID: id, IPs: slices.Clone(v.sg.members[id])}
	for _, netID := range slices.Sorted(maps.Keys(v.sg.memberNets[id])) {
		g.Networks = append(g.Networks, msg.RemoteGroupNetwork{
			ID: netID, CIDRs: slices.Clone(v.sg.cidrs[netID]), IPs: slices.Clone(v.sg.memberNets[id][netID]),
		})
	}
	return g
}

// memberAddresses are what a rule naming one of the port's groups as
// remote group matches: its fixed IPs and allowed-address-pair addresses,
// a pair's network masked and a single-address network as an address.
func memberAddresses(p resource.Object) []string {
	var out []string
	for _, f := range port.FixedIPsOf(p) {
		out = append(out, f.IP.String())
	}
	for _, e := range listOf(p["allowed_address_pairs"]) {
		pair, _ := e.(map[string]any)
		if a, ok := pairAddress(str(pair["ip_address"])); ok {
			out = append(out, a)
		}
	}
	return out
}

func pairAddress(s string) (string, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		return a.Unmap().String(), err == nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", false
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String(), true
	}
	return p.String(), true
}

// groupsOfPorts returns the groups the wired ports use.
func groupsOfPorts(ports []msg.Port) []string {
	var out []string
	for _, p := range ports {
		if p.PortSecurityEnabled {
			out = append(out, p.SecurityGroups...)
		}
	}
	return uniq(out)
}

// securityState returns the groups of a host's wired ports and the
// member addresses of the remote groups their rules name.
func (v *view) securityState(ctx context.Context, ports []msg.Port) ([]msg.SecurityGroup, []msg.RemoteGroup, error) {
	used := groupsOfPorts(ports)
	if err := v.loadGroups(ctx, used); err != nil {
		return nil, nil, err
	}
	groups := []msg.SecurityGroup{}
	for _, id := range used {
		if g := v.sg.groups[id]; g != nil {
			groups = append(groups, v.groupMsg(g))
		}
	}
	remotes := v.remotesOf(used)
	if err := v.loadMembers(ctx, remotes); err != nil {
		return nil, nil, err
	}
	members := []msg.RemoteGroup{}
	for _, id := range remotes {
		members = append(members, v.remoteGroupMsg(id))
	}
	return groups, members, nil
}

// groupsOnHost returns the groups used by the host's wired ports (with
// their rules loaded).
func (v *view) groupsOnHost(ctx context.Context, host string) ([]string, error) {
	if ids, ok := v.sg.hostGroups[host]; ok {
		return ids, nil
	}
	ports, err := v.tx.List(ctx, v.s.ports, store.Where{"binding:host_id": {host}})
	if err != nil {
		return nil, err
	}
	var wired []msg.Port
	for _, p := range ports {
		if wiredHere(p, host) {
			wired = append(wired, portMsg(p))
		}
	}
	ids := groupsOfPorts(wired)
	if err := v.loadGroups(ctx, ids); err != nil {
		return nil, err
	}
	v.sg.hostGroups[host] = ids
	return ids, nil
}

// securityPart adds to u the groups and remote groups the entries name,
// as they now are on host: a group its ports use is sent with its rules
// (and the members of the remote groups its rules name), one they no
// longer use is deleted; the members of a remote group still named by a
// rule of the host's groups are sent, those of one no longer named are
// deleted.
func (v *view) securityPart(ctx context.Context, u *msg.L2Update, host string, groupIDs, remoteIDs []string) error {
	if len(groupIDs)+len(remoteIDs) == 0 {
		return nil
	}
	used, err := v.groupsOnHost(ctx, host)
	if err != nil {
		return err
	}
	if err := v.loadGroups(ctx, groupIDs); err != nil {
		return err
	}
	// The remote groups of a group that comes or goes come or go with it.
	remoteIDs = uniq(append(slices.Clone(remoteIDs), v.remotesOf(groupIDs)...))
	for _, id := range uniq(groupIDs) {
		if g := v.sg.groups[id]; g != nil && slices.Contains(used, id) {
			u.SecurityGroups = append(u.SecurityGroups, v.groupMsg(g))
		} else {
			u.DeletedSecurityGroups = append(u.DeletedSecurityGroups, id)
		}
	}
	named := v.remotesOf(used)
	if err := v.loadMembers(ctx, remoteIDs); err != nil {
		return err
	}
	for _, id := range remoteIDs {
		if slices.Contains(named, id) {
			u.RemoteGroups = append(u.RemoteGroups, v.remoteGroupMsg(id))
		} else {
			u.DeletedRemoteGroups = append(u.DeletedRemoteGroups, id)
		}
	}
	return nil
}

// securityEntries splits out the group and remote group ids of a batch.
func securityEntries(b outbox.Batch) (groupIDs, remoteIDs []string) {
	for _, e := range b.Entries {
		switch e.Kind {
		case outbox.KindSecurityGroup:
			groupIDs = append(groupIDs, e.SecurityGroupID)
		case outbox.KindRemoteGroup:
			remoteIDs = append(remoteIDs, e.SecurityGroupID)
		}
	}
	return uniq(groupIDs), uniq(remoteIDs)
}

// groupMsg is a loaded group with its rules in canonical form.
func (v *view) groupMsg(g resource.Object) msg.SecurityGroup {
	stateful, ok := g["stateful"].(bool)
	id := str(g["id"])
	m := msg.SecurityGroup{ID: id, Stateful: stateful || !ok, Revision: int64Of(g["revision_number"]), Rules: []msg.SecurityGroupRule{}}
	for _, r := range v.sg.rules[id] {
		m.Rules = append(m.Rules, ruleMsg(r))
	}
	slices.SortFunc(m.Rules, func(a, b msg.SecurityGroupRule) int { return strings.Compare(a.ID, b.ID) })
	return m
}

func ruleMsg(r resource.Object) msg.SecurityGroupRule {
	m := msg.SecurityGroupRule{
		ID: str(r["id"]), Direction: str(r["direction"]), Ethertype: str(r["ethertype"]),
		RemoteGroupID: str(r["remote_group_id"]),
	}
	if n, ok := secgroup.ProtocolNumber(str(r["protocol"])); ok {
		m.Protocol = &n
	}
	m.PortRangeMin, m.PortRangeMax = intPtr(r["port_range_min"]), intPtr(r["port_range_max"])
	if p, err := netip.ParsePrefix(str(r["remote_ip_prefix"])); err == nil && p.Bits() > 0 {
		m.RemoteIPPrefix = p.Masked().String()
	}
	return m
}

func intPtr(v any) *int {
	n, ok := v.(int64)
	if !ok {
		return nil
	}
	i := int(n)
	return &i
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys[T any](ss []T) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
