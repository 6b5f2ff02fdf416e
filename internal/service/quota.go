package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// quotaResources maps quota names to the collections they count.
var quotaResources = map[string]string{
	"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
	"floatingip": "floatingips", "security_group": "security-groups",
	"security_group_rule": "security-group-rules", "subnetpool": "subnetpools",
	"rbac_policy": "rbac-policies",
}

// DefaultQuotas are Neutron's default per-project limits.
func DefaultQuotas() map[string]int64 {
	return map[string]int64{
		"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
		"security_group": 10, "security_group_rule": 100, "subnetpool": -1, "rbac_policy": 10,
	}
}

// QuotaNames lists the quota resource names in order.
func QuotaNames() []string {
	out := make([]string, 0, len(quotaResources))
	for k := range quotaResources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func quotaNameOf(r *resource.Resource) string {
	for k, v := range quotaResources {
		if v == r.Plural {
			return k
		}
	}
	return ""
}

// limits returns the effective limits of a project.
func (s *Service) limits(ctx context.Context, tx *store.Tx, project string) (map[string]int64, error) {
	out := map[string]int64{}
	for k, v := range s.cfg.DefaultQuotas {
		out[k] = v
	}
	rows, err := tx.Query(ctx, "SELECT resource, hard_limit FROM quotas WHERE project_id = ?", project)
	if err != nil {
		return nil, fmt.Errorf("read quotas: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read quotas: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

// checkQuota refuses to create n more items of r for obj's project when
// that would exceed its limit. It must run in the transaction that creates
// them: it holds the (project, resource) quota lock until that commits.
func (s *Service) checkQuota(ctx context.Context, tx *store.Tx, r *resource.Resource, n int, obj resource.Object) error {
	name := quotaNameOf(r)
	project, _ := obj["project_id"].(string)
	if name == "" || project == "" {
		return nil
	}
	lim, err := s.limits(ctx, tx, project)
	if err != nil {
		return err
	}
	limit := lim[name]
	if limit < 0 {
		return nil
	}
	// Concurrent creates (on any replica) would otherwise all count the
	// same usage and all take the last slot. The upsert locks the row until
	// commit, so the next check waits and then counts what this one made.
	// (SQLite runs one writer at a time anyway.)
	if _, err := tx.Exec(ctx, `INSERT INTO quota_locks (project_id, resource) VALUES (?, ?)
		ON CONFLICT (project_id, resource) DO UPDATE SET resource = excluded.resource`, project, name); err != nil {
		return fmt.Errorf("lock %s quota of %s: %w", name, project, err)
	}
	used, err := tx.Count(ctx, r, store.Where{"project_id": {project}})
	if err != nil {
		return err
	}
	if int64(used+n) > limit {
		return fault.Conflict("OverQuota", "Quota exceeded for resources: ['%s'].", name)
	}
	return nil
}

// Quota returns a project's limits.
func (s *Service) Quota(ctx context.Context, c *Call, project string) (map[string]int64, error) {
	if !c.IsAdmin() && project != c.Project {
		return nil, fault.PolicyNotAuthorized("get_quota")
	}
	var out map[string]int64
	err := s.db.View(ctx, func(tx *store.Tx) error {
		var err error
		out, err = s.limits(ctx, tx, project)
		return err
	})
	return out, err
}

// QuotaDefaults returns the default limits.
func (s *Service) QuotaDefaults() map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.cfg.DefaultQuotas {
		out[k] = v
	}
	return out
}

// QuotaUsage is one line of quota details.
type QuotaUsage struct {
	Limit    int64 `json:"limit"`
	Used     int64 `json:"used"`
	Reserved int64 `json:"reserved"`
}

// QuotaDetails returns limits with usage (quota_details).
func (s *Service) QuotaDetails(ctx context.Context, c *Call, project string) (map[string]QuotaUsage, error) {
	if !c.IsAdmin() && project != c.Project {
		return nil, fault.PolicyNotAuthorized("get_quota")
	}
	out := map[string]QuotaUsage{}
	err := s.db.View(ctx, func(tx *store.Tx) error {
		lim, err := s.limits(ctx, tx, project)
		if err != nil {
			return err
		}
		for name, plural := range quotaResources {
			n, err := tx.Count(ctx, s.reg.ByPlural(plural), store.Where{"project_id": {project}})
			if err != nil {
				return err
			}
			out[name] = QuotaUsage{Limit: lim[name], Used: int64(n)}
		}
		return nil
	})
	return out, err
}

// SetQuota updates a project's limits (admin only).
func (s *Service) SetQuota(ctx context.Context, c *Call, project string, body map[string]any) (map[string]int64, error) {
	if !c.IsAdmin() {
		return nil, fault.PolicyNotAuthorized("update_quota")
	}
	set := map[string]int64{}
	for k, v := range body {
		if k == "force" {
			// Neutron's quota-check-limit flag; limits are never checked
			// against usage here, so forcing changes nothing.
			continue
		}
		if _, ok := quotaResources[k]; !ok {
			return nil, fault.BadRequest("Unrecognized attribute(s) '%s'", k)
		}
		n, err := resource.IntType{Min: -1, Max: math.MaxInt32}.Convert(v)
		if err != nil {
			return nil, fault.BadRequest("Invalid input for %s. Reason: %v.", k, err)
		}
		set[k] = n.(int64)
	}
	var out map[string]int64
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		for k, v := range set {
			_, err := tx.Exec(ctx, `INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
				ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit`, project, k, v)
			if err != nil {
				return fmt.Errorf("set quota: %w", err)
			}
		}
		var err error
		out, err = s.limits(ctx, tx, project)
		return err
	})
	return out, err
}

// ResetQuota returns a project to the default limits (admin only).
func (s *Service) ResetQuota(ctx context.Context, c *Call, project string) error {
	if !c.IsAdmin() {
		return fault.PolicyNotAuthorized("delete_quota")
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, "DELETE FROM quotas WHERE project_id = ?", project)
		if err != nil {
			return fmt.Errorf("reset quota: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.NotFound("TenantQuotaNotFound", "Quota for tenant %s could not be found.", project)
		}
		return nil
	})
}

// ProjectQuota is one entry of the quota list.
type ProjectQuota struct {
	Project string
	Limits  map[string]int64
}

// ListQuotas lists projects with non-default limits (admin only).
func (s *Service) ListQuotas(ctx context.Context, c *Call) ([]ProjectQuota, error) {
	if !c.IsAdmin() {
		return nil, fault.PolicyNotAuthorized("get_quota")
	}
	var out []ProjectQuota
	err := s.db.View(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT DISTINCT project_id FROM quotas ORDER BY project_id")
		if err != nil {
			return fmt.Errorf("list quotas: %w", err)
		}
		var projects []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			projects = append(projects, p)
		}
		rows.Close()
		for _, p := range projects {
			lim, err := s.limits(ctx, tx, p)
			if err != nil {
				return err
			}
			out = append(out, ProjectQuota{Project: p, Limits: lim})
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	return out, err
}
