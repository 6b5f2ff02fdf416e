package server_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// cloud is a keystone-mode server with the callers of a small cloud: the
// admin, members of two projects, a reader of the first project and a
// member of a third project.
type cloud struct {
	srv                        *apitest.Server
	ks                         *testenv.Keystone
	admin, alice, bob          *apitest.Client
	rita, carol, anonymous     *apitest.Client
	projA, projB, adminProject string
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	ks, ids := sharedKeystone(t)
	c := &cloud{ks: ks, adminProject: ks.AdminProjectID, projA: ids.projA, projB: ids.projB}
	c.srv = apitest.Start(t, apitest.WithKeystone(ks.URL))
	as := func(user, project string) *apitest.Client {
		cl := c.srv.Client(t, "")
		cl.Token = ks.Token(t, user, user+"-secret", project)
		return cl
	}
	c.admin = c.srv.Client(t, "")
	c.admin.Token = ks.AdminToken(t)
	c.alice, c.rita = as("alice", "project-a"), as("rita", "project-a")
	c.bob, c.carol = as("bob", "project-b"), as("carol", "project-c")
	c.anonymous = c.srv.Client(t, "")
	return c
}

// ids returns the ids of a list response's items.
func ids(r *apitest.Response, plural string) []string {
	var out []string
	for _, it := range r.Items(plural) {
		out = append(out, apitest.S(it["id"]))
	}
	slices.Sort(out)
	return out
}

func wantError(t *testing.T, r *apitest.Response, status int, typ string) {
	t.Helper()
	if r.Status != status || r.ErrorType() != typ {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, typ)
	}
}

func netBody(attrs map[string]any) map[string]any { return map[string]any{"network": attrs} }

func TestKeystoneRejectsMissingAndInvalidTokens(t *testing.T) {
	c := newCloud(t)
	revoked := c.ks.Token(t, "alice", "alice-secret", "project-a")
	c.ks.RevokeToken(t, revoked)
	for name, tok := range map[string]string{"no token": "", "garbage token": "gAAAAAB-not-a-token", "revoked token": revoked} {
		cl := c.srv.Client(t, c.projA) // X-Project-Id means nothing in keystone mode
		cl.Token = tok
		for _, req := range []struct{ method, path string }{
			{"GET", "/v2.0/networks"}, {"POST", "/v2.0/networks"}, {"GET", "/v2.0/extensions"},
		} {
			var body any
			if req.method == "POST" {
				body = netBody(map[string]any{"name": "x"})
			}
			r := cl.Do(req.method, req.path, body)
			if r.Status != http.StatusUnauthorized || r.ErrorType() != "HTTPUnauthorized" {
				t.Errorf("%s: %s %s: got %d %s, want 401 HTTPUnauthorized", name, req.method, req.path, r.Status, r.Raw)
			}
		}
	}
	// Version discovery needs no token, as in Neutron.
	c.anonymous.Must(http.StatusOK, "GET", "/", nil)
	// Nothing was created by the refused requests.
	if r := c.admin.Do("GET", "/v2.0/networks", nil); len(r.Items("networks")) != 0 {
		t.Fatalf("refused requests created networks: %s", r.Raw)
	}
}

func TestKeystoneProjectsAreIsolated(t *testing.T) {
	c := newCloud(t)
	netA := c.alice.Create("networks", "network", map[string]any{"name": "a-net"})
	netB := c.bob.Create("networks", "network", map[string]any{"name": "b-net"})
	idA, idB := apitest.S(netA["id"]), apitest.S(netB["id"])
	if netA["project_id"] != c.projA || netA["tenant_id"] != c.projA || netB["project_id"] != c.projB {
		t.Fatalf("owners come from the tokens: a %v, b %v", netA["project_id"], netB["project_id"])
	}
	if got := ids(c.alice.Do("GET", "/v2.0/networks", nil), "networks"); !slices.Equal(got, []string{idA}) {
		t.Fatalf("alice lists %v, want only her network %s", got, idA)
	}
	if got := ids(c.bob.Do("GET", "/v2.0/networks", nil), "networks"); !slices.Equal(got, []string{idB}) {
		t.Fatalf("bob lists %v, want only his network %s", got, idB)
	}
	// Filtering on the other project's id finds nothing either.
	if got := ids(c.alice.Do("GET", "/v2.0/networks?project_id="+c.projB, nil), "networks"); len(got) != 0 {
		t.Fatalf("alice filtering on project b lists %v", got)
	}
	// The other project's network does not exist for alice: 404, not 403.
	wantError(t, c.alice.Do("GET", "/v2.0/networks/"+idB, nil), http.StatusNotFound, "NetworkNotFound")
	wantError(t, c.alice.Do("PUT", "/v2.0/networks/"+idB, netBody(map[string]any{"name": "mine now"})), http.StatusNotFound, "NetworkNotFound")
	wantError(t, c.alice.Do("DELETE", "/v2.0/networks/"+idB, nil), http.StatusNotFound, "NetworkNotFound")
	wantError(t, c.alice.Do("PUT", "/v2.0/networks/"+idB+"/tags/x", nil), http.StatusNotFound, "NetworkNotFound")
	// Bob's network is untouched.
	got := c.bob.Must(http.StatusOK, "GET", "/v2.0/networks/"+idB, nil)["network"].(map[string]any)
	if got["name"] != "b-net" || apitest.S(got["revision_number"]) != "0" || len(got["tags"].([]any)) != 0 {
		t.Fatalf("bob's network changed: %v", got)
	}
	// The admin sees both.
	all := ids(c.admin.Do("GET", "/v2.0/networks", nil), "networks")
	if !slices.Contains(all, idA) || !slices.Contains(all, idB) {
		t.Fatalf("admin lists %v, want both %s and %s", all, idA, idB)
	}
	// Owners may change and delete their own.
	c.alice.Must(http.StatusOK, "PUT", "/v2.0/networks/"+idA, netBody(map[string]any{"name": "a-net-2"}))
	c.alice.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+idA, nil)
}

func TestKeystoneAdminOnlyAttributes(t *testing.T) {
	c := newCloud(t)
	refused := []map[string]any{
		{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 1001},
		{"provider:network_type": "vxlan"},
		{"provider:segmentation_id": 77},
		{"router:external": true},
		{"shared": true},
	}
	for _, attrs := range refused {
		r := c.alice.Do("POST", "/v2.0/networks", netBody(attrs))
		if r.Status != http.StatusForbidden || r.ErrorType() != "PolicyNotAuthorized" {
			t.Errorf("member creating %v: %d %s, want 403 PolicyNotAuthorized", attrs, r.Status, r.Raw)
		}
	}
	if r := c.admin.Do("GET", "/v2.0/networks", nil); len(r.Items("networks")) != 0 {
		t.Fatalf("refused creates left networks behind: %s", r.Raw)
	}
	// The defaults of admin-only attributes may be sent by anyone.
	n := c.alice.Create("networks", "network", map[string]any{"name": "plain", "shared": false, "router:external": false})
	id := apitest.S(n["id"])
	for _, attrs := range []map[string]any{{"shared": true}, {"shared": false}, {"router:external": true}} {
		r := c.alice.Do("PUT", "/v2.0/networks/"+id, netBody(attrs))
		if r.Status != http.StatusForbidden || r.ErrorType() != "PolicyNotAuthorized" {
			t.Errorf("member updating %v: %d %s, want 403 PolicyNotAuthorized", attrs, r.Status, r.Raw)
		}
	}
	// Provider attributes are shown to admins only: in create, show and
	// list answers, and with fields=.
	for _, key := range []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"} {
		if _, ok := n[key]; ok {
			t.Errorf("member's create answer shows %s", key)
		}
	}
	shown := c.alice.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	listed := c.alice.Do("GET", "/v2.0/networks", nil).Items("networks")
	withFields := c.alice.Must(http.StatusOK, "GET", "/v2.0/networks/"+id+"?fields=id&fields=provider:network_type", nil)["network"].(map[string]any)
	for name, obj := range map[string]map[string]any{"show": shown, "list": listed[0], "fields": withFields} {
		for key := range obj {
			if strings.HasPrefix(key, "provider:") {
				t.Errorf("member's %s answer shows %s", name, key)
			}
		}
	}
	if shown["router:external"] != false || shown["shared"] != false {
		t.Errorf("router:external and shared are visible to members: %v", shown)
	}
	adminView := c.admin.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if adminView["provider:network_type"] != "vxlan" || adminView["provider:segmentation_id"] == nil {
		t.Errorf("admin does not see the provider attributes: %v", adminView)
	}
	// The admin may set them, for any project.
	vlan := c.admin.Create("networks", "network", map[string]any{"provider:network_type": "vlan",
		"provider:physical_network": "physnet1", "provider:segmentation_id": 1001, "project_id": c.projA})
	if vlan["project_id"] != c.projA || apitest.S(vlan["provider:segmentation_id"]) != "1001" {
		t.Fatalf("admin's provider network for project a: %v", vlan)
	}
}

func TestKeystoneReaderCanOnlyRead(t *testing.T) {
	c := newCloud(t)
	n := c.alice.Create("networks", "network", map[string]any{"name": "team-net"})
	id := apitest.S(n["id"])
	if got := ids(c.rita.Do("GET", "/v2.0/networks", nil), "networks"); !slices.Equal(got, []string{id}) {
		t.Fatalf("reader lists %v, want her project's network %s", got, id)
	}
	c.rita.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)
	wantError(t, c.rita.Do("POST", "/v2.0/networks", netBody(map[string]any{"name": "r"})), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.rita.Do("POST", "/v2.0/networks", map[string]any{"networks": []any{map[string]any{"name": "r"}}}), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.rita.Do("PUT", "/v2.0/networks/"+id, netBody(map[string]any{"name": "r"})), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.rita.Do("PUT", "/v2.0/networks/"+id+"/tags/red", nil), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.rita.Do("DELETE", "/v2.0/networks/"+id, nil), http.StatusForbidden, "PolicyNotAuthorized")
	// Another project's network stays hidden from the reader as well.
	other := c.bob.Create("networks", "network", map[string]any{"name": "b"})
	wantError(t, c.rita.Do("DELETE", "/v2.0/networks/"+apitest.S(other["id"]), nil), http.StatusNotFound, "NetworkNotFound")
	got := c.alice.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["name"] != "team-net" || apitest.S(got["revision_number"]) != "0" {
		t.Fatalf("the reader changed the network: %v", got)
	}
	if r := c.admin.Do("GET", "/v2.0/networks", nil); len(r.Items("networks")) != 2 {
		t.Fatalf("the reader created networks: %s", r.Raw)
	}
}

func TestKeystoneProjectIDInBody(t *testing.T) {
	c := newCloud(t)
	// The admin creates for another project, by project_id or tenant_id.
	n := c.admin.Create("networks", "network", map[string]any{"name": "for-b", "project_id": c.projB})
	if n["project_id"] != c.projB || n["tenant_id"] != c.projB {
		t.Fatalf("admin-created network for project b: %v", n)
	}
	c.admin.Create("networks", "network", map[string]any{"name": "for-b-too", "tenant_id": c.projB})
	if got := c.bob.Do("GET", "/v2.0/networks", nil).Items("networks"); len(got) != 2 {
		t.Fatalf("bob lists %d networks, want the 2 the admin made for him", len(got))
	}
	wantError(t, c.alice.Do("GET", "/v2.0/networks/"+apitest.S(n["id"]), nil), http.StatusNotFound, "NetworkNotFound")
	// A member naming another project is refused with 400, as Neutron does.
	for _, attrs := range []map[string]any{{"project_id": c.projB}, {"tenant_id": c.projB}} {
		r := c.alice.Do("POST", "/v2.0/networks", netBody(attrs))
		if r.Status != http.StatusBadRequest || r.ErrorType() != "HTTPBadRequest" ||
			!strings.Contains(apitest.S(r.Body["NeutronError"].(map[string]any)["message"]), "other than the authenticated project") {
			t.Errorf("member creating with %v: %d %s, want 400", attrs, r.Status, r.Raw)
		}
	}
	wantError(t, c.alice.Do("POST", "/v2.0/networks", netBody(map[string]any{"project_id": c.projA, "tenant_id": c.projB})), http.StatusBadRequest, "HTTPBadRequest")
	// Naming one's own project is fine.
	own := c.alice.Create("networks", "network", map[string]any{"project_id": c.projA})
	if own["project_id"] != c.projA {
		t.Fatalf("member naming her own project: %v", own)
	}
	if r := c.admin.Do("GET", "/v2.0/networks?project_id="+c.projB, nil); len(r.Items("networks")) != 2 {
		t.Fatalf("refused creates left networks in project b: %s", r.Raw)
	}
}

func TestKeystoneSharedNetwork(t *testing.T) {
	c := newCloud(t)
	n := c.admin.Create("networks", "network", map[string]any{"name": "public-ish", "shared": true})
	id := apitest.S(n["id"])
	if n["project_id"] != c.adminProject || n["shared"] != true {
		t.Fatalf("admin's shared network: %v", n)
	}
	for name, cl := range map[string]*apitest.Client{"alice": c.alice, "bob": c.bob, "rita": c.rita} {
		got := cl.Do("GET", "/v2.0/networks/"+id, nil)
		if got.Status != http.StatusOK || got.Item("network")["shared"] != true {
			t.Errorf("%s: shared network: %d %s", name, got.Status, got.Raw)
		}
		if l := ids(cl.Do("GET", "/v2.0/networks?shared=true", nil), "networks"); !slices.Equal(l, []string{id}) {
			t.Errorf("%s: shared=true lists %v", name, l)
		}
	}
	// Seeing it is not owning it: 403 now, since the network is visible.
	wantError(t, c.alice.Do("PUT", "/v2.0/networks/"+id, netBody(map[string]any{"name": "taken"})), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.alice.Do("DELETE", "/v2.0/networks/"+id, nil), http.StatusForbidden, "PolicyNotAuthorized")
	// Nor may others manage its sharing.
	rbac := map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "some-other-project"}
	wantError(t, c.alice.Do("POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": rbac}), http.StatusBadRequest, "InvalidInput")
	// Others plug ports into it, on the admin's subnet.
	sub := c.admin.Create("subnets", "subnet", map[string]any{"network_id": id, "ip_version": 4, "cidr": "10.20.0.0/24"})
	if got := c.alice.Do("GET", "/v2.0/subnets/"+apitest.S(sub["id"]), nil); got.Status != http.StatusOK {
		t.Fatalf("the shared network's subnet is hidden from alice: %d %s", got.Status, got.Raw)
	}
	wantError(t, c.alice.Do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": id, "ip_version": 4, "cidr": "10.21.0.0/24"}}),
		http.StatusForbidden, "PolicyNotAuthorized")
	port := c.alice.Create("ports", "port", map[string]any{"network_id": id, "name": "alice-vm"})
	if port["project_id"] != c.projA || len(port["fixed_ips"].([]any)) != 1 {
		t.Fatalf("alice's port on the shared network: %v", port)
	}
	wantError(t, c.bob.Do("GET", "/v2.0/ports/"+apitest.S(port["id"]), nil), http.StatusNotFound, "PortNotFound")
	if l := ids(c.bob.Do("GET", "/v2.0/ports", nil), "ports"); len(l) != 0 {
		t.Fatalf("bob lists alice's ports: %v", l)
	}
	// While alice's port is on it, the network cannot be unshared.
	wantError(t, c.admin.Do("PUT", "/v2.0/networks/"+id, netBody(map[string]any{"shared": false})), http.StatusConflict, "InvalidSharedSetting")
	c.alice.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(port["id"]), nil)
	// Unsharing it hides it again.
	c.admin.Must(http.StatusOK, "PUT", "/v2.0/networks/"+id, netBody(map[string]any{"shared": false}))
	wantError(t, c.alice.Do("GET", "/v2.0/networks/"+id, nil), http.StatusNotFound, "NetworkNotFound")
	wantError(t, c.alice.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": id}}), http.StatusNotFound, "NetworkNotFound")
}

func TestKeystoneRBACSharesWithOneProject(t *testing.T) {
	c := newCloud(t)
	n := c.alice.Create("networks", "network", map[string]any{"name": "for-bob"})
	id := apitest.S(n["id"])
	// Only admins share with everyone.
	wildcard := map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": "*"}
	wantError(t, c.alice.Do("POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": wildcard}), http.StatusForbidden, "PolicyNotAuthorized")
	// Bob cannot share alice's network with himself: he cannot see it.
	toBob := map[string]any{"object_type": "network", "object_id": id, "action": "access_as_shared", "target_tenant": c.projB}
	wantError(t, c.bob.Do("POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": toBob}), http.StatusNotFound, "NetworkNotFound")
	// The owner shares it with project b, and only with it.
	entry := c.alice.Create("rbac-policies", "rbac_policy", toBob)
	if entry["project_id"] != c.projA || entry["target_tenant"] != c.projB {
		t.Fatalf("rbac entry: %v", entry)
	}
	got := c.bob.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any)
	if got["shared"] != true {
		t.Fatalf("network shared with bob's project shows shared=%v to bob", got["shared"])
	}
	if l := ids(c.bob.Do("GET", "/v2.0/networks", nil), "networks"); !slices.Equal(l, []string{id}) {
		t.Fatalf("bob lists %v", l)
	}
	wantError(t, c.carol.Do("GET", "/v2.0/networks/"+id, nil), http.StatusNotFound, "NetworkNotFound")
	if l := ids(c.carol.Do("GET", "/v2.0/networks", nil), "networks"); len(l) != 0 {
		t.Fatalf("carol lists %v", l)
	}
	// To its owner the network is not shared: no entry targets her project.
	if got := c.alice.Must(http.StatusOK, "GET", "/v2.0/networks/"+id, nil)["network"].(map[string]any); got["shared"] != false {
		t.Fatalf("owner sees shared=%v", got["shared"])
	}
	// The entry is the owner's: bob neither sees nor removes it.
	entryID := apitest.S(entry["id"])
	wantError(t, c.bob.Do("GET", "/v2.0/rbac-policies/"+entryID, nil), http.StatusNotFound, "RbacPolicyNotFound")
	wantError(t, c.bob.Do("DELETE", "/v2.0/rbac-policies/"+entryID, nil), http.StatusNotFound, "RbacPolicyNotFound")
	// Bob may use the network but not change it.
	wantError(t, c.bob.Do("PUT", "/v2.0/networks/"+id, netBody(map[string]any{"name": "bob's"})), http.StatusForbidden, "PolicyNotAuthorized")
	c.alice.Create("subnets", "subnet", map[string]any{"network_id": id, "ip_version": 4, "cidr": "10.30.0.0/24"})
	port := c.bob.Create("ports", "port", map[string]any{"network_id": id, "name": "bob-vm"})
	portID := apitest.S(port["id"])
	if port["project_id"] != c.projB {
		t.Fatalf("bob's port: %v", port)
	}
	wantError(t, c.carol.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": id}}), http.StatusNotFound, "NetworkNotFound")
	// The network's owner sees ports on her network, whoever owns them.
	c.alice.Must(http.StatusOK, "GET", "/v2.0/ports/"+portID, nil)
	// Bob's port depends on the entry: it cannot be withdrawn yet.
	wantError(t, c.alice.Do("DELETE", "/v2.0/rbac-policies/"+entryID, nil), http.StatusConflict, "RbacPolicyInUse")
	c.bob.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+portID, nil)
	// Withdrawing the entry hides the network from bob again.
	c.alice.Must(http.StatusNoContent, "DELETE", "/v2.0/rbac-policies/"+entryID, nil)
	wantError(t, c.bob.Do("GET", "/v2.0/networks/"+id, nil), http.StatusNotFound, "NetworkNotFound")
}

// When Keystone cannot be asked, the server answers 503 in Neutron's
// format: the caller's token may be fine, so 401 would be a lie that makes
// clients drop it.
func TestKeystoneUnavailableIs503(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error": {"code": 500, "message": "database gone"}}`, http.StatusInternalServerError)
	}))
	defer failing.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/v3"
	ln.Close()
	for name, url := range map[string]string{"keystone failing": failing.URL + "/v3", "keystone down": refused} {
		srv := apitest.Start(t, apitest.WithKeystone(url))
		cl := srv.Client(t, "")
		cl.Token = "some-token"
		r := cl.Do("GET", "/v2.0/networks", nil)
		if r.Status != http.StatusServiceUnavailable || r.ErrorType() != "HTTPServiceUnavailable" {
			t.Errorf("%s: got %d %s, want 503 HTTPServiceUnavailable", name, r.Status, r.Raw)
		}
		// A missing token is still the caller's fault.
		cl.Token = ""
		if r := cl.Do("GET", "/v2.0/networks", nil); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: no token: got %d %s, want 401", name, r.Status, r.Raw)
		}
	}
}

func TestKeystoneQuotas(t *testing.T) {
	c := newCloud(t)
	own := c.alice.Must(http.StatusOK, "GET", "/v2.0/quotas/"+c.projA, nil)["quota"].(map[string]any)
	if own["network"] == nil {
		t.Fatalf("alice's own quota: %v", own)
	}
	wantError(t, c.alice.Do("GET", "/v2.0/quotas/"+c.projB, nil), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.alice.Do("GET", "/v2.0/quotas", nil), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.alice.Do("PUT", "/v2.0/quotas/"+c.projA, map[string]any{"quota": map[string]any{"network": 1000}}), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, c.alice.Do("DELETE", "/v2.0/quotas/"+c.projA, nil), http.StatusForbidden, "PolicyNotAuthorized")
	// The admin sets project b's quota, and bob is held to it.
	c.admin.Must(http.StatusOK, "PUT", "/v2.0/quotas/"+c.projB, map[string]any{"quota": map[string]any{"network": 1}})
	c.bob.Create("networks", "network", map[string]any{"name": "only-one"})
	wantError(t, c.bob.Do("POST", "/v2.0/networks", netBody(map[string]any{"name": "two"})), http.StatusConflict, "OverQuota")
	if got := c.bob.Must(http.StatusOK, "GET", "/v2.0/quotas/"+c.projB, nil)["quota"].(map[string]any); apitest.S(got["network"]) != "1" {
		t.Fatalf("bob's quota: %v", got)
	}
	// Alice's quota is untouched.
	c.alice.Create("networks", "network", map[string]any{"name": "one"})
	c.alice.Create("networks", "network", map[string]any{"name": "two"})
}
