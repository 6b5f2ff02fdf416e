package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// fakeRole records what the agent hands it.
type fakeRole struct {
	mu      sync.Mutex
	syncs   []uint64 // HostState.Seq of each Sync
	applied []uint64 // Seq of each applied notification
}

func (r *fakeRole) Name() string { return msg.RoleL2 }
func (r *fakeRole) Report() msg.ReportState {
	return msg.ReportState{AgentType: msg.AgentTypeOVS, Binary: msg.BinaryOVS, Topic: msg.TopicL2}
}
func (r *fakeRole) Start(context.Context, agent.Env) error { return nil }
func (r *fakeRole) Sync(_ context.Context, st *msg.HostState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, st.Seq)
	return nil
}
func (r *fakeRole) Apply(_ context.Context, n *msg.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, n.Seq)
	return nil
}
func (r *fakeRole) seen() (syncs, applied []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.syncs), slices.Clone(r.applied)
}

// fakeServer answers sync with a settable sequence number and records
// state reports.
type fakeServer struct {
	mu      sync.Mutex
	seq     uint64
	epoch   string
	reports []msg.ReportState
}

func (s *fakeServer) set(epoch string, seq uint64) {
	s.mu.Lock()
	s.epoch, s.seq = epoch, seq
	s.mu.Unlock()
}

func startBus(t *testing.T) (*bus.Embedded, *fakeServer, *bus.Conn) {
	t.Helper()
	e := startEmbedded(t)
	fs, srv := serveAgents(t, e)
	return e, fs, srv
}

// startEmbedded starts a bus no server answers on yet.
func startEmbedded(t *testing.T) *bus.Embedded {
	t.Helper()
	e, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// serveAgents answers the agents' sync and state reports on e.
func serveAgents(t *testing.T, e *bus.Embedded) (*fakeServer, *bus.Conn) {
	t.Helper()
	srv, err := bus.ConnectEmbedded(e, "server", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	fs := &fakeServer{epoch: "e1"}
	if _, err := srv.Handle(msg.MethodSync, func(_ context.Context, raw json.RawMessage) (any, error) {
		req, err := bus.Decode[msg.SyncRequest](raw)
		if err != nil {
			return nil, err
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return msg.HostState{Version: msg.Version, Host: req.Host, Epoch: fs.epoch, Seq: fs.seq, L2: &msg.L2State{}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Handle(msg.MethodReportState, func(_ context.Context, raw json.RawMessage) (any, error) {
		rep, err := bus.Decode[msg.ReportState](raw)
		if err != nil {
			return nil, err
		}
		fs.mu.Lock()
		fs.reports = append(fs.reports, rep)
		fs.mu.Unlock()
		return msg.ReportStateReply{Version: msg.Version}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return fs, srv
}

func runAgent(t testing.TB, e *bus.Embedded, role agent.Role, opts agent.Options) *agent.Agent {
	t.Helper()
	conn, err := bus.ConnectEmbedded(e, "agent", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Roles = "node1", []agent.Role{role}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return startAgent(t, conn, opts, nil)
}

// startAgent runs an agent on conn until the test ends; then it stops
// the agent, waits for stopped (the roles' background work; may be nil)
// and closes conn.
func startAgent(t testing.TB, conn *bus.Conn, opts agent.Options, stopped func()) *agent.Agent {
	t.Helper()
	a, err := agent.New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if stopped != nil {
			stopped()
		}
		conn.Close()
	})
	return a
}

func publish(t *testing.T, c *bus.Conn, epoch string, seqs ...uint64) {
	t.Helper()
	for _, s := range seqs {
		if err := c.Publish(msg.HostSubject("node1"), msg.Notification{Version: msg.Version, Host: "node1", Epoch: epoch, Seq: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSyncThenNotificationsInOrder(t *testing.T) {
	e, fs, srv := startBus(t)
	fs.set("e1", 10)
	role := &fakeRole{}
	a := runAgent(t, e, role, agent.Options{ReportInterval: time.Hour, ResyncInterval: time.Hour, GapWait: time.Hour})
	testenv.Eventually(t, 5*time.Second, "the first sync", func() bool { s, _ := role.seen(); return len(s) == 1 })

	// 9 and 10 are in the synced state already; 12 waits for 11.
	publish(t, srv, "e1", 9, 10, 12, 11, 13, 11)
	testenv.Eventually(t, 5*time.Second, "11..13 applied", func() bool { _, ap := role.seen(); return len(ap) == 3 })
	syncs, applied := role.seen()
	if !slices.Equal(applied, []uint64{11, 12, 13}) || len(syncs) != 1 {
		t.Fatalf("applied %v after syncs %v; want 11 12 13 after one sync", applied, syncs)
	}
	// The second 11 may have arrived before the first was applied.
	if st := a.Stats(); st.Skipped < 2 || st.Applied != 3 {
		t.Errorf("stats %+v, want 3 applied and at least 2 skipped", st)
	}

	fs.mu.Lock()
	reports := slices.Clone(fs.reports)
	fs.mu.Unlock()
	if len(reports) == 0 || !reports[0].Started || reports[0].Host != "node1" || reports[0].AgentType != msg.AgentTypeOVS {
		t.Fatalf("first state report = %+v, want a started report of node1's OVS agent", reports)
	}
}

func TestGapLeadsToFullSync(t *testing.T) {
	e, fs, srv := startBus(t)
	fs.set("e1", 1)
	role := &fakeRole{}
	a := runAgent(t, e, role, agent.Options{ReportInterval: time.Hour, ResyncInterval: time.Hour, GapWait: 50 * time.Millisecond})
	testenv.Eventually(t, 5*time.Second, "the first sync", func() bool { s, _ := role.seen(); return len(s) == 1 })

	// 2 is lost; after the wait the agent syncs and gets state 5.
	fs.set("e1", 5)
	publish(t, srv, "e1", 3)
	testenv.Eventually(t, 5*time.Second, "a resync", func() bool { s, _ := role.seen(); return len(s) == 2 })
	syncs, applied := role.seen()
	if len(applied) != 0 || syncs[1] != 5 || a.Stats().Gaps != 1 {
		t.Fatalf("syncs %v applied %v stats %+v; want a resync to 5 and nothing applied", syncs, applied, a.Stats())
	}
	// The state continues from 5.
	publish(t, srv, "e1", 6)
	testenv.Eventually(t, 5*time.Second, "6 applied", func() bool { _, ap := role.seen(); return slices.Equal(ap, []uint64{6}) })
}

func TestNewEpochLeadsToFullSync(t *testing.T) {
	e, fs, srv := startBus(t)
	fs.set("e1", 7)
	role := &fakeRole{}
	runAgent(t, e, role, agent.Options{ReportInterval: time.Hour, ResyncInterval: time.Hour, GapWait: time.Hour})
	testenv.Eventually(t, 5*time.Second, "the first sync", func() bool { s, _ := role.seen(); return len(s) == 1 })
	// A new database starts counting again.
	fs.set("e2", 1)
	publish(t, srv, "e2", 2)
	testenv.Eventually(t, 5*time.Second, "a resync in the new epoch", func() bool { s, _ := role.seen(); return len(s) == 2 })
	publish(t, srv, "e2", 2)
	testenv.Eventually(t, 5*time.Second, "2 applied", func() bool { _, ap := role.seen(); return slices.Equal(ap, []uint64{2}) })
}

func TestPeriodicResyncAndReports(t *testing.T) {
	e, fs, _ := startBus(t)
	role := &fakeRole{}
	runAgent(t, e, role, agent.Options{ReportInterval: 20 * time.Millisecond, ResyncInterval: 30 * time.Millisecond})
	testenv.Eventually(t, 5*time.Second, "periodic syncs", func() bool { s, _ := role.seen(); return len(s) >= 3 })
	testenv.Eventually(t, 5*time.Second, "periodic reports", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return len(fs.reports) >= 3 && !fs.reports[len(fs.reports)-1].Started
	})
}
