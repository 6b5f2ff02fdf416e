package network_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/service"
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
	// Any revision but the current one is refused, -1 included.
	admin.Header.Set("If-Match", "revision_number=-1")
	if r := admin.Do("PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "x"}}); r.Status != http.StatusPreconditionFailed || r.ErrorType() != "RevisionNumberConstraintFailed" {
		t.Fatalf("If-Match -1: %d %s", r.Status, r.Raw)
	}
	admin.Header.Set("If-Match", "revision_number=1")
	admin.Must(http.StatusOK, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "n3"}})
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
	revision := func() int64 {
		t.Helper()
		n := admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
		r, err := strconv.ParseInt(apitest.S(n["revision_number"]), 10, 64)
		if err != nil {
			t.Fatalf("revision_number: %v", n)
		}
		return r
	}
	rev := revision()
	rb := admin.Create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "*"})
	got := admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["shared"] != true {
		t.Fatalf("network not shared after RBAC: %v", got)
	}
	// A policy changes who may use the network: the network's revision
	// moves. Policies themselves carry no revision_number, as in Neutron.
	if r := revision(); r <= rev {
		t.Fatalf("revision %d after an RBAC policy, was %d", r, rev)
	}
	if _, ok := rb["revision_number"]; ok {
		t.Fatalf("rbac policy shows a revision: %v", rb)
	}
	tp := admin.Create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "p2"})
	up := admin.Must(200, "PUT", "/v2.0/rbac-policies/"+apitest.S(tp["id"]), map[string]any{"rbac_policy": map[string]any{"target_tenant": "p3"}})["rbac_policy"].(map[string]any)
	delete(tp, "target_tenant")
	delete(up, "target_tenant")
	if !reflect.DeepEqual(tp, up) {
		t.Fatalf("update changed more than the target: %v, was %v", up, tp)
	}
	rev = revision()
	r := admin.Do("POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "*"}})
	if r.Status != http.StatusConflict {
		t.Fatalf("duplicate rbac: %d %s", r.Status, r.Raw)
	}
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+apitest.S(rb["id"]), nil)
	got = admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["shared"] != false {
		t.Fatalf("network still shared: %v", got)
	}
	if r := revision(); r <= rev {
		t.Fatalf("revision %d after deleting an RBAC policy, was %d", r, rev)
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
	// As in Neutron: a full page links both ways.
	if l := links(t, r); l["next"] == "" || l["previous"] == "" {
		t.Fatalf("links: %s", r.Raw)
	}
	r2 := admin.Do("GET", "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc&marker="+apitest.S(items[1]["id"]), nil)
	items = r2.Items("networks")
	if len(items) != 2 || items[0]["name"] != "c" {
		t.Fatalf("second page: %s", r2.Raw)
	}

	// Walking with limit=1: the page holding the last item still links
	// onwards; the page after it is empty, has no next link, and its
	// previous link leads back to the last item.
	next := "/v2.0/networks?limit=1&sort_key=name&sort_dir=asc"
	var names []any
	var last map[string]string
	for range 5 {
		r := admin.Do("GET", next, nil)
		items := r.Items("networks")
		if len(items) != 1 {
			t.Fatalf("page %d: %s", len(names), r.Raw)
		}
		names = append(names, items[0]["name"])
		last = links(t, r)
		next = last["next"]
	}
	if next == "" {
		t.Fatalf("the page with the last item has no next link")
	}
	r3 := admin.Do("GET", next, nil)
	if l := links(t, r3); len(r3.Items("networks")) != 0 || l["next"] != "" || l["previous"] == "" {
		t.Fatalf("page after the last: %s", r3.Raw)
	}
	back := admin.Do("GET", links(t, r3)["previous"], nil)
	if items := back.Items("networks"); len(items) != 1 || items[0]["name"] != "e" {
		t.Fatalf("back from the empty page: %s", back.Raw)
	}
	if names[0] != "a" || names[4] != "e" {
		t.Fatalf("walk: %v", names)
	}
}

// links returns a list response's links by rel, as paths.
func links(t *testing.T, r *apitest.Response) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range []string{"networks_links"} {
		l, _ := r.Body[k].([]any)
		for _, e := range l {
			m := e.(map[string]any)
			u, err := url.Parse(apitest.S(m["href"]))
			if err != nil {
				t.Fatalf("link %v: %v", m, err)
			}
			out[apitest.S(m["rel"])] = u.RequestURI()
		}
	}
	return out
}

// TestExternalPolicyInUseByRouterGateway: a router's gateway port belongs
// to no project, yet the router's project depends on the network's
// access_as_external entry: removing the entry it relies on is refused.
func TestExternalPolicyInUseByRouterGateway(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	n := admin.Create("networks", "network", map[string]any{"name": "ext", "project_id": "p1"})
	id := apitest.S(n["id"])
	admin.Create("subnets", "subnet", map[string]any{"network_id": id, "ip_version": 4, "cidr": "203.0.113.0/24", "enable_dhcp": false})
	wildcard := admin.Create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": id, "action": "access_as_external", "target_tenant": "*"})
	tenant := srv.Client(t, "p2")
	router := tenant.Create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": id}})

	inUse := func(policy map[string]any) {
		t.Helper()
		r := admin.Do("DELETE", "/v2.0/rbac-policies/"+apitest.S(policy["id"]), nil)
		if r.Status != http.StatusConflict || r.ErrorType() != "RbacPolicyInUse" {
			t.Fatalf("delete %v: %d %s", policy["target_tenant"], r.Status, r.Raw)
		}
	}
	inUse(wildcard)
	// Retargeting the wildcard: to a project that has no router there
	// takes the router's access away; to the router's project keeps it.
	retarget := func(policy map[string]any, target string) *apitest.Response {
		return admin.Do("PUT", "/v2.0/rbac-policies/"+apitest.S(policy["id"]), map[string]any{"rbac_policy": map[string]any{"target_tenant": target}})
	}
	if r := retarget(wildcard, "p3"); r.Status != http.StatusConflict || r.ErrorType() != "RbacPolicyInUse" {
		t.Fatalf("retarget to p3: %d %s", r.Status, r.Raw)
	}
	if r := retarget(wildcard, "p2"); r.Status != http.StatusOK {
		t.Fatalf("retarget to p2: %d %s", r.Status, r.Raw)
	}
	if r := retarget(wildcard, "*"); r.Status != http.StatusOK {
		t.Fatalf("retarget back to *: %d %s", r.Status, r.Raw)
	}
	own := admin.Create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": id, "action": "access_as_external", "target_tenant": "p2"})
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+apitest.S(wildcard["id"]), nil)
	inUse(own)
	tenant.Must(http.StatusNoContent, "DELETE", "/v2.0/routers/"+apitest.S(router["id"]), nil)
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+apitest.S(own["id"]), nil)
}

// TestDefaultExternalNetwork: one external network may be the default; it
// stays external to everyone, and only external networks are default.
func TestDefaultExternalNetwork(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	ext := admin.Create("networks", "network", map[string]any{"name": "public", "router:external": true, "is_default": true})
	if ext["is_default"] != true {
		t.Fatalf("default external network: %v", ext)
	}
	if r := admin.Do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"router:external": true, "is_default": true}}); r.Status != http.StatusConflict || r.ErrorType() != "DefaultExternalNetworkExists" {
		t.Fatalf("second default: %d %s", r.Status, r.Raw)
	}
	internal := admin.Create("networks", "network", map[string]any{"name": "private", "is_default": true})
	if internal["is_default"] != false {
		t.Fatalf("internal network made default: %v", internal)
	}
	id := apitest.S(ext["id"])
	policies := admin.Do("GET", "/v2.0/rbac-policies?action=access_as_external&target_tenant=*&object_id="+id, nil).Items("rbac_policies")
	if len(policies) != 1 {
		t.Fatalf("wildcard: %v", policies)
	}
	r := admin.Do("DELETE", "/v2.0/rbac-policies/"+apitest.S(policies[0]["id"]), nil)
	if r.Status != http.StatusConflict || r.ErrorType() != "RbacPolicyInUse" {
		t.Fatalf("delete the default's wildcard: %d %s", r.Status, r.Raw)
	}
	// Members may not choose the default.
	member := &service.Call{ID: &auth.Identity{ProjectID: "p1", Roles: []string{auth.RoleMember, auth.RoleReader}}, Project: "p1"}
	nets := srv.Srv.Service.Registry().ByPlural("networks")
	_, err := srv.Srv.Service.Create(context.Background(), member, nets, []map[string]any{{"router:external": false, "is_default": true}})
	if fe, ok := fault.As(err); !ok || fe.Type != "PolicyNotAuthorized" {
		t.Fatalf("member sets is_default: %v", err)
	}
	// No longer the default, the network gives its wildcard up.
	admin.Must(200, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"is_default": false}})
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+apitest.S(policies[0]["id"]), nil)
	got := admin.Must(200, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["router:external"] != false || got["is_default"] != false {
		t.Fatalf("after the wildcard went: %v", got)
	}
	// Updating an internal network to default changes nothing.
	up := admin.Must(200, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"is_default": true}})["network"].(map[string]any)
	if up["is_default"] != false {
		t.Fatalf("internal network updated to default: %v", up)
	}
}
