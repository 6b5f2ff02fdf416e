package subnetpool_test

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
	"github.com/neutrino-sdn/neutrino/internal/subnetpool"
)

func createPool(t *testing.T, c *apitest.Client, attrs map[string]any) map[string]any {
	t.Helper()
	if _, ok := attrs["name"]; !ok {
		attrs["name"] = "pool"
	}
	return c.Create("subnetpools", "subnetpool", attrs)
}

func strs(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, apitest.S(e))
	}
	return out
}

func TestCreateFillsNeutronDefaults(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "p1")
	p := createPool(t, admin, map[string]any{"prefixes": []any{"10.11.13.0/24", "10.11.12.13/24"}})
	if got := strs(p["prefixes"]); !slices.Equal(got, []string{"10.11.12.0/23"}) {
		t.Errorf("prefixes not normalized and compacted: %v", got)
	}
	// Neutron shows prefix lengths as strings.
	if p["min_prefixlen"] != "8" || p["max_prefixlen"] != "32" || p["default_prefixlen"] != "8" || apitest.S(p["ip_version"]) != "4" {
		t.Errorf("IPv4 defaults: %v", p)
	}
	if p["is_default"] != false || p["shared"] != false || p["default_quota"] != nil || p["address_scope_id"] != nil || p["project_id"] != "p1" {
		t.Errorf("flags: %v", p)
	}
	v6 := createPool(t, admin, map[string]any{"prefixes": []any{"2001:db8::/32"}, "min_prefixlen": 48})
	if v6["min_prefixlen"] != "48" || v6["max_prefixlen"] != "128" || v6["default_prefixlen"] != "48" || apitest.S(v6["ip_version"]) != "6" {
		t.Errorf("IPv6 pool: %v", v6)
	}
	got := admin.Must(http.StatusOK, "GET", "/v2.0/subnetpools/"+apitest.S(v6["id"]), nil)["subnetpool"].(map[string]any)
	if got["default_prefixlen"] != "48" || !slices.Equal(strs(got["prefixes"]), []string{"2001:db8::/32"}) {
		t.Errorf("show: %v", got)
	}
	list := admin.Do("GET", "/v2.0/subnetpools?ip_version=6", nil).Items("subnetpools")
	if len(list) != 1 || list[0]["id"] != v6["id"] {
		t.Errorf("filter ip_version=6: %v", list)
	}
	list = admin.Do("GET", "/v2.0/subnetpools?min_prefixlen=48", nil).Items("subnetpools")
	if len(list) != 1 || list[0]["id"] != v6["id"] {
		t.Errorf("filter min_prefixlen=48: %v", list)
	}
}

func TestBadPoolsAreRefusedAndNotWritten(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "p1")
	for _, tc := range []struct {
		attrs map[string]any
		typ   string
	}{
		{map[string]any{"prefixes": []any{"10.0.0.0/8", "2001:db8::/32"}}, "PrefixVersionMismatch"},
		{map[string]any{"prefixes": []any{}}, "EmptySubnetPoolPrefixList"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "min_prefixlen": 24, "max_prefixlen": 16}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "max_prefixlen": 33}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "min_prefixlen": 16, "default_prefixlen": 8}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "max_prefixlen": 24, "default_prefixlen": 28}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"prefixes": []any{"bogus"}}, "HTTPBadRequest"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "default_quota": -1}, "HTTPBadRequest"},
		{map[string]any{"prefixes": []any{"10.0.0.0/8"}, "ip_version": 4}, "HTTPBadRequest"},
	} {
		tc.attrs["name"] = "bad"
		r := admin.Do("POST", "/v2.0/subnetpools", map[string]any{"subnetpool": tc.attrs})
		if r.Status != http.StatusBadRequest || r.ErrorType() != tc.typ {
			t.Errorf("%v: %d %s, want 400 %s", tc.attrs, r.Status, r.Raw, tc.typ)
		}
	}
	if n := len(admin.Do("GET", "/v2.0/subnetpools", nil).Items("subnetpools")); n != 0 {
		t.Errorf("%d pools written by failed requests", n)
	}
}

func TestOneDefaultPoolPerIPVersion(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	ctx := context.Background()
	svc := srv.Srv.Service
	pools := subnetpool.New(svc)
	defaultPool := func(v int) (string, error) {
		var id string
		err := svc.DB().View(ctx, func(tx *store.Tx) error {
			var err error
			id, err = pools.DefaultPool(ctx, tx, v)
			return err
		})
		return id, err
	}
	if _, err := defaultPool(4); errType(err) != "BadRequest" || err.(*fault.Error).Message != "Bad subnets request: No default subnetpool found for IPv4." {
		t.Fatalf("no default pool: %v", err)
	}
	d4 := createPool(t, admin, map[string]any{"prefixes": []any{"10.0.0.0/8"}, "is_default": true})
	if d4["is_default"] != true {
		t.Fatalf("is_default not set: %v", d4)
	}
	r := admin.Do("POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []any{"172.16.0.0/12"}, "is_default": true}})
	if r.Status != http.StatusBadRequest || r.ErrorType() != "InvalidInput" {
		t.Fatalf("second IPv4 default: %d %s", r.Status, r.Raw)
	}
	d6 := createPool(t, admin, map[string]any{"prefixes": []any{"2001:db8::/32"}, "is_default": true})
	other := createPool(t, admin, map[string]any{"prefixes": []any{"172.16.0.0/12"}})
	otherPath := "/v2.0/subnetpools/" + apitest.S(other["id"])
	r = admin.Do("PUT", otherPath, map[string]any{"subnetpool": map[string]any{"is_default": true}})
	if r.Status != http.StatusBadRequest || r.ErrorType() != "InvalidInput" {
		t.Fatalf("update to second IPv4 default: %d %s", r.Status, r.Raw)
	}
	if id, err := defaultPool(4); err != nil || id != d4["id"] {
		t.Fatalf("default IPv4 pool = %q, %v; want %v", id, err, d4["id"])
	}
	if id, err := defaultPool(6); err != nil || id != d6["id"] {
		t.Fatalf("default IPv6 pool = %q, %v; want %v", id, err, d6["id"])
	}
	admin.Must(http.StatusOK, "PUT", "/v2.0/subnetpools/"+apitest.S(d4["id"]), map[string]any{"subnetpool": map[string]any{"is_default": false}})
	admin.Must(http.StatusOK, "PUT", otherPath, map[string]any{"subnetpool": map[string]any{"is_default": true}})
	if id, err := defaultPool(4); err != nil || id != other["id"] {
		t.Fatalf("default IPv4 pool after switch = %q, %v", id, err)
	}
	admin.Must(http.StatusNoContent, "DELETE", otherPath, nil)
	if _, err := defaultPool(4); errType(err) != "BadRequest" {
		t.Fatalf("default pool after its deletion: %v", err)
	}
}

func TestUpdateOnlyGrowsPrefixes(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "p1")
	p := createPool(t, admin, map[string]any{"prefixes": []any{"10.11.12.0/24"}, "min_prefixlen": 29})
	path := "/v2.0/subnetpools/" + apitest.S(p["id"])
	update := func(attrs map[string]any) *apitest.Response {
		return admin.Do("PUT", path, map[string]any{"subnetpool": attrs})
	}
	r := update(map[string]any{"prefixes": []any{"10.11.12.0/24", "10.11.15.0/24"}, "min_prefixlen": 28, "max_prefixlen": 30, "name": "grown"})
	got := r.Item("subnetpool")
	if r.Status != http.StatusOK || !slices.Equal(strs(got["prefixes"]), []string{"10.11.12.0/24", "10.11.15.0/24"}) ||
		got["min_prefixlen"] != "28" || got["max_prefixlen"] != "30" || got["default_prefixlen"] != "29" || apitest.S(got["revision_number"]) != "1" {
		t.Fatalf("append: %d %s", r.Status, r.Raw)
	}
	r = update(map[string]any{"prefixes": []any{"10.11.0.0/16"}})
	if got := strs(r.Item("subnetpool")["prefixes"]); r.Status != http.StatusOK || !slices.Equal(got, []string{"10.11.0.0/16"}) {
		t.Fatalf("extend: %d %s", r.Status, r.Raw)
	}
	for _, tc := range []struct {
		attrs map[string]any
		typ   string
	}{
		{map[string]any{"prefixes": []any{"10.11.12.0/24"}}, "IllegalSubnetPoolPrefixUpdate"},
		{map[string]any{"prefixes": []any{}}, "IllegalSubnetPoolPrefixUpdate"},
		{map[string]any{"prefixes": []any{"10.11.0.0/16", "2001:db8::/32"}}, "PrefixVersionMismatch"},
		{map[string]any{"min_prefixlen": 31}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"default_prefixlen": 31}, "IllegalSubnetPoolPrefixBounds"},
		{map[string]any{"shared": true}, "HTTPBadRequest"},
	} {
		r := update(tc.attrs)
		if r.Status != http.StatusBadRequest || r.ErrorType() != tc.typ {
			t.Errorf("update %v: %d %s, want 400 %s", tc.attrs, r.Status, r.Raw, tc.typ)
		}
	}
	got = admin.Must(http.StatusOK, "GET", path, nil)["subnetpool"].(map[string]any)
	if !slices.Equal(strs(got["prefixes"]), []string{"10.11.0.0/16"}) || got["min_prefixlen"] != "28" || apitest.S(got["revision_number"]) != "2" {
		t.Fatalf("failed updates changed the pool: %v", got)
	}
}

func TestPrefixOperations(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "p1")
	p := createPool(t, admin, map[string]any{"prefixes": []any{"192.168.1.0/24", "10.10.10.0/24"}, "min_prefixlen": 16})
	id := apitest.S(p["id"])
	path := "/v2.0/subnetpools/" + id
	prefixes := func(b map[string]any) []string { return strs(b["prefixes"]) }
	b := admin.Must(http.StatusOK, "PUT", path+"/add_prefixes", map[string]any{"prefixes": []any{"192.168.2.0/24"}})
	if got := prefixes(b); !slices.Equal(got, []string{"10.10.10.0/24", "192.168.1.0/24", "192.168.2.0/24"}) {
		t.Fatalf("add_prefixes: %v", got)
	}
	b = admin.Must(http.StatusOK, "PUT", path+"/add_prefixes", map[string]any{"prefixes": []any{"10.10.0.0/16"}})
	if got := prefixes(b); !slices.Equal(got, []string{"10.10.0.0/16", "192.168.1.0/24", "192.168.2.0/24"}) {
		t.Fatalf("add overlapping prefix: %v", got)
	}
	b = admin.Must(http.StatusOK, "PUT", path+"/remove_prefixes", map[string]any{"prefixes": []any{"192.168.2.0/24", "10.10.128.0/17"}})
	if got := prefixes(b); !slices.Equal(got, []string{"10.10.0.0/17", "192.168.1.0/24"}) {
		t.Fatalf("remove_prefixes: %v", got)
	}
	// Removing what the pool does not hold changes nothing.
	b = admin.Must(http.StatusOK, "PUT", path+"/remove_prefixes", map[string]any{"prefixes": []any{"172.16.0.0/12"}})
	if got := prefixes(b); !slices.Equal(got, []string{"10.10.0.0/17", "192.168.1.0/24"}) {
		t.Fatalf("remove absent prefix: %v", got)
	}
	for _, body := range []any{map[string]any{}, map[string]any{"prefixes": []any{}}, map[string]any{"prefixes": "10.0.0.0/8"}, map[string]any{"prefixes": []any{"nope"}}} {
		if r := admin.Do("PUT", path+"/add_prefixes", body); r.Status != http.StatusBadRequest {
			t.Errorf("add_prefixes %v: %d %s", body, r.Status, r.Raw)
		}
	}
	if r := admin.Do("PUT", path+"/add_prefixes", map[string]any{"prefixes": []any{"2001:db8::/32"}}); r.Status != http.StatusBadRequest || r.ErrorType() != "PrefixVersionMismatch" {
		t.Errorf("add IPv6 prefix to IPv4 pool: %d %s", r.Status, r.Raw)
	}

	// A prefix in use by a subnet cannot be removed, nor the pool deleted.
	env := newEnv(t, srv)
	if _, err := env.allocate(env.admin, id, 4, "10.10.1.0/24", 0); err != nil {
		t.Fatal(err)
	}
	r := admin.Do("PUT", path+"/remove_prefixes", map[string]any{"prefixes": []any{"10.10.0.0/20"}})
	if r.Status != http.StatusBadRequest || r.ErrorType() != "IllegalSubnetPoolPrefixUpdate" {
		t.Fatalf("remove prefix in use: %d %s", r.Status, r.Raw)
	}
	r = admin.Do("DELETE", path, nil)
	if r.Status != http.StatusBadRequest || r.ErrorType() != "SubnetPoolDeleteError" {
		t.Fatalf("delete pool in use: %d %s", r.Status, r.Raw)
	}
	if got := strs(admin.Must(http.StatusOK, "GET", path, nil)["subnetpool"].(map[string]any)["prefixes"]); !slices.Equal(got, []string{"10.10.0.0/17", "192.168.1.0/24"}) {
		t.Fatalf("refused removal changed the pool: %v", got)
	}
	if r := admin.Do("DELETE", "/v2.0/subnetpools/"+service.NewID(), nil); r.Status != http.StatusNotFound || r.ErrorType() != "SubnetPoolNotFound" {
		t.Fatalf("delete missing pool: %d %s", r.Status, r.Raw)
	}
	empty := createPool(t, admin, map[string]any{"prefixes": []any{"10.0.0.0/8"}})
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/subnetpools/"+apitest.S(empty["id"]), nil)
}

func TestSharedPoolsAreVisibleToAll(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	svc := srv.Srv.Service
	ctx := context.Background()
	pools := svc.Registry().ByPlural("subnetpools")
	private := createPool(t, admin, map[string]any{"prefixes": []any{"10.0.0.0/8"}})
	shared := createPool(t, admin, map[string]any{"prefixes": []any{"172.16.0.0/12"}, "shared": true})
	other := member("p2")
	if _, err := svc.Show(ctx, other, pools, apitest.S(private["id"])); errType(err) != "SubnetPoolNotFound" {
		t.Errorf("another project's pool: %v", err)
	}
	got, err := svc.Show(ctx, other, pools, apitest.S(shared["id"]))
	if err != nil || got["shared"] != true {
		t.Errorf("shared pool: %v %v", got, err)
	}
	page, err := svc.List(ctx, other, pools, &service.Query{})
	if err != nil || len(page.Items) != 1 || page.Items[0]["id"] != shared["id"] {
		t.Errorf("list as member: %v %v", page, err)
	}
	if _, err := svc.Update(ctx, other, pools, apitest.S(shared["id"]), map[string]any{"name": "mine"}, service.AnyRevision); errType(err) != "PolicyNotAuthorized" {
		t.Errorf("member updates admin's shared pool: %v", err)
	}
	for _, attrs := range []map[string]any{{"shared": true}, {"is_default": true}} {
		attrs["name"], attrs["prefixes"] = "x", []any{"192.168.0.0/16"}
		if _, err := svc.Create(ctx, other, pools, []map[string]any{attrs}); errType(err) != "PolicyNotAuthorized" {
			t.Errorf("member creates %v: %v", attrs, err)
		}
	}
	mine, err := svc.Create(ctx, other, pools, []map[string]any{{"name": "mine", "prefixes": []any{"192.168.0.0/16"}}})
	if err != nil || mine[0]["project_id"] != "p2" {
		t.Fatalf("member creates own pool: %v %v", mine, err)
	}
	if _, err := svc.Update(ctx, other, pools, apitest.S(mine[0]["id"]), map[string]any{"is_default": true}, service.AnyRevision); errType(err) != "PolicyNotAuthorized" {
		t.Errorf("member makes own pool default: %v", err)
	}
}

func member(project string) *service.Call {
	return &service.Call{ID: &auth.Identity{UserID: "u-" + project, ProjectID: project, Roles: []string{auth.RoleMember}}, Project: project}
}

func errType(err error) string {
	if fe, ok := fault.As(err); ok {
		return fe.Type
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// env allocates prefixes as the subnet code will: AllocatePrefix, then the
// subnet row, in one transaction.
type env struct {
	t       *testing.T
	svc     *service.Service
	pools   *subnetpool.Plugin
	subnets *resource.Resource
	netID   string
	admin   *service.Call
}

func newEnv(t *testing.T, srv *apitest.Server) *env {
	c := srv.Client(t, "admin")
	n := c.Create("networks", "network", map[string]any{"name": "net"})
	svc := srv.Srv.Service
	return &env{t: t, svc: svc, pools: subnetpool.New(svc), subnets: svc.Registry().ByPlural("subnets"),
		netID: apitest.S(n["id"]), admin: &service.Call{ID: &auth.Identity{UserID: "admin", ProjectID: "admin", Roles: []string{auth.RoleAdmin}, IsAdmin: true}, Project: "admin"}}
}

func (e *env) allocate(c *service.Call, poolID string, ipVersion int, cidr string, prefixLen int) (netip.Prefix, error) {
	ctx := context.Background()
	var got netip.Prefix
	err := e.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		p, err := e.pools.AllocatePrefix(ctx, tx, c, poolID, ipVersion, cidr, prefixLen)
		if err != nil {
			return err
		}
		got = p
		return tx.Insert(ctx, e.subnets, resource.Object{
			"id": service.NewID(), "project_id": c.Project, "tenant_id": c.Project, "name": "",
			"network_id": e.netID, "ip_version": int64(ipVersion), "cidr": p.String(), "subnetpool_id": poolID,
		})
	})
	return got, err
}
