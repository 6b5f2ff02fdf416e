package l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// Switch is a node's Open vSwitch as the role drives it: OVSDB through
// package ovs's client (reconnected whenever the connection drops, with
// every interface event waking the reconciler) and OpenFlow bundles through
// the bridges' management sockets.
type Switch struct {
	inst ovs.Instance
	log  *slog.Logger

	mu      sync.Mutex
	client  *ovs.Client // nil while disconnected
	onChg   []func()
	bridges []string // the bridges View reads
}

// NewSwitch returns the Switch of an Open vSwitch instance. It connects
// when the role starts.
func NewSwitch(inst ovs.Instance, log *slog.Logger) *Switch {
	if log == nil {
		log = slog.Default()
	}
	return &Switch{inst: inst, log: log}
}

// Open makes the l2 role of a node's Open vSwitch instance.
func Open(cfg Config, inst ovs.Instance, log *slog.Logger) (*Role, error) {
	sw := NewSwitch(inst, log)
	return New(cfg, sw, sw, log)
}

// OnChange registers fn, called after every interface change in OVSDB and
// after every (re)connection.
func (s *Switch) OnChange(fn func()) {
	s.mu.Lock()
	s.onChg = append(s.onChg, fn)
	s.mu.Unlock()
}

func (s *Switch) changed() {
	s.mu.Lock()
	fns := slices.Clone(s.onChg)
	s.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// run keeps the OVSDB connection up and watches ovs-vswitchd through
// bridge's OpenFlow connection until ctx ends; reprogram is called when
// ovs-vswitchd restarted.
func (s *Switch) run(ctx context.Context, cfg Config, reprogram func()) {
	s.mu.Lock()
	s.bridges = cfg.bridges()
	s.mu.Unlock()
	go func() {
		// Reported when br-int is first reached (an extra whole push is
		// harmless) and whenever its flow tables start out empty again:
		// ovs-vswitchd restarted or the bridge was re-created.
		for range s.inst.OpenFlow(cfg.IntegrationBridge).WatchFlowLoss(ctx) {
			s.log.Info("l2: br-int (re)connected, its flows may be gone (ovs-vswitchd restarted?); pushing all flows")
			reprogram()
		}
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c, err := ovs.Connect(ctx, s.inst.DB, s.log)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("l2: OVSDB connection failed; retrying", "db", s.inst.DB, "err", err, "in", backoff)
			}
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		events := c.WatchInterfaces(ctx)
		s.mu.Lock()
		s.client = c
		s.mu.Unlock()
		s.changed()
		for range events {
			s.changed()
		}
		s.mu.Lock()
		s.client = nil
		s.mu.Unlock()
		c.Close()
		if ctx.Err() == nil {
			s.log.Warn("l2: OVSDB connection lost; reconnecting", "db", s.inst.DB)
		}
	}
}

func (s *Switch) current() (*ovs.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil, errors.New("not connected to OVSDB")
	}
	return s.client, nil
}

// bridges are the bridges the role reads and programs.
func (c Config) bridges() []string {
	out := []string{c.IntegrationBridge}
	if c.tunnels() {
		out = append(out, c.TunnelBridge)
	}
	for _, br := range c.BridgeMappings {
		out = append(out, br)
	}
	return out
}

// View reads the role's bridges from the client's cache.
func (s *Switch) View() (OVSView, bool) {
	c, err := s.current()
	if err != nil {
		return OVSView{}, false
	}
	s.mu.Lock()
	bridges := slices.Clone(s.bridges)
	s.mu.Unlock()
	v := OVSView{Bridges: map[string]OVSBridge{}}
	for _, name := range bridges {
		b, err := c.Bridge(name)
		if err != nil {
			continue // absent
		}
		ports, err := c.Ports(name)
		if err != nil {
			continue // deleted meanwhile
		}
		ob := OVSBridge{Name: name, ExternalIDs: b.ExternalIDs, Ports: make(map[string]OVSPort, len(ports))}
		for _, p := range ports {
			op := OVSPort{Name: p.Name}
			if len(p.Interfaces) > 0 {
				i := p.Interfaces[0]
				op.Type, op.OFPort, op.Options, op.ExternalIDs = i.Type, i.Ofport, i.Options, i.ExternalIDs
			}
			ob.Ports[p.Name] = op
		}
		v.Bridges[name] = ob
	}
	return v, true
}

// Apply makes the OVSDB changes.
func (s *Switch) Apply(ctx context.Context, ch OVSChanges) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	for _, b := range ch.Bridges {
		spec := ovs.Bridge{Name: b.Name, DatapathType: b.DatapathType, ExternalIDs: ch.SetBridgeIDs[b.Name]}
		if b.Secure {
			spec.FailMode = "secure"
		}
		if err := c.EnsureBridge(ctx, spec); err != nil {
			return err
		}
	}
	for _, p := range ch.AddPorts {
		if err := c.EnsurePort(ctx, p.Bridge, ovs.Port{Name: p.Name, Type: p.Type, Options: p.Options}); err != nil {
			return err
		}
	}
	for _, names := range ch.DelPorts {
		for _, name := range names {
			if err := c.DeletePort(ctx, name); err != nil {
				return err
			}
		}
	}
	ids := map[string]map[string]string{}
	for br, set := range ch.SetBridgeIDs {
		ids[br] = set
	}
	for br, keys := range ch.DelBridgeIDs {
		if ids[br] == nil {
			ids[br] = map[string]string{}
		}
		for _, k := range keys {
			ids[br][k] = "" // removes the key
		}
	}
	for br, m := range ids {
		if err := c.SetExternalIDs(ctx, ovs.TableBridge, br, m); err != nil {
			return err
		}
	}
	return nil
}

// Program changes bridge's flows in one bundle.
func (s *Switch) Program(ctx context.Context, bridge string, add, del []Flow, deleteRuns []uint64) error {
	mods := make([]ovs.FlowMod, 0, len(add)+len(del)+len(deleteRuns))
	for _, f := range add {
		mods = append(mods, ovs.AddFlow(toOVSFlow(f)))
	}
	for _, f := range del {
		mods = append(mods, ovs.DeleteFlowStrict(toOVSFlow(f)))
	}
	for _, run := range deleteRuns {
		mods = append(mods, ovs.DeleteCookie(run<<cookieRunShift, CookieRunMask))
	}
	return s.inst.OpenFlow(bridge).Apply(ctx, mods...)
}

// Cookies returns the distinct cookies of bridge's flows.
func (s *Switch) Cookies(ctx context.Context, bridge string) ([]uint64, error) {
	flows, err := s.inst.OpenFlow(bridge).DumpFlows(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, f := range flows {
		if !slices.Contains(out, f.Cookie) {
			out = append(out, f.Cookie)
		}
	}
	return out, nil
}

func toOVSFlow(f Flow) ovs.Flow {
	return ovs.Flow{Table: uint8(f.Table), Priority: f.Priority, Cookie: f.Cookie, Match: f.Match, Actions: f.Actions}
}

// String names the instance in logs.
func (s *Switch) String() string { return fmt.Sprintf("ovs(%s)", s.inst.DB) }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
