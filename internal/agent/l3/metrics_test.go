package l3

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// TestRoleMetrics: once two routers (three interfaces, one floating IP)
// are configured, a scrape shows them, and the role's passes are timed.
func TestRoleMetrics(t *testing.T) {
	nn := newNetNode(t)
	reg := prometheus.NewRegistry()
	must(t, nn.l3.RegisterMetrics(reg))
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()
	nn.setRouters(withFIP(routerA(), "fip-a", fipA, "10.0.0.5", "port-vm-a"), routerB())
	var m testenv.Metrics
	testenv.Eventually(t, 10*time.Second, "a timed l3 pass", func() bool {
		m = testenv.Scrape(t, web.URL)
		n, _ := m.Sum("neutrino_agent_reconcile_duration_seconds_count", map[string]string{"role": msg.RoleL3, "result": "ok"})
		return n >= 1
	})
	for name, want := range map[string]float64{"neutrino_l3_routers": 2, "neutrino_l3_router_interfaces": 3, "neutrino_l3_floating_ips": 1} {
		if got, _ := m.Sum(name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
