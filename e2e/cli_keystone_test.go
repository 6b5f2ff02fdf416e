package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// TestCLIWithKeystone runs neutrino with Keystone authentication, as a
// production cloud does, registered in Keystone's catalog, and drives it
// with the openstack CLI logged in as an admin and as a member of another
// project: sharing a network with that project through RBAC
// (--target-project resolves the project in Keystone) and its quotas
// (quota set / quota show).
func TestCLIWithKeystone(t *testing.T) {
	t.Parallel()
	RequireOpenstackCLI(t) // before Keystone, which takes seconds to start
	ks := testenv.StartKeystone(t)
	n := StartNeutrino(t, "--auth", "keystone", "--keystone-url", ks.URL)
	registerNetworkEndpoint(t, ks, n.URL)
	const p2User, p2Password = "p2-user", "p2-secret"
	p2ID, _ := ks.CreateProjectUser(t, "P2", p2User, p2Password, "member")

	admin := KeystoneCLI(t, ks.URL, ks.AdminUser, ks.AdminPassword, ks.AdminProject)
	member := KeystoneCLI(t, ks.URL, p2User, p2Password, "P2")

	net := admin.Object("network", "create", "shared-net")
	if net["project_id"] != ks.AdminProjectID {
		t.Fatalf("network of the admin's project %s: %v", ks.AdminProjectID, net)
	}
	// Before sharing, P2 does not see it.
	if rows := member.List("network", "list"); len(rows) != 0 {
		t.Fatalf("P2 sees networks before any sharing: %v", rows)
	}
	rbac := admin.Object("network", "rbac", "create", "--target-project", "P2",
		"--action", "access_as_shared", "--type", "network", "shared-net")
	if rbac["target_project_id"] != p2ID || rbac["object_id"] != net["id"] {
		t.Fatalf("rbac policy (want target %s): %v", p2ID, rbac)
	}
	rows := member.List("network", "list", "--long")
	if len(rows) != 1 || rows[0]["ID"] != net["id"] || rows[0]["Shared"] != true {
		t.Fatalf("P2's networks after sharing: %v", rows)
	}

	// OSC 6.0's `quota set` and `quota show` build compute and volume
	// clients even for network quotas, and fail when the catalog has neither
	// ("public endpoint for compute service ... not found"). For `quota set`,
	// a network-only cloud names placeholder endpoints, which are never
	// called; `quota list --network --detail` shows network quotas alone.
	quotaSet := admin.With("OS_CLOUD=envvars", "OS_COMPUTE_ENDPOINT_OVERRIDE=http://127.0.0.1:1", "OS_VOLUME_ENDPOINT_OVERRIDE=http://127.0.0.1:1")
	quotaSet.OK("quota", "set", "--networks", "5", "P2")
	limits := map[string]int64{}
	for _, row := range admin.List("quota", "list", "--network", "--detail", "--project", "P2") {
		limits[str(row["Resource"])] = num(row["Limit"])
	}
	if limits["networks"] != 5 || limits["ports"] != 500 {
		t.Fatalf("quota list --network --detail --project P2: %v", limits)
	}
	// The limit holds for P2's own networks (the shared one is not P2's).
	quotaSet.OK("quota", "set", "--networks", "1", "P2")
	member.Object("network", "create", "p2-net")
	msg := member.Fail("network", "create", "p2-net2")
	if !strings.Contains(msg, "Quota exceeded for resources: ['network']") {
		t.Fatalf("P2 over its network quota: %s", msg)
	}

	// A member may not delete the admin's network it only shares.
	if msg := member.Fail("network", "delete", "shared-net"); !strings.Contains(msg, "403") && !strings.Contains(msg, "not allowed") {
		t.Fatalf("P2 deleting a network shared with it: %s", msg)
	}
	if names := namesOf(admin.List("network", "list")); !slices.Equal(names, []string{"p2-net", "shared-net"}) {
		t.Fatalf("networks the admin sees: %v", names)
	}
}

func namesOf(rows []map[string]any) []string {
	var out []string
	for _, r := range rows {
		out = append(out, str(r["Name"]))
	}
	slices.Sort(out)
	return out
}

// registerNetworkEndpoint adds neutrino to Keystone's catalog as the public
// "network" endpoint of RegionOne, as a deployment does for Neutron.
func registerNetworkEndpoint(t *testing.T, ks *testenv.Keystone, url string) {
	t.Helper()
	token := ks.AdminToken(t)
	post := func(path string, body any) map[string]any {
		data, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ks.URL+path, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("Keystone POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("Keystone POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	svc := post("/services", map[string]any{"service": map[string]any{"type": "network", "name": "neutron"}})
	svcID := str(svc["service"].(map[string]any)["id"])
	post("/endpoints", map[string]any{"endpoint": map[string]any{
		"service_id": svcID, "interface": "public", "region_id": "RegionOne", "url": url,
	}})
}
