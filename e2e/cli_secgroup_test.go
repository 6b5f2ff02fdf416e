package e2e

import (
	"slices"
	"testing"
)

// TestCLISecurityGroups creates a security group with the openstack CLI,
// adds an SSH rule, checks the rules a user sees, and deletes it.
func TestCLISecurityGroups(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	cli := OpenstackCLI(t, n)

	sg := cli.Object("security", "group", "create", "web", "--description", "web servers")
	sgID := str(sg["id"])
	rules, _ := sg["rules"].([]any)
	if sg["name"] != "web" || sg["description"] != "web servers" || len(rules) != 2 {
		t.Fatalf("security group create (want two default egress rules): %v", sg)
	}
	for _, r := range rules {
		if m, _ := r.(map[string]any); m["direction"] != "egress" {
			t.Fatalf("default rule is not egress: %v", r)
		}
	}

	rule := cli.Object("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "22", "web")
	if rule["direction"] != "ingress" || rule["protocol"] != "tcp" || num(rule["port_range_min"]) != 22 ||
		num(rule["port_range_max"]) != 22 || rule["security_group_id"] != sgID || rule["ether_type"] != "IPv4" {
		t.Fatalf("rule create: %v", rule)
	}

	shown := cli.Object("security", "group", "show", "web")
	rules, _ = shown["rules"].([]any)
	if len(rules) != 3 || !slices.ContainsFunc(rules, func(r any) bool {
		m, _ := r.(map[string]any)
		return m["id"] == rule["id"] && m["direction"] == "ingress" && num(m["port_range_min"]) == 22
	}) {
		t.Fatalf("security group show (want the ssh rule among 3): %v", shown["rules"])
	}
	listed := cli.List("security", "group", "rule", "list", "web")
	if len(listed) != 3 {
		t.Fatalf("security group rule list web: %v", listed)
	}

	cli.OK("security", "group", "delete", "web")
	for _, g := range cli.List("security", "group", "list") {
		if g["ID"] == sgID {
			t.Fatalf("security group left after delete: %v", g)
		}
	}
	assertNothingLeft(t, n)
}
