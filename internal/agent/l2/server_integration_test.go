package l2

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
)

// TestIntegrationWithServer runs the real agent loop with this role on two
// nodes against a real server: ports bound through the API are wired from
// the server's desired state and l2 population, go ACTIVE, and reach each
// other over VXLAN and a provider VLAN; an unplugged VIF's port goes DOWN.
func TestIntegrationWithServer(t *testing.T) {
	b := newBed(t, 2)
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, nd := range b.nodes {
		conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "agent-"+nd.tb.Name, quiet)
		b.must(err)
		r, err := Open(nd.config(), nd.tb.OVS.Instance, quiet)
		b.must(err)
		a, err := agent.New(conn, agent.Options{Host: nd.tb.Name, Roles: []agent.Role{r}, ReportInterval: time.Second, Log: quiet})
		b.must(err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			conn.Close()
		})
		nd.mu.Lock()
		nd.role = r
		nd.mu.Unlock()
	}
	waitFor(t, func() bool {
		alive := 0
		for _, ag := range admin.Do("GET", "/v2.0/agents", nil).Items("agents") {
			if ag["alive"] == true {
				alive++
			}
		}
		return alive == 2
	}, "both agents alive")
	for _, nd := range b.nodes {
		waitFor(t, func() bool { _, err := nd.client.Bridge("br-int"); return err == nil }, nd.tb.Name+": br-int made")
	}

	status := func(id string) string {
		return apitest.S(admin.Do("GET", "/v2.0/ports/"+id, nil).Item("port")["status"])
	}
	type placed struct {
		vm *vm
		id string
	}
	place := func(netID string, nd *node, name string) placed {
		p := admin.Create("ports", "port", map[string]any{"network_id": netID, "binding:host_id": nd.tb.Name})
		id := apitest.S(p["id"])
		if p["binding:vif_type"] != "ovs" {
			t.Fatalf("port on %s bound as %v", nd.tb.Name, p["binding:vif_type"])
		}
		ip := apitest.S(p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"])
		return placed{b.addVM(nd, name, id, apitest.S(p["mac_address"]), ip+"/24"), id}
	}

	for _, c := range []struct {
		name    string
		network map[string]any
		cidr    string
	}{
		{"vx", map[string]any{"name": "tenant"}, "10.50.0.0/24"},
		{"vl", map[string]any{"name": "provider", "provider:network_type": "vlan", "provider:physical_network": physnet, "provider:segmentation_id": 1500}, "10.51.0.0/24"},
	} {
		t.Run(c.name, func(t *testing.T) {
			netID := apitest.S(admin.Create("networks", "network", c.network)["id"])
			admin.Create("subnets", "subnet", map[string]any{"network_id": netID, "cidr": c.cidr, "ip_version": 4})
			a := place(netID, b.nodes[0], c.name+"1")
			z := place(netID, b.nodes[1], c.name+"2")
			waitFor(t, func() bool { return status(a.id) == "ACTIVE" && status(z.id) == "ACTIVE" }, "both ports ACTIVE")
			b.waitPing(a.vm, z.vm.addr())
			if got := a.vm.ping(z.vm.addr(), 5, "0.05"); got != 5 {
				t.Errorf("%d of 5 pings answered", got)
			}
			// Unplugged: DOWN.
			b.must(b.nodes[1].client.DeletePort(context.Background(), z.vm.tap))
			waitFor(t, func() bool { return status(z.id) == "DOWN" }, fmt.Sprintf("port %s DOWN after unplug", z.id))
		})
	}
}
