// Package binding owns port binding for the Open vSwitch mechanism: a
// port whose binding:host_id names a host is bound (binding:vif_type
// "ovs") when an alive Open vSwitch agent on that host reaches one of the
// network's segments — its tunnel type among the agent's tunnel_types, or
// its physical network in the agent's bridge_mappings — and is
// "binding_failed" otherwise. Failed bindings are retried on every update
// of the port and whenever an agent on the host appears, comes back or
// changes its configuration. A port whose binding changes goes DOWN until
// the agent reports it wired.
package binding

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/segment"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// VIF types.
const (
	VIFTypeOVS       = "ovs"
	VIFBindingFailed = "binding_failed"
	VIFUnbound       = "unbound"
)

// Options configure binding.
type Options struct {
	// DownTime is how old an agent's last report may be for it to count
	// as alive (agent_down_time).
	DownTime time.Duration
	// Now is the clock (time.Now if nil); tests move it.
	Now func() time.Time
	Log *slog.Logger
}

// Binder binds ports to hosts' Open vSwitch agents.
type Binder struct {
	svc    *service.Service
	opts   Options
	ports  *resource.Resource
	agents *resource.Resource
}

// New makes a binder; pass its BindPort to port.Options and call Register.
func New(svc *service.Service, opts Options) *Binder {
	if opts.DownTime <= 0 {
		opts.DownTime = agentapi.DefaultDownTime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	reg := svc.Registry()
	return &Binder{svc: svc, opts: opts, ports: reg.ByPlural("ports"), agents: reg.ByPlural("agents")}
}

// Register installs the binder's port hook (retry failed bindings on any
// update; DOWN on a new binding) and its agent listener (rebind a host's
// failed ports when its agent shows up).
func (b *Binder) Register() {
	b.svc.SetHooks("ports", &service.Hooks{PreUpdate: b.preUpdate})
	b.svc.OnChange(b.onChange)
}

// BindPort decides the binding of a port with a binding:host_id; it is
// port.Options.BindPort.
func (b *Binder) BindPort(ctx context.Context, tx *store.Tx, port resource.Object) (string, map[string]any, error) {
	host, _ := port["binding:host_id"].(string)
	netID, _ := port["network_id"].(string)
	agent, conf, err := b.l2Agent(ctx, tx, host)
	if err != nil || agent == nil {
		return VIFBindingFailed, nil, err
	}
	if !agentapi.Alive(agent, b.opts.Now(), b.opts.DownTime) {
		return VIFBindingFailed, nil, nil
	}
	if vnic, _ := port["binding:vnic_type"].(string); vnic != "" && vnic != "normal" {
		return VIFBindingFailed, nil, nil // OVS binds normal VIFs only
	}
	segs, err := segment.ForNetwork(ctx, tx, netID)
	if err != nil {
		return "", nil, err
	}
	for _, s := range segs {
		if Reaches(conf, s.NetworkType, s.PhysicalNetwork) {
			return VIFTypeOVS, Details(conf), nil
		}
	}
	return VIFBindingFailed, nil, nil
}

// Reaches tells whether an Open vSwitch agent with these configurations
// can carry a segment.
func Reaches(conf msg.L2Configurations, networkType, physnet string) bool {
	switch {
	case msg.IsTunnel(networkType):
		return conf.TunnelingIP != "" && slices.Contains(conf.TunnelTypes, networkType)
	case networkType == msg.NetworkTypeFlat || networkType == msg.NetworkTypeVLAN:
		_, ok := conf.BridgeMappings[physnet]
		return ok
	case networkType == msg.NetworkTypeLocal:
		return true
	}
	return false
}

// Details are the binding:vif_details of a port bound to an Open vSwitch
// agent, as Neutron's OVS mechanism driver gives them.
func Details(conf msg.L2Configurations) map[string]any {
	dp := conf.DatapathType
	if dp == "" {
		dp = "system"
	}
	br := conf.IntegrationBridge
	if br == "" {
		br = "br-int"
	}
	return map[string]any{
		"connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": false,
		"datapath_type": dp, "bridge_name": br,
	}
}

// l2Agent returns the Open vSwitch agent of a host and its configurations,
// or nil when the host has none.
func (b *Binder) l2Agent(ctx context.Context, tx *store.Tx, host string) (resource.Object, msg.L2Configurations, error) {
	found, err := tx.List(ctx, b.agents, store.Where{"agent_type": {msg.AgentTypeOVS}, "host": {host}})
	if err != nil || len(found) == 0 {
		return nil, msg.L2Configurations{}, err
	}
	raw, _ := found[0]["configurations"].(map[string]any)
	conf, err := msg.ParseL2Configurations(raw)
	if err != nil {
		// An agent reporting nonsense binds nothing; the API still shows it.
		b.opts.Log.Warn("unreadable Open vSwitch agent configurations", "host", host, "err", err)
		return nil, msg.L2Configurations{}, nil
	}
	return found[0], conf, nil
}

// preUpdate retries a failed binding on any update of the port, as
// Neutron does, and marks the port DOWN when its binding changed: the
// agent of the (new) host reports it ACTIVE once wired.
func (b *Binder) preUpdate(ctx context.Context, tx *store.Tx, _ *service.Call, old, obj, _ resource.Object) error {
	host, _ := obj["binding:host_id"].(string)
	if host != "" && obj["binding:vif_type"] == VIFBindingFailed {
		vt, vd, err := b.BindPort(ctx, tx, obj)
		if err != nil {
			return err
		}
		if vd == nil {
			vd = map[string]any{}
		}
		obj["binding:vif_type"], obj["binding:vif_details"] = vt, vd
	}
	if old["binding:host_id"] != obj["binding:host_id"] || old["binding:vif_type"] != obj["binding:vif_type"] {
		obj["status"] = msg.StatusDown
	}
	return nil
}

// onChange rebinds a host's failed ports when its Open vSwitch agent
// appears, comes back to life or changes its configurations (the agents
// API emits exactly those reports).
func (b *Binder) onChange(ctx context.Context, ev service.Event) {
	if ev.Resource != "agents" || ev.Action == "delete" || ev.Object["agent_type"] != msg.AgentTypeOVS {
		return
	}
	host, _ := ev.Object["host"].(string)
	if err := b.RebindFailed(ctx, host); err != nil {
		b.opts.Log.Warn("rebinding ports failed", "host", host, "err", err)
	}
}

// RebindFailed retries the binding of every port of a host whose binding
// failed, through the engine so that listeners and agents hear of it.
func (b *Binder) RebindFailed(ctx context.Context, host string) error {
	if host == "" {
		return nil
	}
	var ids []string
	err := b.svc.DB().View(ctx, func(tx *store.Tx) error {
		ports, err := tx.List(ctx, b.ports, store.Where{"binding:host_id": {host}})
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, p := range ports {
			if p["binding:vif_type"] == VIFBindingFailed {
				ids = append(ids, p["id"].(string))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("binding: ports of %s: %w", host, err)
	}
	for _, id := range ids {
		_, err := b.svc.Update(ctx, b.svc.SystemCall(), b.ports, id, map[string]any{"binding:host_id": host}, service.AnyRevision)
		if fe, ok := fault.As(err); ok && fe.Status == http.StatusNotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("binding: rebind port %s on %s: %w", id, host, err)
		}
	}
	return nil
}
