package subnet_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

func wantError(t *testing.T, r *apitest.Response, status int, typ string) {
	t.Helper()
	if r.Status != status || r.ErrorType() != typ {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, typ)
	}
}

func network(t *testing.T, c *apitest.Client) string {
	t.Helper()
	return apitest.S(c.Create("networks", "network", map[string]any{"name": "net"})["id"])
}

func createSubnet(c *apitest.Client, netID string, attrs map[string]any) *apitest.Response {
	body := map[string]any{"network_id": netID, "ip_version": 4}
	for k, v := range attrs {
		body[k] = v
	}
	return c.Do("POST", "/v2.0/subnets", map[string]any{"subnet": body})
}

func pools(s map[string]any) string {
	out := ""
	for _, p := range s["allocation_pools"].([]any) {
		m := p.(map[string]any)
		out += fmt.Sprintf("[%v-%v]", m["start"], m["end"])
	}
	return out
}

func TestDefaults(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := network(t, c)
	cases := []struct {
		attrs         map[string]any
		cidr, gateway string
		pools         string
	}{
		{map[string]any{"cidr": "10.0.0.0/24"}, "10.0.0.0/24", "10.0.0.1", "[10.0.0.2-10.0.0.254]"},
		{map[string]any{"cidr": "10.0.1.0/24", "gateway_ip": nil}, "10.0.1.0/24", "<nil>", "[10.0.1.1-10.0.1.254]"},
		{map[string]any{"cidr": "10.0.2.0/24", "gateway_ip": "10.0.2.100"}, "10.0.2.0/24", "10.0.2.100", "[10.0.2.1-10.0.2.99][10.0.2.101-10.0.2.254]"},
		{map[string]any{"cidr": "10.0.3.0/24", "gateway_ip": "10.0.3.1", "allocation_pools": []any{map[string]any{"start": "10.0.3.10", "end": "10.0.3.20"}}}, "10.0.3.0/24", "10.0.3.1", "[10.0.3.10-10.0.3.20]"},
		// Like current Neutron, host bits are cleared.
		{map[string]any{"cidr": "10.0.4.7/24"}, "10.0.4.0/24", "10.0.4.1", "[10.0.4.2-10.0.4.254]"},
		{map[string]any{"cidr": "10.0.5.0/30", "enable_dhcp": false}, "10.0.5.0/30", "10.0.5.1", "[10.0.5.2-10.0.5.2]"},
		{map[string]any{"cidr": "2001:db8::/64", "ip_version": 6}, "2001:db8::/64", "2001:db8::", "[2001:db8::1-2001:db8::ffff:ffff:ffff:ffff]"},
	}
	var ids []any
	for _, tc := range cases {
		r := createSubnet(c, netID, tc.attrs)
		if r.Status != http.StatusCreated {
			t.Fatalf("%v: %d %s", tc.attrs, r.Status, r.Raw)
		}
		s := r.Item("subnet")
		if s["cidr"] != tc.cidr || apitest.S(s["gateway_ip"]) != tc.gateway || pools(s) != tc.pools {
			t.Errorf("%v: cidr %v gateway %v pools %s", tc.attrs, s["cidr"], s["gateway_ip"], pools(s))
		}
		ids = append(ids, s["id"])
	}
	n := c.Must(200, "GET", "/v2.0/networks/"+netID, nil)["network"].(map[string]any)
	if fmt.Sprint(n["subnets"]) != fmt.Sprint(ids) {
		t.Fatalf("network subnets %v, want %v", n["subnets"], ids)
	}
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+apitest.S(ids[0]), nil)
	n = c.Must(200, "GET", "/v2.0/networks/"+netID, nil)["network"].(map[string]any)
	if len(n["subnets"].([]any)) != len(ids)-1 {
		t.Fatalf("deleted subnet still listed: %v", n["subnets"])
	}
}

func TestValidation(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := network(t, c)
	if r := createSubnet(c, netID, map[string]any{"cidr": "10.0.0.0/16"}); r.Status != http.StatusCreated {
		t.Fatalf("first subnet: %d %s", r.Status, r.Raw)
	}
	many := func(n int, f func(i int) any) []any {
		var out []any
		for i := range n {
			out = append(out, f(i))
		}
		return out
	}
	cases := []struct {
		name   string
		attrs  map[string]any
		status int
		typ    string
	}{
		{"overlap", map[string]any{"cidr": "10.0.5.0/24"}, 400, "InvalidInput"},
		{"ip_version", map[string]any{"cidr": "2001:db8::/64"}, 400, "InvalidInput"},
		{"no cidr", map[string]any{}, 400, "BadRequest"},
		{"bad cidr", map[string]any{"cidr": "10.1.0.0/33"}, 400, "HTTPBadRequest"},
		{"prefix 0", map[string]any{"cidr": "0.0.0.0/0", "enable_dhcp": false}, 400, "InvalidInput"},
		{"dhcp on /31", map[string]any{"cidr": "10.1.0.0/31"}, 400, "InvalidInput"},
		{"gateway broadcast", map[string]any{"cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.255"}, 400, "InvalidInput"},
		{"gateway version", map[string]any{"cidr": "10.1.0.0/24", "gateway_ip": "2001:db8::1"}, 400, "InvalidInput"},
		{"pool out of cidr", map[string]any{"cidr": "10.1.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.1.0.10", "end": "10.1.1.5"}}}, 400, "OutOfBoundsAllocationPool"},
		{"pool reversed", map[string]any{"cidr": "10.1.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.1.0.10", "end": "10.1.0.5"}}}, 400, "InvalidAllocationPool"},
		{"pools overlap", map[string]any{"cidr": "10.1.0.0/24", "allocation_pools": []any{
			map[string]any{"start": "10.1.0.10", "end": "10.1.0.20"}, map[string]any{"start": "10.1.0.15", "end": "10.1.0.30"}}}, 409, "OverlappingAllocationPools"},
		{"gateway in pool", map[string]any{"cidr": "10.1.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.1.0.1", "end": "10.1.0.20"}}}, 409, "GatewayConflictWithAllocationPools"},
		{"too many dns", map[string]any{"cidr": "10.1.0.0/24", "dns_nameservers": many(6, func(i int) any { return fmt.Sprintf("8.8.8.%d", i) })}, 400, "DNSNameServersExhausted"},
		{"dns duplicate", map[string]any{"cidr": "10.1.0.0/24", "dns_nameservers": []any{"1.1.1.1", "1.1.1.1"}}, 400, "HTTPBadRequest"},
		{"dns version", map[string]any{"cidr": "10.1.0.0/24", "dns_nameservers": []any{"2001:db8::53"}}, 400, "InvalidInput"},
		{"too many routes", map[string]any{"cidr": "10.1.0.0/24", "host_routes": many(21, func(i int) any {
			return map[string]any{"destination": fmt.Sprintf("192.168.%d.0/24", i), "nexthop": "10.1.0.254"}
		})}, 400, "HostRoutesExhausted"},
		{"route host bits", map[string]any{"cidr": "10.1.0.0/24", "host_routes": []any{map[string]any{"destination": "192.168.1.1/24", "nexthop": "10.1.0.254"}}}, 400, "HTTPBadRequest"},
		{"route version", map[string]any{"cidr": "10.1.0.0/24", "host_routes": []any{map[string]any{"destination": "192.168.1.0/24", "nexthop": "2001:db8::1"}}}, 400, "InvalidInput"},
		{"ipv6 mode on v4", map[string]any{"cidr": "10.1.0.0/24", "ipv6_ra_mode": "slaac"}, 400, "InvalidInput"},
		{"slaac not /64", map[string]any{"cidr": "2001:db8::/80", "ip_version": 6, "ipv6_address_mode": "slaac"}, 400, "InvalidInput"},
		{"modes differ", map[string]any{"cidr": "2001:db8::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "dhcpv6-stateful"}, 400, "InvalidInput"},
		{"modes without dhcp", map[string]any{"cidr": "2001:db8::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "enable_dhcp": false}, 400, "InvalidInput"},
		{"no default pool", map[string]any{"use_default_subnetpool": true}, 400, "BadRequest"},
		{"missing pool", map[string]any{"subnetpool_id": "6b0a2a5e-0000-4000-8000-000000000000"}, 404, "SubnetPoolNotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantError(t, createSubnet(c, netID, tc.attrs), tc.status, tc.typ) })
	}
	wantError(t, createSubnet(c, "6b0a2a5e-0000-4000-8000-000000000000", map[string]any{"cidr": "10.0.0.0/24"}), 404, "NetworkNotFound")
	// Nothing refused was written.
	if n := len(c.Do("GET", "/v2.0/subnets?network_id="+netID, nil).Items("subnets")); n != 1 {
		t.Fatalf("%d subnets stored, want 1", n)
	}
	r := createSubnet(c, netID, map[string]any{"cidr": "10.1.0.0/24", "dns_nameservers": []any{"8.8.8.8", "1.1.1.1"},
		"host_routes": []any{map[string]any{"destination": "192.168.1.0/24", "nexthop": "10.1.0.254"}}})
	if r.Status != http.StatusCreated || fmt.Sprint(r.Item("subnet")["dns_nameservers"]) != "[8.8.8.8 1.1.1.1]" || len(r.Item("subnet")["host_routes"].([]any)) != 1 {
		t.Fatalf("dns and routes: %d %s", r.Status, r.Raw)
	}
}

func TestUpdate(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := network(t, c)
	s := createSubnet(c, netID, map[string]any{"cidr": "10.0.0.0/24"}).Item("subnet")
	path := "/v2.0/subnets/" + apitest.S(s["id"])
	put := func(attrs map[string]any) *apitest.Response {
		return c.Do("PUT", path, map[string]any{"subnet": attrs})
	}
	// A port keeps its address when new pools leave it out.
	port := c.Create("ports", "port", map[string]any{"network_id": netID, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.200"}}})
	r := put(map[string]any{"allocation_pools": []any{map[string]any{"start": "10.0.0.10", "end": "10.0.0.99"}}})
	if r.Status != 200 || pools(r.Item("subnet")) != "[10.0.0.10-10.0.0.99]" {
		t.Fatalf("pools update: %d %s", r.Status, r.Raw)
	}
	wantError(t, put(map[string]any{"gateway_ip": "10.0.0.50"}), 409, "GatewayConflictWithAllocationPools")
	wantError(t, put(map[string]any{"allocation_pools": []any{map[string]any{"start": "10.0.0.1", "end": "10.0.0.5"}}}), 409, "GatewayConflictWithAllocationPools")
	wantError(t, put(map[string]any{"gateway_ip": "10.0.0.255"}), 400, "InvalidInput")
	if r := put(map[string]any{"gateway_ip": "10.0.0.254", "dns_nameservers": []any{"10.0.0.2"}}); r.Status != 200 || r.Item("subnet")["gateway_ip"] != "10.0.0.254" {
		t.Fatalf("gateway update: %d %s", r.Status, r.Raw)
	}
	wantError(t, put(map[string]any{"cidr": "10.0.1.0/24"}), 400, "HTTPBadRequest")
	// The gateway cannot move while a router interface holds it.
	c.Create("ports", "port", map[string]any{"network_id": netID, "device_owner": "network:router_interface", "device_id": "r1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.254"}}})
	wantError(t, put(map[string]any{"gateway_ip": "10.0.0.1"}), 409, "GatewayIpInUse")
	got := c.Must(200, "GET", "/v2.0/ports/"+apitest.S(port["id"]), nil)["port"].(map[string]any)
	if ip := got["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; ip != "10.0.0.200" {
		t.Fatalf("port lost its address: %v", got["fixed_ips"])
	}

	s6 := createSubnet(c, netID, map[string]any{"cidr": "2001:db8::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}).Item("subnet")
	r = c.Do("PUT", "/v2.0/subnets/"+apitest.S(s6["id"]), map[string]any{"subnet": map[string]any{"enable_dhcp": false}})
	wantError(t, r, 400, "InvalidInput")
}

func TestDeleteInUse(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := network(t, c)
	s := createSubnet(c, netID, map[string]any{"cidr": "10.0.0.0/24"}).Item("subnet")
	subnetPath := "/v2.0/subnets/" + apitest.S(s["id"])
	dhcp := c.Create("ports", "port", map[string]any{"network_id": netID, "device_owner": "network:dhcp"})
	vm := c.Create("ports", "port", map[string]any{"network_id": netID, "device_owner": "compute:nova"})

	wantError(t, c.Do("DELETE", subnetPath, nil), 409, "SubnetInUse")
	wantError(t, c.Do("DELETE", "/v2.0/networks/"+netID, nil), 409, "NetworkInUse")
	c.Must(200, "GET", subnetPath, nil)

	// Once only the DHCP port is left, the subnet goes and takes the DHCP
	// port's address with it.
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(vm["id"]), nil)
	c.Must(http.StatusNoContent, "DELETE", subnetPath, nil)
	got := c.Must(200, "GET", "/v2.0/ports/"+apitest.S(dhcp["id"]), nil)["port"].(map[string]any)
	if len(got["fixed_ips"].([]any)) != 0 {
		t.Fatalf("DHCP port kept an address of the deleted subnet: %v", got["fixed_ips"])
	}

	// A router interface keeps a subnet in use.
	s = createSubnet(c, netID, map[string]any{"cidr": "10.0.1.0/24"}).Item("subnet")
	rp := c.Create("ports", "port", map[string]any{"network_id": netID, "device_owner": "network:router_interface", "device_id": "r1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.1.1"}}})
	wantError(t, c.Do("DELETE", "/v2.0/subnets/"+apitest.S(s["id"]), nil), 409, "SubnetInUse")
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(rp["id"]), nil)

	// Addresses on an auto-address subnet do not keep it.
	s6 := createSubnet(c, netID, map[string]any{"cidr": "2001:db8::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}).Item("subnet")
	vm = c.Create("ports", "port", map[string]any{"network_id": netID, "fixed_ips": []any{map[string]any{"subnet_id": s6["id"]}}})
	if len(vm["fixed_ips"].([]any)) != 1 {
		t.Fatalf("SLAAC port: %v", vm["fixed_ips"])
	}
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+apitest.S(s6["id"]), nil)
	got = c.Must(200, "GET", "/v2.0/ports/"+apitest.S(vm["id"]), nil)["port"].(map[string]any)
	if len(got["fixed_ips"].([]any)) != 0 {
		t.Fatalf("port kept an address of the deleted subnet: %v", got["fixed_ips"])
	}

	// The network goes with its subnets and DHCP port once no user port is left.
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(vm["id"]), nil)
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+netID, nil)
	if n := len(c.Do("GET", "/v2.0/subnets", nil).Items("subnets")); n != 0 {
		t.Fatalf("%d subnets left after network delete", n)
	}
	wantError(t, c.Do("GET", "/v2.0/ports/"+apitest.S(dhcp["id"]), nil), 404, "PortNotFound")
}

func TestSubnetPool(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := network(t, c)
	pool := c.Create("subnetpools", "subnetpool", map[string]any{"name": "pool", "prefixes": []any{"10.10.0.0/16"}, "default_prefixlen": 24})
	r := createSubnet(c, netID, map[string]any{"subnetpool_id": pool["id"]})
	if r.Status != http.StatusCreated {
		t.Fatalf("subnet from pool: %d %s", r.Status, r.Raw)
	}
	s := r.Item("subnet")
	if s["subnetpool_id"] != pool["id"] || s["gateway_ip"] == nil || pools(s) == "" {
		t.Fatalf("subnet from pool: %v", s)
	}
	r = createSubnet(c, netID, map[string]any{"subnetpool_id": pool["id"], "prefixlen": 26})
	if r.Status != http.StatusCreated {
		t.Fatalf("subnet with prefixlen: %d %s", r.Status, r.Raw)
	}
	if cidr := apitest.S(r.Item("subnet")["cidr"]); cidr[len(cidr)-3:] != "/26" {
		t.Fatalf("prefixlen ignored: %s", cidr)
	}
	wantError(t, createSubnet(c, netID, map[string]any{"subnetpool_id": pool["id"], "cidr": "10.10.200.0/24", "prefixlen": 24}), 400, "BadRequest")
	wantError(t, createSubnet(c, netID, map[string]any{"cidr": "10.20.0.0/24"}), 400, "NetworkSubnetPoolAffinityError")
}
