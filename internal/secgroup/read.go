package secgroup

import (
	"context"
	"fmt"

	"github.com/neutrino-sdn/neutrino/internal/service"
)

// beforeRead makes the default group of the project a read concerns (the
// caller's, or the project a list filters on) before the read runs.
func (p *Plugin) beforeRead(ctx context.Context, c *service.Call, q *service.Query) error {
	project := c.Project
	if q != nil {
		if ps := q.Filters["project_id"]; len(ps) > 0 && ps[0] != nil {
			project = fmt.Sprint(ps[0])
		}
	}
	return p.ensureFor(ctx, c, project)
}
