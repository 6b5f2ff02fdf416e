// Package outbox owns the record of what agents must hear about: in the
// transaction of a change, one entry per host that must learn of it (the
// hosts of the port, the hosts with ports on its network for l2
// population, the DHCP agents of the network); later any server replica
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
)

// Entry says one host must hear about one change.
type Entry struct {
	Host      string
	Kind      string
	NetworkID string
	PortID    string
}

// Add records entries in the change's transaction; entries without a host
// are dropped.
func Add(ctx context.Context, tx *store.Tx, entries ...Entry) error {
	for _, e := range entries {
		if e.Host == "" {
			continue
		}
		_, err := tx.Exec(ctx, `INSERT INTO agent_outbox (id, host, kind, network_id, port_id) VALUES (?, ?, ?, ?, ?)`,
			uuid.NewString(), e.Host, e.Kind, e.NetworkID, e.PortID)
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
	all = merge(all, hosts)
	entries := make([]Entry, 0, len(all))
	for _, h := range all {
		entries = append(entries, Entry{Host: h, Kind: KindPort, NetworkID: netID, PortID: portID})
	}
	return Add(ctx, tx, entries...)
}

// NetworkChanged records a change of a whole network (its attributes, its
// subnets, its DHCP agents) for every host of the network and the extra
// hosts given (a DHCP agent it just left).
func NetworkChanged(ctx context.Context, tx *store.Tx, netID string, hosts ...string) error {
	all, err := NetworkHosts(ctx, tx, netID)
	if err != nil {
		return err
	}
	all = merge(all, hosts)
	entries := make([]Entry, 0, len(all))
	for _, h := range all {
		entries = append(entries, Entry{Host: h, Kind: KindNetwork, NetworkID: netID})
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
	var entries []Entry
	for _, h := range hosts {
		if h != except {
			entries = append(entries, Entry{Host: h, Kind: KindEndpoints})
		}
	}
	return Add(ctx, tx, entries...)
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
	rows, err := tx.Query(ctx, `DELETE FROM agent_outbox WHERE id IN (SELECT id FROM agent_outbox LIMIT ?) RETURNING host, kind, network_id, port_id`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	byHost := map[string][]Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Host, &e.Kind, &e.NetworkID, &e.PortID); err != nil {
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
