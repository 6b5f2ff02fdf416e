package scheduler

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// The l3_agent_scheduler API is for administrators only, as in Neutron's
// default policy.

// shared gives the l3 scheduler the DHCP scheduler's helpers.
func (s *L3Scheduler) shared() *Scheduler { return &Scheduler{svc: s.svc, opts: s.opts} }

// listRouters serves GET /v2.0/agents/{id}/l3-routers.
func (s *L3Scheduler) listRouters(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_l3-routers"); err != nil {
		return err
	}
	return s.shared().listRelated(w, r, c, s.agents, r.PathValue("id"), s.routers, "routers",
		`SELECT router_id FROM router_l3_agents WHERE agent_id = ?`)
}

// listAgents serves GET /v2.0/routers/{id}/l3-agents.
func (s *L3Scheduler) listAgents(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_l3-agents"); err != nil {
		return err
	}
	return s.shared().listRelated(w, r, c, s.routers, r.PathValue("id"), s.agents, "agents",
		`SELECT agent_id FROM router_l3_agents WHERE router_id = ?`)
}

// addRouter serves POST /v2.0/agents/{id}/l3-routers {"router_id": …}: the
// agent hosts the router from now on, unless another agent does.
func (s *L3Scheduler) addRouter(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "create_l3-router"); err != nil {
		return err
	}
	agentID := r.PathValue("id")
	routerID, err := routerIDFromBody(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		if _, err := s.svc.Load(ctx, tx, c, s.routers, routerID); err != nil {
			return err
		}
		agent, err := s.svc.Load(ctx, tx, c, s.agents, agentID)
		if err != nil {
			return err
		}
		if up, _ := agent["admin_state_up"].(bool); agent["agent_type"] != msg.AgentTypeL3 || !up {
			return fault.NotFound("InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled", agentID)
		}
		if _, err := tx.Exec(ctx, `UPDATE routers SET revision_number = revision_number WHERE id = ?`, routerID); err != nil {
			return err
		}
		hosted, err := queryStrings(ctx, tx, `SELECT agent_id FROM router_l3_agents WHERE router_id = ?`, routerID)
		if err != nil {
			return err
		}
		switch {
		case len(hosted) == 0:
			return s.moveTx(ctx, tx, routerID, nil, &agentState{obj: agent, host: str(agent["host"])})
		case hosted[0] == agentID:
			return nil
		default:
			return fault.Conflict("RouterHostedByL3Agent", "The router %s has been already hosted by the L3 Agent %s.", routerID, hosted[0])
		}
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, nil)
}

// removeRouter serves DELETE /v2.0/agents/{id}/l3-routers/{router_id}: the
// router leaves the agent and its ports are unbound; it is scheduled
// again when an l3 agent appears or reports a change.
func (s *L3Scheduler) removeRouter(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "delete_l3-router"); err != nil {
		return err
	}
	agentID, routerID := r.PathValue("id"), r.PathValue("router_id")
	ctx := r.Context()
	err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		agent, err := s.svc.Load(ctx, tx, c, s.agents, agentID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE routers SET revision_number = revision_number WHERE id = ?`, routerID); err != nil {
			return err
		}
		hosted, err := queryStrings(ctx, tx, `SELECT agent_id FROM router_l3_agents WHERE router_id = ? AND agent_id = ?`, routerID, agentID)
		if err != nil {
			return err
		}
		if len(hosted) == 0 {
			return fault.Conflict("RouterNotHostedByL3Agent", "The router %s is not hosted by L3 agent %s.", routerID, agentID)
		}
		return s.moveTx(ctx, tx, routerID, &agentState{obj: agent, host: str(agent["host"])}, nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func routerIDFromBody(r *http.Request) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "", fault.BadRequest("Failed to read request body: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil || body == nil {
		return "", fault.BadRequest("Malformed request body")
	}
	id, ok := body["router_id"].(string)
	if !ok || id == "" {
		return "", fault.BadRequest("Invalid input for router_id. Reason: a router_id is required.")
	}
	return id, nil
}
