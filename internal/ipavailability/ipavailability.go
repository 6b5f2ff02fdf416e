// Package ipavailability owns the network-ip-availability extension: how
// many addresses each network and subnet has (the sizes of its allocation
// pools) and how many are in use (allocated to ports), for administrators.
package ipavailability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Plugin serves the network IP availability routes.
type Plugin struct {
	svc           *service.Service
	nets, subnets *resource.Resource
}

// Register adds GET /v2.0/network-ip-availabilities and
// /v2.0/network-ip-availabilities/{network_id}.
func Register(svc *service.Service, a *api.Server) *Plugin {
	p := &Plugin{svc: svc, nets: svc.Registry().ByPlural("networks"), subnets: svc.Registry().ByPlural("subnets")}
	a.Handle("GET /network-ip-availabilities", p.list)
	a.Handle("GET /network-ip-availabilities/{network_id}", p.show)
	return p
}

// isFilter tells the attributes Neutron lets a list filter on.
func isFilter(key string) bool {
	switch key {
	case "network_id", "network_name", "project_id", "tenant_id", "ip_version":
		return true
	}
	return false
}

// isListParam tells the query parameters that are not filters; only
// fields has an effect, as Neutron neither sorts nor pages this collection.
func isListParam(key string) bool {
	switch key {
	case "fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse":
		return true
	}
	return false
}

// query is a parsed list request.
type query struct {
	networkIDs, names, projects []string
	versions                    map[int64]bool
}

// allowed is Neutron's get_network_ip_availability rule: admin or service.
func allowed(c *service.Call) bool {
	return c.IsAdmin() || c.ID.HasRole("service")
}

func (p *Plugin) list(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	out := []any{}
	// Neutron hides the items a caller may not see: the list is empty.
	if allowed(c) {
		var nets []map[string]any
		err := p.svc.DB().View(r.Context(), func(tx *store.Tx) error {
			var err error
			nets, err = p.availability(r.Context(), tx, q)
			return err
		})
		if err != nil {
			return err
		}
		fields := fieldsOf(r.URL.Query())
		for _, n := range nets {
			out = append(out, selectFields(n, fields))
		}
	}
	return writeJSON(w, map[string]any{"network_ip_availabilities": out})
}

func (p *Plugin) show(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	id := r.PathValue("network_id")
	var nets []map[string]any
	err := p.svc.DB().View(r.Context(), func(tx *store.Tx) error {
		var err error
		nets, err = p.availability(r.Context(), tx, query{networkIDs: []string{id}})
		return err
	})
	if err != nil {
		return err
	}
	if len(nets) == 0 {
		return fault.NotFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	if !allowed(c) {
		return fault.NotFound("HTTPNotFound", "The resource could not be found.")
	}
	return writeJSON(w, map[string]any{"network_ip_availability": selectFields(nets[0], fieldsOf(r.URL.Query()))})
}

func parseQuery(v url.Values) (query, error) {
	var q query
	for key, vals := range v {
		if isListParam(key) {
			continue
		}
		if !isFilter(key) {
			return q, fault.BadRequest("[%s] is invalid attribute for filtering", key)
		}
		switch key {
		case "network_id":
			q.networkIDs = append(q.networkIDs, vals...)
		case "network_name":
			q.names = append(q.names, vals...)
		case "project_id", "tenant_id":
			q.projects = append(q.projects, vals...)
		case "ip_version":
			if q.versions == nil {
				q.versions = map[int64]bool{}
			}
			for _, s := range vals {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return q, fault.BadRequest("Invalid input for ip_version. Reason: '%s' is not an integer.", s)
				}
				q.versions[n] = true
			}
		}
	}
	return q, nil
}

// availability computes the entries of the networks matching q, in
// network id order. As in Neutron, an ip_version filter leaves out the
// other subnets and the networks with none left.
func (p *Plugin) availability(ctx context.Context, tx *store.Tx, q query) ([]map[string]any, error) {
	where := store.Where{}
	if q.networkIDs != nil {
		where["id"] = anys(q.networkIDs)
	}
	if q.projects != nil {
		where["project_id"] = anys(q.projects)
	}
	nets, err := tx.List(ctx, p.nets, where)
	if err != nil {
		return nil, err
	}
	if q.names != nil {
		kept := nets[:0]
		for _, n := range nets {
			if name, _ := n["name"].(string); slices.Contains(q.names, name) {
				kept = append(kept, n)
			}
		}
		nets = kept
	}
	if len(nets) == 0 {
		return nil, nil
	}
	// Read only the chosen networks' subnets and allocations when a filter
	// narrowed the networks; everything otherwise.
	var netIDs []any
	if len(where) > 0 || q.names != nil {
		for _, n := range nets {
			netIDs = append(netIDs, n["id"])
		}
	}
	subnetWhere := store.Where{}
	if netIDs != nil {
		subnetWhere["network_id"] = netIDs
	}
	subnets, err := tx.List(ctx, p.subnets, subnetWhere)
	if err != nil {
		return nil, err
	}
	used, err := usedBySubnet(ctx, tx, netIDs)
	if err != nil {
		return nil, err
	}
	bySubnetNet := map[string][]map[string]any{}
	for _, s := range subnets {
		if q.versions != nil && !q.versions[int64Of(s["ip_version"])] {
			continue
		}
		netID, _ := s["network_id"].(string)
		bySubnetNet[netID] = append(bySubnetNet[netID], s)
	}
	var out []map[string]any
	for _, n := range nets {
		id, _ := n["id"].(string)
		subs := bySubnetNet[id]
		if q.versions != nil && len(subs) == 0 {
			continue
		}
		total, usedIPs := new(big.Int), int64(0)
		entries := make([]any, 0, len(subs))
		for _, s := range subs {
			sid, _ := s["id"].(string)
			t := subnetTotal(s)
			total.Add(total, t)
			usedIPs += used[sid]
			entries = append(entries, map[string]any{
				"subnet_id": sid, "subnet_name": s["name"], "cidr": s["cidr"],
				"ip_version": int64Of(s["ip_version"]), "total_ips": t, "used_ips": used[sid],
			})
		}
		out = append(out, map[string]any{
			"network_id": id, "network_name": n["name"],
			"project_id": n["project_id"], "tenant_id": n["project_id"],
			"total_ips": total, "used_ips": usedIPs,
			"subnet_ip_availability": entries,
		})
	}
	return out, nil
}

// usedBySubnet counts allocated addresses per subnet, on the given
// networks (all when nil).
func usedBySubnet(ctx context.Context, tx *store.Tx, netIDs []any) (map[string]int64, error) {
	q := `SELECT subnet_id, COUNT(*) FROM ipallocations`
	if netIDs != nil {
		q += ` WHERE network_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(netIDs)), ",") + `)`
	}
	rows, err := tx.Query(ctx, q+` GROUP BY subnet_id`, netIDs...)
	if err != nil {
		return nil, fmt.Errorf("count allocated addresses: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count allocated addresses: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count allocated addresses: %w", err)
	}
	return out, nil
}

// subnetTotal is the number of addresses in a subnet's allocation pools
// (the whole CIDR when it has none), exact however large.
func subnetTotal(s map[string]any) *big.Int {
	cidr, err := netip.ParsePrefix(fmt.Sprint(s["cidr"]))
	if err != nil {
		return new(big.Int)
	}
	var pools []ipam.Pool
	list, _ := s["allocation_pools"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		start, _ := m["start"].(string)
		end, _ := m["end"].(string)
		if pool, err := ipam.ParsePool(start, end); err == nil {
			pools = append(pools, pool)
		}
	}
	return ipam.TotalIPs(cidr, pools)
}

func fieldsOf(v url.Values) []string {
	var out []string
	for _, f := range v["fields"] {
		for _, part := range strings.Split(f, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func selectFields(m map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return m
	}
	return service.SelectFields(m, fields)
}

func writeJSON(w http.ResponseWriter, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode network IP availability: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(data, '\n'))
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func int64Of(v any) int64 {
	n, _ := v.(int64)
	return n
}
