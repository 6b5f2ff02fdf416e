package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	*binder
	ports, fips *resource.Resource
}

// l3Kind is what the l3 scheduler binds: routers, one l3 agent each.
var l3Kind = kind{
	name: "l3", agentType: msg.AgentTypeL3,
	singular: "router", plural: "routers",
	bindings: "router_l3_agents", column: "router_id",
	agentPath: "l3-routers", resPath: "l3-agents", policy: "l3-router",
	exclusive:    true,
	invalidAgent: neutronError{"InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled"},
	hosted:       neutronError{"RouterHostedByL3Agent", "The router %s has been already hosted by the L3 Agent %s."},
	notHosted:    neutronError{"RouterNotHostedByL3Agent", "The router %s is not hosted by L3 agent %s."},
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
	reg := svc.Registry()
	s := &L3Scheduler{ports: reg.ByPlural("ports"), fips: reg.ByPlural("floatingips")}
	s.binder = newBinder(svc, a, opts, l3Kind, 1, s)
	svc.SetHooks("routers", &service.Hooks{PostCreate: s.routerCreated})
	svc.SetHooks("ports", &service.Hooks{PreCreate: s.portPreCreate, PreDelete: s.portDeleting})
	svc.OnChange(s.onChange)
	return s
}

func (s *L3Scheduler) onChange(ctx context.Context, ev service.Event) {
	var err error
	switch {
	case ev.Resource == "agents" && ev.Object["agent_type"] == msg.AgentTypeL3:
		err = s.fixAll(ctx, false)
	case ev.Resource == "ports" && ev.Action == "update":
		// A port made a router interface through the API (add by port)
		// changes without the port hooks: bind it to its router's host.
		err = s.bindPortToRouter(ctx, ev.Object)
	}
	if err != nil {
		s.opts.Log.Warn("l3 scheduling failed", "resource", ev.Resource, "id", ev.Object["id"], "err", err)
	}
}

// routerCreated schedules a new router in its creation's transaction.
func (s *L3Scheduler) routerCreated(ctx context.Context, tx *store.Tx, _ *service.Call, r resource.Object) error {
	return s.reconcileTx(ctx, tx, r["id"].(string), false)
}

// needing tells which routers need an l3 agent: all of them.
func (s *L3Scheduler) needing(ctx context.Context, tx *store.Tx, routerID string) (map[string]bool, error) {
	if routerID != "" {
		return map[string]bool{routerID: true}, nil
	}
	ids, err := queryStrings(ctx, tx, `SELECT id FROM routers`)
	if err != nil {
		return nil, err
	}
	needed := make(map[string]bool, len(ids))
	for _, id := range ids {
		needed[id] = true
	}
	return needed, nil
}

// drop is not reached (every router needs an agent); it unschedules.
func (s *L3Scheduler) drop(ctx context.Context, tx *store.Tx, routerID string, a *agentState) error {
	return s.move(ctx, tx, routerID, a, nil)
}

// settle has nothing to finish: a router's ports move in its transaction.
func (s *L3Scheduler) settle(context.Context, string) error { return nil }

// move schedules a router to agent to, away from agent from (either may
// be nil): its row, its ports' binding, and notifications for both hosts.
func (s *L3Scheduler) move(ctx context.Context, tx *store.Tx, routerID string, from, to *agentState) error {
	oldHost := ""
	if from != nil {
		oldHost = from.host
		if _, err := tx.Exec(ctx, `DELETE FROM router_l3_agents WHERE router_id = ?`, routerID); err != nil {
			return fmt.Errorf("unschedule from l3 agent %s: %w", from.id(), err)
		}
		from.load--
	}
	newHost := ""
	if to != nil {
		err := tx.Savepoint(ctx, func() error {
			_, err := tx.Exec(ctx, `INSERT INTO router_l3_agents (router_id, agent_id) VALUES (?, ?)`, routerID, to.id())
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			return nil // another replica scheduled it
		}
		if err != nil {
			return fmt.Errorf("schedule to l3 agent %s: %w", to.id(), err)
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
	if err := s.bindToHost(ctx, tx, p); err != nil {
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
