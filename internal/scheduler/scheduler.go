// Package scheduler owns the scheduling of networks to DHCP agents (the
// dhcp_agent_scheduler extension): every network with a DHCP-enabled
// subnet is served by dhcp_agents_per_network alive DHCP agents, least
// loaded first; the server makes each agent's DHCP port (device_owner
// network:dhcp, bound to the agent's host, an address on every DHCP
// subnet). A periodic check moves networks away from agents that stopped
// reporting; each move is one transaction that first removes the dead
// agent's row, so when several server replicas check at once only one
// of them moves a network. The DHCP port moves with the network, so the
// DHCP server keeps its address.
//
// It also owns the scheduling of routers to l3 agents (L3Scheduler, the
// l3_agent_scheduler extension, in l3.go). Both are one binder (bind.go,
// api.go): the choice of agents, the periodic check and the admin API are
// shared; what differs (tables, agent type, agents per resource, Neutron's
// errors, what moves with a resource) is the kind's data and steps.
package scheduler

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// ReservedDHCPPort is the device_id of a DHCP port whose agent gave up its
// network; the next agent scheduled there takes it over (Neutron's
// DEVICE_ID_RESERVED_DHCP_PORT).
const ReservedDHCPPort = "reserved_dhcp_port"

// Options configure the scheduler.
type Options struct {
	// AgentsPerNetwork is dhcp_agents_per_network (default 1).
	AgentsPerNetwork int
	// DownTime is agent_down_time: an agent silent for longer is dead.
	DownTime time.Duration
	// CheckInterval is how often dead agents are looked for (default 10 s).
	CheckInterval time.Duration
	// Bind binds a port the scheduler moves (a DHCP port, a router's port)
	// to its agent's host (binding.Binder.BindPort); nil leaves them
	// binding_failed.
	Bind func(ctx context.Context, tx *store.Tx, port resource.Object) (string, map[string]any, error)
	// Now is the clock (time.Now if nil); tests move it.
	Now func() time.Time
	Log *slog.Logger
}

// Scheduler schedules networks to DHCP agents.
type Scheduler struct {
	*binder
	nets, subnets, ports *resource.Resource
}

// dhcpKind is what the DHCP scheduler binds: networks, to DHCP agents.
var dhcpKind = kind{
	name: "DHCP", agentType: msg.AgentTypeDHCP,
	singular: "network", plural: "networks",
	bindings: "network_dhcp_agents", column: "network_id",
	agentPath: "dhcp-networks", resPath: "dhcp-agents", policy: "dhcp-network",
	invalidAgent: neutronError{"InvalidDHCPAgent", "Agent %s is not a valid DHCP Agent or has been disabled."},
	hosted:       neutronError{"NetworkHostedByDHCPAgent", "The network %s has been already hosted by the DHCP Agent %s."},
	notHosted:    neutronError{"NetworkNotHostedByDhcpAgent", "The network %s is not hosted by the DHCP Agent %s."},
}

// Register installs the scheduler: it schedules a network when its
// subnets change and when a DHCP agent appears, and serves the
// dhcp-networks and dhcp-agents API. Run starts its periodic check.
func Register(svc *service.Service, a *api.Server, opts Options) *Scheduler {
	reg := svc.Registry()
	s := &Scheduler{nets: reg.ByPlural("networks"), subnets: reg.ByPlural("subnets"), ports: reg.ByPlural("ports")}
	s.binder = newBinder(svc, a, opts, dhcpKind, opts.AgentsPerNetwork, s)
	svc.OnChange(s.onChange)
	return s
}

// DeviceID is the device_id of a host's DHCP port on a network, as
// Neutron names it.
func DeviceID(host, netID string) string {
	return "dhcp" + uuid.NewSHA1(uuid.NameSpaceDNS, []byte(host)).String() + "-" + netID
}

func (s *Scheduler) onChange(ctx context.Context, ev service.Event) {
	var err error
	switch {
	case ev.Resource == "subnets":
		netID, _ := ev.Object["network_id"].(string)
		err = s.Schedule(ctx, netID)
	case ev.Resource == "agents" && ev.Object["agent_type"] == msg.AgentTypeDHCP:
		// An agent appeared, came back, changed or went: networks short of
		// agents may be served now (a deleted agent's rows went with it).
		err = s.fixAll(ctx, false)
	}
	if err != nil {
		s.opts.Log.Warn("DHCP scheduling failed", "resource", ev.Resource, "id", ev.Object["id"], "err", err)
	}
}

// Schedule makes a network's DHCP agents right: enough alive agents while
// it has a DHCP subnet, none otherwise, and each agent's DHCP port with an
// address on every DHCP subnet.
func (s *Scheduler) Schedule(ctx context.Context, netID string) error {
	return s.reconcile(ctx, netID, false)
}

// needing tells which networks need DHCP agents: those with a DHCP subnet.
func (s *Scheduler) needing(ctx context.Context, tx *store.Tx, netID string) (map[string]bool, error) {
	where := store.Where{}
	if netID != "" {
		where["network_id"] = []any{netID}
	}
	subs, err := tx.List(ctx, s.subnets, where)
	if err != nil {
		return nil, err
	}
	needed := map[string]bool{}
	for _, sub := range subs {
		if on, _ := sub["enable_dhcp"].(bool); on {
			needed[sub["network_id"].(string)] = true
		}
	}
	return needed, nil
}

// move moves a network from agent from (unless nil) to agent to (unless
// nil), with its DHCP port, which keeps its address: from reserves it,
// to takes it over.
func (s *Scheduler) move(ctx context.Context, tx *store.Tx, netID string, from, to *agentState) error {
	if from != nil {
		if _, err := s.unschedule(ctx, tx, netID, from, false); err != nil {
			return err
		}
	}
	if to == nil {
		return nil
	}
	return s.schedule(ctx, tx, netID, to)
}

// drop takes a network without DHCP subnets from an agent, with its port.
func (s *Scheduler) drop(ctx context.Context, tx *store.Tx, netID string, a *agentState) error {
	_, err := s.unschedule(ctx, tx, netID, a, true)
	return err
}

// settle gives the network's DHCP ports their addresses.
func (s *Scheduler) settle(ctx context.Context, netID string) error {
	return s.fixPortAddresses(ctx, netID)
}

// schedule makes agent a serve a network: its row, its DHCP port (a
// reserved or orphaned DHCP port of the network is taken over, so the
// address stays), and a notification for its host.
func (s *Scheduler) schedule(ctx context.Context, tx *store.Tx, netID string, a *agentState) error {
	agentID := a.id()
	err := tx.Savepoint(ctx, func() error {
		_, err := tx.Exec(ctx, `INSERT INTO network_dhcp_agents (network_id, agent_id) VALUES (?, ?)`, netID, agentID)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schedule to DHCP agent %s: %w", agentID, err)
	}
	a.load++
	deviceID := DeviceID(a.host, netID)
	p, err := s.spareDHCPPort(ctx, tx, netID, deviceID)
	if err != nil {
		return err
	}
	if p != nil {
		oldHost, _ := p["binding:host_id"].(string)
		p["device_id"], p["binding:host_id"] = deviceID, a.host
		if err := s.bindToHost(ctx, tx, p); err != nil {
			return err
		}
		if _, err := s.svc.UpdateInTx(ctx, tx, s.ports, p); err != nil {
			return err
		}
		if err := outbox.PortChanged(ctx, tx, netID, p["id"].(string), oldHost, a.host); err != nil {
			return err
		}
	} else if err := s.createDHCPPort(ctx, tx, netID, deviceID, a.host); err != nil {
		return err
	}
	return outbox.NetworkChanged(ctx, tx, netID, a.host)
}

// spareDHCPPort finds the network's DHCP port for deviceID, or else one no
// hosting agent owns (reserved, or left by a deleted agent).
func (s *Scheduler) spareDHCPPort(ctx context.Context, tx *store.Tx, netID, deviceID string) (resource.Object, error) {
	ports, err := tx.List(ctx, s.ports, store.Where{"network_id": {netID}, "device_owner": {port.OwnerDHCP}})
	if err != nil {
		return nil, err
	}
	hosts, err := queryStrings(ctx, tx, `SELECT a.host FROM network_dhcp_agents n JOIN agents a ON a.id = n.agent_id WHERE n.network_id = ?`, netID)
	if err != nil {
		return nil, err
	}
	owned := map[string]bool{}
	for _, h := range hosts {
		owned[DeviceID(h, netID)] = true
	}
	for _, p := range ports {
		if p["device_id"] == deviceID {
			return p, nil
		}
	}
	for _, p := range ports {
		if id, _ := p["device_id"].(string); !owned[id] || id == deviceID {
			return p, nil
		}
	}
	return nil, nil
}

// createDHCPPort creates an agent's DHCP port through the port hooks
// (addresses, binding, notifications), with an address on each subnet
// that hands out addresses by DHCP.
func (s *Scheduler) createDHCPPort(ctx context.Context, tx *store.Tx, netID, deviceID, host string) error {
	net, err := tx.Get(ctx, s.nets, netID)
	if err != nil {
		return err
	}
	subs, err := tx.List(ctx, s.subnets, store.Where{"network_id": {netID}})
	if err != nil {
		return err
	}
	body := map[string]any{
		"network_id": netID, "device_owner": port.OwnerDHCP, "device_id": deviceID,
		"binding:host_id": host, "name": "",
	}
	if fixed := dhcpAddressRequests(subs); len(fixed) > 0 {
		body["fixed_ips"] = fixed
	}
	project, _ := net["project_id"].(string)
	_, _, err = s.svc.CreateInTx(ctx, tx, s.ports, project, body)
	return err
}

// dhcpAddressRequests asks for one address on each DHCP subnet whose
// addresses are allocated (IPv4 and DHCPv6-stateful; SLAAC subnets give
// their address themselves).
func dhcpAddressRequests(subs []resource.Object) []any {
	var out []any
	for _, sub := range subs {
		if on, _ := sub["enable_dhcp"].(bool); !on {
			continue
		}
		if mode, _ := sub["ipv6_address_mode"].(string); mode == "slaac" || mode == "dhcpv6-stateless" {
			continue
		}
		out = append(out, map[string]any{"subnet_id": sub["id"]})
	}
	return out
}

// unschedule removes a network from an agent, reports whether it was
// there, and deletes or reserves the agent's DHCP port.
func (s *Scheduler) unschedule(ctx context.Context, tx *store.Tx, netID string, a *agentState, deletePort bool) (bool, error) {
	agentID := a.id()
	res, err := tx.Exec(ctx, `DELETE FROM network_dhcp_agents WHERE network_id = ? AND agent_id = ?`, netID, agentID)
	if err != nil {
		return false, fmt.Errorf("unschedule from DHCP agent %s: %w", agentID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil // another replica did it
	}
	a.load--
	ports, err := tx.List(ctx, s.ports, store.Where{"network_id": {netID}, "device_id": {DeviceID(a.host, netID)}})
	if err != nil {
		return false, err
	}
	for _, p := range ports {
		if deletePort {
			if _, err := s.svc.DeleteInTx(ctx, tx, s.ports, p); err != nil {
				return false, err
			}
			continue
		}
		oldHost, _ := p["binding:host_id"].(string)
		p["device_id"], p["binding:host_id"] = ReservedDHCPPort, ""
		if err := s.bindToHost(ctx, tx, p); err != nil {
			return false, err
		}
		if _, err := s.svc.UpdateInTx(ctx, tx, s.ports, p); err != nil {
			return false, err
		}
		if err := outbox.PortChanged(ctx, tx, netID, p["id"].(string), oldHost); err != nil {
			return false, err
		}
	}
	return true, outbox.NetworkChanged(ctx, tx, netID, a.host)
}

// fixPortAddresses gives each DHCP port of a network an address on every
// DHCP subnet it lacks one on, and drops those on subnets without DHCP,
// through the engine (IPAM and notifications as for any port update).
func (s *Scheduler) fixPortAddresses(ctx context.Context, netID string) error {
	type change struct {
		id    string
		fixed []any
	}
	var changes []change
	err := s.svc.DB().View(ctx, func(tx *store.Tx) error {
		changes = changes[:0]
		subs, err := tx.List(ctx, s.subnets, store.Where{"network_id": {netID}})
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, r := range dhcpAddressRequests(subs) {
			want[r.(map[string]any)["subnet_id"].(string)] = true
		}
		ports, err := tx.List(ctx, s.ports, store.Where{"network_id": {netID}, "device_owner": {port.OwnerDHCP}})
		if err != nil {
			return err
		}
		for _, p := range ports {
			if p["device_id"] == ReservedDHCPPort {
				continue
			}
			var fixed []any
			have := map[string]bool{}
			changed := false
			for _, f := range port.FixedIPsOf(p) {
				have[f.SubnetID] = true
				if dhcpTurnedOff(subs, f.SubnetID) {
					changed = true
					continue
				}
				fixed = append(fixed, map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IP.String()})
			}
			for id := range want {
				if !have[id] {
					fixed = append(fixed, map[string]any{"subnet_id": id})
					changed = true
				}
			}
			if changed {
				changes = append(changes, change{p["id"].(string), fixed})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scheduler: DHCP ports of %s: %w", netID, err)
	}
	for _, c := range changes {
		if c.fixed == nil {
			c.fixed = []any{}
		}
		_, err := s.svc.Update(ctx, s.svc.SystemCall(), s.ports, c.id, map[string]any{"fixed_ips": c.fixed}, service.AnyRevision)
		if fe, ok := fault.As(err); ok && fe.Status == http.StatusNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("scheduler: addresses of DHCP port %s: %w", c.id, err)
		}
	}
	return nil
}

// dhcpTurnedOff tells whether id is a subnet of subs with DHCP off whose
// addresses are allocated (not SLAAC): a DHCP port holds none there.
func dhcpTurnedOff(subs []resource.Object, id string) bool {
	for _, sub := range subs {
		if sub["id"] == id {
			on, _ := sub["enable_dhcp"].(bool)
			mode, _ := sub["ipv6_address_mode"].(string)
			return !on && mode != "slaac" && mode != "dhcpv6-stateless"
		}
	}
	return false
}

func queryStrings(ctx context.Context, tx *store.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("scheduler: %w", err)
		}
		out = append(out, s.String)
	}
	return out, rows.Err()
}
