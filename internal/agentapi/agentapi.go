// Package agentapi owns the agents collection: the rows agents keep fresh
// with state reports (ReportState, called by the RPC layer), and the admin
// API on them — list and show with `alive` computed from the last
// heartbeat, update of admin_state_up and description, and delete. Agents
// register themselves; the API cannot create them.
package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// DefaultDownTime is Neutron's agent_down_time: an agent whose last
// heartbeat is older is shown as not alive.
const DefaultDownTime = 75 * time.Second

// timeFormat is how Neutron shows agent timestamps.
const timeFormat = "2006-01-02 15:04:05"

// Plugin carries the agents semantics.
type Plugin struct {
	downTime time.Duration
	now      func() time.Time
}

// Register installs the agents hooks. downTime is how old a heartbeat may
// be for its agent to count as alive (DefaultDownTime unless configured).
func Register(svc *service.Service, downTime time.Duration) *Plugin {
	p := &Plugin{downTime: downTime, now: time.Now}
	svc.SetHooks("agents", &service.Hooks{
		PreCreate: p.preCreate,
		Show:      p.show,
	})
	return p
}

func (p *Plugin) preCreate(context.Context, *store.Tx, *service.Call, resource.Object, map[string]bool) error {
	return fault.New(http.StatusBadRequest, "BadRequest", "Bad agents request: Agent creation using API is not supported.")
}

func (p *Plugin) show(_ context.Context, _ *store.Tx, _ *service.Call, obj resource.Object) error {
	obj["alive"] = Alive(obj, p.now(), p.downTime)
	// Agents carry no standard attributes; the store's revision is internal.
	delete(obj, "revision_number")
	return nil
}

// Alive reports whether an agent's last heartbeat is at most downTime old
// at now. Schedulers and port binding use it too.
func Alive(agent resource.Object, now time.Time, downTime time.Duration) bool {
	s, _ := agent["heartbeat_timestamp"].(string)
	hb, err := time.ParseInLocation(timeFormat, s, time.UTC)
	if err != nil {
		return false
	}
	return !hb.Before(now.Add(-downTime))
}

// Report is one state report of an agent.
type Report struct {
	AgentType string // e.g. "Open vSwitch agent", "DHCP agent", "L3 agent"
	Binary    string // e.g. "neutrino-ovs-agent"
	Topic     string
	Host      string
	// AvailabilityZone is empty for agents without one.
	AvailabilityZone string
	// Configurations are the agent's settings as it reports them (bridge
	// mappings, tunnel types, device counts…), shown as is.
	Configurations map[string]any
	// Started says the agent has just (re)started: started_at is reset.
	Started bool
	// Time is the heartbeat time; zero means now.
	Time time.Time
}

// ReportState records a state report: the agent identified by agent type
// and host is created on its first report (enabled, as Neutron's
// enable_new_agents) and its configurations and heartbeat updated on every
// later one. Listeners are told when an agent appears, comes back to life
// or changes its configurations, not on every heartbeat.
func ReportState(ctx context.Context, svc *service.Service, r Report) error {
	if r.AgentType == "" || r.Host == "" {
		return fmt.Errorf("agent state report: agent type and host are required (got %q on %q)", r.AgentType, r.Host)
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	conf, err := canonical(r.Configurations)
	if err != nil {
		return fmt.Errorf("agent state report from %s on %s: %w", r.AgentType, r.Host, err)
	}
	agents := svc.Registry().ByPlural("agents")
	// Two first reports of one agent may race to insert it; the loser finds
	// the winner's row on its next attempt.
	for attempt := 0; ; attempt++ {
		var ev *service.Event
		err := svc.DB().Tx(ctx, func(tx *store.Tx) error {
			var err error
			ev, err = upsert(ctx, tx, agents, r, conf)
			return err
		})
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("agent state report from %s on %s: %w", r.AgentType, r.Host, err)
		}
		if ev != nil {
			svc.Emit(ctx, *ev)
		}
		return nil
	}
}

func upsert(ctx context.Context, tx *store.Tx, agents *resource.Resource, r Report, conf map[string]any) (*service.Event, error) {
	now := r.Time.UTC().Format(timeFormat)
	found, err := tx.List(ctx, agents, store.Where{"agent_type": {r.AgentType}, "host": {r.Host}})
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		obj := resource.Object{
			"id": service.NewID(), "agent_type": r.AgentType, "binary": r.Binary, "topic": r.Topic,
			"host": r.Host, "admin_state_up": true, "availability_zone": zone(r.AvailabilityZone),
			"description": nil, "configurations": conf, "resources_synced": nil,
			"created_at": now, "started_at": now, "heartbeat_timestamp": now,
		}
		err := tx.Savepoint(ctx, func() error { return tx.Insert(ctx, agents, obj) })
		if err != nil {
			return nil, err
		}
		return &service.Event{Resource: agents.Plural, Action: "create", Object: obj}, nil
	}
	obj := found[0]
	// ReportState has no configured down time; revival events use
	// Neutron's default, which only decides whether listeners hear of it.
	revived := !Alive(obj, r.Time, DefaultDownTime)
	changed := !sameJSON(obj["configurations"], conf)
	obj["binary"], obj["topic"] = r.Binary, r.Topic
	obj["availability_zone"] = zone(r.AvailabilityZone)
	obj["configurations"] = conf
	obj["heartbeat_timestamp"] = now
	if r.Started {
		obj["started_at"] = now
	}
	if err := tx.Update(ctx, agents, obj); err != nil {
		return nil, err
	}
	if revived || changed {
		return &service.Event{Resource: agents.Plural, Action: "update", Object: obj}, nil
	}
	return nil, nil
}

func zone(az string) any {
	if az == "" {
		return nil
	}
	return az
}

// canonical turns reported configurations into the values stored
// documents hold (numbers as int64 or float64), so they compare equal to
// what the store returns.
func canonical(conf map[string]any) (map[string]any, error) {
	if conf == nil {
		return map[string]any{}, nil
	}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("encode configurations: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var out map[string]any
	if err := d.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode configurations: %w", err)
	}
	return resource.Normalise(out).(map[string]any), nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
