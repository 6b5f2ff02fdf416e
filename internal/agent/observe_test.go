package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/reconcile"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// convergingRole reconciles in the background as the built-in roles do;
// its passes fail until release is closed.
type convergingRole struct {
	loop    *reconcile.Loop
	release chan struct{}
}

func newConvergingRole() *convergingRole {
	return &convergingRole{loop: reconcile.NewLoop(), release: make(chan struct{})}
}

func (r *convergingRole) Name() string { return msg.RoleDHCP }
func (r *convergingRole) Report() msg.ReportState {
	return msg.ReportState{AgentType: msg.AgentTypeDHCP, Binary: msg.BinaryDHCP, Topic: msg.TopicDHCP}
}
func (r *convergingRole) Start(ctx context.Context, env agent.Env) error {
	go r.loop.Run(ctx, env.Log, r.pass, nil)
	return nil
}
func (r *convergingRole) Sync(context.Context, *msg.HostState) error {
	r.loop.Kick()
	return nil
}
func (r *convergingRole) Apply(context.Context, *msg.Notification) error { return nil }
func (r *convergingRole) Loop() *reconcile.Loop                          { return r.loop }
func (r *convergingRole) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(r.loop.Measure(r.Name()))
}
func (r *convergingRole) pass(context.Context) error {
	select {
	case <-r.release:
		return nil
	default:
		return errors.New("not yet")
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func metricsAddr(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestMetricsAndReadiness runs an agent with its metrics endpoint on, as
// `neutrino agent` does: /readyz is 503 until the servers answered a full
// sync and every role applied it, then 200; /metrics shows the syncs, the
// bus requests (also those no server answered) and the role's passes.
func TestMetricsAndReadiness(t *testing.T) {
	e := startEmbedded(t)
	addr := metricsAddr(t)
	role := newConvergingRole()
	runAgent(t, e, role, agent.Options{MetricsListen: addr, ReportInterval: 100 * time.Millisecond})
	base := "http://" + addr

	testenv.Eventually(t, 5*time.Second, "/healthz answering 200", func() bool {
		code, _ := httpGet(t, base+"/healthz")
		return code == http.StatusOK
	})
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "first full sync") {
		t.Errorf("/readyz with no server answering: %d %q, want 503 naming the first full sync", code, body)
	}

	serveAgents(t, e)
	testenv.Eventually(t, 10*time.Second, "/readyz waiting for the role", func() bool {
		_, body := httpGet(t, base+"/readyz")
		return strings.Contains(body, "role dhcp has not applied")
	})
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the role's passes fail: %d, want 503", code)
	}

	close(role.release)
	testenv.Eventually(t, 10*time.Second, "/readyz 200 once the role applied the sync", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == http.StatusOK
	})

	m := testenv.Scrape(t, base+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"neutrino_agent_sync_duration_seconds_count", map[string]string{"result": "ok"}},
		{"neutrino_bus_request_duration_seconds_count", map[string]string{"method": msg.MethodSync, "result": "ok"}},
		{"neutrino_bus_request_duration_seconds_count", map[string]string{"method": msg.MethodSync, "result": "no_server"}},
		{"neutrino_bus_request_duration_seconds_count", map[string]string{"method": msg.MethodReportState, "result": "ok"}},
		{"neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": msg.RoleDHCP, "result": "error"}},
		{"neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": msg.RoleDHCP, "result": "ok"}},
		{"neutrino_agent_ready", nil},
	} {
		if v, ok := m.Sum(c.name, c.labels); !ok || v < 1 {
			t.Errorf("%s%v = %v (found %v), want ≥ 1", c.name, c.labels, v, ok)
		}
	}
}

// TestMetricsListenInUse: an agent whose metrics address is taken stops
// at start and says which option to change.
func TestMetricsListenInUse(t *testing.T) {
	e := startEmbedded(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := bus.ConnectEmbedded(e, "agent", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a, err := agent.New(conn, agent.Options{
		Host: "node1", Roles: []agent.Role{&fakeRole{}}, MetricsListen: ln.Addr().String(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); err == nil || !strings.Contains(err.Error(), "agent.metrics_listen") {
		t.Fatalf("Run with the metrics address in use: %v, want an error naming agent.metrics_listen", err)
	}
}
