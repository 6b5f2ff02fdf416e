package port_test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// fixture is a network with one IPv4 subnet.
type fixture struct {
	c              *apitest.Client
	netID, subnet  string
	subnetResponse map[string]any
}

func newFixture(t testing.TB, c *apitest.Client, cidr string, extra map[string]any) fixture {
	t.Helper()
	n := c.Create("networks", "network", map[string]any{"name": "net"})
	body := map[string]any{"network_id": n["id"], "ip_version": 4, "cidr": cidr}
	for k, v := range extra {
		body[k] = v
	}
	s := c.Create("subnets", "subnet", body)
	return fixture{c: c, netID: apitest.S(n["id"]), subnet: apitest.S(s["id"]), subnetResponse: s}
}

func (f fixture) port(t testing.TB, attrs map[string]any) *apitest.Response {
	t.Helper()
	body := map[string]any{"network_id": f.netID}
	for k, v := range attrs {
		body[k] = v
	}
	return f.c.Do("POST", "/v2.0/ports", map[string]any{"port": body})
}

func fixedIPs(t testing.TB, port map[string]any) []map[string]string {
	t.Helper()
	l, _ := port["fixed_ips"].([]any)
	var out []map[string]string
	for _, e := range l {
		m := e.(map[string]any)
		out = append(out, map[string]string{"subnet_id": apitest.S(m["subnet_id"]), "ip_address": apitest.S(m["ip_address"])})
	}
	return out
}

func wantError(t testing.TB, r *apitest.Response, status int, typ string) {
	t.Helper()
	if r.Status != status || r.ErrorType() != typ {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, typ)
	}
}

func countPorts(t testing.TB, c *apitest.Client, netID string) int {
	t.Helper()
	return len(c.Do("GET", "/v2.0/ports?network_id="+netID, nil).Items("ports"))
}

func TestSpecificAndAutomaticAddresses(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)

	r := f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": f.subnet, "ip_address": "10.0.0.50"}}})
	if r.Status != http.StatusCreated {
		t.Fatalf("specific IP: %d %s", r.Status, r.Raw)
	}
	p := r.Item("port")
	if got := fixedIPs(t, p); len(got) != 1 || got[0]["ip_address"] != "10.0.0.50" || got[0]["subnet_id"] != f.subnet {
		t.Fatalf("fixed_ips: %v", got)
	}
	if p["status"] != "DOWN" || p["binding:vif_type"] != "unbound" || p["port_security_enabled"] != true {
		t.Fatalf("new port: %v", p)
	}

	// The same address again, by subnet or by address alone.
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": f.subnet, "ip_address": "10.0.0.50"}}}), 409, "IpAddressAlreadyAllocated")
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.50"}}}), 409, "IpAddressAlreadyAllocated")

	// Addresses the subnet cannot give.
	for _, ip := range []string{"10.0.0.0", "10.0.0.255", "10.0.1.5"} {
		wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": f.subnet, "ip_address": ip}}}), 400, "InvalidIpForSubnet")
	}
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "192.168.0.5"}}}), 400, "InvalidIpForNetwork")
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{}}}), 400, "InvalidInput")
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": "6b0a2a5e-0000-4000-8000-000000000000"}}}), 404, "SubnetNotFound")
	other := newFixture(t, f.c, "10.9.0.0/24", nil)
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": other.subnet}}}), 400, "InvalidInput")
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.7 "}}}), 400, "HTTPBadRequest")

	// A subnet_id alone, and no fixed_ips at all, take a pool address.
	pool := ipam.Pool{Start: netip.MustParseAddr("10.0.0.2"), End: netip.MustParseAddr("10.0.0.254")}
	for _, attrs := range []map[string]any{{"fixed_ips": []any{map[string]any{"subnet_id": f.subnet}}}, {}} {
		r := f.port(t, attrs)
		if r.Status != http.StatusCreated {
			t.Fatalf("automatic IP: %d %s", r.Status, r.Raw)
		}
		got := fixedIPs(t, r.Item("port"))
		if len(got) != 1 || !pool.Contains(netip.MustParseAddr(got[0]["ip_address"])) {
			t.Fatalf("automatic IP outside the pool: %v", got)
		}
	}

	// An explicit empty list gives a port without addresses.
	r = f.port(t, map[string]any{"fixed_ips": []any{}})
	if r.Status != http.StatusCreated || len(fixedIPs(t, r.Item("port"))) != 0 {
		t.Fatalf("no fixed IPs: %d %s", r.Status, r.Raw)
	}

	// A router interface takes the gateway address, outside the pools.
	r = f.port(t, map[string]any{"device_owner": "network:router_interface", "device_id": "r1",
		"fixed_ips": []any{map[string]any{"subnet_id": f.subnet, "ip_address": "10.0.0.1"}}})
	if r.Status != http.StatusCreated || fixedIPs(t, r.Item("port"))[0]["ip_address"] != "10.0.0.1" {
		t.Fatalf("gateway port: %d %s", r.Status, r.Raw)
	}
	if sg, _ := r.Item("port")["security_groups"].([]any); len(sg) != 0 {
		t.Fatalf("network:* ports get no security groups: %v", sg)
	}

	// Lists filter on fixed_ips as the openstack CLI sends them.
	l := f.c.Do("GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.50", nil).Items("ports")
	if len(l) != 1 || l[0]["id"] != p["id"] {
		t.Fatalf("filter by fixed IP: %v", l)
	}
	if n := len(f.c.Do("GET", "/v2.0/ports?fixed_ips=subnet_id%3D"+f.subnet, nil).Items("ports")); n != 4 {
		t.Fatalf("filter by subnet: %d ports", n)
	}
}

func TestExhaustionAndReuse(t *testing.T) {
	srv := apitest.Start(t)
	// A /29 has .1 (gateway) and .2-.6 in its pool.
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/29", nil)
	seen := map[string]string{}
	for range 5 {
		r := f.port(t, nil)
		if r.Status != http.StatusCreated {
			t.Fatalf("port %d: %d %s", len(seen), r.Status, r.Raw)
		}
		ip := fixedIPs(t, r.Item("port"))[0]["ip_address"]
		if seen[ip] != "" {
			t.Fatalf("address %s given twice", ip)
		}
		seen[ip] = apitest.S(r.Item("port")["id"])
	}
	r := f.port(t, nil)
	wantError(t, r, 409, "IpAddressGenerationFailure")
	if want := "No more IP addresses available on network " + f.netID + "."; r.Body["NeutronError"].(map[string]any)["message"] != want {
		t.Fatalf("message: %s", r.Raw)
	}
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": f.subnet}}}), 409, "IpAddressGenerationFailure")

	// Deleting a port frees its address for the next one.
	f.c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+seen["10.0.0.4"], nil)
	r = f.port(t, nil)
	if r.Status != http.StatusCreated || fixedIPs(t, r.Item("port"))[0]["ip_address"] != "10.0.0.4" {
		t.Fatalf("freed address not reused: %d %s", r.Status, r.Raw)
	}
}

func TestIPv6Addresses(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	f := newFixture(t, c, "10.0.0.0/24", nil)
	slaac := c.Create("subnets", "subnet", map[string]any{"network_id": f.netID, "ip_version": 6, "cidr": "2001:db8:1::/64",
		"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	stateful := c.Create("subnets", "subnet", map[string]any{"network_id": f.netID, "ip_version": 6, "cidr": "2001:db8:2::/64",
		"ipv6_address_mode": "dhcpv6-stateful"})

	r := f.port(t, map[string]any{"mac_address": "fa:16:3e:11:22:33"})
	if r.Status != http.StatusCreated {
		t.Fatalf("dual-stack port: %d %s", r.Status, r.Raw)
	}
	bySubnet := map[string]string{}
	for _, ip := range fixedIPs(t, r.Item("port")) {
		bySubnet[ip["subnet_id"]] = ip["ip_address"]
	}
	if len(bySubnet) != 3 {
		t.Fatalf("want one address per subnet: %v", bySubnet)
	}
	if got := bySubnet[apitest.S(slaac["id"])]; got != "2001:db8:1:0:f816:3eff:fe11:2233" {
		t.Fatalf("SLAAC address %s is not the EUI-64 of the MAC", got)
	}
	if !netip.MustParsePrefix("2001:db8:2::/64").Contains(netip.MustParseAddr(bySubnet[apitest.S(stateful["id"])])) {
		t.Fatalf("stateful address: %v", bySubnet)
	}

	// Any other address on an auto-address subnet is refused.
	wantError(t, f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": slaac["id"], "ip_address": "2001:db8:1::5"}}}), 400, "AllocationOnAutoAddressSubnet")

	// A new MAC moves the EUI-64 address and keeps the others.
	id := apitest.S(r.Item("port")["id"])
	up := c.Must(200, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:44:55:66"}})["port"].(map[string]any)
	after := map[string]string{}
	for _, ip := range fixedIPs(t, up) {
		after[ip["subnet_id"]] = ip["ip_address"]
	}
	if after[apitest.S(slaac["id"])] != "2001:db8:1:0:f816:3eff:fe44:5566" || after[f.subnet] != bySubnet[f.subnet] || len(after) != 3 {
		t.Fatalf("after MAC change: %v (before %v)", after, bySubnet)
	}

	// Ports that exist when an auto-address subnet appears get an address on it.
	third := c.Create("subnets", "subnet", map[string]any{"network_id": f.netID, "ip_version": 6, "cidr": "2001:db8:3::/64",
		"ipv6_ra_mode": "dhcpv6-stateless", "ipv6_address_mode": "dhcpv6-stateless"})
	got := c.Must(200, "GET", "/v2.0/ports/"+id, nil)["port"].(map[string]any)
	found := false
	for _, ip := range fixedIPs(t, got) {
		found = found || (ip["subnet_id"] == apitest.S(third["id"]) && ip["ip_address"] == "2001:db8:3:0:f816:3eff:fe44:5566")
	}
	if !found {
		t.Fatalf("existing port got no address on the new SLAAC subnet: %v", got["fixed_ips"])
	}
}

func TestMACAddresses(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	f := newFixture(t, c, "10.0.0.0/24", nil)
	g := newFixture(t, c, "10.0.0.0/24", nil)

	p := c.Create("ports", "port", map[string]any{"network_id": f.netID})
	mac, err := net.ParseMAC(apitest.S(p["mac_address"]))
	if err != nil || !strings.HasPrefix(mac.String(), "fa:16:3e:") {
		t.Fatalf("generated MAC %v not from base_mac", p["mac_address"])
	}
	r := f.port(t, map[string]any{"mac_address": "FA-16-3E-AA-BB-CC"})
	if r.Status != http.StatusCreated || r.Item("port")["mac_address"] != "fa:16:3e:aa:bb:cc" {
		t.Fatalf("given MAC: %d %s", r.Status, r.Raw)
	}
	before := countPorts(t, c, f.netID)
	wantError(t, f.port(t, map[string]any{"mac_address": "fa:16:3e:aa:bb:cc"}), 409, "MacAddressInUse")
	if countPorts(t, c, f.netID) != before {
		t.Fatal("a refused port was written")
	}
	// The MAC is unique per network only.
	if r := g.port(t, map[string]any{"mac_address": "fa:16:3e:aa:bb:cc"}); r.Status != http.StatusCreated {
		t.Fatalf("same MAC on another network: %d %s", r.Status, r.Raw)
	}
	for _, bad := range []string{"01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "fa:16:3e:aa:bb", "nonsense"} {
		wantError(t, f.port(t, map[string]any{"mac_address": bad}), 400, "HTTPBadRequest")
	}
	// Updating to a MAC in use is refused; to a free one works.
	id := apitest.S(p["id"])
	r = c.Do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:aa:bb:cc"}})
	wantError(t, r, 409, "MacAddressInUse")
	c.Must(200, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:aa:bb:cd"}})
}

func TestPortOnMissingNetwork(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	r := c.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": "6b0a2a5e-0000-4000-8000-000000000000"}})
	wantError(t, r, 404, "NetworkNotFound")
}

func TestBulkCreateIsAllOrNothing(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)
	f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.9"}}})
	before := countPorts(t, f.c, f.netID)
	body := map[string]any{"ports": []any{
		map[string]any{"network_id": f.netID, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.7"}}, "mac_address": "fa:16:3e:00:00:07"},
		map[string]any{"network_id": f.netID, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.8"}}},
		map[string]any{"network_id": f.netID, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.9"}}},
	}}
	wantError(t, f.c.Do("POST", "/v2.0/ports", body), 409, "IpAddressAlreadyAllocated")
	if n := countPorts(t, f.c, f.netID); n != before {
		t.Fatalf("failed bulk create left %d ports behind", n-before)
	}
	// Neither the addresses nor the MAC of the rolled-back ports are held.
	r := f.port(t, map[string]any{"mac_address": "fa:16:3e:00:00:07", "fixed_ips": []any{
		map[string]any{"ip_address": "10.0.0.7"}, map[string]any{"ip_address": "10.0.0.8"}}})
	if r.Status != http.StatusCreated {
		t.Fatalf("addresses of a failed bulk create still held: %d %s", r.Status, r.Raw)
	}
	// A bulk create that succeeds gives every port its own address.
	body = map[string]any{"ports": []any{
		map[string]any{"network_id": f.netID}, map[string]any{"network_id": f.netID}, map[string]any{"network_id": f.netID},
	}}
	res := f.c.Do("POST", "/v2.0/ports", body)
	if res.Status != http.StatusCreated {
		t.Fatalf("bulk create: %d %s", res.Status, res.Raw)
	}
	seen := map[string]bool{}
	for _, p := range res.Items("ports") {
		ip := fixedIPs(t, p)[0]["ip_address"]
		if seen[ip] {
			t.Fatalf("bulk create gave %s twice", ip)
		}
		seen[ip] = true
	}
}

func TestUpdateFixedIPs(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)
	p := f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}}).Item("port")
	id := apitest.S(p["id"])
	put := func(fixed []any) *apitest.Response {
		return f.c.Do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"fixed_ips": fixed}})
	}
	// Add an address, keeping the first.
	r := put([]any{map[string]any{"ip_address": "10.0.0.10"}, map[string]any{"ip_address": "10.0.0.11"}})
	if got := fixedIPs(t, r.Item("port")); r.Status != 200 || len(got) != 2 {
		t.Fatalf("add address: %d %s", r.Status, r.Raw)
	}
	// Replace both: the old ones are free again.
	r = put([]any{map[string]any{"ip_address": "10.0.0.12"}})
	if got := fixedIPs(t, r.Item("port")); r.Status != 200 || len(got) != 1 || got[0]["ip_address"] != "10.0.0.12" {
		t.Fatalf("replace: %d %s", r.Status, r.Raw)
	}
	if r := f.port(t, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}}); r.Status != http.StatusCreated {
		t.Fatalf("released address not free: %d %s", r.Status, r.Raw)
	}
	// A subnet_id alone keeps the address the port has there.
	r = put([]any{map[string]any{"subnet_id": f.subnet}})
	if got := fixedIPs(t, r.Item("port")); r.Status != 200 || len(got) != 1 || got[0]["ip_address"] != "10.0.0.12" {
		t.Fatalf("subnet only: %d %s", r.Status, r.Raw)
	}
	// An address in use is refused and changes nothing.
	wantError(t, put([]any{map[string]any{"ip_address": "10.0.0.10"}}), 409, "IpAddressAlreadyAllocated")
	got := f.c.Must(200, "GET", "/v2.0/ports/"+id, nil)["port"].(map[string]any)
	if ips := fixedIPs(t, got); len(ips) != 1 || ips[0]["ip_address"] != "10.0.0.12" {
		t.Fatalf("failed update changed the port: %v", ips)
	}
	// No addresses at all.
	r = put([]any{})
	if r.Status != 200 || len(fixedIPs(t, r.Item("port"))) != 0 {
		t.Fatalf("clear: %d %s", r.Status, r.Raw)
	}
}

func TestPortSecurity(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	f := newFixture(t, c, "10.0.0.0/24", nil)

	p := f.port(t, nil).Item("port")
	if sg, _ := p["security_groups"].([]any); len(sg) != 1 {
		t.Fatalf("compute port without the default group: %v", p["security_groups"])
	}
	r := f.port(t, map[string]any{"port_security_enabled": false})
	if r.Status != http.StatusCreated || len(r.Item("port")["security_groups"].([]any)) != 0 {
		t.Fatalf("port without port security: %d %s", r.Status, r.Raw)
	}
	wantError(t, f.port(t, map[string]any{"port_security_enabled": false, "security_groups": []any{p["security_groups"].([]any)[0]}}), 400, "PortSecurityAndIPRequiredForSecurityGroups")
	wantError(t, f.port(t, map[string]any{"port_security_enabled": false, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.99"}}}), 409, "AddressPairAndPortSecurityRequired")

	// Port security cannot be turned off while groups remain, unless the
	// same update removes them.
	id := apitest.S(p["id"])
	wantError(t, c.Do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"port_security_enabled": false}}), 409, "PortSecurityPortHasSecurityGroup")
	up := c.Must(200, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"port_security_enabled": false, "security_groups": []any{}}})["port"].(map[string]any)
	if up["port_security_enabled"] != false {
		t.Fatalf("update: %v", up)
	}

	// A network without port security gives its ports none by default.
	n := c.Create("networks", "network", map[string]any{"port_security_enabled": false})
	np := c.Create("ports", "port", map[string]any{"network_id": n["id"]})
	if np["port_security_enabled"] != false || len(np["security_groups"].([]any)) != 0 {
		t.Fatalf("port on a network without port security: %v", np)
	}
}

func TestAllowedAddressPairs(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)
	r := f.port(t, map[string]any{"mac_address": "fa:16:3e:00:00:01", "allowed_address_pairs": []any{
		map[string]any{"ip_address": "10.0.0.100"},
		map[string]any{"ip_address": "192.168.0.0/24", "mac_address": "fa:16:3e:00:00:02"},
	}})
	if r.Status != http.StatusCreated {
		t.Fatalf("pairs: %d %s", r.Status, r.Raw)
	}
	pairs := r.Item("port")["allowed_address_pairs"].([]any)
	first := pairs[0].(map[string]any)
	if first["ip_address"] != "10.0.0.100" || first["mac_address"] != "fa:16:3e:00:00:01" || pairs[1].(map[string]any)["mac_address"] != "fa:16:3e:00:00:02" {
		t.Fatalf("pairs as stored: %v", pairs)
	}
	var many []any
	for i := range 11 {
		many = append(many, map[string]any{"ip_address": fmt.Sprintf("10.0.1.%d", i)})
	}
	wantError(t, f.port(t, map[string]any{"allowed_address_pairs": many}), 400, "AllowedAddressPairExhausted")
	wantError(t, f.port(t, map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.5"}, map[string]any{"ip_address": "10.0.0.5"}}}), 400, "DuplicateAddressPairInRequest")
	wantError(t, f.port(t, map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "224.0.0.5"}}}), 400, "HTTPBadRequest")
	wantError(t, f.port(t, map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.300"}}}), 400, "HTTPBadRequest")
	wantError(t, f.port(t, map[string]any{"allowed_address_pairs": []any{map[string]any{"mac_address": "fa:16:3e:00:00:09"}}}), 400, "HTTPBadRequest")
}

func TestExtraDHCPOptions(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)
	r := f.port(t, map[string]any{"extra_dhcp_opts": []any{
		map[string]any{"opt_name": "tftp-server", "opt_value": "10.0.0.3"},
		map[string]any{"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
		map[string]any{"opt_name": "router", "opt_value": ""},
	}})
	if r.Status != http.StatusCreated || len(r.Item("port")["extra_dhcp_opts"].([]any)) != 3 {
		t.Fatalf("options: %d %s", r.Status, r.Raw)
	}
	id := apitest.S(r.Item("port")["id"])
	up := f.c.Must(200, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"extra_dhcp_opts": []any{
		map[string]any{"opt_name": "tftp-server", "opt_value": "10.0.0.4"},
		map[string]any{"opt_name": "router", "opt_value": nil},
	}}})["port"].(map[string]any)
	opts := map[string]string{}
	for _, o := range up["extra_dhcp_opts"].([]any) {
		m := o.(map[string]any)
		opts[apitest.S(m["opt_name"])] = apitest.S(m["opt_value"])
	}
	if len(opts) != 2 || opts["tftp-server"] != "10.0.0.4" || opts["bootfile-name"] != "pxelinux.0" {
		t.Fatalf("merged options: %v", opts)
	}
	for _, bad := range []map[string]any{
		{"opt_name": "", "opt_value": "x"},
		{"opt_name": "tftp-server"},
		{"opt_name": "tftp-server", "opt_value": ""},
		{"opt_name": "tftp-server", "opt_value": "x", "ip_version": 5},
	} {
		wantError(t, f.port(t, map[string]any{"extra_dhcp_opts": []any{bad}}), 400, "HTTPBadRequest")
	}
}

func TestBinding(t *testing.T) {
	srv := apitest.Start(t)
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/24", nil)
	p := f.port(t, nil).Item("port")
	if p["binding:vif_type"] != "unbound" {
		t.Fatalf("no host: %v", p["binding:vif_type"])
	}
	up := f.c.Must(200, "PUT", "/v2.0/ports/"+apitest.S(p["id"]), map[string]any{"port": map[string]any{"binding:host_id": "compute-1"}})["port"].(map[string]any)
	if up["binding:vif_type"] != "binding_failed" || up["binding:host_id"] != "compute-1" {
		t.Fatalf("host without agents: %v", up)
	}
}

// TestConcurrentAllocation creates ports from many clients at once on a
// subnet with fewer addresses than clients: every address goes to one
// port, and every other request is told the subnet is full.
func TestConcurrentAllocation(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { concurrentAllocation(t, apitest.Start(t)) })
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.StartPostgres(t)
		concurrentAllocation(t, apitest.Start(t, apitest.WithDatabase(dsn)))
	})
}

func concurrentAllocation(t *testing.T, srv *apitest.Server) {
	// A /28: .1 is the gateway, .2-.14 (13 addresses) the pool.
	f := newFixture(t, srv.Client(t, "p1"), "10.0.0.0/28", nil)
	const clients = 40
	type result struct {
		status int
		typ    string
		ip     string
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := srv.Client(t, "p1")
			r := c.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": f.netID}})
			res := result{status: r.Status, typ: r.ErrorType()}
			if r.Status == http.StatusCreated {
				res.ip = fixedIPs(t, r.Item("port"))[0]["ip_address"]
			}
			results[i] = res
		}()
	}
	wg.Wait()
	got := map[string]bool{}
	failed := 0
	for _, r := range results {
		switch {
		case r.status == http.StatusCreated:
			if got[r.ip] {
				t.Errorf("address %s given to two ports", r.ip)
			}
			got[r.ip] = true
		case r.status == http.StatusConflict && r.typ == "IpAddressGenerationFailure":
			failed++
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.typ)
		}
	}
	if len(got) != 13 || failed != clients-13 {
		t.Fatalf("%d ports created, %d refused; want 13 and %d", len(got), failed, clients-13)
	}
	if n := countPorts(t, f.c, f.netID); n != 13 {
		t.Fatalf("%d ports stored, want 13", n)
	}
}
