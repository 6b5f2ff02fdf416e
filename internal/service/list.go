package service

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Query is a parsed list request.
type Query struct {
	Filters     map[string][]any // attribute → accepted canonical values
	Fields      []string
	SortKeys    []string
	SortDirs    []string // "asc" or "desc", one per key
	Limit       int      // 0 = no limit
	Marker      string
	PageReverse bool
	// Tag filters (standard-attr-tag).
	Tags, TagsAny, NotTags, NotTagsAny []string
}

// Page is one page of a list.
type Page struct {
	Items []resource.Object
	// Next and Previous are set when there is a further page that way.
	Next, Previous bool
}

// queryParams that are not attribute filters.
var reserved = map[string]bool{
	"fields": true, "sort_key": true, "sort_dir": true, "limit": true,
	"marker": true, "page_reverse": true, "tags": true, "tags-any": true,
	"not-tags": true, "not-tags-any": true,
}

// ParseQuery validates list query parameters against r (filter-validation:
// unknown attributes are a 400).
func ParseQuery(r *resource.Resource, v url.Values) (*Query, error) {
	q := &Query{Filters: map[string][]any{}}
	for key, vals := range v {
		if reserved[key] {
			continue
		}
		a := r.Attr(key)
		if a == nil || a.NoFilter || a.Hidden && !a.Filter && key != "tenant_id" {
			return nil, fault.BadRequest("[%s] is invalid attribute for filtering", key)
		}
		for _, s := range vals {
			c, err := a.Type.ParseFilter(s)
			if err != nil {
				return nil, fault.BadRequest("Invalid input for %s. Reason: %v.", key, err)
			}
			q.Filters[key] = append(q.Filters[key], c)
		}
	}
	if tid, ok := q.Filters["tenant_id"]; ok {
		q.Filters["project_id"] = append(q.Filters["project_id"], tid...)
		delete(q.Filters, "tenant_id")
	}
	for _, f := range v["fields"] {
		for _, part := range strings.Split(f, ",") {
			if part = strings.TrimSpace(part); part != "" {
				q.Fields = append(q.Fields, part)
			}
		}
	}
	q.SortKeys = v["sort_key"]
	q.SortDirs = v["sort_dir"]
	for _, k := range q.SortKeys {
		a := r.Attr(k)
		if a == nil || a.NoSort || a.Hidden {
			return nil, fault.BadRequest("%s is invalid attribute for sort_key", k)
		}
	}
	for _, d := range q.SortDirs {
		if d != "asc" && d != "desc" {
			return nil, fault.BadRequest("%s is invalid value for sort_dir, valid values are 'asc' and 'desc'", d)
		}
	}
	if len(q.SortDirs) > 0 && len(q.SortDirs) != len(q.SortKeys) {
		return nil, fault.BadRequest("The number of sort_keys and sort_dirs must be same")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, fault.BadRequest("Limit must be an integer 0 or greater and not '%s'", l)
		}
		q.Limit = n
	}
	q.Marker = v.Get("marker")
	if pr := v.Get("page_reverse"); pr != "" {
		b, err := resource.BoolType{}.ParseFilter(pr)
		if err != nil {
			return nil, fault.BadRequest("Invalid value for page_reverse: %s", pr)
		}
		q.PageReverse = b.(bool)
	}
	split := func(k string) []string {
		var out []string
		for _, s := range v[k] {
			for _, t := range strings.Split(s, ",") {
				if t != "" {
					out = append(out, t)
				}
			}
		}
		return out
	}
	q.Tags, q.TagsAny, q.NotTags, q.NotTagsAny = split("tags"), split("tags-any"), split("not-tags"), split("not-tags-any")
	return q, nil
}

// List returns the items the caller may see that match q.
func (s *Service) List(ctx context.Context, c *Call, r *resource.Resource, q *Query) (*Page, error) {
	if err := s.beforeRead(ctx, c, r, q); err != nil {
		return nil, err
	}
	var page *Page
	err := s.db.View(ctx, func(tx *store.Tx) error {
		var err error
		page, err = s.ListTx(ctx, tx, c, r, q)
		return err
	})
	return page, err
}

// ListTx is List inside an existing transaction.
func (s *Service) ListTx(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, q *Query) (*Page, error) {
	where := store.Where{}
	for k, vals := range q.Filters {
		if a := r.Attr(k); k == "id" || (a != nil && a.Column) {
			where[k] = vals
		}
	}
	page, err := s.pageByID(ctx, tx, c, r, q, where)
	if err != nil {
		return nil, err
	}
	if page == nil {
		if page, err = s.listAll(ctx, tx, c, r, q, where); err != nil {
			return nil, err
		}
	}
	if len(q.Fields) > 0 {
		for i, o := range page.Items {
			page.Items[i] = SelectFields(o, q.Fields)
		}
	}
	return page, nil
}

// listAll reads every row where selects, keeps those the caller may see
// and q matches, then sorts and pages them.
func (s *Service) listAll(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, q *Query, where store.Where) (*Page, error) {
	all, err := tx.List(ctx, r, where)
	if err != nil {
		return nil, err
	}
	items, err := s.admitted(ctx, tx, c, r, q, all, 0)
	if err != nil {
		return nil, err
	}
	sortObjects(items, q.SortKeys, q.SortDirs)
	return paginate(items, q), nil
}

// pageByID reads one page of a list sorted by id alone straight from the
// store, in id order from the marker on, as far as the page needs: a
// paged list then reads about a page of rows instead of all of them. It
// returns nil when q is not such a list. The page is the one paginate
// would cut from the whole sorted list.
func (s *Service) pageByID(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, q *Query, where store.Where) (*Page, error) {
	if q.Limit == 0 || len(q.SortKeys) > 1 || len(q.SortKeys) == 1 && q.SortKeys[0] != "id" {
		return nil, nil
	}
	// Read towards the page: backwards from the marker for page_reverse.
	desc := (len(q.SortDirs) == 1 && q.SortDirs[0] == "desc") != q.PageReverse
	// As in paginate, a marker that is not in the list counts for nothing.
	after := ""
	if q.Marker != "" {
		listed, err := s.inList(ctx, tx, c, r, q, where, q.Marker)
		if err != nil {
			return nil, err
		}
		if listed {
			after = q.Marker
		}
	}
	var items []resource.Object
	// The first read is a page's worth; later ones, for callers who see
	// few of the rows, grow.
	for chunk := q.Limit; len(items) < q.Limit; chunk = min(2*chunk, 1000) {
		rows, err := tx.ListByID(ctx, r, where, after, desc, chunk)
		if err != nil {
			return nil, err
		}
		admitted, err := s.admitted(ctx, tx, c, r, q, rows, q.Limit-len(items))
		if err != nil {
			return nil, err
		}
		items = append(items, admitted...)
		if len(rows) < chunk {
			break
		}
		after, _ = rows[len(rows)-1]["id"].(string)
	}
	if q.PageReverse {
		slices.Reverse(items)
	}
	page := &Page{Items: items}
	setLinks(page, q)
	return page, nil
}

// inList reports whether the object id is in the list q asks for.
func (s *Service) inList(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, q *Query, where store.Where, id string) (bool, error) {
	if ids, ok := where["id"]; ok && !slices.ContainsFunc(ids, func(v any) bool { return fmt.Sprint(v) == id }) {
		return false, nil
	}
	only := maps.Clone(where)
	only["id"] = []any{id}
	rows, err := tx.List(ctx, r, only)
	if err != nil {
		return false, err
	}
	admitted, err := s.admitted(ctx, tx, c, r, q, rows, 0)
	return len(admitted) > 0, err
}

// admitted returns the rows the caller may see and q's filters match,
// shown (Show hook, hidden attributes) as the caller sees them; at most
// limit of them unless limit is 0.
func (s *Service) admitted(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, q *Query, rows []resource.Object, limit int) ([]resource.Object, error) {
	lh, err := s.listHooks(ctx, tx, c, r, rows)
	if err != nil {
		return nil, err
	}
	var items []resource.Object
	for _, o := range rows {
		if limit > 0 && len(items) == limit {
			break
		}
		ok, err := visibleWith(ctx, tx, c, r, lh.Facts, o)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		// Filters see hidden attributes (a subnet's shared), so they
		// run between the Show hook and hiding.
		if lh.Show != nil {
			if err := lh.Show(ctx, tx, c, o); err != nil {
				return nil, err
			}
		}
		if matches(r, c, o, q) {
			hide(c, r, o)
			items = append(items, o)
		}
	}
	return items, nil
}

// ListHooks are the Facts and Show hooks of one list, prepared by a
// PrepareList hook for all the rows the list read. A nil field leaves the
// resource's own hook in place.
type ListHooks struct {
	Facts FactsFunc
	Show  func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error
}

// listHooks combines, once per list, the hooks of r as they apply to rows:
// Facts from the first hook set that has them, every set's Show in order,
// each prepared by its set's PrepareList where there is one.
func (s *Service) listHooks(ctx context.Context, tx *store.Tx, c *Call, r *resource.Resource, rows []resource.Object) (ListHooks, error) {
	var out ListHooks
	var shows []func(context.Context, *store.Tx, *Call, resource.Object) error
	for _, h := range s.hooks[r.Plural] {
		facts, show := h.Facts, h.Show
		if h.PrepareList != nil {
			lh, err := h.PrepareList(ctx, tx, c, rows)
			if err != nil {
				return ListHooks{}, fmt.Errorf("prepare list of %s: %w", r.Plural, err)
			}
			if lh.Facts != nil {
				facts = lh.Facts
			}
			if lh.Show != nil {
				show = lh.Show
			}
		}
		if out.Facts == nil {
			out.Facts = facts
		}
		if show != nil {
			shows = append(shows, show)
		}
	}
	switch len(shows) {
	case 0:
	case 1:
		out.Show = shows[0]
	default:
		out.Show = func(ctx context.Context, tx *store.Tx, c *Call, obj resource.Object) error {
			for _, show := range shows {
				if err := show(ctx, tx, c, obj); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return out, nil
}

// DistinctValues returns the distinct string values of attr among the
// rows keep accepts (all rows when keep is nil), in order of appearance:
// the ids a PrepareList hook reads related rows by.
func DistinctValues(rows []resource.Object, attr string, keep func(resource.Object) bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range rows {
		if v, _ := o[attr].(string); !seen[v] && (keep == nil || keep(o)) {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// SelectFields keeps only the named attributes of o.
func SelectFields(o resource.Object, fields []string) resource.Object {
	out := resource.Object{}
	for _, f := range fields {
		if v, ok := o[f]; ok {
			out[f] = v
		}
	}
	return out
}

func matches(r *resource.Resource, c *Call, o resource.Object, q *Query) bool {
	for k, want := range q.Filters {
		a := r.Attr(k)
		if a != nil && a.AdminVisible && !c.IsAdmin() {
			return false
		}
		if !matchValue(o[k], want) {
			return false
		}
	}
	if len(q.Tags)+len(q.TagsAny)+len(q.NotTags)+len(q.NotTagsAny) > 0 {
		tags := map[string]bool{}
		if l, ok := o["tags"].([]any); ok {
			for _, t := range l {
				tags[fmt.Sprint(t)] = true
			}
		}
		all := func(ts []string) bool {
			for _, t := range ts {
				if !tags[t] {
					return false
				}
			}
			return true
		}
		anyOf := func(ts []string) bool {
			for _, t := range ts {
				if tags[t] {
					return true
				}
			}
			return false
		}
		if len(q.Tags) > 0 && !all(q.Tags) ||
			len(q.TagsAny) > 0 && !anyOf(q.TagsAny) ||
			len(q.NotTags) > 0 && all(q.NotTags) ||
			len(q.NotTagsAny) > 0 && anyOf(q.NotTagsAny) {
			return false
		}
	}
	return true
}

// matchValue reports whether an attribute value matches any wanted value.
// Lists match when they contain the value; lists of dicts (fixed_ips) match
// "key=value" filters against any element.
func matchValue(have any, want []any) bool {
	for _, w := range want {
		if matchOne(have, w) {
			return true
		}
	}
	return false
}

func matchOne(have, w any) bool {
	if list, ok := have.([]any); ok {
		ws := fmt.Sprint(w)
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				if k, v, found := strings.Cut(ws, "="); found && fmt.Sprint(m[k]) == v {
					return true
				}
				continue
			}
			if fmt.Sprint(e) == ws {
				return true
			}
		}
		return false
	}
	if have == nil || w == nil {
		return have == nil && w == nil
	}
	return fmt.Sprint(have) == fmt.Sprint(w)
}

func sortObjects(items []resource.Object, keys, dirs []string) {
	if len(keys) == 0 {
		keys = []string{"id"}
	}
	slices.SortStableFunc(items, func(a, b resource.Object) int {
		for i, k := range keys {
			c := compareValues(a[k], b[k])
			if i < len(dirs) && dirs[i] == "desc" {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(fmt.Sprint(a["id"]), fmt.Sprint(b["id"]))
	})
}

func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// paginate cuts one page out of sorted items, Neutron style: the page
// starts after the marker (or ends before it with page_reverse). As in
// Neutron, a page links onwards whenever it is full, even when it holds the
// last item (the page after it is then empty), and always links back the
// other way.
func paginate(items []resource.Object, q *Query) *Page {
	start, end := 0, len(items)
	if q.Marker != "" {
		idx := slices.IndexFunc(items, func(o resource.Object) bool { return o["id"] == q.Marker })
		if q.PageReverse {
			if idx >= 0 {
				end = idx
			}
		} else if idx >= 0 {
			start = idx + 1
		}
	}
	if q.Limit > 0 && end-start > q.Limit {
		if q.PageReverse {
			start = end - q.Limit
		} else {
			end = start + q.Limit
		}
	}
	page := &Page{Items: items[start:end]}
	setLinks(page, q)
	return page
}

// setLinks says which way a page links on, from how full it is.
func setLinks(page *Page, q *Query) {
	if q.Limit > 0 {
		full := len(page.Items) >= q.Limit
		page.Next = full || q.PageReverse
		page.Previous = full || !q.PageReverse
	}
}
