package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestCLIRoutersAndFloatingIPs drives the L3 workflow through the openstack
// CLI: an external flat network, a router with its external gateway and an
// interface on a tenant subnet, a floating IP associated with a port and
// disassociated again, and the delete path.
func TestCLIRoutersAndFloatingIPs(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	cli := OpenstackCLI(t, n)

	ext := cli.Object("network", "create", "public", "--external",
		"--provider-network-type", "flat", "--provider-physical-network", "public")
	extID := str(ext["id"])
	if ext["router:external"] != true || ext["provider:network_type"] != "flat" || ext["provider:physical_network"] != "public" {
		t.Fatalf("external network: %v", ext)
	}
	cli.Object("subnet", "create", "public-sub", "--network", "public", "--subnet-range", "203.0.113.0/24", "--no-dhcp")
	cli.Object("network", "create", "r-net")
	sub := cli.Object("subnet", "create", "r-sub", "--network", "r-net", "--subnet-range", "10.20.0.0/24")

	router := cli.Object("router", "create", "r1")
	routerID := str(router["id"])
	if router["status"] != "ACTIVE" || router["admin_state_up"] != true || router["external_gateway_info"] != nil {
		t.Fatalf("router create: %v", router)
	}
	cli.OK("router", "set", "--external-gateway", "public", "r1")
	cli.OK("router", "add", "subnet", "r1", "r-sub")

	shown := cli.Object("router", "show", "r1")
	gw, _ := shown["external_gateway_info"].(map[string]any)
	gwIPs := fixedIPs(gw["external_fixed_ips"])
	if gw["network_id"] != extID || gw["enable_snat"] != true || len(gwIPs) != 1 || !inPrefix(gwIPs[0], "203.0.113.0/24") {
		t.Fatalf("router gateway info: %v", shown["external_gateway_info"])
	}
	ifaces := cli.List("port", "list", "--router", "r1", "--long")
	var ifaceIPs []string
	for _, p := range ifaces {
		ifaceIPs = append(ifaceIPs, fixedIPs(p["Fixed IP Addresses"])...)
	}
	if len(ifaces) != 2 || !slices.Contains(ifaceIPs, str(sub["gateway_ip"])) || !slices.ContainsFunc(ifaceIPs, func(ip string) bool { return inPrefix(ip, "203.0.113.0/24") }) {
		t.Fatalf("router ports (want the gateway port and an interface on %s): %v", sub["gateway_ip"], ifaces)
	}

	port := cli.Object("port", "create", "vm-port", "--network", "r-net")
	portID, portIP := str(port["id"]), firstOf(toAny(fixedIPs(port["fixed_ips"])))
	fip := cli.Object("floating", "ip", "create", "public")
	fipID, fipAddr := str(fip["id"]), str(fip["floating_ip_address"])
	if !inPrefix(fipAddr, "203.0.113.0/24") || fip["port_id"] != nil || fip["floating_network_id"] != extID {
		t.Fatalf("floating ip create: %v", fip)
	}
	cli.OK("floating", "ip", "set", "--port", "vm-port", fipID)
	fip = cli.Object("floating", "ip", "show", fipID)
	if fip["port_id"] != portID || fip["fixed_ip_address"] != portIP || fip["router_id"] != routerID {
		t.Fatalf("floating ip after set --port (want port %s, %v, router %s): %v", portID, portIP, routerID, fip)
	}
	cli.OK("floating", "ip", "unset", "--port", fipID)
	fip = cli.Object("floating", "ip", "show", fipID)
	if fip["port_id"] != nil || fip["fixed_ip_address"] != nil || fip["floating_ip_address"] != fipAddr {
		t.Fatalf("floating ip after unset --port: %v", fip)
	}

	// A router with an interface cannot be deleted.
	if msg := cli.Fail("router", "delete", "r1"); !strings.Contains(msg, "has ports still attached") {
		t.Fatalf("delete router in use: %s", msg)
	}

	cli.OK("floating", "ip", "delete", fipID)
	cli.OK("router", "remove", "subnet", "r1", "r-sub")
	cli.OK("router", "delete", "r1")
	cli.OK("port", "delete", "vm-port")
	cli.OK("subnet", "delete", "r-sub", "public-sub")
	cli.OK("network", "delete", "r-net", "public")
	if rows := cli.List("router", "list"); len(rows) != 0 {
		t.Fatalf("routers left: %v", rows)
	}
	assertNothingLeft(t, n)
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}
