package secgroup

import (
	"context"
	"fmt"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// groupIDs returns a port's security_groups.
func groupIDs(port resource.Object) []string {
	l, _ := port["security_groups"].([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// bind records which groups a port uses. A group that does not exist is
// refused here too, whether or not the port code checked it first.
func (p *Plugin) bind(ctx context.Context, tx *store.Tx, portID string, ids []string) error {
	for _, id := range ids {
		g, err := p.group(ctx, tx, id)
		if err != nil {
			return err
		}
		if g == nil {
			return groupNotFound(id)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO security_group_port_bindings (port_id, security_group_id) VALUES (?, ?)", portID, id); err != nil {
			return fmt.Errorf("bind port %s to security group %s: %w", portID, id, err)
		}
	}
	return nil
}

func (p *Plugin) portPostCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.bind(ctx, tx, str(obj["id"]), groupIDs(obj))
}

func (p *Plugin) portPostUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj resource.Object) error {
	before, after := groupIDs(old), groupIDs(obj)
	slices.Sort(before)
	slices.Sort(after)
	if slices.Equal(before, after) {
		return nil
	}
	id := str(obj["id"])
	if _, err := tx.Exec(ctx, "DELETE FROM security_group_port_bindings WHERE port_id = ?", id); err != nil {
		return fmt.Errorf("unbind port %s: %w", id, err)
	}
	return p.bind(ctx, tx, id, after)
}
