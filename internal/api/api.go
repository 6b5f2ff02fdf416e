// Package api owns the HTTP face of neutrino: the OpenStack Networking API
// v2.0 routes, request decoding, authentication, responses and errors in
// Neutron's format, paging links and fields selection. Every collection is
// served by the same generic handlers over the service engine; only
// quotas, extensions, tags and member actions have routes of their own.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// maxBody bounds request bodies (bulk creates included).
const maxBody = 16 << 20

// Server serves the Neutron API.
type Server struct {
	svc  *service.Service
	auth auth.Authenticator
	log  *slog.Logger
	mux  *http.ServeMux
	m    *metrics
}

// New builds the API handler. Its metrics are registered on reg, if not nil.
func New(svc *service.Service, authn auth.Authenticator, log *slog.Logger, reg prometheus.Registerer) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{svc: svc, auth: authn, log: log, mux: http.NewServeMux(), m: newMetrics(reg)}
	s.routes()
	return s
}

// Handle registers an extra authenticated route under /v2.0 (pattern like
// "GET /network-ip-availabilities"), for collections that are not plain
// resources.
func (s *Server) Handle(pattern string, fn func(w http.ResponseWriter, r *http.Request, c *service.Call) error) {
	method, path, _ := strings.Cut(pattern, " ")
	s.mux.HandleFunc(method+" /v2.0"+path, s.authed(fn))
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /v2.0", s.authed(s.v2root))
	s.mux.HandleFunc("GET /v2.0/{$}", s.authed(s.v2root))
	s.mux.HandleFunc("GET /v2.0/extensions", s.authed(s.listExtensions))
	s.mux.HandleFunc("GET /v2.0/extensions/{alias}", s.authed(s.showExtension))

	s.mux.HandleFunc("GET /v2.0/quotas", s.authed(s.listQuotas))
	s.mux.HandleFunc("GET /v2.0/quotas/{project}", s.authed(s.showQuota))
	s.mux.HandleFunc("PUT /v2.0/quotas/{project}", s.authed(s.updateQuota))
	s.mux.HandleFunc("DELETE /v2.0/quotas/{project}", s.authed(s.deleteQuota))

	s.mux.HandleFunc("GET /v2.0/{plural}", s.authed(s.withResource(s.list)))
	s.mux.HandleFunc("POST /v2.0/{plural}", s.authed(s.withResource(s.create)))
	s.mux.HandleFunc("GET /v2.0/{plural}/{id}", s.authed(s.withResource(s.show)))
	s.mux.HandleFunc("PUT /v2.0/{plural}/{id}", s.authed(s.withResource(s.update)))
	s.mux.HandleFunc("DELETE /v2.0/{plural}/{id}", s.authed(s.withResource(s.delete)))
	s.mux.HandleFunc("PUT /v2.0/{plural}/{id}/{action}", s.authed(s.withResource(s.action)))

	// One pattern for GET /v2.0/x/y/z: quotas/{p}/details and …/{id}/tags
	// would otherwise overlap.
	s.mux.HandleFunc("GET /v2.0/{plural}/{id}/{sub}", s.authed(s.getSub))
	s.mux.HandleFunc("PUT /v2.0/{plural}/{id}/tags", s.authed(s.withResource(s.replaceTags)))
	s.mux.HandleFunc("DELETE /v2.0/{plural}/{id}/tags", s.authed(s.withResource(s.deleteAllTags)))
	s.mux.HandleFunc("GET /v2.0/{plural}/{id}/tags/{tag}", s.authed(s.withResource(s.checkTag)))
	s.mux.HandleFunc("PUT /v2.0/{plural}/{id}/tags/{tag}", s.authed(s.withResource(s.addTag)))
	s.mux.HandleFunc("DELETE /v2.0/{plural}/{id}/tags/{tag}", s.authed(s.withResource(s.deleteTag)))
}

type ctxKey struct{}

// ServeHTTP adds the request id, strips Neutron's optional ".json" suffix,
// recovers from panics and logs the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := "req-" + uuid.NewString()
	w.Header().Set("X-Openstack-Request-Id", reqID)
	if p := strings.TrimSuffix(r.URL.Path, ".json"); p != r.URL.Path {
		r.URL.Path = p
		r.URL.RawPath = ""
	}
	if len(r.URL.Path) > 1 {
		r.URL.Path = strings.TrimSuffix(r.URL.Path, "/")
		if r.URL.Path == "/v2.0" {
			r.URL.Path = "/v2.0/"
		}
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	log := s.log.With("request_id", reqID)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, log))
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic serving request", "panic", p, "method", r.Method, "path", r.URL.Path)
			writeError(rec, fault.Internal())
		}
		d := time.Since(start)
		s.m.observe(r, rec.status, d)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", float64(d.Microseconds())/1000)
	}()
	s.mux.ServeHTTP(rec, r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func logger(r *http.Request, fallback *slog.Logger) *slog.Logger {
	if l, ok := r.Context().Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// authed authenticates the request and turns handler errors into Neutron
// error responses.
func (s *Server) authed(fn func(w http.ResponseWriter, r *http.Request, c *service.Call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := s.auth.Authenticate(r.Context(), r)
		if err != nil {
			s.authError(w, r, err)
			return
		}
		c := s.svc.NewCall(id)
		ctx := auth.NewContext(r.Context(), id)
		if err := fn(w, r.WithContext(ctx), c); err != nil {
			fe, ok := fault.As(err)
			if !ok {
				if errors.Is(err, context.Canceled) {
					return
				}
				logger(r, s.log).Error("request failed", "err", err, "method", r.Method, "path", r.URL.Path)
				fe = fault.Internal()
			}
			writeError(w, fe)
		}
	}
}

// authError answers a request that could not be authenticated: 401 when
// the caller's credentials are missing or invalid; 503 when the identity
// service could not decide (unreachable, failing), which is not the
// caller's fault and must not make clients drop a good token.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, err error) {
	log := logger(r, s.log)
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		log.Debug("authentication refused", "err", err)
		writeError(w, fault.Unauthorized())
	case r.Context().Err() != nil:
		// The client went away while its token was being validated.
		log.Debug("request ended during authentication", "err", err)
	default:
		log.Error("cannot authenticate request: identity service unavailable", "err", err,
			"method", r.Method, "path", r.URL.Path)
		writeError(w, fault.New(http.StatusServiceUnavailable, "HTTPServiceUnavailable",
			"The identity service is temporarily unavailable; the request could not be authenticated. Please retry later."))
	}
}

func writeError(w http.ResponseWriter, fe *fault.Error) {
	writeJSON(w, fe.Status, map[string]any{"NeutronError": map[string]any{
		"type": fe.Type, "message": fe.Message, "detail": fe.Detail,
	}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// decodeBody reads a JSON object body.
func decodeBody(r *http.Request) (map[string]any, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fault.BadRequest("Failed to read request body: %v", err)
	}
	if len(data) > maxBody {
		return nil, fault.New(http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", "Request body exceeds %d bytes", maxBody)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fault.BadRequest("Resource body required")
	}
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	var body any
	if err := d.Decode(&body); err != nil {
		return nil, fault.BadRequest("Malformed request body")
	}
	if d.More() {
		return nil, fault.BadRequest("Malformed request body")
	}
	m, ok := body.(map[string]any)
	if !ok {
		return nil, fault.BadRequest("Malformed request body: expected a JSON object")
	}
	return m, nil
}

// resourceHandler serves a route on one collection: {plural} resolved.
type resourceHandler func(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error

// withResource resolves {plural} before fn runs, so that an unknown
// collection is a 404 whatever the method or body.
func (s *Server) withResource(fn resourceHandler) func(w http.ResponseWriter, r *http.Request, c *service.Call) error {
	return func(w http.ResponseWriter, r *http.Request, c *service.Call) error {
		res := s.svc.Registry().ByPlural(r.PathValue("plural"))
		if res == nil {
			return fault.NotFound("HTTPNotFound", "The resource could not be found.")
		}
		return fn(w, r, c, res)
	}
}

// decodeWrapped reads a body that is exactly {key: {...}} and returns the
// inner object.
func decodeWrapped(r *http.Request, key string) (map[string]any, error) {
	body, err := decodeBody(r)
	if err != nil {
		return nil, err
	}
	m, ok := body[key].(map[string]any)
	if !ok || len(body) != 1 {
		return nil, fault.BadRequest("Unable to find '%s' in request body", key)
	}
	return m, nil
}

// baseURL is the scheme://host the client used, for links.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/", "rel": "self"}},
	}}})
}

func (s *Server) v2root(w http.ResponseWriter, r *http.Request, _ *service.Call) error {
	var out []any
	for _, res := range s.svc.Registry().All() {
		out = append(out, map[string]any{
			"name": res.Singular, "collection": res.Plural,
			"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/" + res.Plural, "rel": "self"}},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": out})
	return nil
}

func (s *Server) listExtensions(w http.ResponseWriter, _ *http.Request, _ *service.Call) error {
	writeJSON(w, http.StatusOK, map[string]any{"extensions": resource.Extensions()})
	return nil
}

func (s *Server) showExtension(w http.ResponseWriter, r *http.Request, _ *service.Call) error {
	for _, e := range resource.Extensions() {
		if e.Alias == r.PathValue("alias") {
			writeJSON(w, http.StatusOK, map[string]any{"extension": e})
			return nil
		}
	}
	return fault.NotFound("HTTPNotFound", "Extension with alias %s does not exist", r.PathValue("alias"))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	q, err := service.ParseQuery(res, r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.svc.List(r.Context(), c, res, q)
	if err != nil {
		return err
	}
	items := page.Items
	if items == nil {
		items = []resource.Object{}
	}
	body := map[string]any{res.Key(): items}
	if links := pageLinks(r, q, page); len(links) > 0 {
		body[res.Key()+"_links"] = links
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// pageLinks builds Neutron's next/previous links.
func pageLinks(r *http.Request, q *service.Query, page *service.Page) []any {
	if q.Limit == 0 {
		return nil
	}
	// An empty page's links carry no marker: they start over from the
	// end (previous) or the beginning (next), as Neutron's do.
	link := func(marker string, reverse bool, rel string) map[string]any {
		v := url.Values{}
		for k, vals := range r.URL.Query() {
			if k != "marker" && k != "page_reverse" {
				v[k] = vals
			}
		}
		if marker != "" {
			v.Set("marker", marker)
		}
		if reverse {
			v.Set("page_reverse", "True")
		}
		return map[string]any{"href": baseURL(r) + r.URL.Path + "?" + v.Encode(), "rel": rel}
	}
	var first, last string
	if n := len(page.Items); n > 0 {
		first, last = fmt.Sprint(page.Items[0]["id"]), fmt.Sprint(page.Items[n-1]["id"])
	}
	var out []any
	if page.Next {
		out = append(out, link(last, false, "next"))
	}
	if page.Previous {
		out = append(out, link(first, true, "previous"))
	}
	return out
}

func (s *Server) show(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	obj, err := s.svc.Show(r.Context(), c, res, r.PathValue("id"))
	if err != nil {
		return err
	}
	if fields := fieldsOf(r); len(fields) > 0 {
		obj = service.SelectFields(obj, fields)
	}
	writeJSON(w, http.StatusOK, map[string]any{res.Singular: obj})
	return nil
}

func fieldsOf(r *http.Request) []string {
	var out []string
	for _, f := range r.URL.Query()["fields"] {
		for _, p := range strings.Split(f, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	if len(body) != 1 {
		return fault.BadRequest("Unable to find '%s' in request body", res.Singular)
	}
	var items []map[string]any
	bulk := false
	switch {
	case body[res.Singular] != nil:
		m, ok := body[res.Singular].(map[string]any)
		if !ok {
			return fault.BadRequest("Malformed request body: '%s' must be an object", res.Singular)
		}
		items = []map[string]any{m}
	case body[res.Key()] != nil:
		l, ok := body[res.Key()].([]any)
		if !ok || len(l) == 0 {
			return fault.BadRequest("Resources required")
		}
		bulk = true
		for _, e := range l {
			m, ok := e.(map[string]any)
			if !ok {
				return fault.BadRequest("Malformed request body: items of '%s' must be objects", res.Key())
			}
			// Bulk items may be wrapped ({"network": {...}}) or bare.
			if inner, ok := m[res.Singular].(map[string]any); ok && len(m) == 1 {
				m = inner
			}
			items = append(items, m)
		}
	default:
		return fault.BadRequest("Unable to find '%s' in request body", res.Singular)
	}
	out, err := s.svc.Create(r.Context(), c, res, items)
	if err != nil {
		return err
	}
	if bulk {
		writeJSON(w, http.StatusCreated, map[string]any{res.Key(): out})
	} else {
		writeJSON(w, http.StatusCreated, map[string]any{res.Singular: out[0]})
	}
	return nil
}

// ifMatch parses "If-Match: revision_number=N"; service.AnyRevision when absent.
func ifMatch(r *http.Request) (int64, error) {
	h := r.Header.Get("If-Match")
	if h == "" {
		return service.AnyRevision, nil
	}
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "revision_number="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fault.BadRequest("If-Match header %q has an invalid revision number", h)
			}
			return n, nil
		}
	}
	return service.AnyRevision, nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	m, err := decodeWrapped(r, res.Singular)
	if err != nil {
		return err
	}
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	obj, err := s.svc.Update(r.Context(), c, res, r.PathValue("id"), m, rev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{res.Singular: obj})
	return nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.svc.Delete(r.Context(), c, res, r.PathValue("id"), rev); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) action(w http.ResponseWriter, r *http.Request, c *service.Call, res *resource.Resource) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	out, err := s.svc.Act(r.Context(), c, res, r.PathValue("id"), r.PathValue("action"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
