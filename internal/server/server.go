// Package server assembles a neutrino API server from its parts: the store,
// the resource engine with every resource's semantics, authentication and
// the HTTP API, and runs it with health endpoints and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/segment"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Server is an assembled, not yet serving, API server.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	DB      *store.DB
	Service *service.Service
	API     *api.Server
	metrics *prometheus.Registry
	// background loops run while serving (DHCP scheduling, notifications).
	background []func(context.Context)
	bus        *busSide
	// readyChecks are further conditions of /readyz by name, such as the
	// all-in-one's in-process agent.
	readyMu     sync.Mutex
	readyChecks map[string]func() error
}

// SetReadyCheck makes /readyz also require check to return nil, reported
// under name; a later call with the same name replaces it.
func (s *Server) SetReadyCheck(name string, check func() error) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if s.readyChecks == nil {
		s.readyChecks = map[string]func() error{}
	}
	s.readyChecks[name] = check
}

// notReady returns why a registered ready check fails, or nil.
func (s *Server) notReady() error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	names := slices.Sorted(maps.Keys(s.readyChecks))
	for _, name := range names {
		if err := s.readyChecks[name](); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// New opens and migrates the store and builds the API.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL(), log)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	reg, err := resource.NewRegistry(resource.All()...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: resources: %w", err)
	}
	quotas := service.DefaultQuotas()
	for k, v := range cfg.Quotas {
		quotas[k] = v
	}
	svc := service.New(db, reg, service.Config{DefaultProject: cfg.NoAuthProject, DefaultQuotas: quotas}, log)
	segCfg, err := cfg.Segments()
	if err != nil {
		db.Close()
		return nil, err
	}
	authn, err := authenticator(cfg, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := db.RegisterMetrics(metrics); err != nil {
		db.Close()
		return nil, err
	}
	a := api.New(svc, authn, log, metrics)
	bg, err := registerPlugins(svc, a, cfg, segment.New(segCfg), log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, DB: db, Service: svc, API: a, metrics: metrics, background: bg}
	if err := s.connectBus(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Metrics is the registry /metrics serves; the all-in-one's agent adds
// its series to it.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics }

func authenticator(cfg config.Config, log *slog.Logger) (auth.Authenticator, error) {
	if cfg.Auth == "keystone" {
		k := cfg.Keystone
		return auth.NewKeystone(auth.KeystoneConfig{
			URL: k.URL, CacheTTL: k.CacheTTL, Username: k.Username, Password: k.Password,
			ProjectName: k.ProjectName, UserDomainName: k.UserDomainName, ProjectDomainName: k.ProjectDomainName,
		}, log)
	}
	return auth.NewNoAuth(), nil
}

// Handler is the full HTTP handler: the API plus /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.DB.View(ctx, func(*store.Tx) error { return nil }); err != nil {
			http.Error(w, "store unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := s.notReady(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	mux.Handle("/", s.API)
	return mux
}

// Serve listens on the configured address until ctx ends, then lets
// in-flight requests finish (bounded by ShutdownTimeout) and closes the store.
// ready, if not nil, receives the bound address once listening.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Listen, err)
	}
	return s.ServeListener(ctx, ln, ready)
}

// ServeListener is Serve on an existing listener.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener, ready func(addr string)) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("neutrino API listening", "addr", ln.Addr().String(), "database", s.DB.Backend(), "auth", s.cfg.Auth)
	if ready != nil {
		ready(ln.Addr().String())
	}
	stopBackground := s.runBackground()
	select {
	case err := <-errc:
		stopBackground()
		s.closeBus()
		s.DB.Close()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	stopBackground()
	s.closeBus()
	return errors.Join(err, s.DB.Close())
}
