package roles_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent/roles"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// runMetadataAgent runs an agent with the metadata role (it needs no Open
// vSwitch) against srv until the test ends, its series going to metrics
// as roles.Run has them; it returns its agent.metrics_listen.
func runMetadataAgent(t *testing.T, srv *apitest.Server, host string, in *roles.InProcess) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "agent-"+host, quiet)
	if err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Agent
	cfg.Host, cfg.Roles = host, []string{config.RoleMetadata}
	cfg.Metadata.Socket = filepath.Join(t.TempDir(), "metadata.sock")
	cfg.MetricsListen = fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- roles.Run(ctx, cfg, conn, quiet, in) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		conn.Close()
	})
	return cfg.MetricsListen
}

// readyAndPassed tells whether a scrape shows the agent ready and the
// metadata role's reconcile passes.
func readyAndPassed(m testenv.Metrics) bool {
	ready, _ := m.Sum("neutrino_agent_ready", nil)
	passes, _ := m.Sum("neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": config.RoleMetadata})
	return ready == 1 && passes >= 1
}

// TestStandaloneAgentServesItsMetrics: `neutrino agent` (no registry
// given) serves its series, the Go runtime's among them, on
// agent.metrics_listen.
func TestStandaloneAgentServesItsMetrics(t *testing.T) {
	srv := apitest.Start(t)
	addr := runMetadataAgent(t, srv, "standalone-node", nil)
	testenv.Eventually(t, 10*time.Second, "the agent ready on its own /metrics", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return readyAndPassed(testenv.Scrape(t, "http://"+addr+"/metrics"))
	})
	if _, ok := testenv.Scrape(t, "http://"+addr+"/metrics").Sum("go_goroutines", nil); !ok {
		t.Error("the agent's /metrics has no Go runtime series")
	}
}

// TestAllInOneAgentSeriesOnTheServersMetrics: in the all-in-one the agent
// puts its series on the server's registry, so the server's /metrics has
// them, and opens no listener of its own.
func TestAllInOneAgentSeriesOnTheServersMetrics(t *testing.T) {
	srv := apitest.Start(t)
	srv.Srv.SetReadyCheck("agent", func() error { return errors.New("starting") })
	if code := readyz(t, srv.URL); code != http.StatusServiceUnavailable {
		t.Errorf("the server's /readyz is %d before its agent runs, want 503", code)
	}
	addr := runMetadataAgent(t, srv, "allinone-node", &roles.InProcess{Metrics: srv.Srv.Metrics(), SetReadyCheck: srv.Srv.SetReadyCheck})
	testenv.Eventually(t, 10*time.Second, "the agent ready on the server's /metrics", func() bool {
		return readyAndPassed(testenv.Scrape(t, srv.URL+"/metrics"))
	})
	testenv.Eventually(t, 10*time.Second, "the server's /readyz 200 once its agent is ready", func() bool {
		return readyz(t, srv.URL) == http.StatusOK
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the all-in-one's agent listens on %s; its series belong on the server's /metrics", addr)
	}
}

// readyz returns the status code of a server's /readyz.
func readyz(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
