package service_test

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

func TestQuotas(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	q := admin.Must(200, "GET", "/v2.0/quotas/p1", nil)["quota"].(map[string]any)
	if apitest.S(q["network"]) != "100" || apitest.S(q["port"]) != "500" {
		t.Fatalf("default quota: %v", q)
	}
	admin.Must(200, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": 2}})
	p1 := srv.Client(t, "p1")
	p1.Create("networks", "network", map[string]any{"name": "a"})
	p1.Create("networks", "network", map[string]any{"name": "b"})
	r := p1.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "c"}})
	if r.Status != http.StatusConflict || r.ErrorType() != "OverQuota" {
		t.Fatalf("over quota: %d %s", r.Status, r.Raw)
	}
	// A bulk create that would cross the limit writes nothing.
	admin.Must(200, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": 3}})
	r = p1.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{map[string]any{"name": "d"}, map[string]any{"name": "e"}}})
	if r.Status != http.StatusConflict {
		t.Fatalf("bulk over quota: %d %s", r.Status, r.Raw)
	}
	list := p1.Do("GET", "/v2.0/networks?project_id=p1", nil).Items("networks")
	if len(list) != 2 {
		t.Fatalf("bulk wrote %d networks, want 2 left", len(list))
	}
	d := admin.Must(200, "GET", "/v2.0/quotas/p1/details", nil)["quota"].(map[string]any)
	nd := d["network"].(map[string]any)
	if apitest.S(nd["used"]) != "2" || apitest.S(nd["limit"]) != "3" {
		t.Fatalf("details: %v", d)
	}
	qs := admin.Do("GET", "/v2.0/quotas", nil).Items("quotas")
	if len(qs) != 1 || qs[0]["project_id"] != "p1" {
		t.Fatalf("quota list: %v", qs)
	}
	if r := admin.Do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"bogus": 1}}); r.Status != 400 {
		t.Fatalf("unknown quota resource: %d %s", r.Status, r.Raw)
	}
	// Limits are 32-bit, as Neutron's: 2147483647 is the largest.
	admin.Must(200, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"security_group": 2147483647}})
	for _, bad := range []any{2147483648, -2} {
		if r := admin.Do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"security_group": bad}}); r.Status != 400 {
			t.Errorf("quota %v: %d %s", bad, r.Status, r.Raw)
		}
	}
	if r := admin.Do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": "lots"}}); r.Status != 400 {
		t.Fatalf("non-integer quota: %d %s", r.Status, r.Raw)
	}
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/quotas/p1", nil)
	q = admin.Must(200, "GET", "/v2.0/quotas/p1", nil)["quota"].(map[string]any)
	if apitest.S(q["network"]) != "100" {
		t.Fatalf("quota after reset: %v", q)
	}
}

// Concurrent creates against a quota make exactly the quota's worth; the
// rest are refused with 409 OverQuota.
func TestQuotaHoldsUnderConcurrency(t *testing.T) {
	srv := apitest.Start(t)
	srv.Client(t, "admin").Must(200, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": 3}})
	p1 := srv.Client(t, "p1")
	const attempts = 20
	responses := make(chan *apitest.Response, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			responses <- p1.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": fmt.Sprint("n", i)}})
		}()
	}
	wg.Wait()
	close(responses)
	created := 0
	for r := range responses {
		switch {
		case r.Status == http.StatusCreated:
			created++
		case r.Status != http.StatusConflict || r.ErrorType() != "OverQuota":
			t.Errorf("concurrent create: %d %s", r.Status, r.Raw)
		}
	}
	if created != 3 {
		t.Fatalf("%d of %d concurrent creates succeeded against a quota of 3", created, attempts)
	}
	if n := len(p1.Do("GET", "/v2.0/networks?project_id=p1", nil).Items("networks")); n != 3 {
		t.Fatalf("%d networks, want 3", n)
	}
}

func TestTags(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	n := c.Create("networks", "network", map[string]any{"name": "tagged"})
	other := c.Create("networks", "network", map[string]any{"name": "plain"})
	id := apitest.S(n["id"])
	base := "/v2.0/networks/" + id + "/tags"
	c.Must(http.StatusCreated, "PUT", base+"/red", nil)
	got := c.Must(200, "PUT", base, map[string]any{"tags": []any{"blue", "red", "green"}})["tags"].([]any)
	if len(got) != 3 {
		t.Fatalf("replace tags: %v", got)
	}
	c.Must(http.StatusNoContent, "GET", base+"/blue", nil)
	if r := c.Do("GET", base+"/pink", nil); r.Status != 404 {
		t.Fatalf("absent tag: %d", r.Status)
	}
	c.Must(http.StatusNoContent, "DELETE", base+"/green", nil)
	net := c.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	tags := []string{}
	for _, x := range net["tags"].([]any) {
		tags = append(tags, x.(string))
	}
	sort.Strings(tags)
	if len(tags) != 2 || tags[0] != "blue" || tags[1] != "red" || apitest.S(net["revision_number"]) == "0" {
		t.Fatalf("network tags after changes: %v (revision %v)", tags, net["revision_number"])
	}
	for q, want := range map[string]int{"tags=blue,red": 1, "tags-any=red,pink": 1, "not-tags=blue": 1, "not-tags-any=pink": 2} {
		if l := c.Do("GET", "/v2.0/networks?"+q, nil).Items("networks"); len(l) != want {
			t.Errorf("%s: %d networks, want %d", q, len(l), want)
		}
	}
	if r := c.Do("PUT", base+"/"+string(make([]byte, 0))+"a,b", nil); r.Status != 400 {
		t.Errorf("tag with comma: %d %s", r.Status, r.Raw)
	}
	c.Must(http.StatusNoContent, "DELETE", base, nil)
	if l := c.Must(200, "GET", base, nil)["tags"].([]any); len(l) != 0 {
		t.Fatalf("tags after delete all: %v", l)
	}
	_ = other
}

func TestFiltersFieldsAndBulk(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	r := c.Must(http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"networks": []any{
		map[string]any{"name": "x", "admin_state_up": false}, map[string]any{"name": "y"}, map[string]any{"name": "z"},
	}})
	if l := r["networks"].([]any); len(l) != 3 {
		t.Fatalf("bulk create: %v", r)
	}
	if l := c.Do("GET", "/v2.0/networks?name=x&name=y", nil).Items("networks"); len(l) != 2 {
		t.Errorf("list filter on two names: %d", len(l))
	}
	if l := c.Do("GET", "/v2.0/networks?admin_state_up=False", nil).Items("networks"); len(l) != 1 || l[0]["name"] != "x" {
		t.Errorf("boolean filter: %v", l)
	}
	l := c.Do("GET", "/v2.0/networks?fields=id&fields=name&sort_key=name&sort_dir=desc", nil).Items("networks")
	if len(l) != 3 || l[0]["name"] != "z" || len(l[0]) != 2 {
		t.Errorf("fields + sort: %v", l)
	}
	// A bulk create with one invalid item writes nothing.
	bad := c.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{map[string]any{"name": "ok"}, map[string]any{"mtu": "huge"}}})
	if bad.Status != 400 {
		t.Fatalf("bulk with a bad item: %d %s", bad.Status, bad.Raw)
	}
	if l := c.Do("GET", "/v2.0/networks?name=ok", nil).Items("networks"); len(l) != 0 {
		t.Fatalf("half-written bulk create: %v", l)
	}
	// A bulk create whose second item fails inside the transaction (the
	// same VLAN twice) rolls back the first.
	vlan := map[string]any{"name": "v", "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 77}
	bad = c.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{vlan, vlan}})
	if bad.Status != http.StatusConflict || bad.ErrorType() != "VlanIdInUse" {
		t.Fatalf("bulk with a conflicting item: %d %s", bad.Status, bad.Raw)
	}
	if l := c.Do("GET", "/v2.0/networks?name=v", nil).Items("networks"); len(l) != 0 {
		t.Fatalf("half-written bulk create: %v", l)
	}
	c.Create("networks", "network", vlan) // the VLAN is free again
	one := c.Do("GET", "/v2.0/networks/"+apitest.S(l[0]["id"])+"?fields=name", nil).Item("network")
	if len(one) != 1 || one["name"] != "z" {
		t.Errorf("show with fields: %v", one)
	}
}
