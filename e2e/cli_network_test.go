package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestCLINetworks drives networks through the openstack CLI: create, list
// with filters, set (name, tags), show, sharing through RBAC and delete.
func TestCLINetworks(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	cli := OpenstackCLI(t, n)

	created := cli.Object("network", "create", "cli-net", "--description", "e2e network")
	id := str(created["id"])
	if created["status"] != "ACTIVE" || created["admin_state_up"] != true || created["provider:network_type"] != "vxlan" || num(created["mtu"]) != 1450 {
		t.Fatalf("network create: %v", created)
	}
	cli.Object("network", "create", "other-net")

	rows := cli.List("network", "list", "--name", "cli-net")
	if len(rows) != 1 || rows[0]["ID"] != id {
		t.Fatalf("network list --name cli-net: %v", rows)
	}

	cli.OK("network", "set", "cli-net", "--name", "cli-net2", "--tag", "blue", "--tag", "green")
	shown := cli.Object("network", "show", id)
	if shown["name"] != "cli-net2" || shown["description"] != "e2e network" || !sameStrings(shown["tags"], "blue", "green") || num(shown["revision_number"]) < 1 {
		t.Fatalf("network show after set: %v", shown)
	}
	rows = cli.List("network", "list", "--tags", "blue", "--long")
	if len(rows) != 1 || rows[0]["ID"] != id || rows[0]["Shared"] != false {
		t.Fatalf("network list --tags blue: %v", rows)
	}

	rbac := cli.Object("network", "rbac", "create", "--target-all-projects", "--action", "access_as_shared", "--type", "network", "cli-net2")
	if rbac["object_id"] != id || rbac["target_project_id"] != "*" || rbac["action"] != "access_as_shared" {
		t.Fatalf("network rbac create: %v", rbac)
	}
	if shown := cli.Object("network", "show", id, "-c", "shared"); shown["shared"] != true {
		t.Fatalf("network not shared after rbac create: %v", shown)
	}

	t.Run("share with and set quota of another project", func(t *testing.T) {
		r := cli.Run("network", "rbac", "create", "--target-project", "P2", "--action", "access_as_shared", "--type", "network", "other-net", "-f", "json")
		if r.Exit != 0 && strings.Contains(r.Stderr, "No project with a name or ID of 'P2'") {
			t.Skip("skipping: with OS_AUTH_TYPE=none the openstack CLI resolves --target-project through " +
				"the identity API at OS_ENDPOINT (GET /projects/P2), which neutrino, like Neutron, does not serve; " +
				"TestCLIWithKeystone covers sharing with a project and its quotas")
		}
		if r.Exit != 0 {
			t.Fatalf("%v", r)
		}
		cli.OK("quota", "set", "--networks", "5", "P2")
		var quota []map[string]any
		cli.JSON(&quota, "quota", "list", "--network", "--detail", "--project", "P2")
		i := slices.IndexFunc(quota, func(q map[string]any) bool { return q["Resource"] == "networks" || q["Resource"] == "network" })
		if i < 0 || num(quota[i]["Limit"]) != 5 {
			t.Fatalf("quota list --detail --project P2: %v", quota)
		}
	})

	cli.OK("network", "delete", "cli-net2", "other-net")
	if rows := cli.List("network", "list"); len(rows) != 0 {
		t.Fatalf("networks left after delete: %v", rows)
	}
	assertNothingLeft(t, n)
}
