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
// l3_agent_scheduler extension, in l3.go).
package scheduler

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
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
	// Bind binds a DHCP port to its agent's host (binding.Binder.BindPort);
	// nil leaves moved ports binding_failed.
	Bind func(ctx context.Context, tx *store.Tx, port resource.Object) (string, map[string]any, error)
	// Now is the clock (time.Now if nil); tests move it.
	Now func() time.Time
	Log *slog.Logger
}

// Scheduler schedules networks to DHCP agents.
type Scheduler struct {
	svc                          *service.Service
	opts                         Options
	nets, subnets, ports, agents *resource.Resource
	started                      time.Time
}

// Register installs the scheduler: it schedules a network when its
// subnets change and when a DHCP agent appears, and serves the
// dhcp-networks and dhcp-agents API. Run starts its periodic check.
func Register(svc *service.Service, a *api.Server, opts Options) *Scheduler {
	if opts.AgentsPerNetwork < 1 {
		opts.AgentsPerNetwork = 1
	}
	if opts.DownTime <= 0 {
		opts.DownTime = agentapi.DefaultDownTime
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	reg := svc.Registry()
	s := &Scheduler{
		svc: svc, opts: opts,
		nets: reg.ByPlural("networks"), subnets: reg.ByPlural("subnets"),
		ports: reg.ByPlural("ports"), agents: reg.ByPlural("agents"),
		started: opts.Now(),
	}
	svc.OnChange(s.onChange)
	if a != nil {
		a.Handle("GET /agents/{id}/dhcp-networks", s.listNetworks)
		a.Handle("POST /agents/{id}/dhcp-networks", s.addNetwork)
		a.Handle("DELETE /agents/{id}/dhcp-networks/{network_id}", s.removeNetwork)
		a.Handle("GET /networks/{id}/dhcp-agents", s.listAgents)
	}
	return s
}

// DeviceID is the device_id of a host's DHCP port on a network, as
// Neutron names it.
func DeviceID(host, netID string) string {
	return "dhcp" + uuid.NewSHA1(uuid.NameSpaceDNS, []byte(host)).String() + "-" + netID
}

// Run checks for dead agents every check interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Check(ctx); err != nil && ctx.Err() == nil {
				s.opts.Log.Warn("DHCP scheduling check failed", "err", err)
			}
		}
	}
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
		err = s.scheduleShort(ctx, false)
	}
	if err != nil {
		s.opts.Log.Warn("DHCP scheduling failed", "resource", ev.Resource, "id", ev.Object["id"], "err", err)
	}
}

// Check moves networks away from dead DHCP agents and schedules networks
// short of agents. Dead agents keep their networks for the first
// agent_down_time after the server started (agents may not have reported
// to it yet) and while no alive agent can take them.
func (s *Scheduler) Check(ctx context.Context) error {
	return s.scheduleShort(ctx, s.opts.Now().Sub(s.started) >= s.opts.DownTime)
}

// scheduleShort reconciles the networks whose DHCP agents are not right:
// short of agents (counting dead ones unless removeDead), hosted by dead
// agents that may give them up (removeDead), or hosted without needing it.
// Most checks find none, and cost one read.
func (s *Scheduler) scheduleShort(ctx context.Context, removeDead bool) error {
	var netIDs []string
	err := s.svc.DB().View(ctx, func(tx *store.Tx) error {
		var err error
		netIDs, err = s.networksToFix(ctx, tx, removeDead)
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range netIDs {
		if err := s.reconcile(ctx, id, removeDead); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) networksToFix(ctx context.Context, tx *store.Tx, removeDead bool) ([]string, error) {
	subs, err := tx.List(ctx, s.subnets, store.Where{})
	if err != nil {
		return nil, err
	}
	needed := map[string]bool{}
	for _, sub := range subs {
		if on, _ := sub["enable_dhcp"].(bool); on {
			needed[sub["network_id"].(string)] = true
		}
	}
	agents, err := s.dhcpAgents(ctx, tx)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	usableTotal := 0
	for _, a := range agents {
		usable[a.obj["id"].(string)] = a.usable
		if a.usable {
			usableTotal++
		}
	}
	rows, err := tx.Query(ctx, `SELECT network_id, agent_id FROM network_dhcp_agents`)
	if err != nil {
		return nil, fmt.Errorf("read DHCP bindings: %w", err)
	}
	// Per network: agents counted as serving it, alive agents hosting it,
	// and whether a dead agent hosts it.
	serving, aliveHosting, deadHosting := map[string]int{}, map[string]int{}, map[string]bool{}
	hosted := map[string]bool{}
	for rows.Next() {
		var netID, agentID string
		if err := rows.Scan(&netID, &agentID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read DHCP bindings: %w", err)
		}
		hosted[netID] = true
		if usable[agentID] {
			aliveHosting[netID]++
		} else {
			deadHosting[netID] = true
		}
		if usable[agentID] || !removeDead {
			serving[netID]++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read DHCP bindings: %w", err)
	}
	var out []string
	for id := range hosted {
		candidates := usableTotal - aliveHosting[id]
		movable := removeDead && deadHosting[id] && (candidates > 0 || aliveHosting[id] >= s.opts.AgentsPerNetwork)
		if !needed[id] || movable {
			out = append(out, id)
		}
	}
	for id := range needed {
		candidates := usableTotal - aliveHosting[id]
		if serving[id] < s.opts.AgentsPerNetwork && candidates > 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Schedule makes a network's DHCP agents right: enough alive agents while
// it has a DHCP subnet, none otherwise, and each agent's DHCP port with an
// address on every DHCP subnet.
func (s *Scheduler) Schedule(ctx context.Context, netID string) error {
	return s.reconcile(ctx, netID, false)
}

func (s *Scheduler) reconcile(ctx context.Context, netID string, removeDead bool) error {
	err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		return s.reconcileTx(ctx, tx, netID, removeDead)
	})
	if err != nil {
		return fmt.Errorf("scheduler: network %s: %w", netID, err)
	}
	return s.fixPortAddresses(ctx, netID)
}

// agentState is a DHCP agent as scheduling sees it.
type agentState struct {
	obj    resource.Object
	host   string
	usable bool // alive and enabled
	load   int
}

func (s *Scheduler) reconcileTx(ctx context.Context, tx *store.Tx, netID string, removeDead bool) error {
	// Hold the network's row: decisions about one network are taken one
	// after another, also across server replicas.
	res, err := tx.Exec(ctx, `UPDATE networks SET revision_number = revision_number WHERE id = ?`, netID)
	if err != nil {
		return fmt.Errorf("lock network: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // deleted meanwhile; its rows went with it
	}
	subs, err := tx.List(ctx, s.subnets, store.Where{"network_id": {netID}})
	if err != nil {
		return err
	}
	needed := slices.ContainsFunc(subs, func(o resource.Object) bool { on, _ := o["enable_dhcp"].(bool); return on })
	agents, err := s.dhcpAgents(ctx, tx)
	if err != nil {
		return err
	}
	hostedIDs, err := queryStrings(ctx, tx, `SELECT agent_id FROM network_dhcp_agents WHERE network_id = ?`, netID)
	if err != nil {
		return err
	}
	var alive, dead []*agentState
	for _, a := range agents {
		if slices.Contains(hostedIDs, a.obj["id"].(string)) {
			if a.usable {
				alive = append(alive, a)
			} else {
				dead = append(dead, a)
			}
		}
	}
	if !needed {
		for _, a := range append(alive, dead...) {
			if _, err := s.unschedule(ctx, tx, netID, a, true); err != nil {
				return err
			}
		}
		return nil
	}
	// Until dead agents may give up their networks, they count as serving
	// them: they may come back.
	serving := len(alive)
	if !removeDead {
		serving += len(dead)
	}
	if short := s.opts.AgentsPerNetwork - serving; short > 0 {
		var candidates []*agentState
		for _, a := range agents {
			if a.usable && !slices.Contains(hostedIDs, a.obj["id"].(string)) {
				candidates = append(candidates, a)
			}
		}
		slices.SortFunc(candidates, func(x, y *agentState) int {
			if x.load != y.load {
				return x.load - y.load
			}
			return compare(x.host, y.host)
		})
		for _, a := range candidates[:min(short, len(candidates))] {
			// A dead agent's network moves with its DHCP port, which the
			// new agent takes over (the DHCP server keeps its address).
			if removeDead && len(dead) > 0 {
				if _, err := s.unschedule(ctx, tx, netID, dead[0], false); err != nil {
					return err
				}
				dead = dead[1:]
			}
			if err := s.schedule(ctx, tx, netID, a, subs); err != nil {
				return err
			}
			alive = append(alive, a)
		}
	}
	// The other dead agents give up the network once enough alive agents
	// serve it; until then one may come back and serve it itself.
	if removeDead && len(alive) >= s.opts.AgentsPerNetwork {
		for _, a := range dead {
			if _, err := s.unschedule(ctx, tx, netID, a, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dhcpAgents lists the DHCP agents with their load, by host.
func (s *Scheduler) dhcpAgents(ctx context.Context, tx *store.Tx) ([]*agentState, error) {
	objs, err := tx.List(ctx, s.agents, store.Where{"agent_type": {msg.AgentTypeDHCP}})
	if err != nil {
		return nil, err
	}
	loads := map[string]int{}
	rows, err := tx.Query(ctx, `SELECT agent_id, COUNT(*) FROM network_dhcp_agents GROUP BY agent_id`)
	if err != nil {
		return nil, fmt.Errorf("read DHCP agents' load: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read DHCP agents' load: %w", err)
		}
		loads[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read DHCP agents' load: %w", err)
	}
	now := s.opts.Now()
	out := make([]*agentState, 0, len(objs))
	for _, o := range objs {
		up, _ := o["admin_state_up"].(bool)
		host, _ := o["host"].(string)
		out = append(out, &agentState{obj: o, host: host, load: loads[o["id"].(string)],
			usable: up && agentapi.Alive(o, now, s.opts.DownTime)})
	}
	slices.SortFunc(out, func(x, y *agentState) int { return compare(x.host, y.host) })
	return out, nil
}

// schedule makes agent a serve a network: its row, its DHCP port (a
// reserved or orphaned DHCP port of the network is taken over, so the
// address stays), and a notification for its host.
func (s *Scheduler) schedule(ctx context.Context, tx *store.Tx, netID string, a *agentState, subs []resource.Object) error {
	agentID := a.obj["id"].(string)
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
		if err := s.bind(ctx, tx, p); err != nil {
			return err
		}
		if _, err := s.svc.UpdateInTx(ctx, tx, s.ports, p); err != nil {
			return err
		}
		if err := outbox.PortChanged(ctx, tx, netID, p["id"].(string), oldHost, a.host); err != nil {
			return err
		}
	} else if err := s.createDHCPPort(ctx, tx, netID, deviceID, a.host, subs); err != nil {
		return err
	}
	return outbox.NetworkChanged(ctx, tx, netID, a.host)
}

func (s *Scheduler) bind(ctx context.Context, tx *store.Tx, p resource.Object) error {
	vifType, details := port.VIFBindingFailed, map[string]any{}
	if host, _ := p["binding:host_id"].(string); host == "" {
		vifType = port.VIFUnbound
	} else if s.opts.Bind != nil {
		vt, vd, err := s.opts.Bind(ctx, tx, p)
		if err != nil {
			return err
		}
		vifType = vt
		if vd != nil {
			details = vd
		}
	}
	p["binding:vif_type"], p["binding:vif_details"], p["status"] = vifType, details, msg.StatusDown
	return nil
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
func (s *Scheduler) createDHCPPort(ctx context.Context, tx *store.Tx, netID, deviceID, host string, subs []resource.Object) error {
	net, err := tx.Get(ctx, s.nets, netID)
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
	agentID := a.obj["id"].(string)
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
		if err := s.bind(ctx, tx, p); err != nil {
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
