package scheduler

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// The dhcp_agent_scheduler and l3_agent_scheduler APIs are for
// administrators only, as in Neutron's default policy. One set of handlers
// serves both, with the kind's paths, policy names and errors.

func adminOnly(c *service.Call, action string) error {
	if !c.IsAdmin() {
		return fault.PolicyNotAuthorized(action)
	}
	return nil
}

// listOfAgent serves GET /v2.0/agents/{id}/dhcp-networks (l3-routers).
func (b *binder) listOfAgent(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_"+b.kind.agentPath); err != nil {
		return err
	}
	return b.listRelated(w, r, c, b.agents, r.PathValue("id"), b.res, b.kind.plural,
		`SELECT `+b.kind.column+` FROM `+b.kind.bindings+` WHERE agent_id = ?`)
}

// agentsOfResource serves GET /v2.0/networks/{id}/dhcp-agents
// (/routers/{id}/l3-agents).
func (b *binder) agentsOfResource(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_"+b.kind.resPath); err != nil {
		return err
	}
	return b.listRelated(w, r, c, b.res, r.PathValue("id"), b.agents, "agents",
		`SELECT agent_id FROM `+b.kind.bindings+` WHERE `+b.kind.column+` = ?`)
}

// listRelated lists the items of r related to the owner (of resource
// owner) through q, with the usual list parameters.
func (b *binder) listRelated(w http.ResponseWriter, req *http.Request, c *service.Call, owner *resource.Resource, id string, r *resource.Resource, key, q string) error {
	query, err := service.ParseQuery(r, req.URL.Query())
	if err != nil {
		return err
	}
	items := []resource.Object{}
	err = b.svc.DB().View(req.Context(), func(tx *store.Tx) error {
		if _, err := b.svc.Load(req.Context(), tx, c, owner, id); err != nil {
			return err
		}
		ids, err := queryStrings(req.Context(), tx, q, id)
		if err != nil || len(ids) == 0 {
			return err
		}
		want := make([]any, 0, len(ids))
		for _, i := range ids {
			want = append(want, i)
		}
		if have, ok := query.Filters["id"]; ok {
			want = intersect(want, have)
		}
		query.Filters["id"] = want
		page, err := b.svc.ListTx(req.Context(), tx, c, r, query)
		if err != nil {
			return err
		}
		items = page.Items
		return nil
	})
	if err != nil {
		return err
	}
	if items == nil {
		items = []resource.Object{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{key: items})
}

func intersect(a, b []any) []any {
	out := []any{}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// add serves POST /v2.0/agents/{id}/dhcp-networks {"network_id": …}: the
// agent serves the network from now on, whatever dhcp_agents_per_network
// says; and POST /v2.0/agents/{id}/l3-routers {"router_id": …}: the agent
// hosts the router from now on, unless another agent does.
func (b *binder) add(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	k := b.kind
	if err := adminOnly(c, "create_"+k.policy); err != nil {
		return err
	}
	agentID := r.PathValue("id")
	id, err := idFromBody(r, k.column)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = b.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		if _, err := b.svc.Load(ctx, tx, c, b.res, id); err != nil {
			return err
		}
		agent, err := b.svc.Load(ctx, tx, c, b.agents, agentID)
		if err != nil {
			return err
		}
		if up, _ := agent["admin_state_up"].(bool); agent["agent_type"] != k.agentType || !up {
			return fault.NotFound(k.invalidAgent.typ, k.invalidAgent.format, agentID)
		}
		if _, err := b.lock(ctx, tx, id); err != nil {
			return err
		}
		hosted, err := b.hosting(ctx, tx, id)
		if err != nil {
			return err
		}
		switch {
		case k.exclusive && slices.Equal(hosted, []string{agentID}):
			return nil // Neutron: a router added to its own agent stays
		case slices.Contains(hosted, agentID):
			return fault.Conflict(k.hosted.typ, k.hosted.format, id, agentID)
		case k.exclusive && len(hosted) > 0:
			return fault.Conflict(k.hosted.typ, k.hosted.format, id, hosted[0])
		}
		return b.steps.move(ctx, tx, id, nil, &agentState{obj: agent, host: str(agent["host"])})
	})
	if err != nil {
		return err
	}
	if err := b.steps.settle(ctx, id); err != nil {
		b.opts.Log.Warn(k.name+" scheduling not completed", k.singular, id, "err", err)
	}
	return writeJSON(w, http.StatusCreated, nil)
}

// remove serves DELETE /v2.0/agents/{id}/dhcp-networks/{network_id} (the
// agent's DHCP port is kept, reserved for the next agent) and DELETE
// /v2.0/agents/{id}/l3-routers/{router_id} (the router's ports are
// unbound; it is scheduled again when an l3 agent appears or reports a
// change).
func (b *binder) remove(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	k := b.kind
	if err := adminOnly(c, "delete_"+k.policy); err != nil {
		return err
	}
	agentID, id := r.PathValue("id"), r.PathValue(k.column)
	ctx := r.Context()
	err := b.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		agent, err := b.svc.Load(ctx, tx, c, b.agents, agentID)
		if err != nil {
			return err
		}
		if _, err := b.lock(ctx, tx, id); err != nil {
			return err
		}
		hosted, err := b.hosting(ctx, tx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(hosted, agentID) {
			return fault.Conflict(k.notHosted.typ, k.notHosted.format, id, agentID)
		}
		return b.steps.move(ctx, tx, id, &agentState{obj: agent, host: str(agent["host"])}, nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// idFromBody reads the ID under key ("network_id") from a request body.
func idFromBody(r *http.Request, key string) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "", fault.BadRequest("Failed to read request body: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil || body == nil {
		return "", fault.BadRequest("Malformed request body")
	}
	id, ok := body[key].(string)
	if !ok || id == "" {
		return "", fault.BadRequest("Invalid input for %s. Reason: a %s is required.", key, key)
	}
	return id, nil
}

func writeJSON(w http.ResponseWriter, status int, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("scheduler: encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
	return nil
}
