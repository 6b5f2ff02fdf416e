package server_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// twoServers runs two API servers on one fresh PostgreSQL database, as two
// replicas behind a load balancer would, and returns an admin client of
// each.
func twoServers(t *testing.T) (a, b *apitest.Client) {
	t.Helper()
	dsn := apitest.PostgresDSN(t)
	s1 := apitest.Start(t, apitest.WithDatabase(dsn))
	s2 := apitest.Start(t, apitest.WithDatabase(dsn))
	return s1.Client(t, "p1"), s2.Client(t, "p1")
}

// race sends n requests at once, alternating between the clients, and
// returns their responses.
func race(n int, clients []*apitest.Client, send func(c *apitest.Client, i int) *apitest.Response) []*apitest.Response {
	out := make([]*apitest.Response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send(clients[i%len(clients)], i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// countCreated counts the 201s among the responses of a race; anything but
// a 409 of type refused fails t.
func countCreated(t *testing.T, what string, rs []*apitest.Response, refused string) int {
	t.Helper()
	n := 0
	for _, r := range rs {
		switch {
		case r.Status == http.StatusCreated:
			n++
		case r.Status == http.StatusConflict && r.ErrorType() == refused:
		default:
			t.Errorf("racing %s: %d %s", what, r.Status, r.Raw)
		}
	}
	return n
}

// message is the NeutronError message of a response, or "".
func message(r *apitest.Response) string {
	ne, _ := r.Body["NeutronError"].(map[string]any)
	s, _ := ne["message"].(string)
	return s
}

// Two servers racing to create ports on a small subnet hand out every
// address of the pool exactly once, then report exhaustion as Neutron does.
func TestReplicasNeverShareAnAddress(t *testing.T) {
	a, b := twoServers(t)
	net := a.Create("networks", "network", map[string]any{"name": "small"})
	netID := apitest.S(net["id"])
	sub := a.Create("subnets", "subnet", map[string]any{"network_id": netID, "ip_version": 4,
		"cidr": "10.9.0.0/28", "enable_dhcp": false})
	pool := netip.MustParsePrefix("10.9.0.0/28")
	gateway := netip.MustParseAddr(apitest.S(sub["gateway_ip"]))
	free := 0
	for _, p := range sub["allocation_pools"].([]any) {
		r := p.(map[string]any)
		for ip := netip.MustParseAddr(apitest.S(r["start"])); ; ip = ip.Next() {
			free++
			if ip == netip.MustParseAddr(apitest.S(r["end"])) {
				break
			}
		}
	}
	const attempts = 40
	if free >= attempts {
		t.Fatalf("pool of %d addresses: the race would not exhaust it", free)
	}
	rs := race(attempts, []*apitest.Client{a, b}, func(c *apitest.Client, i int) *apitest.Response {
		return c.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprint("p", i)}})
	})
	seen := map[netip.Addr]string{}
	created, exhausted := 0, 0
	for _, r := range rs {
		switch {
		case r.Status == http.StatusCreated:
			created++
			port := r.Item("port")
			ips := port["fixed_ips"].([]any)
			if len(ips) != 1 {
				t.Fatalf("port with %d fixed IPs: %s", len(ips), r.Raw)
			}
			ip := netip.MustParseAddr(apitest.S(ips[0].(map[string]any)["ip_address"]))
			if !pool.Contains(ip) || ip == gateway || ip == pool.Addr() {
				t.Errorf("address %s outside the allocation pool", ip)
			}
			if other, dup := seen[ip]; dup {
				t.Errorf("address %s given to ports %s and %v", ip, other, port["id"])
			}
			seen[ip] = apitest.S(port["id"])
		case r.Status == http.StatusConflict && r.ErrorType() == "IpAddressGenerationFailure":
			exhausted++
		default:
			t.Errorf("port create: %d %s", r.Status, r.Raw)
		}
	}
	if created != free || exhausted != attempts-free {
		t.Fatalf("%d created and %d refused as exhausted, want %d and %d", created, exhausted, free, attempts-free)
	}
	// Both replicas see the same ports, and the store agrees.
	for _, c := range []*apitest.Client{a, b} {
		if n := len(c.Do("GET", "/v2.0/ports?network_id="+netID, nil).Items("ports")); n != free {
			t.Errorf("a replica lists %d ports, want %d", n, free)
		}
	}
	// A freed address can be taken again, from either replica.
	var victim string
	for _, id := range seen {
		victim = id
		break
	}
	a.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+victim, nil)
	b.Create("ports", "port", map[string]any{"network_id": netID})
	if r := a.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID}}); r.Status != http.StatusConflict || r.ErrorType() != "IpAddressGenerationFailure" {
		t.Fatalf("full subnet again: %d %s", r.Status, r.Raw)
	}
}

// Two servers racing to create the same VLAN provider network: exactly one
// wins, the others get 409 VlanIdInUse, and only one network exists.
func TestReplicasAgreeOnProviderSegments(t *testing.T) {
	a, b := twoServers(t)
	const attempts = 12
	body := map[string]any{"network": map[string]any{"provider:network_type": "vlan",
		"provider:physical_network": "physnet1", "provider:segmentation_id": 1234}}
	rs := race(attempts, []*apitest.Client{a, b}, func(c *apitest.Client, _ int) *apitest.Response {
		return c.Do("POST", "/v2.0/networks", body)
	})
	if created := countCreated(t, "VLAN create", rs, "VlanIdInUse"); created != 1 {
		t.Fatalf("%d creates of VLAN 1234 succeeded, want exactly 1", created)
	}
	if n := len(b.Do("GET", "/v2.0/networks?provider:segmentation_id=1234", nil).Items("networks")); n != 1 {
		t.Fatalf("%d networks on VLAN 1234, want 1", n)
	}
	if n := len(a.Do("GET", "/v2.0/networks", nil).Items("networks")); n != 1 {
		t.Fatalf("%d networks after the race, want 1: the losers left networks behind", n)
	}
	// Tenant networks racing for automatically allocated VNIs all get
	// distinct ones.
	rs = race(attempts, []*apitest.Client{a, b}, func(c *apitest.Client, _ int) *apitest.Response {
		return c.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}})
	})
	vnis := map[string]bool{}
	for _, r := range rs {
		if r.Status != http.StatusCreated {
			t.Fatalf("tenant network: %d %s", r.Status, r.Raw)
		}
		vni := apitest.S(r.Item("network")["provider:segmentation_id"])
		if vnis[vni] {
			t.Errorf("VNI %s allocated twice", vni)
		}
		vnis[vni] = true
	}
}

// Two servers racing to create networks against a project's quota: exactly
// the quota's worth are made, the rest get 409 OverQuota, and a bulk create
// is never half made.
func TestReplicasHoldTheQuota(t *testing.T) {
	a, b := twoServers(t)
	const limit, attempts = 5, 20
	a.Must(http.StatusOK, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": limit}})
	rs := race(attempts, []*apitest.Client{a, b}, func(c *apitest.Client, i int) *apitest.Response {
		return c.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": fmt.Sprint("n", i)}})
	})
	if created := countCreated(t, "network create", rs, "OverQuota"); created != limit {
		t.Fatalf("%d of %d racing creates succeeded against a quota of %d", created, attempts, limit)
	}
	for _, r := range rs {
		if want := "Quota exceeded for resources: ['network']."; r.Status == http.StatusConflict && message(r) != want {
			t.Errorf("over quota: %s, want message %q", r.Raw, want)
		}
	}
	for _, c := range []*apitest.Client{a, b} {
		if n := len(c.Do("GET", "/v2.0/networks?project_id=p1", nil).Items("networks")); n != limit {
			t.Fatalf("a replica lists %d networks, want the quota's %d", n, limit)
		}
	}

	// Bulk creates of two racing for the last three slots: one fits, the
	// others are refused whole.
	a.Must(http.StatusOK, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": limit + 3}})
	rs = race(attempts/2, []*apitest.Client{a, b}, func(c *apitest.Client, i int) *apitest.Response {
		return c.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{
			map[string]any{"name": fmt.Sprint("bulk", i, "a")}, map[string]any{"name": fmt.Sprint("bulk", i, "b")}}})
	})
	if created := countCreated(t, "bulk network create", rs, "OverQuota"); created != 1 {
		t.Fatalf("%d racing bulk creates of 2 succeeded with 3 slots left, want 1", created)
	}
	if n := len(b.Do("GET", "/v2.0/networks?project_id=p1", nil).Items("networks")); n != limit+2 {
		t.Fatalf("%d networks after the bulk race, want %d", n, limit+2)
	}
}

// Two servers racing to add the same rule to a group, spelt differently
// (protocol name or number, no prefix or 0.0.0.0/0): exactly one is made,
// the others get 409 SecurityGroupRuleExists naming it.
func TestReplicasNeverDuplicateARule(t *testing.T) {
	a, b := twoServers(t)
	// With unlimited rules no quota check makes the creates take turns:
	// only the rules' own guard stands between them.
	a.Must(http.StatusOK, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"security_group_rule": -1}})
	sg := a.Create("security-groups", "security_group", map[string]any{"name": "web"})
	sgID := apitest.S(sg["id"])
	const attempts = 20
	rs := race(attempts, []*apitest.Client{a, b}, func(c *apitest.Client, i int) *apitest.Response {
		rule := map[string]any{"security_group_id": sgID, "direction": "ingress", "ethertype": "IPv4",
			"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}
		if i%2 == 1 {
			rule["protocol"] = "6"
		}
		if i%4 >= 2 {
			rule["remote_ip_prefix"] = "0.0.0.0/0"
		}
		return c.Do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule})
	})
	var made string
	var conflicts []*apitest.Response
	for _, r := range rs {
		switch {
		case r.Status == http.StatusCreated:
			if made != "" {
				t.Errorf("rule made twice: %s and %s", made, r.Item("security_group_rule")["id"])
			}
			made = apitest.S(r.Item("security_group_rule")["id"])
		case r.Status == http.StatusConflict && r.ErrorType() == "SecurityGroupRuleExists":
			conflicts = append(conflicts, r)
		default:
			t.Errorf("racing rule create: %d %s", r.Status, r.Raw)
		}
	}
	if made == "" || len(conflicts) != attempts-1 {
		t.Fatalf("rule made %q, %d refused as existing; want one made and %d refused", made, len(conflicts), attempts-1)
	}
	for _, r := range conflicts {
		want := "Security group rule already exists. Rule id is " + made + "."
		if got := message(r); got != want {
			t.Errorf("duplicate refused with %q, want %q", got, want)
		}
	}
	ingress := 0
	for _, r := range b.Do("GET", "/v2.0/security-group-rules?security_group_id="+sgID, nil).Items("security_group_rules") {
		if r["direction"] == "ingress" {
			ingress++
		}
	}
	if ingress != 1 {
		t.Fatalf("group has %d ingress rules after the race, want 1", ingress)
	}
}
