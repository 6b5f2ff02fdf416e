package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestCLISubnetsAndPorts drives subnets and ports through the openstack CLI:
// a subnet with pools, DNS and gateway, ports with chosen and allocated
// addresses, an address conflict, filtered lists, and the delete path.
func TestCLISubnetsAndPorts(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	cli := OpenstackCLI(t, n)

	net := cli.Object("network", "create", "p-net")
	netID := str(net["id"])
	sub := cli.Object("subnet", "create", "p-sub", "--network", "p-net",
		"--subnet-range", "10.10.0.0/24", "--gateway", "10.10.0.1",
		"--allocation-pool", "start=10.10.0.100,end=10.10.0.200",
		"--dns-nameserver", "192.0.2.53")
	subID := str(sub["id"])
	pools, _ := sub["allocation_pools"].([]any)
	pool, _ := firstOf(pools).(map[string]any)
	if sub["cidr"] != "10.10.0.0/24" || sub["gateway_ip"] != "10.10.0.1" || num(sub["ip_version"]) != 4 ||
		sub["enable_dhcp"] != true || sub["network_id"] != netID || len(pools) != 1 ||
		pool["start"] != "10.10.0.100" || pool["end"] != "10.10.0.200" || !sameStrings(sub["dns_nameservers"], "192.0.2.53") {
		t.Fatalf("subnet create: %v", sub)
	}
	sub6 := cli.Object("subnet", "create", "p-sub6", "--network", "p-net", "--ip-version", "6", "--subnet-range", "fd00:10::/64")
	// Neutron's default IPv6 gateway is the subnet-router anycast address.
	if sub6["gateway_ip"] != "fd00:10::" {
		t.Fatalf("IPv6 subnet create: %v", sub6)
	}

	rows := cli.List("subnet", "list", "--ip-version", "4")
	if len(rows) != 1 || rows[0]["ID"] != subID || rows[0]["Subnet"] != "10.10.0.0/24" {
		t.Fatalf("subnet list --ip-version 4: %v", rows)
	}
	if shown := cli.Object("network", "show", "p-net", "-c", "subnets"); !sameStrings(shown["subnets"], subID, str(sub6["id"])) {
		t.Fatalf("network subnets: %v", shown)
	}

	port := cli.Object("port", "create", "p-port1", "--network", "p-net", "--fixed-ip", "subnet=p-sub,ip-address=10.10.0.150")
	if ips := fixedIPs(port["fixed_ips"]); !slices.Equal(ips, []string{"10.10.0.150"}) || port["status"] != "DOWN" || str(port["mac_address"]) == "" || port["network_id"] != netID {
		t.Fatalf("port create --fixed-ip: %v", port)
	}

	// The same address again: Neutron's message, non-zero exit.
	r := cli.Run("port", "create", "p-port2", "--network", "p-net", "--fixed-ip", "subnet=p-sub,ip-address=10.10.0.150")
	if r.Exit == 0 || !strings.Contains(r.Stderr, "10.10.0.150") ||
		!(strings.Contains(r.Stderr, "already allocated") || strings.Contains(r.Stderr, "is in use")) {
		t.Fatalf("duplicate address: want Neutron's conflict message and a non-zero exit: %v", r)
	}

	// Without --fixed-ip: one address from the IPv4 pool, one from the IPv6 subnet.
	auto := cli.Object("port", "create", "p-port3", "--network", "p-net")
	var v4, v6 []string
	for _, ip := range fixedIPs(auto["fixed_ips"]) {
		switch {
		case inPrefix(ip, "10.10.0.0/24"):
			v4 = append(v4, ip)
		case inPrefix(ip, "fd00:10::/64"):
			v6 = append(v6, ip)
		}
	}
	if len(v4) != 1 || len(v6) != 1 || !inPool(v4[0], "10.10.0.100", "10.10.0.200") || len(fixedIPs(auto["fixed_ips"])) != 2 {
		t.Fatalf("port with allocated addresses (want one in 10.10.0.100-200 and one in fd00:10::/64): %v", auto["fixed_ips"])
	}

	rows = cli.List("port", "list", "--network", "p-net", "--long", "--sort-column", "Name", "--sort-descending")
	var names []string
	for _, row := range rows {
		names = append(names, str(row["Name"]))
	}
	if !slices.Equal(names, []string{"p-port3", "p-port1"}) {
		t.Fatalf("port list --network p-net --long sorted by name, descending: %v", rows)
	}
	if rows[1]["Status"] != "DOWN" || !slices.Equal(fixedIPs(rows[1]["Fixed IP Addresses"]), []string{"10.10.0.150"}) {
		t.Fatalf("port list --long columns: %v", rows[1])
	}

	// A subnet with allocations cannot go.
	msg := cli.Fail("subnet", "delete", "p-sub")
	if !strings.Contains(msg, "One or more ports have an IP allocation from this subnet") {
		t.Fatalf("delete subnet in use: %s", msg)
	}

	cli.OK("port", "delete", "p-port1", "p-port3")
	cli.OK("subnet", "delete", "p-sub", "p-sub6")
	cli.OK("network", "delete", "p-net")
	if rows := cli.List("port", "list"); len(rows) != 0 {
		t.Fatalf("ports left: %v", rows)
	}
	assertNothingLeft(t, n)
}
