package secgroup

import (
	"context"

	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// groupPrepareList reads the rules of every listed group the caller may
// see in a few queries, for groupShow's security_group_rules; a group it
// did not read (none should reach Show) falls back to groupShow.
func (p *Plugin) groupPrepareList(ctx context.Context, tx *store.Tx, c *service.Call, groups []resource.Object) (service.ListHooks, error) {
	var ids []string
	for _, g := range groups {
		if policy.Allowed(policy.For(p.groups.Plural).Get, c.ID, policy.Facts{Owner: str(g["project_id"])}, false) {
			ids = append(ids, str(g["id"]))
		}
	}
	rules, err := tx.ListIn(ctx, p.rules, "security_group_id", ids)
	if err != nil {
		return service.ListHooks{}, err
	}
	byGroup := make(map[string][]any, len(ids))
	for _, id := range ids {
		byGroup[id] = []any{}
	}
	for _, r := range rules {
		id := str(r["security_group_id"])
		byGroup[id] = append(byGroup[id], r)
	}
	return service.ListHooks{Show: func(ctx context.Context, tx *store.Tx, c *service.Call, g resource.Object) error {
		rules, ok := byGroup[str(g["id"])]
		if !ok {
			return p.groupShow(ctx, tx, c, g)
		}
		g["security_group_rules"] = rules
		return nil
	}}, nil
}

// rulePrepareList reads the owners of the listed rules' groups in one
// query, for ruleFacts, when the caller is no admin (admins need no facts).
func (p *Plugin) rulePrepareList(ctx context.Context, tx *store.Tx, c *service.Call, rules []resource.Object) (service.ListHooks, error) {
	if c.IsAdmin() {
		return service.ListHooks{}, nil
	}
	owners, err := tx.Owners(ctx, p.groups, service.DistinctValues(rules, "security_group_id", nil))
	if err != nil {
		return service.ListHooks{}, err
	}
	// The same facts as ruleFacts gives, rule by rule.
	return service.ListHooks{Facts: func(_ context.Context, _ *store.Tx, _ *service.Call, r resource.Object) (policy.Facts, error) {
		return policy.Facts{NetworkOwner: owners[str(r["security_group_id"])]}, nil
	}}, nil
}
