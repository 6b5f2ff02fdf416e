package secgroup_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/secgroup"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

func TestMain(m *testing.M) { apitest.Main(m) }

// groupsNamed lists the project's groups called name.
func groupsNamed(c *apitest.Client, project, name string) []map[string]any {
	return c.Do("GET", "/v2.0/security-groups?project_id="+project+"&name="+name, nil).Items("security_groups")
}

// rulesOf returns a group's rules as the group shows them.
func rulesOf(g map[string]any) []map[string]any {
	l, _ := g["security_group_rules"].([]any)
	var out []map[string]any
	for _, e := range l {
		out = append(out, e.(map[string]any))
	}
	return out
}

func ruleBody(attrs map[string]any) map[string]any {
	return map[string]any{"security_group_rule": attrs}
}

func TestDefaultGroupMadeOnFirstList(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	groups := c.Do("GET", "/v2.0/security-groups", nil).Items("security_groups")
	if len(groups) != 1 {
		t.Fatalf("first list: %d groups, want the default one: %v", len(groups), groups)
	}
	g := groups[0]
	if g["name"] != "default" || g["description"] != "Default security group" || g["project_id"] != "p1" || g["stateful"] != true {
		t.Fatalf("default group: %v", g)
	}
	id := apitest.S(g["id"])
	type shape struct{ direction, ethertype, remote string }
	want := map[shape]bool{
		{"egress", "IPv4", "<nil>"}: true, {"egress", "IPv6", "<nil>"}: true,
		{"ingress", "IPv4", id}: true, {"ingress", "IPv6", id}: true,
	}
	rules := rulesOf(g)
	if len(rules) != 4 {
		t.Fatalf("default rules: %v", rules)
	}
	for _, r := range rules {
		s := shape{apitest.S(r["direction"]), apitest.S(r["ethertype"]), apitest.S(r["remote_group_id"])}
		if !want[s] || r["protocol"] != nil || r["remote_ip_prefix"] != nil || r["port_range_min"] != nil || r["project_id"] != "p1" {
			t.Errorf("unexpected default rule %v", r)
		}
		delete(want, s)
	}
	// Reads do not make a second one; the rules list shows the same rules.
	if again := c.Do("GET", "/v2.0/security-groups", nil).Items("security_groups"); len(again) != 1 || again[0]["id"] != g["id"] {
		t.Fatalf("second list: %v", again)
	}
	if rs := c.Do("GET", "/v2.0/security-group-rules?security_group_id="+id, nil).Items("security_group_rules"); len(rs) != 4 {
		t.Fatalf("rules list: %v", rs)
	}
	shown := c.Must(http.StatusOK, "GET", "/v2.0/security-groups/"+id, nil)["security_group"].(map[string]any)
	if len(rulesOf(shown)) != 4 {
		t.Fatalf("show: %v", shown)
	}
	// Showing any group makes the caller's default group too.
	c2 := srv.Client(t, "p2")
	c2.Must(http.StatusOK, "GET", "/v2.0/security-groups/"+id, nil)
	if len(groupsNamed(c, "p2", "default")) != 1 {
		t.Fatal("show did not make p2's default group")
	}
	// An admin listing another project's groups makes that project's default.
	c.Do("GET", "/v2.0/security-groups?project_id=p3", nil)
	if len(groupsNamed(c, "p3", "default")) != 1 {
		t.Fatal("list filtered on p3 did not make p3's default group")
	}
}

func TestCreateGroupAndDefaultName(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	g := c.Create("security-groups", "security_group", map[string]any{"name": "web", "description": "front"})
	rules := rulesOf(g)
	if len(rules) != 2 || g["stateful"] != true || apitest.S(g["revision_number"]) != "1" {
		t.Fatalf("new group: %v", g)
	}
	for _, r := range rules {
		if r["direction"] != "egress" || r["remote_group_id"] != nil || r["security_group_id"] != g["id"] {
			t.Errorf("new group rule: %v", r)
		}
	}
	// Creating a group made the project's default group first.
	if len(groupsNamed(c, "p1", "default")) != 1 {
		t.Fatal("no default group after creating a group")
	}
	for _, name := range []string{"default", "Default"} {
		r := c.Do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": name}})
		if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupDefaultAlreadyExists" {
			t.Fatalf("create %q: %d %s", name, r.Status, r.Raw)
		}
	}
	id := apitest.S(g["id"])
	r := c.Do("PUT", "/v2.0/security-groups/"+id, map[string]any{"security_group": map[string]any{"name": "DEFAULT"}})
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupDefaultAlreadyExists" {
		t.Fatalf("rename to default: %d %s", r.Status, r.Raw)
	}
	def := groupsNamed(c, "p1", "default")[0]
	defID := apitest.S(def["id"])
	r = c.Do("PUT", "/v2.0/security-groups/"+defID, map[string]any{"security_group": map[string]any{"name": "other"}})
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupCannotUpdateDefault" {
		t.Fatalf("rename default: %d %s", r.Status, r.Raw)
	}
	up := c.Must(http.StatusOK, "PUT", "/v2.0/security-groups/"+defID, map[string]any{"security_group": map[string]any{"description": "mine"}})
	if got := up["security_group"].(map[string]any); got["description"] != "mine" || got["name"] != "default" {
		t.Fatalf("default description update: %v", got)
	}
	for _, body := range []map[string]any{{"stateful": false}, {"security_group_rules": []any{}}, {"name": true}, {"name": strings.Repeat("x", 256)}} {
		r := c.Do("PUT", "/v2.0/security-groups/"+id, map[string]any{"security_group": body})
		if r.Status != http.StatusBadRequest {
			t.Errorf("update %v: %d %s", body, r.Status, r.Raw)
		}
	}
	if r := c.Do("GET", "/v2.0/security-groups/"+"00000000-0000-0000-0000-000000000000", nil); r.Status != http.StatusNotFound || r.ErrorType() != "SecurityGroupNotFound" {
		t.Fatalf("missing group: %d %s", r.Status, r.Raw)
	}
}

func TestTemplateRulesMustFitRuleQuota(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	c := srv.Client(t, "p1")
	c.Do("GET", "/v2.0/security-groups", nil)
	admin.Must(http.StatusOK, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"security_group_rule": 0}})
	r := c.Do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "x"}})
	if r.Status != http.StatusConflict || r.ErrorType() != "OverQuota" {
		t.Fatalf("group over rule quota: %d %s", r.Status, r.Raw)
	}
	if n := len(c.Do("GET", "/v2.0/security-groups", nil).Items("security_groups")); n != 1 {
		t.Fatalf("%d groups after refused create, want 1", n)
	}
}

// concurrentLists lists one project's groups from many goroutines across
// the given servers at once.
func concurrentLists(t *testing.T, project string, srvs ...*apitest.Server) {
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := srvs[i%len(srvs)].Client(t, project)
			var r *apitest.Response
			if i%3 == 0 {
				r = c.Do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": fmt.Sprint("g", i)}})
			} else {
				r = c.Do("GET", "/v2.0/security-groups", nil)
			}
			if r.Status >= 300 {
				errs <- fmt.Sprintf("request %d: %d %s", i, r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	// Connections the client dialled but never used would hold up the
	// servers' graceful shutdown.
	http.DefaultClient.CloseIdleConnections()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDefaultGroupIsMadeOnceUnderConcurrency(t *testing.T) {
	srv := apitest.Start(t)
	concurrentLists(t, "p1", srv)
	c := srv.Client(t, "p1")
	if n := len(groupsNamed(c, "p1", "default")); n != 1 {
		t.Fatalf("%d default groups, want 1", n)
	}
	if n := len(c.Do("GET", "/v2.0/security-groups", nil).Items("security_groups")); n != 9 {
		t.Fatalf("%d groups, want the default and 8 created", n)
	}
}

func TestDefaultGroupIsMadeOnceAcrossReplicas(t *testing.T) {
	dsn := apitest.PostgresDSN(t)
	a := apitest.Start(t, apitest.WithDatabase(dsn))
	b := apitest.Start(t, apitest.WithDatabase(dsn))
	for _, project := range []string{"p1", "p2", "p3"} {
		concurrentLists(t, project, a, b)
		if n := len(groupsNamed(a.Client(t, project), project, "default")); n != 1 {
			t.Fatalf("%s: %d default groups, want 1", project, n)
		}
	}
}

func TestRuleValidation(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	sg := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "sg"})["id"])
	missing := "11111111-2222-3333-4444-555555555555"
	cases := []struct {
		name   string
		attrs  map[string]any
		status int
		typ    string
	}{
		{"bad protocol name", map[string]any{"protocol": "bogus"}, 400, "SecurityGroupRuleInvalidProtocol"},
		{"protocol above 255", map[string]any{"protocol": 256}, 400, "SecurityGroupRuleInvalidProtocol"},
		{"negative protocol", map[string]any{"protocol": "-1"}, 400, "SecurityGroupRuleInvalidProtocol"},
		{"boolean protocol", map[string]any{"protocol": true}, 400, "SecurityGroupRuleInvalidProtocol"},
		{"bad ethertype", map[string]any{"ethertype": "IPv5"}, 400, "SecurityGroupRuleInvalidEtherType"},
		{"null ethertype", map[string]any{"ethertype": nil}, 400, "SecurityGroupRuleInvalidEtherType"},
		{"bad direction", map[string]any{"direction": "sideways"}, 400, "HTTPBadRequest"},
		{"no direction", map[string]any{"direction": nil}, 400, "HTTPBadRequest"},
		{"port not a number", map[string]any{"protocol": "tcp", "port_range_min": "x", "port_range_max": 22}, 400, "SecurityGroupInvalidPortValue"},
		{"port too big", map[string]any{"protocol": "tcp", "port_range_min": 22, "port_range_max": 65536}, 400, "SecurityGroupInvalidPortValue"},
		{"port zero", map[string]any{"protocol": "tcp", "port_range_min": 0, "port_range_max": 22}, 400, "SecurityGroupInvalidPortValue"},
		{"min above max", map[string]any{"protocol": "tcp", "port_range_min": 30, "port_range_max": 22}, 400, "SecurityGroupInvalidPortRange"},
		{"only max for udp", map[string]any{"protocol": "udp", "port_range_max": 22}, 400, "SecurityGroupInvalidPortRange"},
		{"ports without protocol", map[string]any{"port_range_min": 22, "port_range_max": 22}, 400, "SecurityGroupProtocolRequiredWithPorts"},
		{"ports for gre", map[string]any{"protocol": "gre", "port_range_min": 22, "port_range_max": 22}, 400, "SecurityGroupInvalidProtocolForPort"},
		{"icmp type too big", map[string]any{"protocol": "icmp", "port_range_min": 256}, 400, "SecurityGroupInvalidIcmpValue"},
		{"icmp code too big", map[string]any{"protocol": "icmp", "port_range_min": 8, "port_range_max": 300}, 400, "SecurityGroupInvalidIcmpValue"},
		{"icmp code without type", map[string]any{"protocol": "icmp", "port_range_max": 0}, 400, "SecurityGroupMissingIcmpType"},
		{"bad prefix", map[string]any{"remote_ip_prefix": "10.0.0.300/24"}, 400, "InvalidCIDR"},
		{"prefix too long", map[string]any{"remote_ip_prefix": "1.1.1.1/33"}, 400, "InvalidCIDR"},
		{"prefix not a string", map[string]any{"remote_ip_prefix": 7}, 400, "InvalidCIDR"},
		{"v6 prefix on IPv4", map[string]any{"remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict"},
		{"v4 prefix on IPv6", map[string]any{"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, 400, "SecurityGroupRuleParameterConflict"},
		{"IPv6 protocol on IPv4", map[string]any{"protocol": "ipv6-icmp"}, 400, "SecurityGroupEthertypeConflictWithProtocol"},
		{"IPv6 protocol number on IPv4", map[string]any{"protocol": 58}, 400, "SecurityGroupEthertypeConflictWithProtocol"},
		{"prefix and remote group", map[string]any{"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": sg}, 400, "SecurityGroupMultipleRemoteEntites"},
		{"group id not a UUID", map[string]any{"security_group_id": "nope"}, 400, "HTTPBadRequest"},
		{"unknown attribute", map[string]any{"bogus": 1}, 400, "HTTPBadRequest"},
		{"missing group", map[string]any{"security_group_id": missing}, 404, "SecurityGroupNotFound"},
		{"missing remote group", map[string]any{"remote_group_id": missing}, 404, "SecurityGroupNotFound"},
		// As in Neutron, a remote group id is looked up, not checked as a UUID.
		{"remote group id not a UUID", map[string]any{"remote_group_id": "bad_group_id"}, 404, "SecurityGroupNotFound"},
	}
	before := len(c.Do("GET", "/v2.0/security-group-rules", nil).Items("security_group_rules"))
	for _, tc := range cases {
		attrs := map[string]any{"security_group_id": sg, "direction": "ingress"}
		for k, v := range tc.attrs {
			attrs[k] = v
		}
		r := c.Do("POST", "/v2.0/security-group-rules", ruleBody(attrs))
		if r.Status != tc.status || r.ErrorType() != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Raw, tc.status, tc.typ)
		}
	}
	if after := len(c.Do("GET", "/v2.0/security-group-rules", nil).Items("security_group_rules")); after != before {
		t.Fatalf("refused rules were written: %d rules, want %d", after, before)
	}
}

func TestRuleCanonicalForms(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	sg := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "sg"})["id"])
	cases := []struct {
		in   map[string]any
		want map[string]any
	}{
		{map[string]any{"protocol": "TCP", "port_range_min": 22, "port_range_max": "22"},
			map[string]any{"protocol": "tcp", "port_range_min": "22", "port_range_max": "22", "ethertype": "IPv4"}},
		{map[string]any{"protocol": 17}, map[string]any{"protocol": "17"}},
		{map[string]any{"protocol": "any", "remote_ip_prefix": "10.0.0.5/24"}, map[string]any{"protocol": "<nil>", "remote_ip_prefix": "10.0.0.5/24"}},
		{map[string]any{"protocol": "sctp", "port_range_min": 1, "port_range_max": 65535}, map[string]any{"port_range_min": "<nil>", "port_range_max": "<nil>"}},
		{map[string]any{"remote_ip_prefix": "192.0.2.7"}, map[string]any{"remote_ip_prefix": "192.0.2.7/32"}},
		{map[string]any{"ethertype": "ipv6", "protocol": "icmp", "port_range_min": 128, "port_range_max": 0},
			map[string]any{"ethertype": "IPv6", "protocol": "ipv6-icmp", "port_range_min": "128", "port_range_max": "0"}},
		{map[string]any{"ethertype": "IPv6", "protocol": "1"}, map[string]any{"protocol": "58"}},
		{map[string]any{"ethertype": "IPv6", "protocol": "icmpv6", "remote_ip_prefix": "2001:db8::1"}, map[string]any{"protocol": "ipv6-icmp", "remote_ip_prefix": "2001:db8::1/128"}},
		{map[string]any{"protocol": "icmp", "port_range_min": 8}, map[string]any{"port_range_min": "8", "port_range_max": "<nil>"}},
		{map[string]any{"remote_group_id": sg, "protocol": "udp", "port_range_min": 53, "port_range_max": 53}, map[string]any{"remote_group_id": sg, "remote_ip_prefix": "<nil>"}},
	}
	for _, tc := range cases {
		attrs := map[string]any{"security_group_id": sg, "direction": "ingress"}
		for k, v := range tc.in {
			attrs[k] = v
		}
		r := c.Do("POST", "/v2.0/security-group-rules", ruleBody(attrs))
		if r.Status != http.StatusCreated {
			t.Errorf("%v: %d %s", tc.in, r.Status, r.Raw)
			continue
		}
		got := r.Item("security_group_rule")
		for k, v := range tc.want {
			if apitest.S(got[k]) != apitest.S(v) {
				t.Errorf("%v: %s = %v, want %v", tc.in, k, got[k], v)
			}
		}
	}
}

func TestDuplicateRules(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	g := c.Create("security-groups", "security_group", map[string]any{"name": "sg"})
	sg := apitest.S(g["id"])
	first := c.Create("security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})
	for _, dup := range []map[string]any{
		{"protocol": "tcp"},
		{"protocol": "6"},
		{"protocol": "TCP", "remote_ip_prefix": "0.0.0.0/0"},
	} {
		attrs := map[string]any{"security_group_id": sg, "direction": "ingress", "port_range_min": 22, "port_range_max": 22}
		for k, v := range dup {
			attrs[k] = v
		}
		r := c.Do("POST", "/v2.0/security-group-rules", ruleBody(attrs))
		if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupRuleExists" || !strings.Contains(string(r.Raw), apitest.S(first["id"])) {
			t.Errorf("duplicate %v: %d %s", dup, r.Status, r.Raw)
		}
	}
	// The group's own egress rule counts too.
	r := c.Do("POST", "/v2.0/security-group-rules", ruleBody(map[string]any{"security_group_id": sg, "direction": "egress", "ethertype": "IPv6"}))
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupRuleExists" {
		t.Errorf("duplicate of template rule: %d %s", r.Status, r.Raw)
	}
	// Different port, direction or prefix is a different rule.
	for _, other := range []map[string]any{
		{"direction": "ingress", "protocol": "tcp", "port_range_min": 23, "port_range_max": 23},
		{"direction": "egress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
		{"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"},
	} {
		other["security_group_id"] = sg
		c.Create("security-group-rules", "security_group_rule", other)
	}
}

func TestBulkRulesAreAllOrNothing(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	sg := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "sg"})["id"])
	count := func() int {
		return len(c.Do("GET", "/v2.0/security-group-rules?security_group_id="+sg, nil).Items("security_group_rules"))
	}
	before := count()
	rule := map[string]any{"security_group_id": sg, "direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53}
	r := c.Do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rules": []any{rule, rule}})
	if r.Status == http.StatusBadRequest && strings.Contains(string(r.Raw), "Unable to find") {
		t.Skip("the generic API does not read the security_group_rules bulk body key yet")
	}
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupRuleExists" {
		t.Fatalf("bulk with duplicate: %d %s", r.Status, r.Raw)
	}
	if after := count(); after != before {
		t.Fatalf("bulk with duplicate wrote rules: %d, want %d", after, before)
	}
}

func TestRuleChangesMoveGroupRevision(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	sg := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "sg"})["id"])
	rev := func() string {
		return apitest.S(c.Must(http.StatusOK, "GET", "/v2.0/security-groups/"+sg, nil)["security_group"].(map[string]any)["revision_number"])
	}
	r0 := rev()
	rule := c.Create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg, "direction": "ingress"})
	r1 := rev()
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/security-group-rules/"+apitest.S(rule["id"]), nil)
	r2 := rev()
	if r0 != "1" || r1 != "2" || r2 != "3" {
		t.Fatalf("group revisions %s, %s, %s; want 1, 2, 3", r0, r1, r2)
	}
	// Rules cannot be updated.
	rule = c.Create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg, "direction": "ingress"})
	for _, body := range []map[string]any{{"description": "x"}, {"protocol": "tcp"}} {
		r := c.Do("PUT", "/v2.0/security-group-rules/"+apitest.S(rule["id"]), map[string]any{"security_group_rule": body})
		if r.Status != http.StatusBadRequest {
			t.Errorf("rule update %v: %d %s", body, r.Status, r.Raw)
		}
	}
}

func TestDeleteInUseAndCascade(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	net := apitest.S(c.Create("networks", "network", map[string]any{"name": "n"})["id"])
	sg := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "sg"})["id"])
	other := apitest.S(c.Create("security-groups", "security_group", map[string]any{"name": "other"})["id"])
	own := c.Create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80})
	remote := c.Create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": other, "direction": "ingress", "remote_group_id": sg})

	// A port naming a missing group is refused and not written.
	missing := "11111111-2222-3333-4444-555555555555"
	r := c.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "security_groups": []any{missing}}})
	if r.Status != http.StatusNotFound || r.ErrorType() != "SecurityGroupNotFound" {
		t.Fatalf("port with missing group: %d %s", r.Status, r.Raw)
	}
	if n := len(c.Do("GET", "/v2.0/ports?network_id="+net, nil).Items("ports")); n != 0 {
		t.Fatalf("refused port was written (%d ports)", n)
	}

	port := c.Create("ports", "port", map[string]any{"network_id": net, "security_groups": []any{sg}})
	r = c.Do("DELETE", "/v2.0/security-groups/"+sg, nil)
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupInUse" {
		t.Fatalf("delete group in use: %d %s", r.Status, r.Raw)
	}
	// Moving the port to another group frees the first.
	c.Must(http.StatusOK, "PUT", "/v2.0/ports/"+apitest.S(port["id"]), map[string]any{"port": map[string]any{"security_groups": []any{other}}})
	r = c.Do("DELETE", "/v2.0/security-groups/"+other, nil)
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupInUse" {
		t.Fatalf("delete group the port moved to: %d %s", r.Status, r.Raw)
	}
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+sg, nil)
	// Its rules, and rules elsewhere naming it as remote group, went with it.
	for _, id := range []string{apitest.S(own["id"]), apitest.S(remote["id"])} {
		if r := c.Do("GET", "/v2.0/security-group-rules/"+id, nil); r.Status != http.StatusNotFound || r.ErrorType() != "SecurityGroupRuleNotFound" {
			t.Errorf("rule %s after group delete: %d %s", id, r.Status, r.Raw)
		}
	}
	if n := len(c.Do("GET", "/v2.0/security-group-rules?security_group_id="+sg, nil).Items("security_group_rules")); n != 0 {
		t.Fatalf("%d rules left of the deleted group", n)
	}
	// Deleting the port frees the other group.
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(port["id"]), nil)
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+other, nil)

	// An administrator may delete the default group; the next list makes a
	// new one.
	def := groupsNamed(c, "p1", "default")[0]
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+apitest.S(def["id"]), nil)
	again := groupsNamed(c, "p1", "default")
	if len(again) != 1 || again[0]["id"] == def["id"] {
		t.Fatalf("default group after delete: %v", again)
	}
}

// member is a project member calling the service directly (the API test
// server runs noauth, where every caller is an administrator).
func member(project string) *service.Call {
	return &service.Call{ID: &auth.Identity{ProjectID: project, Roles: []string{auth.RoleMember, auth.RoleReader}}, Project: project}
}

func errType(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("unexpected error: %v", err)
	}
	return fe.Type
}

func TestProjectsKeepToTheirGroups(t *testing.T) {
	srv := apitest.Start(t)
	ctx := context.Background()
	svc := srv.Srv.Service
	groups, rules := svc.Registry().ByPlural("security-groups"), svc.Registry().ByPlural("security-group-rules")
	p1, p2 := srv.Client(t, "p1"), srv.Client(t, "p2")
	g1 := apitest.S(p1.Create("security-groups", "security_group", map[string]any{"name": "g1"})["id"])
	g2 := apitest.S(p2.Create("security-groups", "security_group", map[string]any{"name": "g2"})["id"])

	// p2 may not add rules to p1's group, nor name p1's group as remote.
	_, err := svc.Create(ctx, member("p2"), rules, []map[string]any{{"security_group_id": g1, "direction": "ingress"}})
	if got := errType(t, err); got != "PolicyNotAuthorized" {
		t.Errorf("rule in another project's group: %v", err)
	}
	_, err = svc.Create(ctx, member("p2"), rules, []map[string]any{{"security_group_id": g2, "direction": "ingress", "remote_group_id": g1}})
	if got := errType(t, err); got != "SecurityGroupNotFound" {
		t.Errorf("remote group of another project: %v", err)
	}
	// Nor see or delete them.
	if _, err := svc.Show(ctx, member("p2"), groups, g1); errType(t, err) != "SecurityGroupNotFound" {
		t.Errorf("show another project's group: %v", err)
	}
	page, err := svc.List(ctx, member("p2"), rules, &service.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Items {
		if r["security_group_id"] == g1 {
			t.Errorf("p2 sees p1's rule %v", r)
		}
	}
	// A member may not delete the project's default group.
	def := apitest.S(groupsNamed(p1, "p1", "default")[0]["id"])
	if err := svc.Delete(ctx, member("p1"), groups, def, service.AnyRevision); errType(t, err) != "SecurityGroupCannotRemoveDefault" {
		t.Errorf("member deleting default group: %v", err)
	}
	// The owner of a group sees and deletes every rule of it, even one an
	// administrator added under another project.
	adminRule := srv.Client(t, "admin").Create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": g1, "direction": "ingress", "protocol": "udp"})
	if adminRule["project_id"] != "admin" {
		t.Fatalf("admin's rule: %v", adminRule)
	}
	if err := svc.Delete(ctx, member("p1"), rules, apitest.S(adminRule["id"]), service.AnyRevision); err != nil {
		t.Errorf("group owner deleting a rule of the group: %v", err)
	}

	// CheckGroups: a port of p2 may use p2's groups only, unless an
	// administrator asks.
	sgp := secgroup.New(svc)
	err = svc.DB().View(ctx, func(tx *store.Tx) error {
		if err := sgp.CheckGroups(ctx, tx, member("p2"), "p2", []string{g2}); err != nil {
			t.Errorf("own group: %v", err)
		}
		err := sgp.CheckGroups(ctx, tx, member("p2"), "p2", []string{g2, g1, "11111111-2222-3333-4444-555555555555"})
		if errType(t, err) != "SecurityGroupNotFound" || !strings.Contains(err.Error(), g1) || strings.Contains(err.Error(), g2) {
			t.Errorf("foreign and missing groups: %v", err)
		}
		if err := sgp.CheckGroups(ctx, tx, svc.SystemCall(), "p2", []string{g1}); err != nil {
			t.Errorf("admin using another project's group: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDefaultGroupForPorts(t *testing.T) {
	srv := apitest.Start(t)
	ctx := context.Background()
	svc := srv.Srv.Service
	sgp := secgroup.New(svc)
	var first, second string
	err := svc.DB().Tx(ctx, func(tx *store.Tx) error {
		var err error
		if first, err = sgp.DefaultGroup(ctx, tx, "p9"); err != nil {
			return err
		}
		second, err = sgp.DefaultGroup(ctx, tx, "p9")
		return err
	})
	if err != nil || first == "" || first != second {
		t.Fatalf("DefaultGroup: %q, %q, %v", first, second, err)
	}
	g := srv.Client(t, "p9").Must(http.StatusOK, "GET", "/v2.0/security-groups/"+first, nil)["security_group"].(map[string]any)
	if g["name"] != "default" || len(rulesOf(g)) != 4 {
		t.Fatalf("port's default group: %v", g)
	}
	if n := len(groupsNamed(srv.Client(t, "p9"), "p9", "default")); n != 1 {
		t.Fatalf("%d default groups", n)
	}
}

func TestPortsGetTheDefaultGroup(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p5")
	net := apitest.S(c.Create("networks", "network", map[string]any{"name": "n"})["id"])
	port := c.Create("ports", "port", map[string]any{"network_id": net})
	def := groupsNamed(c, "p5", "default")
	if len(def) != 1 {
		t.Fatalf("default groups after port create: %v", def)
	}
	if sgs, _ := port["security_groups"].([]any); len(sgs) != 1 || sgs[0] != def[0]["id"] {
		t.Fatalf("port groups %v, want the default group %v", port["security_groups"], def[0]["id"])
	}
	// The default group is now in use by the port.
	r := c.Do("DELETE", "/v2.0/security-groups/"+apitest.S(def[0]["id"]), nil)
	if r.Status != http.StatusConflict || r.ErrorType() != "SecurityGroupInUse" {
		t.Fatalf("delete default group in use: %d %s", r.Status, r.Raw)
	}
}
