// Package roles owns the making of an agent's roles from its
// configuration, and running a whole agent process: `neutrino agent` and
// the agent inside `neutrino up` both go through Run. It lives apart from
// package agent because the roles import agent.
package roles

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/dhcp"
	"github.com/neutrino-sdn/neutrino/internal/agent/l2"
	"github.com/neutrino-sdn/neutrino/internal/agent/l3"
	"github.com/neutrino-sdn/neutrino/internal/agent/metadata"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// DefaultNATSURL is where an agent finds the bus when nats.url is empty:
// the embedded NATS of a server on the same host.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// New makes the configured roles. The roles that need Open vSwitch share
// the one found in agent.l2.ovs_run_dir.
func New(cfg config.Agent, log *slog.Logger) ([]agent.Role, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var out []agent.Role
	for _, name := range cfg.Roles {
		switch name {
		case config.RoleL2:
			inst, err := ovsInstance(cfg.L2)
			if err != nil {
				return nil, err
			}
			l2cfg, err := l2.ConfigFrom(cfg.L2)
			if err != nil {
				return nil, err
			}
			r, err := l2.Open(l2cfg, inst, log)
			if err != nil {
				return nil, fmt.Errorf("agent: l2 role: %w", err)
			}
			out = append(out, r)
		case config.RoleDHCP:
			inst, err := ovsInstance(cfg.L2)
			if err != nil {
				return nil, err
			}
			r, err := dhcp.New(dhcp.ConfigFrom(cfg, inst), log)
			if err != nil {
				return nil, fmt.Errorf("agent: dhcp role: %w", err)
			}
			out = append(out, r)
		case config.RoleL3:
			inst, err := ovsInstance(cfg.L2)
			if err != nil {
				return nil, err
			}
			r, err := l3.New(l3.ConfigFrom(cfg, inst), log)
			if err != nil {
				return nil, fmt.Errorf("agent: l3 role: %w", err)
			}
			out = append(out, r)
		case config.RoleMetadata:
			r, err := metadata.New(metadata.ConfigFrom(cfg), log)
			if err != nil {
				return nil, fmt.Errorf("agent: metadata role: %w", err)
			}
			out = append(out, r)
		default:
			return nil, fmt.Errorf("agent: role %q is not built into this neutrino yet", name)
		}
	}
	return out, nil
}

// ovsInstance finds the host's Open vSwitch.
func ovsInstance(cfg config.L2Agent) (ovs.Instance, error) {
	inst, ok := ovs.DetectIn(cfg.OVSRunDir)
	if !ok {
		return inst, fmt.Errorf("agent: no Open vSwitch answers in %s (its db.sock and a running ovs-vswitchd); start openvswitch-switch or set agent.l2.ovs_run_dir", cfg.OVSRunDir)
	}
	return inst, nil
}

// InProcess is what a process that hosts the agent next to its own
// server (the all-in-one) lends it.
type InProcess struct {
	// Metrics is the registry the process serves; the agent's series go
	// there and it opens no listener of its own.
	Metrics *prometheus.Registry
	// SetReadyCheck, when set, receives the agent's readiness, so the
	// process's /readyz waits for the agent's first full sync too.
	SetReadyCheck func(name string, check func() error)
}

// Run runs an agent with the configured roles on conn until ctx ends. With
// in nil the agent is a process of its own and serves its series, with
// /healthz and /readyz, on agent.metrics_listen.
func Run(ctx context.Context, cfg config.Agent, conn *bus.Conn, log *slog.Logger, in *InProcess) error {
	host, err := cfg.HostName()
	if err != nil {
		return err
	}
	rs, err := New(cfg, log)
	if err != nil {
		return err
	}
	for _, r := range rs {
		// Roles that call the server themselves (metadata lookups).
		if b, ok := r.(interface{ UseBus(*bus.Conn) }); ok {
			b.UseBus(conn)
		}
	}
	var metrics *prometheus.Registry
	listen := ""
	if in != nil {
		metrics = in.Metrics
	} else {
		metrics = prometheus.NewRegistry()
		metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		listen = cfg.MetricsListen
	}
	a, err := agent.New(conn, agent.Options{
		Host: host, Roles: rs, ReportInterval: cfg.ReportInterval, ResyncInterval: cfg.ResyncInterval, Log: log,
		Metrics: metrics, MetricsListen: listen,
	})
	if err != nil {
		return err
	}
	if in != nil && in.SetReadyCheck != nil {
		in.SetReadyCheck("agent", a.Ready)
	}
	log.Info("neutrino agent running", "host", host, "roles", cfg.Roles)
	return a.Run(ctx)
}

// Connect dials the bus of an agent: nats.url, or DefaultNATSURL.
func Connect(natsURL string, log *slog.Logger) (*bus.Conn, error) {
	if natsURL == "" {
		natsURL = DefaultNATSURL
	}
	return bus.Connect(natsURL, "neutrino-agent", log)
}
