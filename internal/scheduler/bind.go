package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// kind is what sets apart the things the schedulers bind to agents (DHCP
// networks, l3 routers): names, tables, and the errors Neutron answers
// with, which Tempest checks to the letter.
type kind struct {
	name      string // in logs and messages: "DHCP"
	agentType string // the agents that serve it
	singular  string // "network"
	plural    string // the resources, their table and API collection: "networks"
	bindings  string // the table binding them to agents: "network_dhcp_agents"
	column    string // its column naming the resource, and the key of the add body: "network_id"
	agentPath string // the agent's resources: /agents/{id}/dhcp-networks
	resPath   string // the resource's agents: /networks/{id}/dhcp-agents
	policy    string // create_ and delete_ policy names: "dhcp-network"
	// exclusive: one agent per resource, which an add may not take away
	// (routers); else adds may give a resource more agents.
	exclusive bool
	// Neutron's error types and messages.
	invalidAgent neutronError // (agent ID)
	hosted       neutronError // (resource ID, hosting agent ID)
	notHosted    neutronError // (resource ID, agent ID)
}

type neutronError struct{ typ, format string }

// steps are what a scheduler does that depends on its kind's ports.
type steps interface {
	// needing tells which resources need agents: id, or all when "".
	needing(ctx context.Context, tx *store.Tx, id string) (map[string]bool, error)
	// move makes agent to serve id in from's place; either may be nil.
	move(ctx context.Context, tx *store.Tx, id string, from, to *agentState) error
	// drop takes id from agent a when it needs no agent any more.
	drop(ctx context.Context, tx *store.Tx, id string, a *agentState) error
	// settle finishes id's scheduling after its transaction.
	settle(ctx context.Context, id string) error
}

// binder binds the resources of one kind to alive agents, least loaded
// first, moves them away from dead agents, and serves the admin API that
// lists, adds and removes bindings.
type binder struct {
	svc         *service.Service
	opts        Options
	kind        kind
	steps       steps
	per         int // agents per resource
	res, agents *resource.Resource
	started     time.Time
}

func newBinder(svc *service.Service, a *api.Server, opts Options, k kind, per int, st steps) *binder {
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
	b := &binder{svc: svc, opts: opts, kind: k, steps: st, per: max(per, 1),
		res: reg.ByPlural(k.plural), agents: reg.ByPlural("agents"), started: opts.Now()}
	if a != nil {
		a.Handle("GET /agents/{id}/"+k.agentPath, b.listOfAgent)
		a.Handle("POST /agents/{id}/"+k.agentPath, b.add)
		a.Handle("DELETE /agents/{id}/"+k.agentPath+"/{"+k.column+"}", b.remove)
		a.Handle("GET /"+k.plural+"/{id}/"+k.resPath, b.agentsOfResource)
	}
	return b
}

// Run checks for dead agents every check interval until ctx ends.
func (b *binder) Run(ctx context.Context) {
	t := time.NewTicker(b.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.Check(ctx); err != nil && ctx.Err() == nil {
				b.opts.Log.Warn(b.kind.name+" scheduling check failed", "err", err)
			}
		}
	}
}

// Check moves resources away from dead agents and schedules those short
// of agents. Dead agents keep theirs for the first agent_down_time after
// the server started (agents may not have reported to it yet) and while
// no alive agent can take them.
func (b *binder) Check(ctx context.Context) error {
	return b.fixAll(ctx, b.opts.Now().Sub(b.started) >= b.opts.DownTime)
}

// fixAll reconciles the resources whose agents are not right: short of
// agents (counting dead ones unless removeDead), hosted by dead agents
// that may give them up (removeDead), or hosted without needing it. Most
// calls find none, and cost one read.
func (b *binder) fixAll(ctx context.Context, removeDead bool) error {
	var ids []string
	err := b.svc.DB().View(ctx, func(tx *store.Tx) error {
		var err error
		ids, err = b.toFix(ctx, tx, removeDead)
		return err
	})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := b.reconcile(ctx, id, removeDead); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *binder) toFix(ctx context.Context, tx *store.Tx, removeDead bool) ([]string, error) {
	needed, err := b.steps.needing(ctx, tx, "")
	if err != nil {
		return nil, err
	}
	agents, err := b.agentStates(ctx, tx)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	usableTotal := 0
	for _, a := range agents {
		usable[a.id()] = a.usable
		if a.usable {
			usableTotal++
		}
	}
	what := fmt.Sprintf("read %s bindings", b.kind.name)
	rows, err := tx.Query(ctx, `SELECT `+b.kind.column+`, agent_id FROM `+b.kind.bindings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Per resource: agents counted as serving it, alive agents hosting it,
	// and whether a dead agent hosts it.
	serving, aliveHosting, deadHosting := map[string]int{}, map[string]int{}, map[string]bool{}
	hosted := map[string]bool{}
	for rows.Next() {
		var id, agentID string
		if err := rows.Scan(&id, &agentID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		hosted[id] = true
		if usable[agentID] {
			aliveHosting[id]++
		} else {
			deadHosting[id] = true
		}
		if usable[agentID] || !removeDead {
			serving[id]++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var out []string
	for id := range hosted {
		candidates := usableTotal - aliveHosting[id]
		movable := removeDead && deadHosting[id] && (candidates > 0 || aliveHosting[id] >= b.per)
		if !needed[id] || movable {
			out = append(out, id)
		}
	}
	for id := range needed {
		candidates := usableTotal - aliveHosting[id]
		if serving[id] < b.per && candidates > 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

// reconcile makes one resource's agents right in a transaction of its
// own, then settles it.
func (b *binder) reconcile(ctx context.Context, id string, removeDead bool) error {
	err := b.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		return b.reconcileTx(ctx, tx, id, removeDead)
	})
	if err != nil {
		return fmt.Errorf("scheduler: %s %s: %w", b.kind.singular, id, err)
	}
	return b.steps.settle(ctx, id)
}

// agentState is an agent as scheduling sees it.
type agentState struct {
	obj    resource.Object
	host   string
	usable bool // alive and enabled
	load   int
}

func (a *agentState) id() string { return a.obj["id"].(string) }

func (b *binder) reconcileTx(ctx context.Context, tx *store.Tx, id string, removeDead bool) error {
	if ok, err := b.lock(ctx, tx, id); err != nil || !ok {
		return err // !ok: deleted meanwhile; its rows went with it
	}
	needed, err := b.steps.needing(ctx, tx, id)
	if err != nil {
		return err
	}
	agents, err := b.agentStates(ctx, tx)
	if err != nil {
		return err
	}
	hostedIDs, err := b.hosting(ctx, tx, id)
	if err != nil {
		return err
	}
	var alive, dead []*agentState
	for _, a := range agents {
		if slices.Contains(hostedIDs, a.id()) {
			if a.usable {
				alive = append(alive, a)
			} else {
				dead = append(dead, a)
			}
		}
	}
	if !needed[id] {
		for _, a := range append(alive, dead...) {
			if err := b.steps.drop(ctx, tx, id, a); err != nil {
				return err
			}
		}
		return nil
	}
	// Until dead agents may give up their resources, they count as
	// serving them: they may come back.
	serving := len(alive)
	if !removeDead {
		serving += len(dead)
	}
	if short := b.per - serving; short > 0 {
		var candidates []*agentState
		for _, a := range agents {
			if a.usable && !slices.Contains(hostedIDs, a.id()) {
				candidates = append(candidates, a)
			}
		}
		// Least loaded first; agents come sorted by host, which breaks ties.
		slices.SortStableFunc(candidates, func(x, y *agentState) int { return x.load - y.load })
		for _, a := range candidates[:min(short, len(candidates))] {
			// A dead agent's resource moves from it to the new agent in one
			// step (a DHCP port, a router's ports go along).
			var from *agentState
			if removeDead && len(dead) > 0 {
				from, dead = dead[0], dead[1:]
			}
			if err := b.steps.move(ctx, tx, id, from, a); err != nil {
				return err
			}
			alive = append(alive, a)
		}
	}
	// The other dead agents give up the resource once enough alive agents
	// serve it; until then one may come back and serve it itself.
	if removeDead && len(alive) >= b.per {
		for _, a := range dead {
			if err := b.steps.move(ctx, tx, id, a, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// lock holds a resource's row: decisions about one resource are taken one
// after another, also across server replicas. It reports whether the
// resource exists.
func (b *binder) lock(ctx context.Context, tx *store.Tx, id string) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE `+b.kind.plural+` SET revision_number = revision_number WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", b.kind.singular, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// hosting lists the IDs of the agents bound to a resource.
func (b *binder) hosting(ctx context.Context, tx *store.Tx, id string) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT agent_id FROM `+b.kind.bindings+` WHERE `+b.kind.column+` = ?`, id)
}

// agentStates lists the kind's agents with their load, by host.
func (b *binder) agentStates(ctx context.Context, tx *store.Tx) ([]*agentState, error) {
	objs, err := tx.List(ctx, b.agents, store.Where{"agent_type": {b.kind.agentType}})
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("read %s agents' load", b.kind.name)
	loads := map[string]int{}
	rows, err := tx.Query(ctx, `SELECT agent_id, COUNT(*) FROM `+b.kind.bindings+` GROUP BY agent_id`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		loads[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	now := b.opts.Now()
	out := make([]*agentState, 0, len(objs))
	for _, o := range objs {
		up, _ := o["admin_state_up"].(bool)
		out = append(out, &agentState{obj: o, host: str(o["host"]), load: loads[o["id"].(string)],
			usable: up && agentapi.Alive(o, now, b.opts.DownTime)})
	}
	slices.SortFunc(out, func(x, y *agentState) int { return cmp.Compare(x.host, y.host) })
	return out, nil
}

// bindToHost binds a port the scheduler moved to its host through the
// binder (unbound without a host, binding_failed without a binder).
func (b *binder) bindToHost(ctx context.Context, tx *store.Tx, p resource.Object) error {
	vifType, details := port.VIFBindingFailed, map[string]any{}
	if host, _ := p["binding:host_id"].(string); host == "" {
		vifType = port.VIFUnbound
	} else if b.opts.Bind != nil {
		vt, vd, err := b.opts.Bind(ctx, tx, p)
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

func str(v any) string {
	s, _ := v.(string)
	return s
}
