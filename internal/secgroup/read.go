package secgroup

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// The generic API serves reads in read-only transactions, so these routes
// take over GET of the security group collections to make the caller's
// default group first (Neutron does so on every list), then answer exactly
// as the generic handlers do.

// list serves GET /security-groups and /security-group-rules.
func (p *Plugin) list(r *resource.Resource) func(http.ResponseWriter, *http.Request, *service.Call) error {
	return func(w http.ResponseWriter, req *http.Request, c *service.Call) error {
		q, err := service.ParseQuery(r, req.URL.Query())
		if err != nil {
			return err
		}
		// A list filtered on a project makes that project's default group.
		project := c.Project
		if ps := q.Filters["project_id"]; len(ps) > 0 && ps[0] != nil {
			project = fmt.Sprint(ps[0])
		}
		if err := p.ensureFor(req.Context(), c, project); err != nil {
			return err
		}
		page, err := p.svc.List(req.Context(), c, r, q)
		if err != nil {
			return err
		}
		items := page.Items
		if items == nil {
			items = []resource.Object{}
		}
		// Neutron's body key has underscores where the URL has hyphens.
		key := strings.ReplaceAll(r.Plural, "-", "_")
		body := map[string]any{key: items}
		if links := pageLinks(req, q, page); len(links) > 0 {
			body[key+"_links"] = links
		}
		writeJSON(w, body)
		return nil
	}
}

// show serves GET /security-groups/{id}.
func (p *Plugin) show(w http.ResponseWriter, req *http.Request, c *service.Call) error {
	if err := p.ensureFor(req.Context(), c, c.Project); err != nil {
		return err
	}
	obj, err := p.svc.Show(req.Context(), c, p.groups, req.PathValue("id"))
	if err != nil {
		return err
	}
	var fields []string
	for _, f := range req.URL.Query()["fields"] {
		for _, part := range strings.Split(f, ",") {
			if part = strings.TrimSpace(part); part != "" {
				fields = append(fields, part)
			}
		}
	}
	if len(fields) > 0 {
		obj = service.SelectFields(obj, fields)
	}
	writeJSON(w, map[string]any{p.groups.Singular: obj})
	return nil
}

func writeJSON(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(body)
}

// pageLinks builds Neutron's next/previous links, as the generic list does.
func pageLinks(req *http.Request, q *service.Query, page *service.Page) []any {
	if q.Limit == 0 || len(page.Items) == 0 {
		return nil
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	if p := req.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	link := func(marker string, reverse bool, rel string) map[string]any {
		v := url.Values{}
		for k, vals := range req.URL.Query() {
			if k != "marker" && k != "page_reverse" {
				v[k] = vals
			}
		}
		v.Set("marker", marker)
		if reverse {
			v.Set("page_reverse", "True")
		}
		return map[string]any{"href": scheme + "://" + req.Host + req.URL.Path + "?" + v.Encode(), "rel": rel}
	}
	var out []any
	if page.Next {
		out = append(out, link(fmt.Sprint(page.Items[len(page.Items)-1]["id"]), false, "next"))
	}
	if page.Previous {
		out = append(out, link(fmt.Sprint(page.Items[0]["id"]), true, "previous"))
	}
	return out
}
