// Package outbox owns the record of what agents must hear about: in the
// transaction of a change, one entry per host that must learn of it (the
// hosts of the port, the hosts with ports on its network for l2
// population, the DHCP agents of the network, the hosts using a security
// group or naming it as remote group); later any server replica
// claims the entries, numbers each host's notification in that host's
// sequence and publishes it. An entry is written or rolled back with its
// change, so no committed change goes unannounced; a notification lost
// after numbering leaves a gap the agent notices, and it resyncs.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Entry kinds: what a host must refresh.
const (
	// KindPort: one port and its network (the port's state if bound to
	// the host, its network, the network's l2 population, and the port in
	// the network's DHCP view).
	KindPort = "port"
	// KindNetwork: everything of one network on the host (the network,
	// its local ports, l2 population, and its DHCP view or its removal).
	KindNetwork = "network"
	// KindEndpoints: the tunnel endpoints of the other hosts.
	KindEndpoints = "endpoints"
	// KindResync: the host must take a full sync.
	KindResync = "resync"
	// KindSecurityGroup: one security group (its rules) on the host, or
	// its removal when no port of the host uses it any more.
	KindSecurityGroup = "security_group"
	// KindRemoteGroup: the member addresses of one group that rules of
	// the host's groups name as remote group, or their removal when no
	// such rule is left.
	KindRemoteGroup = "remote_group"
)

// Entry says one host must hear about one change.
type Entry struct {
	Host      string
	Kind      string
	NetworkID string
	PortID    string
	// SecurityGroupID names the group of KindSecurityGroup and
	// KindRemoteGroup.
	SecurityGroupID string
}

// Add records entries in the change's transaction; entries without a host
// are dropped.
func Add(ctx context.Context, tx *store.Tx, entries ...Entry) error {
	for _, e := range entries {
		if e.Host == "" {
			continue
		}
		_, err := tx.Exec(ctx, `INSERT INTO agent_outbox (id, host, kind, network_id, port_id, security_group_id) VALUES (?, ?, ?, ?, ?, ?)`,
			uuid.NewString(), e.Host, e.Kind, e.NetworkID, e.PortID, e.SecurityGroupID)
		if err != nil {
			return fmt.Errorf("outbox: record %s change for host %s: %w", e.Kind, e.Host, err)
		}
	}
	return nil
}

// NetworkHosts returns the hosts that hold state of a network: those with
// ports bound on it and those of its DHCP agents, sorted.
func NetworkHosts(ctx context.Context, tx *store.Tx, netID string) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT DISTINCT binding_host_id FROM ports WHERE network_id = ? AND binding_host_id <> ''
		UNION SELECT a.host FROM network_dhcp_agents n JOIN agents a ON a.id = n.agent_id WHERE n.network_id = ?`, netID, netID)
}

// L2Hosts returns the hosts of every Open vSwitch agent, sorted.
func L2Hosts(ctx context.Context, tx *store.Tx) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT host FROM agents WHERE agent_type = ?`, msg.AgentTypeOVS)
}

func queryStrings(ctx context.Context, tx *store.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		if s.String != "" {
			out = append(out, s.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// PortChanged records a change of a port: its hosts (pass the old and new
// binding:host_id) and every host of its network hear of it.
func PortChanged(ctx context.Context, tx *store.Tx, netID, portID string, hosts ...string) error {
	all, err := NetworkHosts(ctx, tx, netID)
	if err != nil {
		return err
	}
	return addForHosts(ctx, tx, merge(all, hosts), Entry{Kind: KindPort, NetworkID: netID, PortID: portID})
}

// NetworkChanged records a change of a whole network (its attributes, its
// subnets, its DHCP agents) for every host of the network and the extra
// hosts given (a DHCP agent it just left).
func NetworkChanged(ctx context.Context, tx *store.Tx, netID string, hosts ...string) error {
	all, err := NetworkHosts(ctx, tx, netID)
	if err != nil {
		return err
	}
	return addForHosts(ctx, tx, merge(all, hosts), Entry{Kind: KindNetwork, NetworkID: netID})
}

// addForHosts records the change e names once for each of the hosts.
func addForHosts(ctx context.Context, tx *store.Tx, hosts []string, e Entry) error {
	entries := make([]Entry, 0, len(hosts))
	for _, h := range hosts {
		e.Host = h
		entries = append(entries, e)
	}
	return Add(ctx, tx, entries...)
}

// EndpointsChanged records that the tunnel endpoints changed, for every
// l2 host except the one whose endpoint it is (it learns on its own sync).
func EndpointsChanged(ctx context.Context, tx *store.Tx, except string) error {
	hosts, err := L2Hosts(ctx, tx)
	if err != nil {
		return err
	}
	hosts = slices.DeleteFunc(hosts, func(h string) bool { return h == except })
	return addForHosts(ctx, tx, hosts, Entry{Kind: KindEndpoints})
}

// GroupHosts returns the hosts with ports bound that use any of the
// security groups, sorted.
func GroupHosts(ctx context.Context, tx *store.Tx, groupIDs []string) ([]string, error) {
	if len(groupIDs) == 0 {
		return nil, nil
	}
	return queryStrings(ctx, tx, `SELECT DISTINCT p.binding_host_id FROM security_group_port_bindings b
		JOIN ports p ON p.id = b.port_id WHERE p.binding_host_id <> '' AND b.security_group_id IN (`+placeholders(len(groupIDs))+`)`, anys(groupIDs)...)
}

// RemoteGroupHosts returns the hosts with ports bound that use a group
// with a rule naming any of the groups as remote group, sorted.
func RemoteGroupHosts(ctx context.Context, tx *store.Tx, groupIDs []string) ([]string, error) {
	if len(groupIDs) == 0 {
		return nil, nil
	}
	return queryStrings(ctx, tx, `SELECT DISTINCT p.binding_host_id FROM security_group_rules r
		JOIN security_group_port_bindings b ON b.security_group_id = r.security_group_id
		JOIN ports p ON p.id = b.port_id
		WHERE p.binding_host_id <> '' AND r.remote_group_id IN (`+placeholders(len(groupIDs))+`)`, anys(groupIDs)...)
}

// SecurityGroupChanged records a change of a group's rules for every host
// using the group; remoteGroupIDs are the remote groups of the rules that
// changed, whose member addresses those hosts may now need or may drop.
func SecurityGroupChanged(ctx context.Context, tx *store.Tx, groupID string, remoteGroupIDs ...string) error {
	hosts, err := GroupHosts(ctx, tx, []string{groupID})
	if err != nil {
		return err
	}
	var entries []Entry
	for _, h := range hosts {
		entries = append(entries, Entry{Host: h, Kind: KindSecurityGroup, SecurityGroupID: groupID})
		for _, r := range merge(nil, remoteGroupIDs) {
			entries = append(entries, Entry{Host: h, Kind: KindRemoteGroup, SecurityGroupID: r})
		}
	}
	return Add(ctx, tx, entries...)
}

// MembersChanged records that the member addresses of the groups changed
// (a port joined or left them, or its addresses changed), for every host
// whose groups' rules name one of them as remote group.
func MembersChanged(ctx context.Context, tx *store.Tx, groupIDs ...string) error {
	groupIDs = merge(nil, groupIDs)
	var entries []Entry
	for _, g := range groupIDs {
		hosts, err := RemoteGroupHosts(ctx, tx, []string{g})
		if err != nil {
			return err
		}
		for _, h := range hosts {
			entries = append(entries, Entry{Host: h, Kind: KindRemoteGroup, SecurityGroupID: g})
		}
	}
	return Add(ctx, tx, entries...)
}

// NetworkMembersChanged records that the networks of the members of some
// groups changed their subnets (so the CIDRs sent with the members): the
// groups with a member port on the network that rules name as remote
// group are announced as in MembersChanged.
func NetworkMembersChanged(ctx context.Context, tx *store.Tx, netID string) error {
	groups, err := queryStrings(ctx, tx, `SELECT DISTINCT b.security_group_id FROM security_group_port_bindings b
		JOIN ports p ON p.id = b.port_id WHERE p.network_id = ?
		AND EXISTS (SELECT 1 FROM security_group_rules r WHERE r.remote_group_id = b.security_group_id)`, netID)
	if err != nil {
		return err
	}
	return MembersChanged(ctx, tx, groups...)
}

// PortGroupsChanged records, for each of the hosts a port is or was
// bound to, that the groups it uses or used must be refreshed there (the
// host may gain or lose them).
func PortGroupsChanged(ctx context.Context, tx *store.Tx, groupIDs []string, hosts ...string) error {
	var entries []Entry
	for _, h := range merge(nil, hosts) {
		for _, g := range merge(nil, groupIDs) {
			entries = append(entries, Entry{Host: h, Kind: KindSecurityGroup, SecurityGroupID: g})
		}
	}
	return Add(ctx, tx, entries...)
}

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, 0, 2*n)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func merge(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	return out
}

// Batch is one host's share of claimed entries: one notification.
type Batch struct {
	Host    string
	Epoch   string
	Seq     uint64
	Entries []Entry
}

// Claim takes up to limit entries (removing them) and gives each host
// with entries the next number of its sequence. Concurrent claimers on
// other replicas never take the same entry. Batches come sorted by host.
func Claim(ctx context.Context, tx *store.Tx, limit int) ([]Batch, error) {
	rows, err := tx.Query(ctx, `DELETE FROM agent_outbox WHERE id IN (SELECT id FROM agent_outbox LIMIT ?) RETURNING host, kind, network_id, port_id, security_group_id`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	byHost := map[string][]Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Host, &e.Kind, &e.NetworkID, &e.PortID, &e.SecurityGroupID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("outbox: claim: %w", err)
		}
		byHost[e.Host] = append(byHost[e.Host], e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	// Sorted, so that two claimers lock host rows in the same order.
	slices.Sort(hosts)
	out := make([]Batch, 0, len(hosts))
	for _, h := range hosts {
		epoch, seq, err := next(ctx, tx, h)
		if err != nil {
			return nil, err
		}
		out = append(out, Batch{Host: h, Epoch: epoch, Seq: seq, Entries: byHost[h]})
	}
	return out, nil
}

// next bumps a host's sequence and returns the new number.
func next(ctx context.Context, tx *store.Tx, host string) (string, uint64, error) {
	var epoch string
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO host_sequences (host, epoch, seq) VALUES (?, ?, 1)
		ON CONFLICT (host) DO UPDATE SET seq = host_sequences.seq + 1 RETURNING epoch, seq`, host, uuid.NewString()).Scan(&epoch, &seq)
	if err != nil {
		return "", 0, fmt.Errorf("outbox: number notification for %s: %w", host, err)
	}
	return epoch, uint64(seq), nil
}

// Current returns a host's epoch and last sequence number, or "" and 0 if
// the host has none yet (see Ensure).
func Current(ctx context.Context, tx *store.Tx, host string) (string, uint64, error) {
	var epoch string
	var seq int64
	err := tx.QueryRow(ctx, `SELECT epoch, seq FROM host_sequences WHERE host = ?`, host).Scan(&epoch, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("outbox: sequence of %s: %w", host, err)
	}
	return epoch, uint64(seq), nil
}

// Ensure gives a host a sequence (epoch, number 0) if it has none.
func Ensure(ctx context.Context, tx *store.Tx, host string) error {
	_, err := tx.Exec(ctx, `INSERT INTO host_sequences (host, epoch, seq) VALUES (?, ?, 0) ON CONFLICT (host) DO NOTHING`, host, uuid.NewString())
	if err != nil {
		return fmt.Errorf("outbox: sequence of %s: %w", host, err)
	}
	return nil
}

// Pending counts unclaimed entries, for tests and metrics.
func Pending(ctx context.Context, tx *store.Tx) (int, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM agent_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return n, nil
}

// KindRouter: one router of the host's l3 agent (the router whole, or its
// removal when it is gone or scheduled elsewhere). The outbox has no
// router column: a router entry keeps the router's id where a port entry
// keeps the port's (Entry.RouterID reads it).
const KindRouter = "router"

// RouterID is the router a KindRouter entry names.
func (e Entry) RouterID() string { return e.PortID }

// RouterHosts returns the host of the l3 agent a router is scheduled to
// (none or one).
func RouterHosts(ctx context.Context, tx *store.Tx, routerID string) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT a.host FROM router_l3_agents r JOIN agents a ON a.id = r.agent_id WHERE r.router_id = ?`, routerID)
}

// RouterChanged records a change of a router (its attributes, ports,
// routes or floating IPs) for the host of its l3 agent and the extra hosts
// given (an agent it just left).
func RouterChanged(ctx context.Context, tx *store.Tx, routerID string, hosts ...string) error {
	if routerID == "" {
		return nil
	}
	all, err := RouterHosts(ctx, tx, routerID)
	if err != nil {
		return err
	}
	return addForHosts(ctx, tx, merge(all, hosts), Entry{Kind: KindRouter, PortID: routerID})
}
