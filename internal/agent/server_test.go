package agent_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/store"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// wiringRole stands in for the l2 role: it "wires" every port of its
// desired state at once and reports the ports it gained up and the ports it
// lost down, as the real role does when OVSDB tells it of VIFs.
type wiringRole struct {
	env   agent.Env
	mu    sync.Mutex
	wired map[string]bool
	syncs int
}

func (r *wiringRole) Name() string { return msg.RoleL2 }
func (r *wiringRole) Report() msg.ReportState {
	return msg.ReportState{AgentType: msg.AgentTypeOVS, Binary: msg.BinaryOVS, Topic: msg.TopicL2,
		Configurations: msg.L2Configurations{TunnelTypes: []string{"vxlan"}, TunnelingIP: "192.0.2.1", DatapathType: "netdev", IntegrationBridge: "br-int"}.Map()}
}
func (r *wiringRole) Start(_ context.Context, env agent.Env) error {
	r.env, r.wired = env, map[string]bool{}
	return nil
}
func (r *wiringRole) Sync(ctx context.Context, st *msg.HostState) error {
	want := map[string]bool{}
	for _, p := range st.L2.Ports {
		want[p.ID] = true
	}
	r.mu.Lock()
	r.syncs++
	var up, down []string
	for id := range want {
		if !r.wired[id] {
			up = append(up, id)
		}
	}
	for id := range r.wired {
		if !want[id] {
			down = append(down, id)
		}
	}
	r.wired = want
	r.mu.Unlock()
	return r.env.Status.PortStatus(ctx, up, down)
}
func (r *wiringRole) Apply(ctx context.Context, n *msg.Notification) error {
	if n.L2 == nil {
		return nil
	}
	r.mu.Lock()
	var up []string
	for _, p := range n.L2.Ports {
		if !r.wired[p.ID] {
			r.wired[p.ID] = true
			up = append(up, p.ID)
		}
	}
	for _, id := range n.L2.DeletedPorts {
		delete(r.wired, id)
	}
	r.mu.Unlock()
	return r.env.Status.PortStatus(ctx, up, nil)
}
func (r *wiringRole) isWired(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wired[id]
}
func (r *wiringRole) syncCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncs
}

func TestAgentAgainstServer(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	role := &wiringRole{}
	a := runAgent(t, srv.Srv.NATS(), role, agent.Options{ReportInterval: time.Hour, ResyncInterval: time.Hour,
		GapWait: 50 * time.Millisecond})

	// The agent registers; its first sync finds nothing.
	testenv.Eventually(t, 5*time.Second, "the agent alive", func() bool {
		ags := admin.Do("GET", "/v2.0/agents?host=node1", nil).Items("agents")
		return len(ags) == 1 && ags[0]["alive"] == true && role.syncCount() == 1
	})
	net := apitest.S(admin.Create("networks", "network", map[string]any{"name": "n"})["id"])
	admin.Create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4})
	status := func(id string) string {
		return apitest.S(admin.Do("GET", "/v2.0/ports/"+id, nil).Item("port")["status"])
	}

	// A port bound to the host goes ACTIVE once the role wired it.
	p1 := apitest.S(admin.Create("ports", "port", map[string]any{"network_id": net, "binding:host_id": "node1"})["id"])
	testenv.Eventually(t, 5*time.Second, "port 1 ACTIVE", func() bool { return status(p1) == "ACTIVE" })

	// A replica dies after numbering node1's next notification: the agent
	// notices the gap at the one after and resyncs, so port 2 is wired.
	db := srv.Srv.DB
	ctx := t.Context()
	err := db.Tx(ctx, func(tx *store.Tx) error {
		if err := outbox.Add(ctx, tx, outbox.Entry{Host: "node1", Kind: outbox.KindNetwork, NetworkID: net}); err != nil {
			return err
		}
		_, err := outbox.Claim(ctx, tx, 100)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p2 := apitest.S(admin.Create("ports", "port", map[string]any{"network_id": net, "binding:host_id": "node1"})["id"])
	testenv.Eventually(t, 5*time.Second, "port 2 ACTIVE", func() bool { return status(p2) == "ACTIVE" })
	if st := a.Stats(); st.Gaps != 1 || st.Syncs != 2 {
		t.Fatalf("stats %+v: want one gap and a second sync", st)
	}

	// Deleted ports are unwired; nothing else resyncs.
	admin.Must(204, "DELETE", "/v2.0/ports/"+p1, nil)
	testenv.Eventually(t, 5*time.Second, "port 1 unwired", func() bool { return !role.isWired(p1) })
	if !role.isWired(p2) || a.Stats().Syncs != 2 {
		t.Fatalf("after deleting port 1: stats %+v", a.Stats())
	}
}
