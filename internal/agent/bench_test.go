package agent_test

import (
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// BenchmarkPortActiveControlPlane measures the control plane's share of
// port → ACTIVE: create a port bound to a host, the notification reaches
// the agent, a role that wires instantly reports it up, the port shows
// ACTIVE. The network holds the ports created before, so l2 population
// grows with b.N.
//
//	go test -run - -bench PortActive -benchtime 200x ./internal/agent/
func BenchmarkPortActiveControlPlane(b *testing.B) {
	srv := apitest.Start(b)
	admin := srv.Client(b, "admin")
	role := &wiringRole{}
	runAgent(b, srv.Srv.NATS(), role, agent.Options{ReportInterval: time.Hour, ResyncInterval: time.Hour})
	testenv.Eventually(b, 5*time.Second, "the agent", func() bool { return role.syncCount() >= 1 })
	net := apitest.S(admin.Create("networks", "network", map[string]any{"name": "n"})["id"])
	admin.Create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/16", "ip_version": 4})

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id := apitest.S(admin.Create("ports", "port", map[string]any{"network_id": net, "binding:host_id": "node1"})["id"])
		for admin.Do("GET", "/v2.0/ports/"+id+"?fields=status", nil).Item("port")["status"] != "ACTIVE" {
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
