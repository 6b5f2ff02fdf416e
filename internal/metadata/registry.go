package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Instance is what the metadata service knows of an instance beyond its
// ports: what `neutrino vm create` registered.
type Instance struct {
	// ID is the instance's uuid, its ports' device_id.
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	// PublicKeys are SSH public keys by name ("default" for --key).
	PublicKeys map[string]string `json:"public_keys,omitempty"`
	UserData   string            `json:"user_data,omitempty"`
}

// instanceData is the data column of instance_metadata.
type instanceData struct {
	PublicKeys map[string]string `json:"public_keys,omitempty"`
	UserData   string            `json:"user_data,omitempty"`
}

// Registry stores instances and finds the port behind a metadata request.
type Registry struct {
	svc *service.Service
}

// NewRegistry makes the registry on the server's store.
func NewRegistry(svc *service.Service) *Registry { return &Registry{svc: svc} }

// RegisterAPI adds the admin-only routes by which `neutrino vm` registers
// its instances: PUT, GET and DELETE /v2.0/instance-metadata/{device_id}
// with body {"instance_metadata": {name, project_id, public_keys, user_data}}.
// It is neutrino's own API (Nova keeps this data in real clouds).
func (g *Registry) RegisterAPI(a *api.Server) {
	a.Handle("PUT /instance-metadata/{device_id}", g.put)
	a.Handle("GET /instance-metadata/{device_id}", g.show)
	a.Handle("DELETE /instance-metadata/{device_id}", g.delete)
}

func adminOnly(c *service.Call, action string) error {
	if !c.IsAdmin() {
		return fault.PolicyNotAuthorized(action)
	}
	return nil
}

func (g *Registry) put(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "update_instance_metadata"); err != nil {
		return err
	}
	var body struct {
		Instance *Instance `json:"instance_metadata"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil || body.Instance == nil {
		return fault.BadRequest("Invalid request body: expected {\"instance_metadata\": {...}}.")
	}
	in := *body.Instance
	in.ID = r.PathValue("device_id")
	if strings.TrimSpace(in.Name) == "" {
		return fault.BadRequest("Invalid input for name. Reason: an instance needs a name.")
	}
	if err := g.Put(r.Context(), in); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"instance_metadata": in})
}

func (g *Registry) show(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "get_instance_metadata"); err != nil {
		return err
	}
	in, err := g.Get(r.Context(), r.PathValue("device_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"instance_metadata": in})
}

func (g *Registry) delete(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := adminOnly(c, "delete_instance_metadata"); err != nil {
		return err
	}
	id := r.PathValue("device_id")
	var n int64
	err := g.svc.DB().Tx(r.Context(), func(tx *store.Tx) error {
		res, err := tx.Exec(r.Context(), "DELETE FROM instance_metadata WHERE device_id = ?", id)
		if err != nil {
			return fmt.Errorf("metadata: delete instance %s: %w", id, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func notFound(id string) error {
	return fault.NotFound("InstanceNotFound", "Instance %s could not be found.", id)
}

// Put stores (or replaces) an instance.
func (g *Registry) Put(ctx context.Context, in Instance) error {
	data, err := json.Marshal(instanceData{PublicKeys: in.PublicKeys, UserData: in.UserData})
	if err != nil {
		return fmt.Errorf("metadata: encode instance: %w", err)
	}
	return g.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM instance_metadata WHERE device_id = ?", in.ID); err != nil {
			return fmt.Errorf("metadata: store instance %s: %w", in.ID, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO instance_metadata (device_id, project_id, name, data) VALUES (?, ?, ?, ?)",
			in.ID, in.ProjectID, in.Name, string(data)); err != nil {
			return fmt.Errorf("metadata: store instance %s: %w", in.ID, err)
		}
		return nil
	})
}

// Get loads an instance; a fault.NotFound when it was never registered.
func (g *Registry) Get(ctx context.Context, id string) (Instance, error) {
	in := Instance{ID: id}
	err := g.svc.DB().View(ctx, func(tx *store.Tx) error {
		var data string
		err := tx.QueryRow(ctx, "SELECT project_id, name, data FROM instance_metadata WHERE device_id = ?", id).
			Scan(&in.ProjectID, &in.Name, &data)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return fmt.Errorf("metadata: load instance %s: %w", id, err)
		}
		var d instanceData
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return fmt.Errorf("metadata: decode instance %s: %w", id, err)
		}
		in.PublicKeys, in.UserData = d.PublicKeys, d.UserData
		return nil
	})
	return in, err
}

// routerInterfaceOwners are the device owners of a router's ports on its
// internal networks.
var routerInterfaceOwners = []any{
	"network:router_interface", "network:router_interface_distributed", "network:ha_router_replicated_interface",
}

// Lookup finds the port holding ip on the router's internal networks (or
// on the network), as Neutron's metadata agent does from X-Forwarded-For
// and X-Neutron-Router-ID / X-Neutron-Network-ID. Ports of network
// devices (routers, DHCP) are not instances and never match.
func (g *Registry) Lookup(ctx context.Context, q msg.MetadataLookup) (msg.MetadataLookupReply, error) {
	out := msg.MetadataLookupReply{Version: msg.Version}
	ip, err := netip.ParseAddr(q.IP)
	if err != nil {
		return out, fmt.Errorf("metadata: lookup: %q is not an IP address", q.IP)
	}
	if (q.RouterID == "") == (q.NetworkID == "") {
		return out, errors.New("metadata: lookup needs a router id or a network id, not both")
	}
	err = g.svc.DB().View(ctx, func(tx *store.Tx) error {
		networks := []any{q.NetworkID}
		if q.RouterID != "" {
			ports, err := tx.List(ctx, g.svc.Registry().ByPlural("ports"), store.Where{
				"device_id": {q.RouterID}, "device_owner": routerInterfaceOwners,
			})
			if err != nil {
				return err
			}
			networks = networks[:0]
			for _, p := range ports {
				networks = append(networks, p["network_id"])
			}
			if len(networks) == 0 {
				return nil
			}
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(networks)), ",")
		args := append([]any{ip.String()}, networks...)
		rows, err := tx.Query(ctx, "SELECT p.id, p.device_id, p.project_id, p.device_owner FROM ipallocations a JOIN ports p ON p.id = a.port_id"+
			" WHERE a.ip_address = ? AND a.network_id IN ("+marks+") ORDER BY p.id", args...)
		if err != nil {
			return fmt.Errorf("metadata: lookup %s: %w", ip, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, device, project, owner sql.NullString
			if err := rows.Scan(&id, &device, &project, &owner); err != nil {
				return fmt.Errorf("metadata: lookup %s: %w", ip, err)
			}
			if strings.HasPrefix(owner.String, "network:") || device.String == "" || out.Found {
				continue
			}
			out.Found, out.PortID, out.InstanceID, out.ProjectID = true, id.String, device.String, project.String
		}
		return rows.Err()
	})
	return out, err
}

// HandleLookups serves msg.MethodMetadataLookup on the bus for the
// metadata agents; the returned function stops it.
func (g *Registry) HandleLookups(conn *bus.Conn) (func(), error) {
	return conn.Handle(msg.MethodMetadataLookup, func(ctx context.Context, req json.RawMessage) (any, error) {
		q, err := bus.Decode[msg.MetadataLookup](req)
		if err != nil {
			return nil, err
		}
		if err := msg.CheckVersion(q.Version); err != nil {
			return nil, err
		}
		return g.Lookup(ctx, q)
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("metadata: encode: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
	return nil
}
