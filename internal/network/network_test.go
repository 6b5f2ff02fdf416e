package network_test

import (
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

func TestNetworkLifecycle(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	n := admin.Create("networks", "network", map[string]any{"name": "n1"})
	if n["provider:network_type"] != "vxlan" || apitest.S(n["mtu"]) != "1450" || n["status"] != "ACTIVE" {
		t.Fatalf("tenant network: %v", n)
	}
	id := apitest.S(n["id"])
	up := admin.Must(http.StatusOK, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "n2"}})
	if got := up["network"].(map[string]any); got["name"] != "n2" || apitest.S(got["revision_number"]) != "1" {
		t.Fatalf("update: %v", got)
	}
	// If-Match with a stale revision is refused.
	admin.Header.Set("If-Match", "revision_number=0")
	if r := admin.Do("PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "x"}}); r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d %s", r.Status, r.Raw)
	}
	admin.Header.Del("If-Match")
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+id, nil)
	if r := admin.Do("GET", "/v2.0/networks/"+id, nil); r.Status != 404 || r.ErrorType() != "NetworkNotFound" {
		t.Fatalf("deleted network: %d %s", r.Status, r.Raw)
	}
}

func TestProviderSegmentsAreUnique(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	admin.Create("networks", "network", map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100})
	r := admin.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100}})
	if r.Status != http.StatusConflict || r.ErrorType() != "VlanIdInUse" {
		t.Fatalf("duplicate VLAN: %d %s", r.Status, r.Raw)
	}
	admin.Create("networks", "network", map[string]any{"provider:network_type": "flat", "provider:physical_network": "public"})
	r = admin.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "flat", "provider:physical_network": "public"}})
	if r.Status != http.StatusConflict || r.ErrorType() != "FlatNetworkInUse" {
		t.Fatalf("duplicate flat: %d %s", r.Status, r.Raw)
	}
	r = admin.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 1 << 25}})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("VNI out of range: %d %s", r.Status, r.Raw)
	}
}

func TestSharingThroughRBAC(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	n := admin.Create("networks", "network", map[string]any{"name": "mine", "project_id": "p1"})
	id := apitest.S(n["id"])
	// noauth callers are admins; the visibility rules are tested in the
	// keystone tests. Here: the RBAC entry makes the network shared.
	rb := admin.Create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "*"})
	got := admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["shared"] != true {
		t.Fatalf("network not shared after RBAC: %v", got)
	}
	r := admin.Do("POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "*"}})
	if r.Status != http.StatusConflict {
		t.Fatalf("duplicate rbac: %d %s", r.Status, r.Raw)
	}
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+apitest.S(rb["id"]), nil)
	got = admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["shared"] != false {
		t.Fatalf("network still shared: %v", got)
	}
}

func TestBadInputIs400(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	for _, body := range []string{`{`, `[]`, `{"network": 5}`, `{"network": {"admin_state_up": "maybe"}}`, `{"network": {"bogus": 1}}`, `{"network": {"status": "DOWN"}}`, `{"network": {"name": 7}}`} {
		r := admin.Do("POST", "/v2.0/networks", body)
		if r.Status != http.StatusBadRequest || r.ErrorType() == "" {
			t.Errorf("body %s: %d %s", body, r.Status, r.Raw)
		}
	}
	if r := admin.Do("GET", "/v2.0/networks?bogus=1", nil); r.Status != http.StatusBadRequest {
		t.Errorf("unknown filter: %d %s", r.Status, r.Raw)
	}
	if r := admin.Do("GET", "/v2.0/networks?sort_key=bogus", nil); r.Status != http.StatusBadRequest {
		t.Errorf("unknown sort key: %d %s", r.Status, r.Raw)
	}
}

func TestPaginationLinks(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		admin.Create("networks", "network", map[string]any{"name": n})
	}
	r := admin.Do("GET", "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc", nil)
	items := r.Items("networks")
	if len(items) != 2 || items[0]["name"] != "a" || items[1]["name"] != "b" {
		t.Fatalf("first page: %s", r.Raw)
	}
	links, _ := r.Body["networks_links"].([]any)
	if len(links) != 1 {
		t.Fatalf("links: %s", r.Raw)
	}
	r2 := admin.Do("GET", "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc&marker="+apitest.S(items[1]["id"]), nil)
	items = r2.Items("networks")
	if len(items) != 2 || items[0]["name"] != "c" {
		t.Fatalf("second page: %s", r2.Raw)
	}
}
