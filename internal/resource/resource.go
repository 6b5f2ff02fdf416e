// Package resource owns the declarative description of every Neutron API
// resource: its attributes with their types, defaults, whether they may be
// set on create or update, who may set or see them, and which are stored as
// indexed columns. Validation, defaults, visibility, filtering and storage
// are all driven from these descriptions, as Neutron's attribute maps drive
// its API.
package resource

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Object is one resource instance as the API sees it: attribute name → value.
type Object = map[string]any

// Attr describes one attribute of a resource.
type Attr struct {
	Name string
	Type Type
	// Post and Put say whether a caller may set it on create and update.
	Post, Put bool
	// Required means it must be given on create.
	Required bool
	// Default is used on create when the caller leaves it out.
	Default any
	// Hidden attributes are accepted but never returned (is_visible False).
	Hidden bool
	// AdminOnly attributes may be set only by admins; AdminVisible ones are
	// shown only to admins (as Neutron's policy does for provider:* and binding:*).
	AdminOnly    bool
	AdminVisible bool
	// Column stores the attribute in an indexed column of the resource's
	// table, so filters on it run in the database.
	Column bool
	// NoFilter marks attributes that cannot be used as list filters.
	NoFilter bool
	// Filter lets a Hidden attribute be used as a list filter (Neutron's
	// is_filter on an attribute that is not visible, such as a subnet's
	// shared); a hook's Show computes its value.
	Filter bool
	// NoSort marks attributes that cannot be used as sort keys.
	NoSort bool
	// Extension is the alias of the API extension that adds the attribute.
	Extension string
}

// Key is the JSON key of the collection in list and bulk bodies: the
// plural with underscores where the URL has hyphens ("security_groups").
func (r *Resource) Key() string { return strings.ReplaceAll(r.Plural, "-", "_") }

// Resource describes one API collection.
type Resource struct {
	Singular string // JSON body key for one item, e.g. "security_group"
	Plural   string // collection name in the URL and list body, e.g. "security-groups"
	// Kind names the table and the resource in errors, e.g. "security_groups".
	Table string
	// NotFoundType is the Neutron exception type for a missing item.
	NotFoundType string
	// Display is the human name used in messages, e.g. "Security group".
	Display string
	// NotFoundFormat, if set, is Neutron's 404 message with one %s for the
	// id, for resources whose wording differs from "<Display> <id> could
	// not be found.".
	NotFoundFormat string
	// Standard resources carry description, tags, revision_number and
	// timestamps, and project_id/tenant_id.
	Standard bool
	// NoProject resources (agents) have no owning project.
	NoProject bool
	Attrs     []*Attr

	byName map[string]*Attr
}

// Attr returns the named attribute, or nil.
func (r *Resource) Attr(name string) *Attr { return r.byName[name] }

// Columns lists the attributes stored in indexed columns, in a fixed order.
func (r *Resource) Columns() []string {
	var out []string
	for _, a := range r.Attrs {
		if a.Column {
			out = append(out, a.Name)
		}
	}
	sort.Strings(out)
	return out
}

// standardAttrs are added to every Standard resource.
func standardAttrs() []*Attr {
	return []*Attr{
		{Name: "description", Type: StringType{MaxLen: 255}, Post: true, Put: true, Default: "", Extension: "standard-attr-description"},
		{Name: "tags", Type: ListType{Of: StringType{MaxLen: 255}}, Default: []any{}, NoSort: true, Extension: "standard-attr-tag"},
		{Name: "revision_number", Type: IntType{Max: 1 << 62}, Extension: "standard-attr-revisions"},
		{Name: "created_at", Type: StringType{}, Extension: "standard-attr-timestamp"},
		{Name: "updated_at", Type: StringType{}, Extension: "standard-attr-timestamp"},
	}
}

func projectAttrs() []*Attr {
	return []*Attr{
		{Name: "project_id", Type: StringType{MaxLen: 255}, Post: true, Column: true, Extension: "project-id"},
		{Name: "tenant_id", Type: StringType{MaxLen: 255}, Post: true},
	}
}

// Registry holds the resources the API serves.
type Registry struct {
	byPlural map[string]*Resource
	bySing   map[string]*Resource
	order    []*Resource
}

// NewRegistry builds a registry from resource descriptions, completing each
// with the id, project and standard attributes.
func NewRegistry(resources ...*Resource) (*Registry, error) {
	reg := &Registry{byPlural: map[string]*Resource{}, bySing: map[string]*Resource{}}
	for _, r := range resources {
		if err := r.complete(); err != nil {
			return nil, err
		}
		if reg.byPlural[r.Plural] != nil {
			return nil, fmt.Errorf("resource %q registered twice", r.Plural)
		}
		reg.byPlural[r.Plural] = r
		reg.bySing[r.Singular] = r
		reg.order = append(reg.order, r)
	}
	return reg, nil
}

// ByPlural returns the resource served at /v2.0/<plural>, or nil.
func (g *Registry) ByPlural(plural string) *Resource { return g.byPlural[plural] }

// BySingular returns the resource whose body key is singular, or nil.
func (g *Registry) BySingular(s string) *Resource { return g.bySing[s] }

// All returns every registered resource in registration order.
func (g *Registry) All() []*Resource { return g.order }

func (r *Resource) complete() error {
	if r.Table == "" {
		return errors.New("resource without table")
	}
	all := []*Attr{{Name: "id", Type: UUIDType{}, Column: false}}
	if !r.NoProject {
		all = append(all, projectAttrs()...)
	}
	if r.Standard {
		all = append(all, standardAttrs()...)
	}
	all = append(all, r.Attrs...)
	r.Attrs = all
	r.byName = map[string]*Attr{}
	for _, a := range r.Attrs {
		if r.byName[a.Name] != nil {
			return fmt.Errorf("%s: attribute %q declared twice", r.Plural, a.Name)
		}
		if a.Type == nil {
			return fmt.Errorf("%s: attribute %q has no type", r.Plural, a.Name)
		}
		r.byName[a.Name] = a
	}
	return nil
}

// AttrError is a validation failure of one attribute in a request body.
type AttrError struct {
	Attr string
	Msg  string
}

func (e *AttrError) Error() string {
	return fmt.Sprintf("Invalid input for %s. Reason: %s.", e.Attr, e.Msg)
}

// ForCreate validates a create request body for one item: unknown and
// read-only attributes are rejected, values converted, defaults filled in.
// It returns the converted object and the set of attributes the caller gave.
func (r *Resource) ForCreate(body map[string]any) (Object, map[string]bool, error) {
	out := Object{}
	given := map[string]bool{}
	for k, v := range body {
		a := r.byName[k]
		if a == nil {
			return nil, nil, &AttrError{Attr: k, Msg: "Unrecognized attribute(s) '" + k + "'"}
		}
		if !a.Post {
			return nil, nil, &AttrError{Attr: k, Msg: fmt.Sprintf("Attribute '%s' not allowed in POST", k)}
		}
		c, err := a.Type.Convert(v)
		if err != nil {
			return nil, nil, &AttrError{Attr: k, Msg: err.Error()}
		}
		out[k] = c
		given[k] = true
	}
	for _, a := range r.Attrs {
		if _, ok := out[a.Name]; ok {
			continue
		}
		if a.Required {
			return nil, nil, &AttrError{Attr: a.Name, Msg: fmt.Sprintf("Failed to parse request. Required attribute '%s' not specified", a.Name)}
		}
		if a.Default != nil {
			out[a.Name] = cloneValue(a.Default)
		} else if a.Post || a.Put {
			if _, isNullable := a.Type.(Nullable); isNullable {
				out[a.Name] = nil
			}
		}
	}
	return out, given, nil
}

// ForUpdate validates an update request body: only attributes with Put may
// be given. It returns the converted changes.
func (r *Resource) ForUpdate(body map[string]any) (Object, error) {
	out := Object{}
	for k, v := range body {
		a := r.byName[k]
		if a == nil {
			return nil, &AttrError{Attr: k, Msg: "Unrecognized attribute(s) '" + k + "'"}
		}
		if !a.Put {
			return nil, &AttrError{Attr: k, Msg: fmt.Sprintf("Cannot update read-only attribute %s", k)}
		}
		c, err := a.Type.Convert(v)
		if err != nil {
			return nil, &AttrError{Attr: k, Msg: err.Error()}
		}
		out[k] = c
	}
	return out, nil
}

// cloneValue copies list and map defaults so objects never share them.
func cloneValue(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = cloneValue(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneValue(e)
		}
		return out
	}
	return v
}

// Clone deep-copies an object.
func Clone(o Object) Object {
	if o == nil {
		return nil
	}
	return cloneValue(map[string]any(o)).(map[string]any)
}
