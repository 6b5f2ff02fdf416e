package service_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// recorder collects change events.
type recorder struct {
	mu  sync.Mutex
	evs []service.Event
}

func (r *recorder) add(_ context.Context, ev service.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) take() []service.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

func count(evs []service.Event, resource, action string) int {
	n := 0
	for _, e := range evs {
		if e.Resource == resource && e.Action == action {
			n++
		}
	}
	return n
}

// Agents learn of changes from these events, so every change a request
// makes — including those hooks make — must be announced, and nothing that
// was rolled back.
func TestEventsCoverHookChangesAndSkipRollbacks(t *testing.T) {
	srv := apitest.Start(t)
	rec := &recorder{}
	srv.Srv.Service.OnChange(rec.add)
	c := srv.Client(t, "p1")
	ext := c.Create("networks", "network", map[string]any{"name": "ext", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"})
	c.Create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4})
	rec.take()
	c.Create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext["id"]}})
	evs := rec.take()
	if count(evs, "routers", "create") != 1 || count(evs, "ports", "create") != 1 {
		t.Fatalf("router with gateway: want a router and a gateway port created, got %+v", evs)
	}
	vlan := map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5}
	if r := c.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{vlan, vlan}}); r.Status != http.StatusConflict {
		t.Fatalf("conflicting bulk create: %d %s", r.Status, r.Raw)
	}
	if evs := rec.take(); len(evs) != 0 {
		t.Fatalf("rolled-back bulk create announced %+v", evs)
	}
}
