package subnetpool_test

import (
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// Subnets created through the API take their prefixes from the pool.
func TestSubnetsFromPool(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	pool := createPool(t, c, map[string]any{"prefixes": []any{"10.11.12.0/24"}, "min_prefixlen": 28, "max_prefixlen": 30, "default_prefixlen": 29})
	poolID := apitest.S(pool["id"])
	netID := apitest.S(c.Create("networks", "network", map[string]any{"name": "n"})["id"])
	subnet := func(attrs map[string]any) *apitest.Response {
		attrs["network_id"], attrs["ip_version"] = netID, 4
		if _, ok := attrs["use_default_subnetpool"]; !ok {
			attrs["subnetpool_id"] = poolID
		}
		return c.Do("POST", "/v2.0/subnets", map[string]any{"subnet": attrs})
	}
	var ids []string
	for _, tc := range []struct {
		attrs map[string]any
		cidr  string
	}{
		{map[string]any{}, "10.11.12.0/29"},
		{map[string]any{"prefixlen": 30}, "10.11.12.8/30"},
		{map[string]any{"cidr": "10.11.12.128/28"}, "10.11.12.128/28"},
	} {
		r := subnet(tc.attrs)
		s := r.Item("subnet")
		if r.Status != http.StatusCreated || s["cidr"] != tc.cidr || s["subnetpool_id"] != poolID {
			t.Fatalf("subnet %v: %d %s, want cidr %s", tc.attrs, r.Status, r.Raw, tc.cidr)
		}
		ids = append(ids, apitest.S(s["id"]))
	}
	for _, tc := range []struct {
		attrs  map[string]any
		status int
		typ    string
	}{
		{map[string]any{"cidr": "10.11.12.128/28"}, http.StatusConflict, "SubnetAllocationError"},
		{map[string]any{"prefixlen": 24}, http.StatusBadRequest, "MinPrefixSubnetAllocationError"},
		{map[string]any{"use_default_subnetpool": true}, http.StatusBadRequest, "BadRequest"},
	} {
		if r := subnet(tc.attrs); r.Status != tc.status || r.ErrorType() != tc.typ {
			t.Errorf("subnet %v: %d %s, want %d %s", tc.attrs, r.Status, r.Raw, tc.status, tc.typ)
		}
	}
	r := c.Do("DELETE", "/v2.0/subnetpools/"+poolID, nil)
	if r.Status != http.StatusBadRequest || r.ErrorType() != "SubnetPoolDeleteError" {
		t.Fatalf("delete pool in use: %d %s", r.Status, r.Raw)
	}
	srv.Client(t, "admin").Must(http.StatusOK, "PUT", "/v2.0/subnetpools/"+poolID, map[string]any{"subnetpool": map[string]any{"is_default": true}})
	r = subnet(map[string]any{"use_default_subnetpool": true})
	if s := r.Item("subnet"); r.Status != http.StatusCreated || s["subnetpool_id"] != poolID || s["cidr"] != "10.11.12.16/29" {
		t.Fatalf("subnet from the default pool: %d %s", r.Status, r.Raw)
	}
	ids = append(ids, apitest.S(r.Item("subnet")["id"]))
	for _, id := range ids {
		c.Must(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+id, nil)
	}
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/subnetpools/"+poolID, nil)
}

// Many clients creating subnets from one pool at once get disjoint
// prefixes.
func TestConcurrentSubnetsFromPool(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	pool := createPool(t, c, map[string]any{"prefixes": []any{"10.0.0.0/22"}, "min_prefixlen": 26, "max_prefixlen": 28})
	poolID := apitest.S(pool["id"])
	netID := apitest.S(c.Create("networks", "network", map[string]any{"name": "n"})["id"])
	const clients = 40
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		cidrs []netip.Prefix
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.Do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
				"network_id": netID, "ip_version": 4, "subnetpool_id": poolID, "prefixlen": 26 + i%3, "enable_dhcp": false}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == http.StatusCreated:
				cidrs = append(cidrs, netip.MustParsePrefix(apitest.S(r.Item("subnet")["cidr"])))
			case r.ErrorType() != "SubnetAllocationError":
				t.Errorf("subnet: %d %s", r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	// Connections the client dialed but never used would hold up the
	// server's graceful shutdown.
	http.DefaultClient.CloseIdleConnections()
	for i, p := range cidrs {
		for _, q := range cidrs[:i] {
			if p.Overlaps(q) {
				t.Errorf("subnets %s and %s overlap", p, q)
			}
		}
	}
	if len(cidrs) < 15 {
		t.Errorf("only %d subnets from a /22 in /26../28 pieces", len(cidrs))
	}
}
