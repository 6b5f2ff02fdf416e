package agentrpc_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// rig is a real server with an agent's connection to its embedded NATS.
type rig struct {
	t     *testing.T
	srv   *apitest.Server
	admin *apitest.Client
	conn  *bus.Conn
}

func newRig(t *testing.T, opts ...apitest.Option) *rig {
	t.Helper()
	srv := apitest.Start(t, opts...)
	conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "test-agent", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return &rig{t: t, srv: srv, admin: srv.Client(t, "admin"), conn: conn}
}

// fastChecks makes the DHCP scheduler check every 50 ms and lets it move
// networks from dead agents 100 ms after start.
func fastChecks(c *config.Config) {
	c.Agent.ReportInterval = 50 * time.Millisecond
	c.AgentDownTime = 100 * time.Millisecond
}

func (r *rig) call(method string, in, out any) error {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.conn.Call(ctx, method, in, out)
}

func (r *rig) mustCall(method string, in, out any) {
	r.t.Helper()
	if err := r.call(method, in, out); err != nil {
		r.t.Fatalf("%s: %v", method, err)
	}
}

// far is a heartbeat time that keeps an agent alive (or dead) whatever
// agent_down_time the test uses.
var (
	aliveForever = time.Hour
	deadLongAgo  = -time.Hour
)

// reportL2 reports an Open vSwitch agent through the RPC method.
func (r *rig) reportL2(host string, conf msg.L2Configurations) {
	r.t.Helper()
	r.mustCall(msg.MethodReportState, msg.ReportState{
		Version: msg.Version, AgentType: msg.AgentTypeOVS, Binary: msg.BinaryOVS, Topic: msg.TopicL2,
		Host: host, Started: true, Configurations: conf.Map(),
	}, nil)
}

func vxlanAgent(ip string) msg.L2Configurations {
	return msg.L2Configurations{TunnelTypes: []string{"vxlan"}, TunnelingIP: ip, DatapathType: "netdev",
		IntegrationBridge: "br-int", BridgeMappings: map[string]string{"physnet1": "br-physnet1"}, L2Population: true}
}

func (r *rig) network(attrs map[string]any) string {
	r.t.Helper()
	if attrs == nil {
		attrs = map[string]any{}
	}
	if attrs["name"] == nil {
		attrs["name"] = "net"
	}
	return apitest.S(r.admin.Create("networks", "network", attrs)["id"])
}

func (r *rig) subnet(netID, cidr string, extra map[string]any) map[string]any {
	r.t.Helper()
	attrs := map[string]any{"network_id": netID, "cidr": cidr, "ip_version": 4}
	for k, v := range extra {
		attrs[k] = v
	}
	return r.admin.Create("subnets", "subnet", attrs)
}

func (r *rig) port(netID string, attrs map[string]any) map[string]any {
	r.t.Helper()
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["network_id"] = netID
	return r.admin.Create("ports", "port", attrs)
}

func (r *rig) getPort(id string) map[string]any {
	r.t.Helper()
	return r.admin.Do("GET", "/v2.0/ports/"+id, nil).Item("port")
}

func (r *rig) updatePort(id string, attrs map[string]any) map[string]any {
	r.t.Helper()
	b := r.admin.Must(http.StatusOK, "PUT", "/v2.0/ports/"+id, map[string]any{"port": attrs})
	return b["port"].(map[string]any)
}

// inbox collects the notifications of one host.
type inbox struct {
	mu    sync.Mutex
	notes []msg.Notification
}

func (r *rig) listen(host string) *inbox {
	r.t.Helper()
	in := &inbox{}
	unsub, err := r.conn.Subscribe(msg.HostSubject(host), func(_ string, data []byte) {
		n, err := bus.Decode[msg.Notification](data)
		if err != nil {
			r.t.Errorf("undecodable notification: %v", err)
			return
		}
		in.mu.Lock()
		in.notes = append(in.notes, n)
		in.mu.Unlock()
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(unsub)
	if err := r.conn.Flush(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return in
}

func (in *inbox) all() []msg.Notification {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]msg.Notification(nil), in.notes...)
}

// waitFor waits until some notification satisfies cond and returns it.
func (in *inbox) waitFor(t *testing.T, what string, cond func(msg.Notification) bool) msg.Notification {
	t.Helper()
	var found msg.Notification
	testenv.Eventually(t, 10*time.Second, what, func() bool {
		for _, n := range in.all() {
			if cond(n) {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

func hasPort(ports []msg.Port, id string) (msg.Port, bool) {
	for _, p := range ports {
		if p.ID == id {
			return p, true
		}
	}
	return msg.Port{}, false
}
