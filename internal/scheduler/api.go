package scheduler

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// The dhcp_agent_scheduler API is for administrators only, as in Neutron's
// default policy.

func adminOnly(c *service.Call, action string) error {
	if !c.IsAdmin() {
		return fault.PolicyNotAuthorized(action)
	}
	return nil
}

// listNetworks serves GET /v2.0/agents/{id}/dhcp-networks.
func (s *Scheduler) listNetworks(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_dhcp-networks"); err != nil {
		return err
	}
	id := r.PathValue("id")
	return s.listRelated(w, r, c, s.agents, id, s.nets, "networks",
		`SELECT network_id FROM network_dhcp_agents WHERE agent_id = ?`)
}

// listAgents serves GET /v2.0/networks/{id}/dhcp-agents.
func (s *Scheduler) listAgents(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_dhcp-agents"); err != nil {
		return err
	}
	id := r.PathValue("id")
	return s.listRelated(w, r, c, s.nets, id, s.agents, "agents",
		`SELECT agent_id FROM network_dhcp_agents WHERE network_id = ?`)
}

// listRelated lists the items of r related to the owner (of resource
// owner) through q, with the usual list parameters.
func (s *Scheduler) listRelated(w http.ResponseWriter, req *http.Request, c *service.Call, owner *resource.Resource, id string, r *resource.Resource, key, q string) error {
	query, err := service.ParseQuery(r, req.URL.Query())
	if err != nil {
		return err
	}
	items := []resource.Object{}
	err = s.svc.DB().View(req.Context(), func(tx *store.Tx) error {
		if _, err := s.svc.Load(req.Context(), tx, c, owner, id); err != nil {
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
		page, err := s.svc.ListTx(req.Context(), tx, c, r, query)
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

// addNetwork serves POST /v2.0/agents/{id}/dhcp-networks {"network_id": …}:
// the agent serves the network from now on, whatever
// dhcp_agents_per_network says.
func (s *Scheduler) addNetwork(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "create_dhcp-network"); err != nil {
		return err
	}
	agentID := r.PathValue("id")
	netID, err := networkIDFromBody(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		if _, err := s.svc.Load(ctx, tx, c, s.nets, netID); err != nil {
			return err
		}
		agent, err := s.svc.Load(ctx, tx, c, s.agents, agentID)
		if err != nil {
			return err
		}
		up, _ := agent["admin_state_up"].(bool)
		if agent["agent_type"] != msg.AgentTypeDHCP || !up {
			return fault.NotFound("InvalidDHCPAgent", "Agent %s is not a valid DHCP Agent or has been disabled.", agentID)
		}
		hosted, err := queryStrings(ctx, tx, `SELECT agent_id FROM network_dhcp_agents WHERE network_id = ? AND agent_id = ?`, netID, agentID)
		if err != nil {
			return err
		}
		if len(hosted) > 0 {
			return fault.Conflict("NetworkHostedByDHCPAgent", "The network %s has been already hosted by the DHCP Agent %s.", netID, agentID)
		}
		subs, err := tx.List(ctx, s.subnets, store.Where{"network_id": {netID}})
		if err != nil {
			return err
		}
		host, _ := agent["host"].(string)
		return s.schedule(ctx, tx, netID, &agentState{obj: agent, host: host}, subs)
	})
	if err != nil {
		return err
	}
	if err := s.fixPortAddresses(ctx, netID); err != nil {
		s.opts.Log.Warn("DHCP port addresses not completed", "network", netID, "err", err)
	}
	return writeJSON(w, http.StatusCreated, nil)
}

// removeNetwork serves DELETE /v2.0/agents/{id}/dhcp-networks/{network_id};
// the agent's DHCP port is kept, reserved for the next agent.
func (s *Scheduler) removeNetwork(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "delete_dhcp-network"); err != nil {
		return err
	}
	agentID, netID := r.PathValue("id"), r.PathValue("network_id")
	ctx := r.Context()
	err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		agent, err := s.svc.Load(ctx, tx, c, s.agents, agentID)
		if err != nil {
			return err
		}
		host, _ := agent["host"].(string)
		removed, err := s.unschedule(ctx, tx, netID, &agentState{obj: agent, host: host}, false)
		if err != nil {
			return err
		}
		if !removed {
			return fault.Conflict("NetworkNotHostedByDhcpAgent", "The network %s is not hosted by the DHCP Agent %s.", netID, agentID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func networkIDFromBody(r *http.Request) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "", fault.BadRequest("Failed to read request body: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil || body == nil {
		return "", fault.BadRequest("Malformed request body")
	}
	id, ok := body["network_id"].(string)
	if !ok || id == "" {
		return "", fault.BadRequest("Invalid input for network_id. Reason: a network_id is required.")
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
