// Package network owns the semantics of networks and of RBAC policies on
// them: provider attributes and segments, MTU, sharing (access_as_shared)
// and external access (access_as_external) expressed as RBAC entries, and
// the in-use checks that keep a network from being deleted or unshared
// while other projects depend on it.
package network

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/segment"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// RBAC actions on networks.
const (
	ActionShared   = "access_as_shared"
	ActionExternal = "access_as_external"
)

// Device owners whose ports are removed with their network.
var autoDeleteOwners = map[string]bool{"network:dhcp": true}

// Plugin carries the network and RBAC semantics.
type Plugin struct {
	svc                        *service.Service
	segs                       *segment.Manager
	nets, ports, subnets, rbac *resource.Resource
}

// Register installs the network and rbac-policy hooks.
func Register(svc *service.Service, segs *segment.Manager) *Plugin {
	reg := svc.Registry()
	p := &Plugin{svc: svc, segs: segs, nets: reg.ByPlural("networks"), ports: reg.ByPlural("ports"),
		subnets: reg.ByPlural("subnets"), rbac: reg.ByPlural("rbac-policies")}
	svc.SetHooks("networks", &service.Hooks{
		Facts:       p.networkFacts,
		PreCreate:   p.preCreate,
		PostCreate:  p.postCreate,
		PreUpdate:   p.preUpdate,
		PreDelete:   p.preDelete,
		Show:        p.show,
		PrepareList: p.prepareList,
	})
	svc.SetHooks("rbac-policies", &service.Hooks{
		PreCreate:  p.rbacPreCreate,
		PostCreate: p.rbacPostCreate,
		PreUpdate:  p.rbacPreUpdate,
		PostUpdate: p.rbacPostUpdate,
		PreDelete:  p.rbacPreDelete,
		PostDelete: p.rbacPostDelete,
	})
	return p
}

// Access tells whether a network is shared with or external to a project.
func Access(ctx context.Context, tx *store.Tx, netID, project string) (shared, external bool, err error) {
	rows, err := tx.Query(ctx, `SELECT action FROM rbac_policies WHERE object_type = 'network' AND object_id = ? AND target_tenant IN ('*', ?)`, netID, project)
	if err != nil {
		return false, false, fmt.Errorf("read rbac of network %s: %w", netID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return false, false, fmt.Errorf("read rbac of network %s: %w", netID, err)
		}
		shared = shared || a == ActionShared
		external = external || a == ActionExternal
	}
	return shared, external, rows.Err()
}

// isExternal tells whether a network is external: as in Neutron, it is
// while any access_as_external entry exists, whoever it targets.
func isExternal(ctx context.Context, tx *store.Tx, netID string) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE object_type = 'network' AND object_id = ? AND action = ?`, netID, ActionExternal).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read rbac of network %s: %w", netID, err)
	}
	return n > 0, nil
}

// wildcard tells whether a network has a wildcard entry for action.
func wildcard(ctx context.Context, tx *store.Tx, netID, action string) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM rbac_policies WHERE object_type = 'network' AND object_id = ? AND action = ? AND target_tenant = '*'`, netID, action).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read rbac of network %s: %w", netID, err)
	}
	return n > 0, nil
}

// Facts returns the policy facts of a network for the caller; subnets and
// ports use it for their network.
func Facts(ctx context.Context, tx *store.Tx, c *service.Call, net resource.Object) (policy.Facts, error) {
	id, _ := net["id"].(string)
	shared, external, err := Access(ctx, tx, id, c.Project)
	if err != nil {
		return policy.Facts{}, err
	}
	owner, _ := net["project_id"].(string)
	return policy.Facts{Shared: shared, External: external, NetworkOwner: owner}, nil
}

func (p *Plugin) networkFacts(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) (policy.Facts, error) {
	return Facts(ctx, tx, c, obj)
}

// show computes shared as Neutron does, for the caller: shared with
// everyone or with the caller's project. router:external is the same for
// every caller.
func (p *Plugin) show(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	id, _ := obj["id"].(string)
	shared, _, err := Access(ctx, tx, id, c.Project)
	if err != nil {
		return err
	}
	external, err := isExternal(ctx, tx, id)
	if err != nil {
		return err
	}
	showAccess(obj, shared, external)
	return nil
}

// showAccess sets the attributes a network's RBAC entries decide.
func showAccess(obj resource.Object, shared, external bool) {
	obj["shared"], obj["router:external"] = shared, external
	if !external {
		obj["is_default"] = false // default only while external
	}
}

// Grant is what a network's RBAC entries grant one caller, as Access and
// isExternal read them network by network.
type Grant struct {
	// Shared: shared with the caller (or everyone).
	Shared bool
	// ExternalToCaller: external to the caller (or everyone).
	ExternalToCaller bool
	// External: external to anyone (router:external).
	External bool
}

// Grants reads the RBAC entries of the networks ids for project in one
// query (a few for thousands of networks): what lists use instead of
// Access per network.
func Grants(ctx context.Context, tx *store.Tx, project string, ids []string) (map[string]Grant, error) {
	byNet := make(map[string]Grant, len(ids))
	err := tx.QueryIn(ctx, `SELECT object_id, action, target_tenant FROM rbac_policies WHERE object_type = 'network' AND object_id IN (?...)`, ids, func(rows *sql.Rows) error {
		var id, action, target string
		if err := rows.Scan(&id, &action, &target); err != nil {
			return err
		}
		g := byNet[id]
		forCaller := target == "*" || target == project
		g.Shared = g.Shared || action == ActionShared && forCaller
		g.ExternalToCaller = g.ExternalToCaller || action == ActionExternal && forCaller
		g.External = g.External || action == ActionExternal
		byNet[id] = g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rbac of networks: %w", err)
	}
	return byNet, nil
}

// prepareList reads the RBAC entries of every listed network at once, for
// the facts and show of each.
func (p *Plugin) prepareList(ctx context.Context, tx *store.Tx, c *service.Call, nets []resource.Object) (service.ListHooks, error) {
	byNet, err := Grants(ctx, tx, c.Project, service.DistinctValues(nets, "id", nil))
	if err != nil {
		return service.ListHooks{}, err
	}
	return service.ListHooks{
		Facts: func(_ context.Context, _ *store.Tx, _ *service.Call, net resource.Object) (policy.Facts, error) {
			id, _ := net["id"].(string)
			owner, _ := net["project_id"].(string)
			g := byNet[id]
			return policy.Facts{Shared: g.Shared, External: g.ExternalToCaller, NetworkOwner: owner}, nil
		},
		Show: func(_ context.Context, _ *store.Tx, _ *service.Call, net resource.Object) error {
			id, _ := net["id"].(string)
			g := byNet[id]
			showAccess(net, g.Shared, g.External)
			return nil
		},
	}, nil
}

func int64Of(v any) (int64, bool) {
	n, ok := v.(int64)
	return n, ok
}

func (p *Plugin) preCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	// Only admins share networks with everyone (create_network:shared);
	// shared=false, the default, is anyone's to send.
	if shared, _ := obj["shared"].(bool); shared && !c.IsAdmin() {
		return fault.PolicyNotAuthorized("create_network:shared")
	}
	var seg segment.Segment
	segGiven := false
	provider := given["provider:network_type"] || given["provider:physical_network"] || given["provider:segmentation_id"]
	if provider {
		t, _ := obj["provider:network_type"].(string)
		if t == "" {
			return fault.InvalidInput("provider:network_type required")
		}
		physnet, _ := obj["provider:physical_network"].(string)
		segID := int64(-1)
		if n, ok := int64Of(obj["provider:segmentation_id"]); ok {
			segID = n
			segGiven = true
		}
		if err := p.segs.Validate(t, physnet, segID); err != nil {
			return err
		}
		seg = segment.Segment{NetworkType: t, PhysicalNetwork: physnet, SegmentationID: max(segID, 0)}
	}
	// The segment row references the network, so it is allocated in
	// PostCreate; the draft travels in a private key until then.
	if ext, _ := obj["router:external"].(bool); !ext {
		obj["is_default"] = false // only external networks are default
	} else if err := p.checkDefault(ctx, tx, obj); err != nil {
		return err
	}
	obj["_segment"] = map[string]any{"type": seg.NetworkType, "physnet": seg.PhysicalNetwork, "id": seg.SegmentationID, "given": segGiven}
	obj["status"] = "ACTIVE"
	obj["subnets"] = []any{}
	return nil
}

func (p *Plugin) postCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	id, _ := obj["id"].(string)
	want, _ := obj["_segment"].(map[string]any)
	delete(obj, "_segment")
	seg := segment.Segment{}
	if want != nil {
		seg.NetworkType, _ = want["type"].(string)
		seg.PhysicalNetwork, _ = want["physnet"].(string)
		seg.SegmentationID, _ = int64Of(want["id"])
	}
	given, _ := want["given"].(bool)
	seg, err := p.segs.Allocate(ctx, tx, id, seg, given)
	if err != nil {
		return err
	}
	setProvider(obj, seg)
	maxMTU := p.segs.MTU(seg.NetworkType)
	if mtu, ok := int64Of(obj["mtu"]); ok {
		if mtu > maxMTU {
			return fault.InvalidInput("Requested MTU is too big, maximum is %d", maxMTU)
		}
	} else {
		obj["mtu"] = maxMTU
	}
	if shared, _ := obj["shared"].(bool); shared {
		if err := p.addWildcard(ctx, tx, obj, ActionShared); err != nil {
			return err
		}
	}
	if ext, _ := obj["router:external"].(bool); ext {
		if err := p.addWildcard(ctx, tx, obj, ActionExternal); err != nil {
			return err
		}
	}
	// Store the completed document (segment, MTU) in place of the draft.
	return tx.Rewrite(ctx, p.nets, obj)
}

func setProvider(obj resource.Object, seg segment.Segment) {
	obj["provider:network_type"] = seg.NetworkType
	if seg.PhysicalNetwork != "" {
		obj["provider:physical_network"] = seg.PhysicalNetwork
	} else {
		obj["provider:physical_network"] = nil
	}
	if seg.NetworkType == segment.Flat {
		obj["provider:segmentation_id"] = nil
	} else {
		obj["provider:segmentation_id"] = seg.SegmentationID
	}
}

func (p *Plugin) addWildcard(ctx context.Context, tx *store.Tx, net resource.Object, action string) error {
	project, _ := net["project_id"].(string)
	_, _, err := p.svc.CreateInTx(ctx, tx, p.rbac, project, map[string]any{
		"object_type": "network", "object_id": net["id"], "action": action, "target_tenant": "*",
	})
	return err
}

func (p *Plugin) removeWildcard(ctx context.Context, tx *store.Tx, net resource.Object, action string) error {
	return p.removeEntries(ctx, tx, store.Where{"object_id": {net["id"]}, "action": {action}, "target_tenant": {"*"}})
}

// removeEntries deletes the network's RBAC entries that match where, unless
// a project still depends on one (RbacPolicyInUse).
func (p *Plugin) removeEntries(ctx context.Context, tx *store.Tx, where store.Where) error {
	entries, err := tx.List(ctx, p.rbac, where)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := p.rbacPreDelete(ctx, tx, p.svc.SystemCall(), e); err != nil {
			return err
		}
		if err := tx.Delete(ctx, p.rbac, e["id"].(string)); err != nil {
			return err
		}
	}
	return nil
}

func (p *Plugin) preUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	id, _ := obj["id"].(string)
	if v, ok := changes["shared"].(bool); ok {
		// update_network:shared is admin-only whatever the value; owners
		// share with other projects through RBAC entries instead.
		if !c.IsAdmin() {
			return fault.PolicyNotAuthorized("update_network:shared")
		}
		cur, err := wildcard(ctx, tx, id, ActionShared)
		if err != nil {
			return err
		}
		if v && !cur {
			if err := p.addWildcard(ctx, tx, obj, ActionShared); err != nil {
				return err
			}
		} else if !v && cur {
			if err := p.removeWildcard(ctx, tx, obj, ActionShared); err != nil {
				if fe, ok := fault.As(err); ok && fe.Type == "RbacPolicyInUse" {
					return fault.Conflict("InvalidSharedSetting", "Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.", id)
				}
				return err
			}
		}
	}
	if v, ok := changes["router:external"].(bool); ok {
		cur, err := isExternal(ctx, tx, id)
		if err != nil {
			return err
		}
		if v && !cur {
			if err := p.addWildcard(ctx, tx, obj, ActionExternal); err != nil {
				return err
			}
		} else if !v && cur {
			// Internal again: every access_as_external entry goes, not
			// only the wildcard.
			if err := p.removeEntries(ctx, tx, store.Where{"object_id": {id}, "action": {ActionExternal}}); err != nil {
				return err
			}
		}
	}
	external, err := isExternal(ctx, tx, id)
	if err != nil {
		return err
	}
	if !external {
		// As in Neutron, only an external network is default; one that
		// stops being external stops being default.
		obj["is_default"] = false
	} else if err := p.checkDefault(ctx, tx, obj); err != nil {
		return err
	}
	if mtu, ok := int64Of(changes["mtu"]); ok {
		t, _ := obj["provider:network_type"].(string)
		if maxMTU := p.segs.MTU(t); mtu > maxMTU {
			return fault.InvalidInput("Requested MTU is too big, maximum is %d", maxMTU)
		}
	}
	return nil
}

// checkDefault refuses a second default external network.
func (p *Plugin) checkDefault(ctx context.Context, tx *store.Tx, net resource.Object) error {
	if isDefault, _ := net["is_default"].(bool); !isDefault {
		return nil
	}
	nets, err := tx.List(ctx, p.nets, store.Where{})
	if err != nil {
		return err
	}
	for _, other := range nets {
		if d, _ := other["is_default"].(bool); !d || other["id"] == net["id"] {
			continue
		}
		if ext, err := isExternal(ctx, tx, fmt.Sprint(other["id"])); err != nil {
			return err
		} else if !ext {
			continue
		}
		return fault.Conflict("DefaultExternalNetworkExists", "A default external network already exists: %v.", other["id"])
	}
	return nil
}

func (p *Plugin) preDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	id, _ := obj["id"].(string)
	ports, err := tx.List(ctx, p.ports, store.Where{"network_id": {id}})
	if err != nil {
		return err
	}
	for _, port := range ports {
		if !autoDeleteOwners[fmt.Sprint(port["device_owner"])] {
			return fault.Conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
	}
	for _, port := range ports {
		if _, err := p.svc.DeleteInTx(ctx, tx, p.ports, port); err != nil {
			return err
		}
	}
	subnets, err := tx.List(ctx, p.subnets, store.Where{"network_id": {id}})
	if err != nil {
		return err
	}
	for _, s := range subnets {
		if _, err := p.svc.DeleteInTx(ctx, tx, p.subnets, s); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rbac_policies WHERE object_type = 'network' AND object_id = ?`, id); err != nil {
		return fmt.Errorf("delete rbac of network %s: %w", id, err)
	}
	return nil
}
