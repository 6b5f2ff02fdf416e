// Package agentrpc owns the server side of the agents' bus: the RPC
// methods every server replica serves in one queue group (report_state,
// sync, port_status), and the notifications that tell each host's agent
// what changed. Changes are recorded in the outbox in their own
// transaction (hooks on ports, networks and subnets; the scheduler and
// agent reports add theirs); a drainer on any replica numbers them per
// host and publishes them on the host's subject. See docs/architecture.md
// ("Agents and notifications").
package agentrpc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Options configure the agent RPC server.
type Options struct {
	// DrainInterval is how often the outbox is drained even when nothing
	// was committed here (entries of a replica that died; default 1 s).
	DrainInterval time.Duration
	// Now is the clock of state reports (time.Now if nil); tests move it.
	Now func() time.Time
	Log *slog.Logger
}

// claimBatch bounds the outbox entries claimed in one transaction.
const claimBatch = 500

// Server serves agents over the bus.
type Server struct {
	svc                          *service.Service
	conn                         *bus.Conn
	opts                         Options
	log                          *slog.Logger
	nets, subnets, ports, agents *resource.Resource
	groups, rules                *resource.Resource
	kick                         chan struct{}
	unsub                        []func()
}

// Register installs the outbox hooks and listeners and serves the RPC
// methods on conn. Run drains the outbox; Close stops serving.
func Register(svc *service.Service, conn *bus.Conn, opts Options) (*Server, error) {
	if opts.DrainInterval <= 0 {
		opts.DrainInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	reg := svc.Registry()
	s := &Server{
		svc: svc, conn: conn, opts: opts, log: opts.Log,
		nets: reg.ByPlural("networks"), subnets: reg.ByPlural("subnets"),
		ports: reg.ByPlural("ports"), agents: reg.ByPlural("agents"),
		groups: reg.ByPlural("security-groups"), rules: reg.ByPlural("security-group-rules"),
		kick: make(chan struct{}, 1),
	}
	svc.SetHooks("ports", &service.Hooks{
		PostCreate: s.portCreated, PostUpdate: s.portUpdated, PostDelete: s.portDeleted,
	})
	svc.SetHooks("networks", &service.Hooks{PostUpdate: s.networkUpdated, PreDelete: s.networkDeleting})
	svc.SetHooks("subnets", &service.Hooks{PostCreate: s.subnetChanged, PostUpdate: s.subnetUpdated, PostDelete: s.subnetChanged})
	svc.SetHooks("security-group-rules", &service.Hooks{PostCreate: s.ruleChanged, PostDelete: s.ruleChanged})
	svc.SetHooks("security-groups", &service.Hooks{PreDelete: s.groupDeleting})
	s.registerL3()
	svc.OnChange(s.onChange)
	for method, fn := range map[string]func(context.Context, json.RawMessage) (any, error){
		msg.MethodReportState:      s.reportState,
		msg.MethodSync:             s.sync,
		msg.MethodPortStatus:       s.portStatus,
		msg.MethodFloatingIPStatus: s.floatingIPStatus,
	} {
		unsub, err := conn.Handle(method, fn)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("agentrpc: %w", err)
		}
		s.unsub = append(s.unsub, unsub)
	}
	// The subscriptions must reach NATS before anyone is told the server
	// is up, or an agent's first call finds no responder.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Flush(fctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("agentrpc: %w", err)
	}
	return s, nil
}

// Close stops serving RPC methods.
func (s *Server) Close() {
	for _, u := range s.unsub {
		u()
	}
	s.unsub = nil
}

// wake makes the drainer run soon.
func (s *Server) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// record passes on the error of writing outbox entries in tx, and when
// there is none wakes the drainer once tx has committed.
func (s *Server) record(tx *store.Tx, err error) error {
	if err == nil {
		tx.AfterCommit(s.wake)
	}
	return err
}

func (s *Server) portCreated(ctx context.Context, tx *store.Tx, _ *service.Call, p resource.Object) error {
	if err := s.portGroupsChanged(ctx, tx, nil, p); err != nil {
		return err
	}
	return s.record(tx, outbox.PortChanged(ctx, tx, str(p["network_id"]), str(p["id"]), str(p["binding:host_id"])))
}

func (s *Server) portUpdated(ctx context.Context, tx *store.Tx, _ *service.Call, old, p resource.Object) error {
	if err := s.portGroupsChanged(ctx, tx, old, p); err != nil {
		return err
	}
	return s.record(tx, outbox.PortChanged(ctx, tx, str(p["network_id"]), str(p["id"]), str(old["binding:host_id"]), str(p["binding:host_id"])))
}

func (s *Server) portDeleted(ctx context.Context, tx *store.Tx, _ *service.Call, p resource.Object) error {
	if err := s.portGroupsChanged(ctx, tx, p, nil); err != nil {
		return err
	}
	return s.record(tx, outbox.PortChanged(ctx, tx, str(p["network_id"]), str(p["id"]), str(p["binding:host_id"])))
}

// portGroupsChanged records what a port's change (old or p nil: created
// or deleted) means for security groups: the hosts whose rules name its
// groups as remote group hear of new member addresses, and its hosts
// refresh the groups it uses or used there.
func (s *Server) portGroupsChanged(ctx context.Context, tx *store.Tx, old, p resource.Object) error {
	var before, after msg.Port
	if old != nil {
		before = portMsg(old)
	}
	if p != nil {
		after = portMsg(p)
	}
	groups := uniq(append(slices.Clone(before.SecurityGroups), after.SecurityGroups...))
	if len(groups) == 0 {
		return nil
	}
	membership := !slices.Equal(before.SecurityGroups, after.SecurityGroups) ||
		!slices.Equal(before.FixedIPs, after.FixedIPs) || !slices.Equal(before.AllowedAddressPairs, after.AllowedAddressPairs)
	if membership {
		if err := outbox.MembersChanged(ctx, tx, groups...); err != nil {
			return err
		}
	}
	placement := membership || before.Host != after.Host || before.VIFType != after.VIFType ||
		before.PortSecurityEnabled != after.PortSecurityEnabled
	if placement {
		if err := outbox.PortGroupsChanged(ctx, tx, groups, before.Host, after.Host); err != nil {
			return err
		}
	}
	return s.record(tx, nil)
}

// ruleChanged tells the hosts using a rule's group of its new rules, and
// of the members of the rule's remote group they now need or may drop.
func (s *Server) ruleChanged(ctx context.Context, tx *store.Tx, _ *service.Call, r resource.Object) error {
	var remotes []string
	if id := str(r["remote_group_id"]); id != "" {
		remotes = append(remotes, id)
	}
	return s.record(tx, outbox.SecurityGroupChanged(ctx, tx, str(r["security_group_id"]), remotes...))
}

// groupDeleting runs while the rules of other groups that name the group
// as remote group still exist (they go with it): their hosts hear of it.
// The group itself is used by no port, so no host holds it.
func (s *Server) groupDeleting(ctx context.Context, tx *store.Tx, _ *service.Call, g resource.Object) error {
	id := str(g["id"])
	others, err := queryStrings(ctx, tx, `SELECT DISTINCT security_group_id FROM security_group_rules WHERE remote_group_id = ? AND security_group_id <> ?`, id, id)
	if err != nil {
		return err
	}
	for _, other := range others {
		if err := outbox.SecurityGroupChanged(ctx, tx, other, id); err != nil {
			return err
		}
	}
	return s.record(tx, nil)
}

func (s *Server) networkUpdated(ctx context.Context, tx *store.Tx, _ *service.Call, _, n resource.Object) error {
	return s.record(tx, outbox.NetworkChanged(ctx, tx, str(n["id"])))
}

// networkDeleting runs while the network's DHCP agents are still known.
func (s *Server) networkDeleting(ctx context.Context, tx *store.Tx, _ *service.Call, n resource.Object) error {
	return s.record(tx, outbox.NetworkChanged(ctx, tx, str(n["id"])))
}

// subnetChanged (created or deleted) tells the hosts of the subnet's
// network, and the hosts whose rules name a group with a member on that
// network as remote group: the members come with their networks' CIDRs.
func (s *Server) subnetChanged(ctx context.Context, tx *store.Tx, _ *service.Call, sub resource.Object) error {
	netID := str(sub["network_id"])
	if err := outbox.NetworkMembersChanged(ctx, tx, netID); err != nil {
		return err
	}
	return s.record(tx, outbox.NetworkChanged(ctx, tx, netID))
}

// subnetUpdated tells the hosts of the network, and the remote groups'
// hosts too should the CIDR change (the API keeps it fixed).
func (s *Server) subnetUpdated(ctx context.Context, tx *store.Tx, c *service.Call, old, sub resource.Object) error {
	if str(old["cidr"]) != str(sub["cidr"]) {
		return s.subnetChanged(ctx, tx, c, sub)
	}
	return s.record(tx, outbox.NetworkChanged(ctx, tx, str(sub["network_id"])))
}

// onChange tells the other l2 hosts when an Open vSwitch agent appears,
// changes or goes (its tunnel endpoint), and wakes the drainer after every
// change: some write outbox entries without hooks (the scheduler's moves).
func (s *Server) onChange(ctx context.Context, ev service.Event) {
	defer s.wake()
	if ev.Resource != "agents" || ev.Object["agent_type"] != msg.AgentTypeOVS {
		return
	}
	host := str(ev.Object["host"])
	err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		return outbox.EndpointsChanged(ctx, tx, host)
	})
	if err != nil {
		s.log.Warn("announcing a tunnel endpoint failed", "host", host, "err", err)
	}
}

// Run drains the outbox whenever a change committed here and every drain
// interval, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.DrainInterval)
	defer t.Stop()
	for {
		if _, err := s.Drain(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("publishing agent notifications failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// Drain claims and publishes outbox entries until none are left; it
// returns how many notifications it published.
func (s *Server) Drain(ctx context.Context) (int, error) {
	sent := 0
	for {
		var batches []outbox.Batch
		err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
			var err error
			batches, err = outbox.Claim(ctx, tx, claimBatch)
			return err
		})
		if err != nil {
			return sent, fmt.Errorf("agentrpc: claim notifications: %w", err)
		}
		if len(batches) == 0 {
			return sent, nil
		}
		// The entries are ours and numbered: every number must be
		// published, with a resync request if its content cannot be read.
		notes := make([]*msg.Notification, len(batches))
		err = s.svc.DB().View(ctx, func(tx *store.Tx) error {
			v, err := s.newView(ctx, tx)
			if err != nil {
				return err
			}
			for i, b := range batches {
				if notes[i], err = v.notification(ctx, b); err != nil {
					return fmt.Errorf("notification %d for %s: %w", b.Seq, b.Host, err)
				}
			}
			return nil
		})
		if err != nil {
			s.log.Warn("building notifications failed; asking the hosts to resync", "err", err)
		}
		for i, b := range batches {
			n := notes[i]
			if n == nil {
				n = &msg.Notification{Version: msg.Version, Host: b.Host, Epoch: b.Epoch, Seq: b.Seq, Resync: true}
			}
			if err := s.conn.Publish(msg.HostSubject(b.Host), n); err != nil {
				// The agent sees the gap and resyncs.
				s.log.Warn("publishing a notification failed", "host", b.Host, "seq", b.Seq, "err", err)
				continue
			}
			sent++
		}
	}
}

// HostState returns the full desired state of a host for the given roles
// (all when empty), with the sequence number it includes.
func (s *Server) HostState(ctx context.Context, host string, roles []string) (*msg.HostState, error) {
	var epoch string
	err := s.svc.DB().View(ctx, func(tx *store.Tx) error {
		var err error
		epoch, _, err = outbox.Current(ctx, tx, host)
		return err
	})
	if err != nil {
		return nil, err
	}
	if epoch == "" {
		if err := s.svc.DB().Tx(ctx, func(tx *store.Tx) error { return outbox.Ensure(ctx, tx, host) }); err != nil {
			return nil, err
		}
	}
	var st *msg.HostState
	err = s.svc.DB().View(ctx, func(tx *store.Tx) error {
		// The number first, then the state: the state includes every
		// change numbered so far (and maybe later ones, which agents
		// apply again harmlessly).
		epoch, seq, err := outbox.Current(ctx, tx, host)
		if err != nil {
			return err
		}
		v, err := s.newView(ctx, tx)
		if err != nil {
			return err
		}
		if st, err = v.hostState(ctx, host, roles); err != nil {
			return err
		}
		st.Epoch, st.Seq = epoch, seq
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agentrpc: state of %s: %w", host, err)
	}
	return st, nil
}

func (s *Server) sync(ctx context.Context, raw json.RawMessage) (any, error) {
	req, err := bus.Decode[msg.SyncRequest](raw)
	if err != nil {
		return nil, err
	}
	if err := msg.CheckVersion(req.Version); err != nil {
		return nil, err
	}
	if req.Host == "" {
		return nil, errors.New("sync: host is required")
	}
	return s.HostState(ctx, req.Host, req.Roles)
}

func (s *Server) reportState(ctx context.Context, raw json.RawMessage) (any, error) {
	rep, err := bus.Decode[msg.ReportState](raw)
	if err != nil {
		return nil, err
	}
	if err := msg.CheckVersion(rep.Version); err != nil {
		return nil, err
	}
	err = agentapi.ReportState(ctx, s.svc, agentapi.Report{
		AgentType: rep.AgentType, Binary: rep.Binary, Topic: rep.Topic, Host: rep.Host,
		AvailabilityZone: rep.AvailabilityZone, Configurations: rep.Configurations,
		Started: rep.Started, Time: s.opts.Now(),
	})
	if err != nil {
		return nil, err
	}
	return msg.ReportStateReply{Version: msg.Version}, nil
}

// portStatus sets the status of ports an agent wired (ACTIVE) or unwired
// (DOWN), for ports bound to the reporting host only, through the engine
// (revision bump, listeners).
func (s *Server) portStatus(ctx context.Context, raw json.RawMessage) (any, error) {
	req, err := bus.Decode[msg.PortStatus](raw)
	if err != nil {
		return nil, err
	}
	if err := msg.CheckVersion(req.Version); err != nil {
		return nil, err
	}
	reply := msg.PortStatusReply{Version: msg.Version}
	err = s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		reply.Unknown = reply.Unknown[:0]
		set := func(ids []string, status string) error {
			for _, id := range uniq(ids) {
				p, err := tx.Get(ctx, s.ports, id)
				if isNotFound(err) || (err == nil && p["binding:host_id"] != req.Host) {
					reply.Unknown = append(reply.Unknown, id)
					continue
				}
				if err != nil {
					return err
				}
				if p["status"] == status {
					continue
				}
				p["status"] = status
				if _, err := s.svc.UpdateInTx(ctx, tx, s.ports, p); err != nil {
					return err
				}
			}
			return nil
		}
		if err := set(req.Up, msg.StatusActive); err != nil {
			return err
		}
		return set(slices.DeleteFunc(slices.Clone(req.Down), func(id string) bool { return slices.Contains(req.Up, id) }), msg.StatusDown)
	})
	if err != nil {
		return nil, fmt.Errorf("port status from %s: %w", req.Host, err)
	}
	return reply, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func queryStrings(ctx context.Context, tx *store.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("agentrpc: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("agentrpc: %w", err)
		}
		out = append(out, v.String)
	}
	return out, rows.Err()
}
