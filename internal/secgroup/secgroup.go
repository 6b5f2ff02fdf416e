// Package secgroup owns security groups and their rules (the security-group
// extension) in the API and the store: each project's default group, made
// on first need and exactly once even across server replicas; rule
// validation and duplicate detection as Neutron does them; which groups each
// port uses, so that a group in use cannot be deleted. Enforcing the rules
// on the dataplane belongs to the agents.
package secgroup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// The project's default group, as Neutron names and describes it.
const (
	defaultName        = "default"
	defaultDescription = "Default security group"
)

// ruleQuota is the quota resource name of rules.
const ruleQuota = "security_group_rule"

// Plugin carries the security group semantics.
type Plugin struct {
	svc           *service.Service
	groups, rules *resource.Resource
}

// Register installs the hooks of security groups, their rules and the
// port-to-group bindings; reads of groups and rules first make the
// caller's default group, as Neutron does.
func Register(svc *service.Service) *Plugin {
	p := New(svc)
	svc.SetHooks("security-groups", &service.Hooks{
		PreCreate:   p.groupPreCreate,
		PostCreate:  p.groupPostCreate,
		PreUpdate:   p.groupPreUpdate,
		PreDelete:   p.groupPreDelete,
		Show:        p.groupShow,
		PrepareList: p.groupPrepareList,
		BeforeRead:  p.beforeRead,
	})
	svc.SetHooks("security-group-rules", &service.Hooks{
		Facts:       p.ruleFacts,
		PreCreate:   p.rulePreCreate,
		PostCreate:  p.rulePostCreate,
		PreUpdate:   p.rulePreUpdate,
		PostDelete:  p.rulePostDelete,
		PrepareList: p.rulePrepareList,
		BeforeRead:  p.beforeRead,
	})
	svc.SetHooks("ports", &service.Hooks{
		PostCreate: p.portPostCreate,
		PostUpdate: p.portPostUpdate,
	})
	return p
}

// New returns the plugin without installing it, for callers of
// DefaultGroup and CheckGroups other than the server (tests, tools).
func New(svc *service.Service) *Plugin {
	reg := svc.Registry()
	return &Plugin{svc: svc, groups: reg.ByPlural("security-groups"), rules: reg.ByPlural("security-group-rules")}
}

// groupNotFound is Neutron's 404 for one or more group ids.
func groupNotFound(ids ...string) *fault.Error {
	return fault.NotFound("SecurityGroupNotFound", "Security group %s does not exist", strings.Join(ids, ", "))
}

// DefaultGroup returns the id of project's default security group, making
// the group (with Neutron's default rules) if the project has none yet.
// Port creation calls it to default a port's groups.
func (p *Plugin) DefaultGroup(ctx context.Context, tx *store.Tx, project string) (string, error) {
	id, _, err := p.ensureDefault(ctx, tx, project)
	return id, err
}

// CheckGroups refuses (404 SecurityGroupNotFound, naming them) the ids
// that do not exist or that a port of project may not use: groups of
// another project, unless the caller is an administrator.
func (p *Plugin) CheckGroups(ctx context.Context, tx *store.Tx, c *service.Call, project string, ids []string) error {
	var missing []string
	for _, id := range ids {
		g, err := p.group(ctx, tx, id)
		if err != nil {
			return err
		}
		if g == nil || !c.IsAdmin() && str(g["project_id"]) != project {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return groupNotFound(missing...)
	}
	return nil
}

// group loads a group; nil when it does not exist.
func (p *Plugin) group(ctx context.Context, tx *store.Tx, id string) (resource.Object, error) {
	g, err := tx.Get(ctx, p.groups, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return g, err
}

// defaultGroupID reads project's default group id; "" when it has none.
func defaultGroupID(ctx context.Context, tx *store.Tx, project string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, "SELECT security_group_id FROM default_security_groups WHERE project_id = ?", project).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read default security group of %s: %w", project, err)
	}
	return id, nil
}

// ensureDefault returns project's default group, making it if needed. The
// default_security_groups primary key decides a race between servers: the
// loser's group is undone by the savepoint and the winner's is returned.
// The events describe what was made, for the caller to emit after commit.
func (p *Plugin) ensureDefault(ctx context.Context, tx *store.Tx, project string) (string, []service.Event, error) {
	id, err := defaultGroupID(ctx, tx, project)
	if err != nil || id != "" {
		return id, nil, err
	}
	var evs []service.Event
	err = tx.Savepoint(ctx, func() error {
		var err error
		id, evs, err = p.createDefault(ctx, tx, project)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		if id, err = defaultGroupID(ctx, tx, project); err == nil && id == "" {
			err = fmt.Errorf("default security group of %s: lost a race but found no winner", project)
		}
		return id, nil, err
	}
	if err != nil {
		return "", nil, err
	}
	return id, evs, nil
}

func (p *Plugin) createDefault(ctx context.Context, tx *store.Tx, project string) (string, []service.Event, error) {
	g, _, err := p.groups.ForCreate(map[string]any{"name": defaultName, "description": defaultDescription})
	if err != nil {
		return "", nil, fmt.Errorf("default security group: %w", err)
	}
	id := service.NewID()
	g["id"], g["project_id"], g["tenant_id"] = id, project, project
	delete(g, "security_group_rules")
	if err := tx.Insert(ctx, p.groups, g); err != nil {
		return "", nil, fmt.Errorf("default security group of %s: %w", project, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO default_security_groups (project_id, security_group_id) VALUES (?, ?)", project, id); err != nil {
		return "", nil, fmt.Errorf("default security group of %s: %w", project, err)
	}
	if err := p.addTemplateRules(ctx, tx, g, true); err != nil {
		return "", nil, err
	}
	return id, []service.Event{{Resource: p.groups.Plural, Action: "create", Object: g}}, nil
}

// addTemplateRules gives a new group Neutron's default rules: egress to
// anywhere over IPv4 and IPv6, and for the default group ingress from its
// own members. The group's revision moves once, as in Neutron.
func (p *Plugin) addTemplateRules(ctx context.Context, tx *store.Tx, g resource.Object, isDefault bool) error {
	type tmpl struct {
		direction, ethertype string
		fromSelf             bool
	}
	ts := []tmpl{{"egress", ipv4, false}, {"egress", ipv6, false}}
	if isDefault {
		ts = append(ts, tmpl{"ingress", ipv4, true}, tmpl{"ingress", ipv6, true})
	}
	project := str(g["project_id"])
	for _, t := range ts {
		body := map[string]any{"security_group_id": g["id"], "direction": t.direction, "ethertype": t.ethertype}
		if t.fromSelf {
			body["remote_group_id"] = g["id"]
		}
		rule, _, err := p.rules.ForCreate(body)
		if err != nil {
			return fmt.Errorf("template rule: %w", err)
		}
		rule["id"], rule["project_id"], rule["tenant_id"] = service.NewID(), project, project
		if err := tx.Insert(ctx, p.rules, rule); err != nil {
			return fmt.Errorf("template rule of group %v: %w", g["id"], err)
		}
		if err := p.claimKey(ctx, tx, rule); err != nil {
			return err
		}
	}
	return tx.Update(ctx, p.groups, g)
}

// ensureFor makes the default group of the project a read concerns, when
// the caller may: its own project, or any project for an administrator.
// It commits on its own, before the read runs.
func (p *Plugin) ensureFor(ctx context.Context, c *service.Call, project string) error {
	if project == "" || !c.IsAdmin() && project != c.Project {
		return nil
	}
	var id string
	err := p.svc.DB().View(ctx, func(tx *store.Tx) error {
		var err error
		id, err = defaultGroupID(ctx, tx, project)
		return err
	})
	if err != nil || id != "" {
		return err
	}
	var evs []service.Event
	err = p.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		var err error
		_, evs, err = p.ensureDefault(ctx, tx, project)
		return err
	})
	if err != nil {
		return err
	}
	p.svc.Emit(ctx, evs...)
	return nil
}

// isDefaultName reports whether name is the reserved default group name
// (Neutron compares it case-insensitively).
func isDefaultName(name any) bool {
	s, _ := name.(string)
	return strings.EqualFold(s, defaultName)
}

func defaultExists() *fault.Error {
	return fault.Conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
}

func (p *Plugin) groupPreCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	if isDefaultName(obj["name"]) {
		return defaultExists()
	}
	delete(obj, "security_group_rules")
	project := str(obj["project_id"])
	// The new group's own rules must fit the rule quota, as in Neutron.
	limits, err := p.svc.Quota(ctx, p.svc.SystemCall(), project)
	if err != nil {
		return err
	}
	if lim, ok := limits[ruleQuota]; ok && lim >= 0 && lim < 2 {
		return fault.Conflict("OverQuota", "Quota exceeded for resources: ['%s'].", ruleQuota)
	}
	// Events of a default group made here are not emitted: it is made on
	// behalf of this request and listed with the next read.
	_, _, err = p.ensureDefault(ctx, tx, project)
	return err
}

func (p *Plugin) groupPostCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.addTemplateRules(ctx, tx, obj, false)
}

func (p *Plugin) groupPreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	if _, ok := changes["name"]; !ok {
		return nil
	}
	if isDefaultName(changes["name"]) {
		return defaultExists()
	}
	if old["name"] == defaultName {
		return fault.Conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
	}
	return nil
}

func (p *Plugin) groupPreDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	id := str(obj["id"])
	var n int
	if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM security_group_port_bindings WHERE security_group_id = ?", id).Scan(&n); err != nil {
		return fmt.Errorf("ports of security group %s: %w", id, err)
	}
	if n > 0 {
		return fault.Conflict("SecurityGroupInUse", "Security Group %s in use.", id)
	}
	if obj["name"] == defaultName && !c.IsAdmin() {
		return fault.Conflict("SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
	}
	// Its rules, rules of other groups naming it as remote group and the
	// default_security_groups entry go with it (foreign keys cascade).
	return nil
}

// groupShow fills security_group_rules from the rules table.
func (p *Plugin) groupShow(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	rules, err := tx.List(ctx, p.rules, store.Where{"security_group_id": {obj["id"]}})
	if err != nil {
		return err
	}
	out := make([]any, 0, len(rules))
	for _, r := range rules {
		out = append(out, r)
	}
	obj["security_group_rules"] = out
	return nil
}

// ruleFacts gives the policy the owner of the rule's group: the group
// owner may see and delete every rule of the group.
func (p *Plugin) ruleFacts(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) (policy.Facts, error) {
	g, err := p.group(ctx, tx, str(obj["security_group_id"]))
	if err != nil || g == nil {
		return policy.Facts{}, err
	}
	return policy.Facts{NetworkOwner: str(g["project_id"])}, nil
}

func (p *Plugin) rulePreCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	if err := convertRule(obj); err != nil {
		return err
	}
	groupID := str(obj["security_group_id"])
	g, err := p.group(ctx, tx, groupID)
	if err != nil {
		return err
	}
	if g == nil {
		return groupNotFound(groupID)
	}
	// Only the group's owner may add rules to it (Neutron's sg_owner rule).
	if !c.IsAdmin() && str(g["project_id"]) != c.Project {
		return fault.PolicyNotAuthorized("create_security_group_rule")
	}
	if err := validateRule(obj); err != nil {
		return err
	}
	if remote := str(obj["remote_group_id"]); remote != "" {
		rg, err := p.group(ctx, tx, remote)
		if err != nil {
			return err
		}
		if rg == nil || !c.IsAdmin() && str(rg["project_id"]) != str(obj["project_id"]) {
			return groupNotFound(remote)
		}
	}
	existing, err := tx.List(ctx, p.rules, store.Where{"security_group_id": {groupID}})
	if err != nil {
		return err
	}
	key := ruleKey(obj)
	for _, r := range existing {
		if ruleKey(r) == key {
			return ruleExists(str(r["id"]))
		}
	}
	return nil
}

func ruleExists(id string) *fault.Error {
	return fault.Conflict("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", id)
}

// claimKey records a newly inserted rule's canonical form. rulePreCreate
// refuses a duplicate already committed; the unique rule_key refuses one
// that another request (on any replica) adds at the same moment, which
// rulePreCreate could not yet see.
func (p *Plugin) claimKey(ctx context.Context, tx *store.Tx, rule resource.Object) error {
	key := ruleKey(rule)
	err := tx.Savepoint(ctx, func() error {
		_, err := tx.Exec(ctx, "UPDATE security_group_rules SET rule_key = ? WHERE id = ?", key, rule["id"])
		return err
	})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrConflict):
		return fmt.Errorf("security group rule %v: %w", rule["id"], err)
	}
	// The other request has committed (the database waited for it), so
	// its rule can be named.
	var other string
	err = tx.QueryRow(ctx, "SELECT id FROM security_group_rules WHERE rule_key = ?", key).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// The winner was deleted again in between: try the whole request
		// again, which may now succeed.
		return store.Retry(fmt.Errorf("security group rule %v raced a rule deleted meanwhile", rule["id"]))
	case err != nil:
		return fmt.Errorf("security group rule %v duplicates a rule that could not be read: %w", rule["id"], err)
	}
	return ruleExists(other)
}

// bumpGroup moves the revision of a rule's group: a rule change is a
// change of the group (Neutron's revises_on_change).
func (p *Plugin) bumpGroup(ctx context.Context, tx *store.Tx, rule resource.Object) error {
	g, err := p.group(ctx, tx, str(rule["security_group_id"]))
	if err != nil || g == nil {
		return err
	}
	return tx.Update(ctx, p.groups, g)
}

func (p *Plugin) rulePostCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	if err := p.claimKey(ctx, tx, obj); err != nil {
		return err
	}
	return p.bumpGroup(ctx, tx, obj)
}

func (p *Plugin) rulePostDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	return p.bumpGroup(ctx, tx, obj)
}

// rulePreUpdate refuses every change: Neutron has no rule update (a rule
// is replaced by deleting it and creating another).
func (p *Plugin) rulePreUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	return fault.BadRequest("Security group rules cannot be updated; delete the rule and create a new one.")
}
