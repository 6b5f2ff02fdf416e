package agentapi_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

func report(t *testing.T, srv *apitest.Server, r agentapi.Report) {
	t.Helper()
	if err := agentapi.ReportState(context.Background(), srv.Srv.Service, r); err != nil {
		t.Fatalf("ReportState: %v", err)
	}
}

func ovs(host string, at time.Time) agentapi.Report {
	return agentapi.Report{
		AgentType: "Open vSwitch agent", Binary: "neutrino-ovs-agent", Topic: "N/A", Host: host,
		Configurations: map[string]any{"bridge_mappings": map[string]any{"physnet1": "br-ex"}, "devices": 3},
		Time:           at,
	}
}

func TestAgentLifecycle(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	now := time.Now()
	report(t, srv, ovs("node1", now))
	report(t, srv, agentapi.Report{AgentType: "DHCP agent", Binary: "neutrino-dhcp-agent", Topic: "dhcp_agent", Host: "node1", AvailabilityZone: "nova", Time: now})
	list := admin.Do("GET", "/v2.0/agents", nil).Items("agents")
	if len(list) != 2 {
		t.Fatalf("agents: %v", list)
	}
	r := admin.Do("GET", "/v2.0/agents?agent_type=Open+vSwitch+agent", nil)
	list = r.Items("agents")
	if len(list) != 1 {
		t.Fatalf("filter by agent_type: %s", r.Raw)
	}
	a := list[0]
	id := apitest.S(a["id"])
	conf, _ := a["configurations"].(map[string]any)
	if a["host"] != "node1" || a["binary"] != "neutrino-ovs-agent" || a["alive"] != true || a["admin_state_up"] != true ||
		a["availability_zone"] != nil || a["description"] != nil || apitest.S(conf["devices"]) != "3" ||
		a["heartbeat_timestamp"] != now.UTC().Format("2006-01-02 15:04:05") || a["created_at"] != a["heartbeat_timestamp"] {
		t.Fatalf("agent: %v", a)
	}
	if _, ok := a["revision_number"]; ok {
		t.Errorf("agents show no revision_number: %v", a)
	}
	got := admin.Must(http.StatusOK, "GET", "/v2.0/agents/"+id, nil)["agent"].(map[string]any)
	if got["id"] != id || got["agent_type"] != "Open vSwitch agent" {
		t.Fatalf("show: %v", got)
	}
	// Only admin_state_up and description may change.
	up := admin.Must(http.StatusOK, "PUT", "/v2.0/agents/"+id, map[string]any{"agent": map[string]any{"admin_state_up": false, "description": "draining"}})["agent"].(map[string]any)
	if up["admin_state_up"] != false || up["description"] != "draining" || up["alive"] != true {
		t.Fatalf("update: %v", up)
	}
	for _, body := range []map[string]any{{"host": "node2"}, {"alive": false}, {"admin_state_up": "maybe"}} {
		if r := admin.Do("PUT", "/v2.0/agents/"+id, map[string]any{"agent": body}); r.Status != http.StatusBadRequest {
			t.Errorf("update %v: %d %s", body, r.Status, r.Raw)
		}
	}
	// A later report keeps what the admin set.
	report(t, srv, ovs("node1", now.Add(time.Second)))
	got = admin.Must(http.StatusOK, "GET", "/v2.0/agents/"+id, nil)["agent"].(map[string]any)
	if got["admin_state_up"] != false || got["description"] != "draining" || got["heartbeat_timestamp"] != now.Add(time.Second).UTC().Format("2006-01-02 15:04:05") {
		t.Fatalf("after report: %v", got)
	}
	if r := admin.Do("POST", "/v2.0/agents", map[string]any{"agent": map[string]any{}}); r.Status != http.StatusBadRequest || r.ErrorType() != "BadRequest" {
		t.Fatalf("create agent: %d %s", r.Status, r.Raw)
	}
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/agents/"+id, nil)
	if r := admin.Do("GET", "/v2.0/agents/"+id, nil); r.Status != http.StatusNotFound || r.ErrorType() != "AgentNotFound" {
		t.Fatalf("deleted agent: %d %s", r.Status, r.Raw)
	}
	if r := admin.Do("DELETE", "/v2.0/agents/"+id, nil); r.Status != http.StatusNotFound || r.ErrorType() != "AgentNotFound" {
		t.Fatalf("delete again: %d %s", r.Status, r.Raw)
	}
	if n := len(admin.Do("GET", "/v2.0/agents", nil).Items("agents")); n != 1 {
		t.Fatalf("%d agents left, want 1", n)
	}
}

func TestAliveFollowsHeartbeat(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	now := time.Now()
	report(t, srv, ovs("stale", now.Add(-agentapi.DefaultDownTime-10*time.Second)))
	report(t, srv, ovs("fresh", now.Add(-agentapi.DefaultDownTime+10*time.Second)))
	alive := func(host string) any {
		t.Helper()
		l := admin.Do("GET", "/v2.0/agents?host="+host, nil).Items("agents")
		if len(l) != 1 {
			t.Fatalf("agents on %s: %v", host, l)
		}
		return l[0]["alive"]
	}
	if alive("stale") != false || alive("fresh") != true {
		t.Fatalf("stale alive=%v, fresh alive=%v", alive("stale"), alive("fresh"))
	}
	if l := admin.Do("GET", "/v2.0/agents?alive=false", nil).Items("agents"); len(l) != 1 || l[0]["host"] != "stale" {
		t.Fatalf("filter alive=false: %v", l)
	}
	// The dead agent reports again and is alive; still one row per agent.
	report(t, srv, ovs("stale", now))
	if alive("stale") != true {
		t.Fatal("agent not alive after a new heartbeat")
	}
	if l := admin.Do("GET", "/v2.0/agents?alive=true", nil).Items("agents"); len(l) != 2 {
		t.Fatalf("filter alive=true: %v", l)
	}
}

func TestAliveUsesDownTime(t *testing.T) {
	hb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	agent := resource.Object{"heartbeat_timestamp": "2026-01-02 03:04:05"}
	for _, tc := range []struct {
		after time.Duration
		down  time.Duration
		want  bool
	}{
		{0, 75 * time.Second, true},
		{75 * time.Second, 75 * time.Second, true},
		{76 * time.Second, 75 * time.Second, false},
		{20 * time.Second, 15 * time.Second, false},
		{10 * time.Second, 15 * time.Second, true},
	} {
		if got := agentapi.Alive(agent, hb.Add(tc.after), tc.down); got != tc.want {
			t.Errorf("heartbeat %v ago, down time %v: alive=%v", tc.after, tc.down, got)
		}
	}
	if agentapi.Alive(resource.Object{}, hb, time.Hour) {
		t.Error("an agent without heartbeat is alive")
	}
}

func TestConcurrentFirstReportsMakeOneAgent(t *testing.T) {
	srv := apitest.Start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- agentapi.ReportState(context.Background(), srv.Srv.Service, ovs("node1", time.Time{}))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if l := srv.Client(t, "admin").Do("GET", "/v2.0/agents", nil).Items("agents"); len(l) != 1 {
		t.Fatalf("%d agents from one host's reports", len(l))
	}
	if err := agentapi.ReportState(context.Background(), srv.Srv.Service, agentapi.Report{AgentType: "DHCP agent"}); err == nil {
		t.Fatal("report without host accepted")
	}
}

func TestAgentsAreAdminOnly(t *testing.T) {
	srv := apitest.Start(t)
	report(t, srv, ovs("node1", time.Time{}))
	svc := srv.Srv.Service
	ctx := context.Background()
	agents := svc.Registry().ByPlural("agents")
	page, err := svc.List(ctx, svc.SystemCall(), agents, &service.Query{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("admin list: %v %v", page, err)
	}
	id := apitest.S(page.Items[0]["id"])
	member := &service.Call{ID: &auth.Identity{UserID: "u", ProjectID: "p1", Roles: []string{auth.RoleMember}}, Project: "p1"}
	if page, err := svc.List(ctx, member, agents, &service.Query{}); err != nil || len(page.Items) != 0 {
		t.Errorf("member list: %v %v", page, err)
	}
	if _, err := svc.Show(ctx, member, agents, id); !isType(err, "AgentNotFound") {
		t.Errorf("member show: %v", err)
	}
	if _, err := svc.Update(ctx, member, agents, id, map[string]any{"description": "x"}, service.AnyRevision); !isType(err, "AgentNotFound") {
		t.Errorf("member update: %v", err)
	}
	if err := svc.Delete(ctx, member, agents, id, service.AnyRevision); !isType(err, "AgentNotFound") {
		t.Errorf("member delete: %v", err)
	}
	if _, err := svc.Create(ctx, member, agents, []map[string]any{{}}); !isType(err, "PolicyNotAuthorized") {
		t.Errorf("member create: %v", err)
	}
}

func isType(err error, typ string) bool {
	fe, ok := fault.As(err)
	return ok && fe.Type == typ
}
