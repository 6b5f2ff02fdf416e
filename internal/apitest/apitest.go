// Package apitest runs a real neutrino API server for tests, on a fresh
// SQLite database or, with NEUTRINO_TEST_DB=postgres, a fresh database of a
// private PostgreSQL server (packages call Main from TestMain to share one),
// in noauth or keystone mode, and gives tests a small JSON client that
// speaks to it as a chosen project or with a Keystone token.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/server"
)

// Server is a running test server.
type Server struct {
	URL string // http://127.0.0.1:PORT
	Srv *server.Server
	hc  *http.Client
}

// Option adjusts the configuration before the server starts.
type Option func(*config.Config)

// WithDatabase runs the server on the given database URL.
func WithDatabase(url string) Option { return func(c *config.Config) { c.Database = url } }

// Start runs a server (noauth unless WithKeystone) for the duration of the
// test, on the backend NEUTRINO_TEST_DB names unless an option chose the
// database.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Metadata.Listen = "" // tests that want the metadata service give it a free port
	cfg.ShutdownTimeout = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Database == "" {
		cfg.Database = backendDatabase(t)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("apitest: start server: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		t.Fatalf("apitest: listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln, nil) }()
	// Each server has its own transport, closed before shutdown: a
	// connection a client opened but never used would otherwise hold up
	// graceful shutdown for seconds.
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("apitest: server stopped with error: %v", err)
		}
	})
	return &Server{URL: "http://" + ln.Addr().String(), Srv: srv, hc: hc}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Client calls the API as one project. In noauth mode every caller is an
// administrator; the project comes from the X-Project-Id header.
type Client struct {
	t       testing.TB
	base    string
	Project string
	// Token, if set, is sent as X-Auth-Token (keystone mode).
	Token string
	// Header holds extra headers for every request.
	Header http.Header
	hc     *http.Client
}

// Client returns a client acting in project.
func (s *Server) Client(t testing.TB, project string) *Client {
	return &Client{t: t, base: s.URL, Project: project, Header: http.Header{}, hc: s.hc}
}

// NewClient returns a client for any base URL.
func NewClient(t testing.TB, baseURL, project string) *Client {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	return &Client{t: t, base: baseURL, Project: project, Header: http.Header{}, hc: hc}
}

// Response is a decoded API response.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

// Do sends a request; body may be nil, a []byte/string of raw JSON, or any
// value to encode.
func (c *Client) Do(method, path string, body any) *Response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("apitest: encode body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("apitest: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Project != "" {
		req.Header.Set("X-Project-Id", c.Project)
	}
	if c.Token != "" {
		req.Header.Set("X-Auth-Token", c.Token)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("apitest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := &Response{Status: resp.StatusCode, Raw: raw, Header: resp.Header}
	if len(raw) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		_ = d.Decode(&r.Body)
	}
	return r
}

// Must sends a request and fails the test unless the status is want.
func (c *Client) Must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r.Body
}

// Create POSTs {singular: attrs} to /v2.0/plural and returns the created item.
func (c *Client) Create(plural, singular string, attrs map[string]any) map[string]any {
	c.t.Helper()
	b := c.Must(http.StatusCreated, "POST", "/v2.0/"+plural, map[string]any{singular: attrs})
	m, _ := b[singular].(map[string]any)
	return m
}

// ErrorType returns the NeutronError type of a response, or "".
func (r *Response) ErrorType() string {
	ne, _ := r.Body["NeutronError"].(map[string]any)
	s, _ := ne["type"].(string)
	return s
}

// Item returns body[key] as an object.
func (r *Response) Item(key string) map[string]any {
	m, _ := r.Body[key].(map[string]any)
	return m
}

// Items returns body[key] as a list of objects.
func (r *Response) Items(key string) []map[string]any {
	l, _ := r.Body[key].([]any)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// S formats a value as a string (json.Number and all).
func S(v any) string { return fmt.Sprint(v) }

// Path joins path elements under /v2.0.
func Path(parts ...string) string { return "/v2.0/" + filepath.ToSlash(strings.Join(parts, "/")) }
