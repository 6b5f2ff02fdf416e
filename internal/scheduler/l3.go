package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// L3Scheduler schedules routers to l3 agents (the l3_agent_scheduler
// extension). Routers are legacy: each lives whole on one alive l3 agent,
// the least loaded when it is scheduled; its gateway and interface ports
// are bound to that agent's host, so the host's l2 agent wires them. A
// router created while no l3 agent is alive is scheduled when one
// appears. The periodic check moves routers away from dead agents, as the
// DHCP scheduler does with networks: one transaction per router, holding
// the router's row.
type L3Scheduler struct {
	svc                    *service.Service
	opts                   Options
	routers, ports, agents *resource.Resource
	fips                   *resource.Resource
	started                time.Time
}

// routerPortOwners are the device owners of the ports that live in a
// router's namespace on its agent's host.
var routerPortOwners = []string{port.OwnerRouterInterface, port.OwnerRouterGateway}

// RegisterL3 installs the l3 scheduler: it schedules a router when it is
// created and routers without an agent when an l3 agent appears, binds
// router ports to their router's host, and serves the l3-routers and
// l3-agents API. Run starts its periodic check (Options.AgentsPerNetwork
// is not used). Register it before the router area (see portDeleting).
func RegisterL3(svc *service.Service, a *api.Server, opts Options) *L3Scheduler {
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
	s := &L3Scheduler{
		svc: svc, opts: opts,
		routers: reg.ByPlural("routers"), ports: reg.ByPlural("ports"), agents: reg.ByPlural("agents"),
		fips:    reg.ByPlural("floatingips"),
		started: opts.Now(),
	}
	svc.SetHooks("routers", &service.Hooks{PostCreate: s.routerCreated})
	svc.SetHooks("ports", &service.Hooks{PreCreate: s.portPreCreate, PreDelete: s.portDeleting})
	svc.OnChange(s.onChange)
	if a != nil {
		a.Handle("GET /agents/{id}/l3-routers", s.listRouters)
		a.Handle("POST /agents/{id}/l3-routers", s.addRouter)
		a.Handle("DELETE /agents/{id}/l3-routers/{router_id}", s.removeRouter)
		a.Handle("GET /routers/{id}/l3-agents", s.listAgents)
	}
	return s
}

// Run checks for dead agents every check interval until ctx ends.
func (s *L3Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Check(ctx); err != nil && ctx.Err() == nil {
				s.opts.Log.Warn("l3 scheduling check failed", "err", err)
			}
		}
	}
}

// Check moves routers away from dead l3 agents and schedules routers
// without one. Dead agents keep their routers for the first
// agent_down_time after the server started and while no alive agent can
// take them.
func (s *L3Scheduler) Check(ctx context.Context) error {
	return s.scheduleAll(ctx, s.opts.Now().Sub(s.started) >= s.opts.DownTime)
}

func (s *L3Scheduler) onChange(ctx context.Context, ev service.Event) {
	var err error
	switch {
	case ev.Resource == "agents" && ev.Object["agent_type"] == msg.AgentTypeL3:
		err = s.scheduleAll(ctx, false)
	case ev.Resource == "ports" && ev.Action == "update":
		// A port made a router interface through the API (add by port)
		// changes without the port hooks: bind it to its router's host.
		err = s.bindPortToRouter(ctx, ev.Object)
	}
	if err != nil {
		s.opts.Log.Warn("l3 scheduling failed", "resource", ev.Resource, "id", ev.Object["id"], "err", err)
	}
}

// scheduleAll reconciles the routers whose agent is not right: none while
// an agent is usable, or a dead one (removeDead). Most calls find none
// and cost one read.
func (s *L3Scheduler) scheduleAll(ctx context.Context, removeDead bool) error {
	var ids []string
	err := s.svc.DB().View(ctx, func(tx *store.Tx) error {
		agents, err := s.l3Agents(ctx, tx)
		if err != nil {
			return err
		}
		usable := map[string]bool{}
		anyUsable := false
		for _, a := range agents {
			usable[a.obj["id"].(string)] = a.usable
			anyUsable = anyUsable || a.usable
		}
		if !anyUsable {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT r.id, b.agent_id FROM routers r LEFT JOIN router_l3_agents b ON b.router_id = r.id`)
		if err != nil {
			return fmt.Errorf("read l3 bindings: %w", err)
		}
		defer rows.Close()
		ids = ids[:0]
		for rows.Next() {
			var id string
			var agentID *string
			if err := rows.Scan(&id, &agentID); err != nil {
				return fmt.Errorf("read l3 bindings: %w", err)
			}
			if agentID == nil || (removeDead && !usable[*agentID]) {
				ids = append(ids, id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	var errs []error
	for _, id := range ids {
		err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
			_, err := s.reconcileTx(ctx, tx, id, removeDead)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler: router %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// routerCreated schedules a new router in its creation's transaction.
func (s *L3Scheduler) routerCreated(ctx context.Context, tx *store.Tx, _ *service.Call, r resource.Object) error {
	_, err := s.reconcileTx(ctx, tx, r["id"].(string), false)
	return err
}

// reconcileTx gives a router an alive agent when it has none, or a dead
// one that may give it up (removeDead), and returns its agent's host.
func (s *L3Scheduler) reconcileTx(ctx context.Context, tx *store.Tx, routerID string, removeDead bool) (string, error) {
	// Hold the router's row: decisions about one router are taken one
	// after another, also across server replicas.
	res, err := tx.Exec(ctx, `UPDATE routers SET revision_number = revision_number WHERE id = ?`, routerID)
	if err != nil {
		return "", fmt.Errorf("lock router: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", nil // deleted meanwhile; its row went with it
	}
	agents, err := s.l3Agents(ctx, tx)
	if err != nil {
		return "", err
	}
	hosted, err := queryStrings(ctx, tx, `SELECT agent_id FROM router_l3_agents WHERE router_id = ?`, routerID)
	if err != nil {
		return "", err
	}
	var cur *agentState
	if len(hosted) > 0 {
		for _, a := range agents {
			if a.obj["id"] == hosted[0] {
				cur = a
			}
		}
		if cur != nil && (cur.usable || !removeDead) {
			return cur.host, nil
		}
	}
	var best *agentState
	for _, a := range agents {
		if a.usable && a != cur && (best == nil || a.load < best.load) {
			best = a // agents come sorted by host: ties go to the first
		}
	}
	if best == nil {
		if cur != nil {
			return cur.host, nil
		}
		return "", nil
	}
	return best.host, s.moveTx(ctx, tx, routerID, cur, best)
}

// moveTx schedules a router to agent to, away from agent from (nil if it
// had none): its row, its ports' binding, and notifications for both
// hosts.
func (s *L3Scheduler) moveTx(ctx context.Context, tx *store.Tx, routerID string, from, to *agentState) error {
	oldHost := ""
	if from != nil {
		oldHost = from.host
		if _, err := tx.Exec(ctx, `DELETE FROM router_l3_agents WHERE router_id = ?`, routerID); err != nil {
			return fmt.Errorf("unschedule from l3 agent %s: %w", from.obj["id"], err)
		}
		from.load--
	}
	newHost := ""
	if to != nil {
		err := tx.Savepoint(ctx, func() error {
			_, err := tx.Exec(ctx, `INSERT INTO router_l3_agents (router_id, agent_id) VALUES (?, ?)`, routerID, to.obj["id"])
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			return nil // another replica scheduled it
		}
		if err != nil {
			return fmt.Errorf("schedule to l3 agent %s: %w", to.obj["id"], err)
		}
		to.load++
		newHost = to.host
	}
	if err := s.bindRouterPorts(ctx, tx, routerID, newHost); err != nil {
		return err
	}
	return outbox.RouterChanged(ctx, tx, routerID, oldHost)
}

// bindRouterPorts binds a router's gateway and interface ports to host
// ("" unbinds them), with notifications for the hosts they leave and join.
func (s *L3Scheduler) bindRouterPorts(ctx context.Context, tx *store.Tx, routerID, host string) error {
	ports, err := tx.List(ctx, s.ports, store.Where{"device_id": {routerID}})
	if err != nil {
		return err
	}
	for _, p := range ports {
		if !slices.Contains(routerPortOwners, str(p["device_owner"])) {
			continue
		}
		if err := s.bindPort(ctx, tx, p, host); err != nil {
			return err
		}
	}
	return nil
}

// bindPort moves one router port to host through the binder, unless it is
// there already.
func (s *L3Scheduler) bindPort(ctx context.Context, tx *store.Tx, p resource.Object, host string) error {
	oldHost := str(p["binding:host_id"])
	if oldHost == host && p["binding:vif_type"] != port.VIFBindingFailed {
		return nil
	}
	p["binding:host_id"] = host
	// The DHCP scheduler's binding of the ports it moves, with our options.
	if err := (&Scheduler{opts: s.opts}).bind(ctx, tx, p); err != nil {
		return err
	}
	if _, err := s.svc.UpdateInTx(ctx, tx, s.ports, p); err != nil {
		return err
	}
	return outbox.PortChanged(ctx, tx, str(p["network_id"]), str(p["id"]), oldHost, host)
}

// bindPortToRouter binds a router port that changed without the port
// hooks to its router's host, in a transaction of its own.
func (s *L3Scheduler) bindPortToRouter(ctx context.Context, p resource.Object) error {
	if !slices.Contains(routerPortOwners, str(p["device_owner"])) || str(p["device_id"]) == "" {
		return nil
	}
	return s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Get(ctx, s.ports, str(p["id"]))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		routerID := str(cur["device_id"])
		hosts, err := outbox.RouterHosts(ctx, tx, routerID)
		if err != nil || len(hosts) == 0 || !slices.Contains(routerPortOwners, str(cur["device_owner"])) {
			return err
		}
		if cur["binding:host_id"] == hosts[0] {
			return nil
		}
		if err := s.bindPort(ctx, tx, cur, hosts[0]); err != nil {
			return err
		}
		return outbox.RouterChanged(ctx, tx, routerID)
	})
}

// portPreCreate binds a new gateway or interface port of a scheduled
// router to the router's host (the port hooks bind it after this).
func (s *L3Scheduler) portPreCreate(ctx context.Context, tx *store.Tx, _ *service.Call, p resource.Object, _ map[string]bool) error {
	routerID := str(p["device_id"])
	if routerID == "" || !slices.Contains(routerPortOwners, str(p["device_owner"])) {
		return nil
	}
	hosts, err := outbox.RouterHosts(ctx, tx, routerID)
	if err != nil || len(hosts) == 0 {
		return err
	}
	p["binding:host_id"] = hosts[0]
	return nil
}

// portDeleting tells the routers of a port's floating IPs that the port
// goes: the router area then disassociates them without hooks, so this
// must run before it (RegisterL3 before l3.Register).
func (s *L3Scheduler) portDeleting(ctx context.Context, tx *store.Tx, _ *service.Call, p resource.Object) error {
	fips, err := tx.List(ctx, s.fips, store.Where{"port_id": {p["id"]}})
	if err != nil {
		return err
	}
	for _, f := range fips {
		if err := outbox.RouterChanged(ctx, tx, str(f["router_id"])); err != nil {
			return err
		}
	}
	return nil
}

// l3Agents lists the l3 agents with their load (routers), by host.
func (s *L3Scheduler) l3Agents(ctx context.Context, tx *store.Tx) ([]*agentState, error) {
	objs, err := tx.List(ctx, s.agents, store.Where{"agent_type": {msg.AgentTypeL3}})
	if err != nil {
		return nil, err
	}
	loads := map[string]int{}
	rows, err := tx.Query(ctx, `SELECT agent_id, COUNT(*) FROM router_l3_agents GROUP BY agent_id`)
	if err != nil {
		return nil, fmt.Errorf("read l3 agents' load: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read l3 agents' load: %w", err)
		}
		loads[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read l3 agents' load: %w", err)
	}
	now := s.opts.Now()
	out := make([]*agentState, 0, len(objs))
	for _, o := range objs {
		up, _ := o["admin_state_up"].(bool)
		out = append(out, &agentState{obj: o, host: str(o["host"]), load: loads[o["id"].(string)],
			usable: up && agentapi.Alive(o, now, s.opts.DownTime)})
	}
	slices.SortFunc(out, func(x, y *agentState) int { return compare(x.host, y.host) })
	return out, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
