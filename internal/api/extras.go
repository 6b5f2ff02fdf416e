package api

import (
	"net/http"
	"slices"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// getSub serves GET /v2.0/{plural}/{id}/{sub}: quota details and defaults,
// and tags.
func (s *Server) getSub(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	plural, sub := r.PathValue("plural"), r.PathValue("sub")
	switch {
	case plural == "quotas" && sub == "details":
		return s.showQuotaDetails(w, r, c)
	case plural == "quotas" && sub == "default":
		return s.showQuotaDefault(w, r, c)
	case sub == "tags":
		return s.withResource(s.getTags)(w, r, c)
	}
	return fault.NotFound("HTTPNotFound", "The resource could not be found.")
}

func (s *Server) getTags(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	tags, err := s.svc.Tags(r.Context(), c, res, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(tags)})
	return nil
}

func nonNil(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

func (s *Server) replaceTags(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	raw, ok := body["tags"].([]any)
	if !ok || len(body) != 1 {
		return fault.BadRequest("Invalid input for tags. Reason: a body {\"tags\": [...]} is required.")
	}
	var want []string
	for _, t := range raw {
		str, ok := t.(string)
		if !ok {
			return fault.BadRequest("Invalid input for tags. Reason: '%v' is not a valid string.", t)
		}
		want = append(want, str)
	}
	tags, err := s.svc.ModifyTags(r.Context(), c, res, r.PathValue("id"), func([]string) ([]string, error) { return want, nil })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(tags)})
	return nil
}

func (s *Server) deleteAllTags(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	if _, err := s.svc.ModifyTags(r.Context(), c, res, r.PathValue("id"), func([]string) ([]string, error) { return nil, nil }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func tagNotFound(tag string) error {
	return fault.NotFound("TagNotFound", "Tag %s could not be found.", tag)
}

func (s *Server) checkTag(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	tags, err := s.svc.Tags(r.Context(), c, res, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !slices.Contains(tags, r.PathValue("tag")) {
		return tagNotFound(r.PathValue("tag"))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) addTag(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	tag := r.PathValue("tag")
	if _, err := s.svc.ModifyTags(r.Context(), c, res, r.PathValue("id"), func(t []string) ([]string, error) {
		return append(t, tag), nil
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) deleteTag(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	tag := r.PathValue("tag")
	if _, err := s.svc.ModifyTags(r.Context(), c, res, r.PathValue("id"), func(t []string) ([]string, error) {
		i := slices.Index(t, tag)
		if i < 0 {
			return nil, tagNotFound(tag)
		}
		return slices.Delete(t, i, i+1), nil
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func quotaBody(project string, limits map[string]int64) map[string]any {
	out := map[string]any{}
	for k, v := range limits {
		out[k] = v
	}
	if project != "" {
		out["project_id"], out["tenant_id"] = project, project
	}
	return out
}

func (s *Server) listQuotas(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	qs, err := s.svc.ListQuotas(r.Context(), c)
	if err != nil {
		return err
	}
	out := []any{}
	for _, q := range qs {
		out = append(out, quotaBody(q.Project, q.Limits))
	}
	writeJSON(w, http.StatusOK, map[string]any{"quotas": out})
	return nil
}

func (s *Server) showQuota(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	lim, err := s.svc.Quota(r.Context(), c, r.PathValue("project"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": quotaBody("", lim)})
	return nil
}

func (s *Server) showQuotaDefault(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	writeJSON(w, http.StatusOK, map[string]any{"quota": quotaBody("", s.svc.QuotaDefaults())})
	return nil
}

func (s *Server) showQuotaDetails(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	d, err := s.svc.QuotaDetails(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": d})
	return nil
}

func (s *Server) updateQuota(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	q, err := decodeWrapped(r, "quota")
	if err != nil {
		return err
	}
	lim, err := s.svc.SetQuota(r.Context(), c, r.PathValue("project"), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": quotaBody("", lim)})
	return nil
}

func (s *Server) deleteQuota(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	if err := s.svc.ResetQuota(r.Context(), c, r.PathValue("project")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
