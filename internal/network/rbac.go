package network

import (
	"context"
	"errors"
	"fmt"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

func (p *Plugin) rbacPreCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, _ map[string]bool) error {
	// Policy first, as Neutron enforces it before the plugin looks at the
	// network: only admins target everyone.
	if obj["target_tenant"] == "*" && !c.IsAdmin() {
		return fault.PolicyNotAuthorized("create_rbac_policy:target_tenant")
	}
	netID, _ := obj["object_id"].(string)
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return fault.NotFound("NetworkNotFound", "Network %s could not be found.", netID)
	}
	if err != nil {
		return err
	}
	if !c.IsAdmin() && net["project_id"] != c.Project {
		shared, external, err := Access(ctx, tx, netID, c.Project)
		if err != nil {
			return err
		}
		if !shared && !external {
			return fault.NotFound("NetworkNotFound", "Network %s could not be found.", netID)
		}
		return errNotOwner()
	}
	return p.checkDuplicate(ctx, tx, obj)
}

// errNotOwner is Neutron's answer to a project that can see a network (it
// is shared with it) but tries to manage the network's RBAC entries.
func errNotOwner() error {
	return fault.InvalidInput("Only admins can manipulate policies on networks they do not own")
}

func (p *Plugin) checkDuplicate(ctx context.Context, tx *store.Tx, obj resource.Object) error {
	n, err := tx.Count(ctx, p.rbac, store.Where{
		"object_type": {obj["object_type"]}, "object_id": {obj["object_id"]},
		"action": {obj["action"]}, "target_tenant": {obj["target_tenant"]},
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fault.Conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
	}
	return nil
}

func (p *Plugin) rbacPreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	if old["target_tenant"] == obj["target_tenant"] {
		return nil
	}
	if obj["target_tenant"] == "*" && !c.IsAdmin() {
		return fault.PolicyNotAuthorized("update_rbac_policy:target_tenant")
	}
	// The new target keeps its access through the changed entry.
	if err := p.checkNotInUse(ctx, tx, c, old, fmt.Sprint(obj["target_tenant"])); err != nil {
		return err
	}
	return p.checkDuplicate(ctx, tx, obj)
}

func (p *Plugin) rbacPostCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.bumpNetwork(ctx, tx, c, obj)
}

func (p *Plugin) rbacPostUpdate(ctx context.Context, tx *store.Tx, c *service.Call, _, obj resource.Object) error {
	return p.bumpNetwork(ctx, tx, c, obj)
}

func (p *Plugin) rbacPostDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.bumpNetwork(ctx, tx, c, obj)
}

// bumpNetwork raises the revision of the policy's network, as Neutron does
// when a policy changes who may use it. Entries the server writes while
// changing the network itself (shared, router:external) are left out: that
// change bumps the network already.
func (p *Plugin) bumpNetwork(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	if c.IsSystem() {
		return nil
	}
	netID, _ := obj["object_id"].(string)
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = p.svc.UpdateInTx(ctx, tx, p.nets, net)
	return err
}

// rbacPreDelete refuses to remove an entry that projects other than the
// network's owner still rely on (their ports, or floating IPs on an
// external network), unless another entry keeps their access.
func (p *Plugin) rbacPreDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.checkNotInUse(ctx, tx, c, obj, "")
}

// checkNotInUse refuses to take obj's access away from the projects that
// rely on it; newTarget, when obj is being retargeted, keeps its access.
func (p *Plugin) checkNotInUse(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, newTarget string) error {
	netID, _ := obj["object_id"].(string)
	action, _ := obj["action"].(string)
	target, _ := obj["target_tenant"].(string)
	net, err := tx.Get(ctx, p.nets, netID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// The default external network stays external to everyone; the
	// server itself removes the entry when the network stops being
	// external (and default).
	if isDefault, _ := net["is_default"].(bool); isDefault && action == ActionExternal && target == "*" && !c.IsSystem() {
		return fault.Conflict("RbacPolicyInUse", "RBAC policy on object %s cannot be removed because other objects depend on it. Details: Default external networks must be shared to everyone.", netID)
	}
	owner, _ := net["project_id"].(string)
	// Projects that keep access through other entries.
	others, err := tx.List(ctx, p.rbac, store.Where{"object_id": {netID}, "action": {action}})
	if err != nil {
		return err
	}
	kept := map[string]bool{owner: true}
	switch newTarget {
	case "*":
		return nil // everyone keeps access
	case "":
	default:
		kept[newTarget] = true
	}
	for _, e := range others {
		if e["id"] == obj["id"] {
			continue
		}
		t, _ := e["target_tenant"].(string)
		if t == "*" {
			return nil // a wildcard keeps everyone's access
		}
		kept[t] = true
	}
	affected := func(project string) bool {
		if kept[project] || project == "" {
			return false
		}
		return target == "*" || target == project
	}
	var users []string
	ports, err := tx.List(ctx, p.ports, store.Where{"network_id": {netID}})
	if err != nil {
		return err
	}
	for _, port := range ports {
		project := fmt.Sprint(port["project_id"])
		// A router's gateway port belongs to no project: the router's
		// project is the one using the external network.
		if port["device_owner"] == "network:router_gateway" {
			if router, err := tx.Get(ctx, p.svc.Registry().ByPlural("routers"), fmt.Sprint(port["device_id"])); err == nil {
				project = fmt.Sprint(router["project_id"])
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		users = append(users, project)
	}
	if action == ActionExternal {
		fips, err := tx.List(ctx, p.svc.Registry().ByPlural("floatingips"), store.Where{"floating_network_id": {netID}})
		if err != nil {
			return err
		}
		for _, f := range fips {
			users = append(users, fmt.Sprint(f["project_id"]))
		}
	}
	for _, u := range users {
		if affected(u) {
			return fault.Conflict("RbacPolicyInUse", "RBAC policy on object %s cannot be removed because other objects depend on it.", netID)
		}
	}
	return nil
}
