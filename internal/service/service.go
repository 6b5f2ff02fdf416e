// Package service owns the generic resource engine behind the API: create
// (single and all-or-nothing bulk), show, list with filters, sorting and
// paging, update with revision preconditions, delete, tags and quotas, for
// every resource described in package resource. Resource-specific semantics
// (IPAM, segments, routers, security groups) plug in as Hooks that run
// inside the same database transaction, so a failed request writes nothing.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Call is the caller of one API request.
type Call struct {
	ID *auth.Identity
	// Project is the caller's project; in noauth mode without a project
	// header it is the configured default project.
	Project string
	// system marks the server acting on its own behalf (SystemCall).
	system bool
}

// IsAdmin reports whether the caller is an administrator.
func (c *Call) IsAdmin() bool { return c.ID != nil && c.ID.IsAdmin }

// IsSystem reports whether the server itself makes the change, as part of
// another resource's change (a network's wildcard RBAC entry), rather than
// an API caller.
func (c *Call) IsSystem() bool { return c.system }

// Hooks carry the semantics of one resource. Every hook runs inside the
// request's transaction; returning an error rolls everything back.
type Hooks struct {
	// Facts returns what the policy needs to know about obj besides its
	// owner (sharing, network owner). Nil means owner only.
	Facts FactsFunc
	// PreCreate validates and completes obj before it is stored. given
	// says which attributes the caller supplied.
	PreCreate func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object, given map[string]bool) error
	// PostCreate runs after obj is stored (rows referencing it may now be written).
	PostCreate func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
	// PreUpdate validates the merged object; changes holds what the caller sent.
	PreUpdate func(ctx context.Context, tx *store.Tx, c *Call, old, obj, changes resource.Object) error
	// PostUpdate runs after the updated obj is stored.
	PostUpdate func(ctx context.Context, tx *store.Tx, c *Call, old, obj resource.Object) error
	// PreDelete checks obj may go and removes what depends on it.
	PreDelete func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
	// PostDelete runs after obj is deleted.
	PostDelete func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
	// Show fills attributes that depend on the caller or on other rows.
	Show func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
	// Actions are PUT /<plural>/<id>/<action> member actions.
	Actions map[string]Action
	// PrepareList, if set, runs once per list over the rows the store
	// returned, before any visibility check, and returns the Facts and Show
	// the list uses for them in place of this set's own: one lookup for
	// all rows instead of one per row. They must give the same answers.
	PrepareList func(ctx context.Context, tx *store.Tx, c *Call, rows []resource.Object) (ListHooks, error)
	// BeforeRead runs before a list (q set) or show (q nil), outside the
	// read transaction, for reads that must first create something (the
	// project's default security group). It commits on its own.
	BeforeRead func(ctx context.Context, c *Call, q *Query) error
}

// Action is a member action; it returns the response body.
type Action func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object, body map[string]any) (any, error)

// Event says a resource changed; agents are notified from it.
type Event struct {
	Resource string // plural
	Action   string // "create", "update", "delete"
	Object   resource.Object
}

// Config holds the engine's settings.
type Config struct {
	// DefaultProject is the project of noauth callers that name none.
	DefaultProject string
	// DefaultQuotas are per-project limits by quota resource name (-1 = unlimited).
	DefaultQuotas map[string]int64
}

// Service is the resource engine.
type Service struct {
	db    *store.DB
	reg   *resource.Registry
	hooks map[string][]*Hooks
	cfg   Config
	log   *slog.Logger
	// listeners get every committed change.
	listeners []func(context.Context, Event)
}

// New builds the engine over an open, migrated store.
func New(db *store.DB, reg *resource.Registry, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	if cfg.DefaultQuotas == nil {
		cfg.DefaultQuotas = DefaultQuotas()
	}
	return &Service{db: db, reg: reg, hooks: map[string][]*Hooks{}, cfg: cfg, log: log}
}

// DB returns the store, for hooks and special endpoints.
func (s *Service) DB() *store.DB { return s.db }

// Registry returns the resource descriptions.
func (s *Service) Registry() *resource.Registry { return s.reg }

// SetHooks installs the semantics of a resource, by plural. Several areas
// may add hooks to one resource (routers guard their ports, floating IPs
// follow port deletion): hooks run in the order they were added, and the
// first error stops the request.
func (s *Service) SetHooks(plural string, h *Hooks) { s.hooks[plural] = append(s.hooks[plural], h) }

// OnChange registers a listener for committed changes.
func (s *Service) OnChange(fn func(context.Context, Event)) { s.listeners = append(s.listeners, fn) }

// hooksFor merges the hooks of r into one set that runs them in order.
func (s *Service) hooksFor(r *resource.Resource) *Hooks {
	hs := s.hooks[r.Plural]
	if len(hs) == 1 {
		return hs[0]
	}
	return mergeHooks(hs)
}

// NewCall makes the Call for an authenticated identity.
func (s *Service) NewCall(id *auth.Identity) *Call {
	p := id.ProjectID
	if p == "" && id.NoAuth {
		p = s.cfg.DefaultProject
	}
	return &Call{ID: id, Project: p}
}

func (s *Service) emit(ctx context.Context, evs []Event) {
	for _, ev := range evs {
		for _, l := range s.listeners {
			l(ctx, ev)
		}
	}
}

// NewID returns a new resource id.
func NewID() string { return uuid.NewString() }

// Facts gathers the policy facts of obj.
func (s *Service) Facts(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object) (policy.Facts, error) {
	return factsWith(ctx, tx, c, s.hooksFor(r).Facts, obj)
}

// FactsFunc is a Facts hook.
type FactsFunc = func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) (policy.Facts, error)

// factsWith gathers the policy facts of obj with the Facts hook facts.
func factsWith(ctx context.Context, tx *store.Tx, c *Call, facts FactsFunc, obj resource.Object) (policy.Facts, error) {
	f := policy.Facts{}
	if facts != nil {
		var err error
		if f, err = facts(ctx, tx, c, obj); err != nil {
			return f, err
		}
	}
	f.Owner, _ = obj["project_id"].(string)
	return f, nil
}

// visible reports whether the caller may see obj.
func (s *Service) visible(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object) (bool, error) {
	return visibleWith(ctx, tx, c, r, s.hooksFor(r).Facts, obj)
}

// visibleWith reports whether the caller may see obj, by the Facts hook facts.
func visibleWith(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, facts FactsFunc, obj resource.Object) (bool, error) {
	if c.IsAdmin() {
		return true, nil
	}
	f, err := factsWith(ctx, tx, c, facts, obj)
	if err != nil {
		return false, err
	}
	return policy.Allowed(policy.For(r.Plural).Get, c.ID, f, false), nil
}

// NotFound is the 404 for a resource id, in the resource's own wording.
func NotFound(r *resource.Resource, id string) *fault.Error {
	if r.NotFoundFormat != "" {
		return fault.NotFound(r.NotFoundType, r.NotFoundFormat, id)
	}
	return fault.NotFound(r.NotFoundType, "%s %s could not be found.", r.Display, id)
}

func (s *Service) beforeRead(ctx context.Context, c *Call, r *resource.Resource, q *Query) error {
	for _, h := range s.hooks[r.Plural] {
		if h.BeforeRead != nil {
			if err := h.BeforeRead(ctx, c, q); err != nil {
				return err
			}
		}
	}
	return nil
}

// Load gets an object the caller may see, else the resource's 404.
func (s *Service) Load(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, id string) (resource.Object, error) {
	obj, err := tx.Get(ctx, r, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(r, id)
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.visible(ctx, tx, c, r, obj)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, NotFound(r, id)
	}
	return obj, nil
}

// checkWrite refuses the action unless the policy allows it; the caller can
// already see obj, so refusal is a 403.
func (s *Service) checkWrite(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object, action string, rule policy.Rule) error {
	f, err := s.Facts(ctx, tx, c, r, obj)
	if err != nil {
		return err
	}
	if !policy.Allowed(rule, c.ID, f, true) {
		return fault.PolicyNotAuthorized(action + "_" + r.Singular)
	}
	return nil
}

// checkAdminAttrs refuses admin-only attributes from non-admins. As in
// Neutron, an attribute counts as set on update whenever the caller sends
// it, and on create only when its value differs from the default (a member
// may send router:external=false).
func checkAdminAttrs(c *Call, r *resource.Resource, action string, obj resource.Object, given map[string]bool) error {
	if c.IsAdmin() {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		a := r.Attr(name)
		if a == nil || !a.AdminOnly {
			continue
		}
		if action == "create" && a.Default != nil && reflect.DeepEqual(obj[name], a.Default) {
			continue
		}
		return fault.PolicyNotAuthorized(action + "_" + r.Singular + ":" + name)
	}
	return nil
}

// attrError turns a validation failure into Neutron's 400.
func attrError(err error) error {
	var ae *resource.AttrError
	if errors.As(err, &ae) {
		return fault.BadRequest("%s", ae.Error())
	}
	return err
}

// Create creates one or more items of r in one transaction: all or nothing.
func (s *Service) Create(ctx context.Context, c *Call, r *resource.Resource, bodies []map[string]any) ([]resource.Object, error) {
	if !policy.CanWrite(c.ID) {
		return nil, fault.PolicyNotAuthorized("create_" + r.Singular)
	}
	if policy.For(r.Plural).Create == policy.AdminOnly && !c.IsAdmin() {
		return nil, fault.PolicyNotAuthorized("create_" + r.Singular)
	}
	type item struct {
		obj   resource.Object
		given map[string]bool
	}
	items := make([]item, 0, len(bodies))
	for _, b := range bodies {
		obj, given, err := r.ForCreate(b)
		if err != nil {
			return nil, attrError(err)
		}
		if err := checkAdminAttrs(c, r, "create", obj, given); err != nil {
			return nil, err
		}
		if !r.NoProject {
			if err := s.resolveProject(c, obj, given); err != nil {
				return nil, err
			}
		}
		items = append(items, item{obj, given})
	}
	var out []resource.Object
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		out = out[:0]
		if err := s.checkQuota(ctx, tx, r, len(items), items[0].obj); err != nil {
			return err
		}
		for _, it := range items {
			obj, err := s.insert(ctx, tx, c, r, resource.Clone(it.obj), it.given)
			if err != nil {
				return err
			}
			out = append(out, obj)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.showAll(ctx, c, r, out)
}

func (s *Service) insert(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object, given map[string]bool) (resource.Object, error) {
	h := s.hooksFor(r)
	if id, ok := obj["id"].(string); !ok || id == "" {
		obj["id"] = NewID()
	}
	if h.PreCreate != nil {
		if err := h.PreCreate(ctx, tx, c, obj, given); err != nil {
			return nil, err
		}
	}
	if err := tx.Insert(ctx, r, obj); err != nil {
		return nil, s.storeError(r, obj, err)
	}
	s.emitAfterCommit(ctx, tx, Event{Resource: r.Plural, Action: "create", Object: obj})
	if h.PostCreate != nil {
		if err := h.PostCreate(ctx, tx, c, obj); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// emitAfterCommit announces a change to listeners once tx has committed, so
// listeners (agent notifications) see every change made in a request,
// including those made by hooks, and never one that was rolled back.
func (s *Service) emitAfterCommit(ctx context.Context, tx *store.Tx, ev Event) {
	tx.AfterCommit(func() { s.emit(ctx, []Event{ev}) })
}

// CreateInTx creates one item inside an existing transaction on behalf of
// the server itself (a router's interface port, a network's DHCP port): the
// body is validated and hooks run as for an API request, but policy and
// quotas are not applied. The change is reported to listeners after
// commit; the returned event describes it.
func (s *Service) CreateInTx(ctx context.Context, tx *store.Tx, r *resource.Resource, project string, body map[string]any) (resource.Object, Event, error) {
	obj, given, err := r.ForCreate(body)
	if err != nil {
		return nil, Event{}, attrError(err)
	}
	if !r.NoProject {
		obj["project_id"], obj["tenant_id"] = project, project
	}
	obj, err = s.insert(ctx, tx, s.SystemCall(), r, obj, given)
	if err != nil {
		return nil, Event{}, err
	}
	return obj, Event{Resource: r.Plural, Action: "create", Object: obj}, nil
}

// DeleteInTx deletes one item inside an existing transaction on behalf of
// the server, running its delete hooks.
func (s *Service) DeleteInTx(ctx context.Context, tx *store.Tx, r *resource.Resource, obj resource.Object) (Event, error) {
	h := s.hooksFor(r)
	c := s.SystemCall()
	if h.PreDelete != nil {
		if err := h.PreDelete(ctx, tx, c, obj); err != nil {
			return Event{}, err
		}
	}
	id, _ := obj["id"].(string)
	if err := tx.Delete(ctx, r, id); err != nil {
		return Event{}, s.storeError(r, obj, err)
	}
	ev := Event{Resource: r.Plural, Action: "delete", Object: obj}
	s.emitAfterCommit(ctx, tx, ev)
	if h.PostDelete != nil {
		if err := h.PostDelete(ctx, tx, c, obj); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// UpdateInTx stores a changed object inside an existing transaction on
// behalf of the server (no hooks, no policy), bumping its revision.
func (s *Service) UpdateInTx(ctx context.Context, tx *store.Tx, r *resource.Resource, obj resource.Object) (Event, error) {
	if err := tx.Update(ctx, r, obj); err != nil {
		return Event{}, s.storeError(r, obj, err)
	}
	ev := Event{Resource: r.Plural, Action: "update", Object: obj}
	s.emitAfterCommit(ctx, tx, ev)
	return ev, nil
}

// SystemCall is the identity the server acts as for its own changes.
func (s *Service) SystemCall() *Call {
	return &Call{ID: &auth.Identity{UserID: "neutrino", Roles: []string{auth.RoleAdmin}, IsAdmin: true}, system: true}
}

// Emit reports committed changes to listeners; for changes made outside
// the engine's own writes (tx.Insert by a hook) after their commit.
func (s *Service) Emit(ctx context.Context, evs ...Event) { s.emit(ctx, evs) }

// resolveProject sets project_id and tenant_id from the body or the caller.
func (s *Service) resolveProject(c *Call, obj resource.Object, given map[string]bool) error {
	p, _ := obj["project_id"].(string)
	t, _ := obj["tenant_id"].(string)
	switch {
	case given["project_id"] && given["tenant_id"] && p != t:
		return fault.BadRequest("'project_id' and 'tenant_id' do not match")
	case !given["project_id"] && given["tenant_id"]:
		p = t
	case !given["project_id"]:
		p = c.Project
	}
	if p != c.Project && !c.IsAdmin() {
		return fault.BadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges")
	}
	if p == "" {
		return fault.BadRequest("Running without keystone AuthN requires that tenant_id is specified")
	}
	obj["project_id"], obj["tenant_id"] = p, p
	return nil
}

// Show returns one item as the caller may see it.
func (s *Service) Show(ctx context.Context, c *Call, r *resource.Resource, id string) (resource.Object, error) {
	if err := s.beforeRead(ctx, c, r, nil); err != nil {
		return nil, err
	}
	var obj resource.Object
	err := s.db.View(ctx, func(tx *store.Tx) error {
		var err error
		if obj, err = s.Load(ctx, tx, c, r, id); err != nil {
			return err
		}
		return s.present(ctx, tx, c, r, obj)
	})
	return obj, err
}

// AnyRevision is the ifRevision of Update and Delete that constrains
// nothing (no If-Match). Any other value, negative ones included, must be
// the current revision, as in Neutron.
const AnyRevision int64 = math.MinInt64

// Update applies changes to one item. ifRevision, unless AnyRevision, is
// the revision the caller expects (If-Match).
func (s *Service) Update(ctx context.Context, c *Call, r *resource.Resource, id string, body map[string]any, ifRevision int64) (resource.Object, error) {
	changes, err := r.ForUpdate(body)
	if err != nil {
		return nil, attrError(err)
	}
	given := map[string]bool{}
	for k := range changes {
		given[k] = true
	}
	if err := checkAdminAttrs(c, r, "update", changes, given); err != nil {
		return nil, err
	}
	h := s.hooksFor(r)
	var obj, old resource.Object
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if old, err = s.Load(ctx, tx, c, r, id); err != nil {
			return err
		}
		if err := s.checkWrite(ctx, tx, c, r, old, "update", policy.For(r.Plural).Update); err != nil {
			return err
		}
		if err := checkRevision(old, ifRevision); err != nil {
			return err
		}
		obj = resource.Clone(old)
		for k, v := range changes {
			obj[k] = v
		}
		if h.PreUpdate != nil {
			if err := h.PreUpdate(ctx, tx, c, old, obj, changes); err != nil {
				return err
			}
		}
		if err := tx.Update(ctx, r, obj); err != nil {
			return s.storeError(r, obj, err)
		}
		s.emitAfterCommit(ctx, tx, Event{Resource: r.Plural, Action: "update", Object: obj})
		if h.PostUpdate != nil {
			return h.PostUpdate(ctx, tx, c, old, obj)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.showOne(ctx, c, r, obj)
}

// Delete removes one item.
func (s *Service) Delete(ctx context.Context, c *Call, r *resource.Resource, id string, ifRevision int64) error {
	h := s.hooksFor(r)
	var obj resource.Object
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if obj, err = s.Load(ctx, tx, c, r, id); err != nil {
			return err
		}
		if err := s.checkWrite(ctx, tx, c, r, obj, "delete", policy.For(r.Plural).Delete); err != nil {
			return err
		}
		if err := checkRevision(obj, ifRevision); err != nil {
			return err
		}
		if h.PreDelete != nil {
			if err := h.PreDelete(ctx, tx, c, obj); err != nil {
				return err
			}
		}
		if err := tx.Delete(ctx, r, id); err != nil {
			return s.storeError(r, obj, err)
		}
		s.emitAfterCommit(ctx, tx, Event{Resource: r.Plural, Action: "delete", Object: obj})
		if h.PostDelete != nil {
			return h.PostDelete(ctx, tx, c, obj)
		}
		return nil
	})
	return err
}

// Act runs a member action (PUT /<plural>/<id>/<action>).
func (s *Service) Act(ctx context.Context, c *Call, r *resource.Resource, id, action string, body map[string]any) (any, error) {
	h := s.hooksFor(r)
	fn := h.Actions[action]
	if fn == nil {
		return nil, fault.NotFound("HTTPNotFound", "The resource could not be found.")
	}
	var out any
	var obj resource.Object
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if obj, err = s.Load(ctx, tx, c, r, id); err != nil {
			return err
		}
		if err := s.checkWrite(ctx, tx, c, r, obj, action, policy.For(r.Plural).Update); err != nil {
			return err
		}
		out, err = fn(ctx, tx, c, obj, body)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func checkRevision(obj resource.Object, want int64) error {
	if want == AnyRevision {
		return nil
	}
	cur, _ := obj["revision_number"].(int64)
	if cur != want {
		return fault.PreconditionFailed("Constrained to %d, but current revision is %d", want, cur)
	}
	return nil
}

// storeError maps constraint violations that hooks did not anticipate.
func (s *Service) storeError(r *resource.Resource, obj resource.Object, err error) error {
	if _, ok := fault.As(err); ok {
		return err
	}
	switch {
	case errors.Is(err, store.ErrReferenced):
		return fault.Conflict(inUseType(r), "%s %v is in use or refers to a resource that does not exist.", r.Display, obj["id"])
	case errors.Is(err, store.ErrConflict):
		return fault.Conflict("Conflict", "%s %v conflicts with an existing resource.", r.Display, obj["id"])
	}
	return err
}

func inUseType(r *resource.Resource) string {
	return strings.TrimSuffix(r.NotFoundType, "NotFound") + "InUse"
}

func (s *Service) showAll(ctx context.Context, c *Call, r *resource.Resource, objs []resource.Object) ([]resource.Object, error) {
	err := s.db.View(ctx, func(tx *store.Tx) error {
		for _, o := range objs {
			if err := s.present(ctx, tx, c, r, o); err != nil {
				return err
			}
		}
		return nil
	})
	return objs, err
}

func (s *Service) showOne(ctx context.Context, c *Call, r *resource.Resource, obj resource.Object) (resource.Object, error) {
	out, err := s.showAll(ctx, c, r, []resource.Object{obj})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// present runs the Show hook and hides what the caller may not see.
func (s *Service) present(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object) error {
	if err := s.fill(ctx, tx, c, r, obj); err != nil {
		return err
	}
	hide(c, r, obj)
	return nil
}

// fill runs the Show hook: attributes that depend on the caller or on
// other rows.
func (s *Service) fill(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, obj resource.Object) error {
	if h := s.hooksFor(r); h.Show != nil {
		return h.Show(ctx, tx, c, obj)
	}
	return nil
}

// hide removes what the caller may not see and shows unset attributes
// with their defaults. Only standard resources show a revision_number
// (Neutron's RBAC policies and agents have none).
func hide(c *Call, r *resource.Resource, obj resource.Object) {
	if !r.Standard {
		delete(obj, "revision_number")
	}
	for _, a := range r.Attrs {
		if a.Hidden || (a.AdminVisible && !c.IsAdmin()) {
			delete(obj, a.Name)
			continue
		}
		if _, ok := obj[a.Name]; !ok {
			obj[a.Name] = absentValue(a)
		}
	}
}

// absentValue is what an attribute shows when it was never set.
func absentValue(a *resource.Attr) any {
	if a.Default != nil {
		switch d := a.Default.(type) {
		case []any:
			return []any{}
		case map[string]any:
			return map[string]any{}
		default:
			return d
		}
	}
	return nil
}

// HTTPStatus reports the status an error maps to, for logs and metrics.
func HTTPStatus(err error) int {
	if fe, ok := fault.As(err); ok {
		return fe.Status
	}
	return http.StatusInternalServerError
}

// Fail wraps an unexpected error with context for the log.
func Fail(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }
