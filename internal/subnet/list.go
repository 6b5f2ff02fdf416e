package subnet

import (
	"context"
	"fmt"

	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// prepareList reads, once for the whole list, which networks of the listed
// subnets are shared with the caller (for show's shared) and, for a caller
// who is no admin, the owners of the networks of the subnets it does not
// own (for facts): a query or two however many subnets are listed. The
// hooks it returns give what show and facts give subnet by subnet.
func (p *Plugin) prepareList(ctx context.Context, tx *store.Tx, c *service.Call, subnets []resource.Object) (service.ListHooks, error) {
	grants, err := network.Grants(ctx, tx, c.Project, service.DistinctValues(subnets, "network_id", nil))
	if err != nil {
		return service.ListHooks{}, fmt.Errorf("networks of listed subnets: %w", err)
	}
	shared := func(netID string) bool { return grants[netID].Shared }
	hooks := service.ListHooks{Show: func(_ context.Context, _ *store.Tx, _ *service.Call, sub resource.Object) error {
		netID, _ := sub["network_id"].(string)
		sub["shared"] = shared(netID)
		return nil
	}}
	if c.IsAdmin() {
		return hooks, nil // admins see every subnet without facts
	}
	// As port.FactsNetwork: a caller's own subnets need no network.
	owned := func(sub resource.Object) bool { return c.Project != "" && sub["project_id"] == c.Project }
	owners, err := tx.Owners(ctx, p.nets, service.DistinctValues(subnets, "network_id", func(sub resource.Object) bool { return !owned(sub) }))
	if err != nil {
		return service.ListHooks{}, err
	}
	hooks.Facts = func(_ context.Context, _ *store.Tx, _ *service.Call, sub resource.Object) (policy.Facts, error) {
		netID, _ := sub["network_id"].(string)
		owner, exists := owners[netID]
		if owned(sub) || !exists {
			return policy.Facts{}, nil
		}
		// External stays false: an external network does not expose its subnets.
		return policy.Facts{Shared: shared(netID), NetworkOwner: owner}, nil
	}
	return hooks, nil
}
