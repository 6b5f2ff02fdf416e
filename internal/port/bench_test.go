package port_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// BenchmarkPortCreate creates ports one request at a time on a /8 that
// already holds many ports. ns/op stays flat as the subnet fills, because
// allocation picks random candidates instead of scanning the subnet.
func BenchmarkPortCreate(b *testing.B) {
	for _, existing := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			srv := apitest.Start(b)
			c := srv.Client(b, "bench")
			c.Must(http.StatusOK, "PUT", "/v2.0/quotas/bench", map[string]any{"quota": map[string]any{"port": -1}})
			f := newFixture(b, c, "10.0.0.0/8", nil)
			const batch = 500
			for made := 0; made < existing; made += batch {
				ports := make([]any, 0, batch)
				for range min(batch, existing-made) {
					ports = append(ports, map[string]any{"network_id": f.netID, "device_owner": "network:bench"})
				}
				c.Must(http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"ports": ports})
			}
			body := map[string]any{"port": map[string]any{"network_id": f.netID, "device_owner": "network:bench"}}
			b.ResetTimer()
			for b.Loop() {
				c.Must(http.StatusCreated, "POST", "/v2.0/ports", body)
			}
		})
	}
}
