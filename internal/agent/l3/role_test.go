package l3

import (
	"context"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// reports records floating IP status reports.
type reports struct{ active, down [][]string }

func (r *reports) FloatingIPStatus(_ context.Context, active, down []string) error {
	r.active, r.down = append(r.active, active), append(r.down, down)
	return nil
}

func TestReportFloatingIPs(t *testing.T) {
	r, err := New(Config{OVS: ovs.Instance{DB: "unix:/nonexistent/db.sock"}}, nil)
	must(t, err)
	cfg := Config{NamespacePrefix: "qrouter-"}
	configured := withFIP(testRouter(), "fip-2", addr("203.0.113.21"), "10.0.0.6", "vm-port-2")
	r.routers["router-1"] = &servedRouter{plan: cfg.planRouter(configured), gen: 1}
	failed := routerB()
	failed.ID = "router-2"
	failed = withFIP(failed, "fip-3", addr("203.0.113.22"), "10.0.0.7", "vm-port-3")
	failed.FloatingIPs[0].Status = msg.StatusActive
	r.routers["router-2"] = &servedRouter{} // its last pass failed
	snap := map[string]desiredRouter{
		"router-1": {Router: configured, gen: 1},
		"router-2": {Router: failed, gen: 2},
	}
	rep := &reports{}
	ctx := context.Background()
	r.reportFloatingIPs(ctx, rep, snap)
	if len(rep.active) != 1 || !slices.Equal(rep.active[0], []string{"fip-1", "fip-2"}) || !slices.Equal(rep.down[0], []string{"fip-3"}) {
		t.Fatalf("reports: active %v, down %v", rep.active, rep.down)
	}
	// Reported once: the same view of the server is not reported again.
	r.reportFloatingIPs(ctx, rep, snap)
	if len(rep.active) != 1 {
		t.Errorf("reported again: %v", rep.active)
	}
	// The server took it: nothing to say. The server moved on without
	// taking it (a new revision, still DOWN): said again.
	took := configured
	took.FloatingIPs = slices.Clone(took.FloatingIPs)
	took.FloatingIPs[0].Status = msg.StatusActive
	took.FloatingIPs[1].Revision = 7
	snap["router-1"] = desiredRouter{Router: took, gen: 3}
	r.reportFloatingIPs(ctx, rep, snap)
	if len(rep.active) != 2 || !slices.Equal(rep.active[1], []string{"fip-2"}) {
		t.Errorf("after the server moved on: active %v", rep.active)
	}
}
