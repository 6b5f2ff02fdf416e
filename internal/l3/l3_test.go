package l3_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// topology is an external flat network with a subnet, a tenant network
// with a subnet, and a router of the tenant with its gateway on the
// external network.
type topology struct {
	srv                 *apitest.Server
	admin, c            *apitest.Client
	ext, extSub         map[string]any
	net, sub, router    map[string]any
	extID, subID, rtrID string
}

func id(m map[string]any) string { return apitest.S(m["id"]) }

func setup(t *testing.T, srv *apitest.Server) *topology {
	t.Helper()
	tp := &topology{srv: srv, admin: srv.Client(t, "admin"), c: srv.Client(t, "p1")}
	tp.ext = tp.admin.Create("networks", "network", map[string]any{
		"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public",
	})
	tp.extID = id(tp.ext)
	tp.extSub = tp.admin.Create("subnets", "subnet", map[string]any{
		"network_id": tp.extID, "ip_version": 4, "cidr": "203.0.113.0/24", "enable_dhcp": false,
	})
	tp.net = tp.c.Create("networks", "network", map[string]any{"name": "private"})
	tp.sub = tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(tp.net), "ip_version": 4, "cidr": "10.0.0.0/24"})
	tp.subID = id(tp.sub)
	tp.router = tp.c.Create("routers", "router", map[string]any{
		"name": "r1", "external_gateway_info": map[string]any{"network_id": tp.extID},
	})
	tp.rtrID = id(tp.router)
	return tp
}

// ports lists the ports matching a query string.
func ports(c *apitest.Client, query string) []map[string]any {
	return c.Do("GET", "/v2.0/ports?"+query, nil).Items("ports")
}

// unusedAddress returns the first candidate that no port on the network
// holds: IPAM picks addresses at random, so a test that chooses one must
// step around those already given out.
func unusedAddress(t *testing.T, c *apitest.Client, networkID string, candidates ...string) string {
	t.Helper()
	held := map[string]bool{}
	for _, p := range ports(c, "network_id="+networkID) {
		for _, ip := range fixedIPs(p) {
			held[apitest.S(ip["ip_address"])] = true
		}
	}
	for _, a := range candidates {
		if !held[a] {
			return a
		}
	}
	t.Fatalf("all of %v are in use on network %s", candidates, networkID)
	return ""
}

func fixedIPs(port map[string]any) []map[string]any {
	l, _ := port["fixed_ips"].([]any)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		out = append(out, e.(map[string]any))
	}
	return out
}

func expect(t *testing.T, r *apitest.Response, status int, typ string) {
	t.Helper()
	if r.Status != status || (typ != "" && r.ErrorType() != typ) {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, typ)
	}
}

func put(c *apitest.Client, path string, body map[string]any) *apitest.Response {
	return c.Do("PUT", path, body)
}

func TestRouterGateway(t *testing.T) { backends(t, testRouterGateway) }

func testRouterGateway(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	r := tp.router
	if r["status"] != "ACTIVE" || r["admin_state_up"] != true || r["name"] != "r1" || r["project_id"] != "p1" {
		t.Fatalf("router: %v", r)
	}
	if _, ok := r["gw_port_id"]; ok {
		t.Fatalf("gw_port_id is not part of the API: %v", r)
	}
	gw, _ := r["external_gateway_info"].(map[string]any)
	if gw["network_id"] != tp.extID || gw["enable_snat"] != true {
		t.Fatalf("external_gateway_info: %v", gw)
	}
	ext, _ := gw["external_fixed_ips"].([]any)
	if len(ext) != 1 || ext[0].(map[string]any)["subnet_id"] != id(tp.extSub) {
		t.Fatalf("external_fixed_ips: %v", gw)
	}
	gwIP := ext[0].(map[string]any)["ip_address"]
	gwPorts := ports(tp.admin, "device_id="+tp.rtrID)
	if len(gwPorts) != 1 || gwPorts[0]["device_owner"] != "network:router_gateway" ||
		gwPorts[0]["network_id"] != tp.extID || gwPorts[0]["project_id"] != "" ||
		fixedIPs(gwPorts[0])[0]["ip_address"] != gwIP {
		t.Fatalf("gateway port: %v", gwPorts)
	}

	// ext-gw-mode: SNAT off, then the gateway set again without it is back
	// to the default.
	up := put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": tp.extID, "enable_snat": false}}})
	expect(t, up, 200, "")
	if g := up.Item("router")["external_gateway_info"].(map[string]any); g["enable_snat"] != false || len(g["external_fixed_ips"].([]any)) != 1 {
		t.Fatalf("snat off: %s", up.Raw)
	}
	if p := ports(tp.admin, "device_id="+tp.rtrID); len(p) != 1 || p[0]["id"] != gwPorts[0]["id"] {
		t.Fatalf("SNAT change must keep the gateway port: %v", p)
	}
	up = put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": tp.extID}}})
	if g := up.Item("router")["external_gateway_info"].(map[string]any); g["enable_snat"] != true {
		t.Fatalf("snat default: %s", up.Raw)
	}

	// A chosen gateway address replaces the port's address.
	up = put(tp.admin, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": tp.extID, "external_fixed_ips": []any{
			map[string]any{"subnet_id": id(tp.extSub), "ip_address": "203.0.113.50"}}}}})
	expect(t, up, 200, "")
	g := up.Item("router")["external_gateway_info"].(map[string]any)
	if e := g["external_fixed_ips"].([]any); len(e) != 1 || e[0].(map[string]any)["ip_address"] != "203.0.113.50" {
		t.Fatalf("fixed gateway IP: %s", up.Raw)
	}
	if p := ports(tp.admin, "device_id="+tp.rtrID); len(p) != 1 || fixedIPs(p[0])[0]["ip_address"] != "203.0.113.50" {
		t.Fatalf("gateway port after IP change: %v", p)
	}

	// An admin may readdress the gateway port itself; the router follows.
	gwPort := ports(tp.admin, "device_id="+tp.rtrID)[0]
	expect(t, put(tp.admin, "/v2.0/ports/"+id(gwPort), map[string]any{"port": map[string]any{"fixed_ips": []any{
		map[string]any{"subnet_id": id(tp.extSub), "ip_address": "203.0.113.60"}}}}), 200, "")
	shown := tp.c.Must(200, "GET", "/v2.0/routers/"+tp.rtrID, nil)["router"].(map[string]any)
	if e := shown["external_gateway_info"].(map[string]any)["external_fixed_ips"].([]any); len(e) != 1 || e[0].(map[string]any)["ip_address"] != "203.0.113.60" {
		t.Fatalf("gateway after port update: %v", shown["external_gateway_info"])
	}

	// The subnet's own gateway cannot be the router's external address.
	bad := put(tp.admin, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": tp.extID, "external_fixed_ips": []any{
			map[string]any{"ip_address": apitest.S(tp.extSub["gateway_ip"])}}}}})
	expect(t, bad, 400, "BadRequest")

	// {} clears the gateway (openstack router unset --external-gateway).
	up = put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}})
	expect(t, up, 200, "")
	if up.Item("router")["external_gateway_info"] != nil {
		t.Fatalf("gateway not cleared: %s", up.Raw)
	}
	if p := ports(tp.admin, "device_id="+tp.rtrID); len(p) != 0 {
		t.Fatalf("gateway port left behind: %v", p)
	}

	// Only external networks can be gateways; the failed update changes nothing.
	bad = put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"name": "renamed", "external_gateway_info": map[string]any{"network_id": id(tp.net)}}})
	expect(t, bad, 400, "BadRequest")
	if got := tp.c.Must(200, "GET", "/v2.0/routers/"+tp.rtrID, nil)["router"].(map[string]any); got["name"] != "r1" {
		t.Fatalf("failed update was half-applied: %v", got)
	}
	bad = tp.c.Do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": "6b7c7cd4-0d9a-4c7c-9d0f-1d0d2c7c1a11"}}})
	expect(t, bad, 404, "NetworkNotFound")
	bad = tp.c.Do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"enable_snat": true}}})
	expect(t, bad, 400, "")
	if n := len(tp.c.Do("GET", "/v2.0/routers", nil).Items("routers")); n != 1 {
		t.Fatalf("failed creates left %d routers", n)
	}

	// Deleting a router deletes its gateway port.
	expect(t, put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": tp.extID}}}), 200, "")
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/routers/"+tp.rtrID, nil)
	if p := ports(tp.admin, "device_id="+tp.rtrID); len(p) != 0 {
		t.Fatalf("router delete left ports: %v", p)
	}
}

func addInterface(c *apitest.Client, router string, body map[string]any) *apitest.Response {
	return c.Do("PUT", "/v2.0/routers/"+router+"/add_router_interface", body)
}

func removeInterface(c *apitest.Client, router string, body map[string]any) *apitest.Response {
	return c.Do("PUT", "/v2.0/routers/"+router+"/remove_router_interface", body)
}

func TestRouterInterfaces(t *testing.T) { backends(t, testRouterInterfaces) }

func testRouterInterfaces(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	add := addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID})
	expect(t, add, 200, "")
	info := add.Body
	if info["id"] != tp.rtrID || info["subnet_id"] != tp.subID || info["network_id"] != id(tp.net) ||
		info["project_id"] != "p1" || info["tenant_id"] != "p1" || fmt.Sprint(info["subnet_ids"]) != "["+tp.subID+"]" {
		t.Fatalf("interface info: %s", add.Raw)
	}
	portID := apitest.S(info["port_id"])
	port := tp.c.Must(200, "GET", "/v2.0/ports/"+portID, nil)["port"].(map[string]any)
	if port["device_owner"] != "network:router_interface" || port["device_id"] != tp.rtrID || port["project_id"] != "p1" ||
		len(fixedIPs(port)) != 1 || fixedIPs(port)[0]["ip_address"] != tp.sub["gateway_ip"] {
		t.Fatalf("interface port: %v", port)
	}

	// The same subnet twice, or one that overlaps it, is refused.
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 400, "BadRequest")
	net2 := tp.c.Create("networks", "network", map[string]any{"name": "n2"})
	overlap := tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(net2), "ip_version": 4, "cidr": "10.0.0.0/25"})
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": id(overlap)}), 400, "BadRequest")
	noGW := tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(net2), "ip_version": 4, "cidr": "10.9.0.0/24", "gateway_ip": nil})
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": id(noGW)}), 400, "BadRequest")
	// An external subnet is the gateway's, not an interface's.
	expect(t, addInterface(tp.admin, tp.rtrID, map[string]any{"subnet_id": id(tp.extSub)}), 400, "BadRequest")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{}), 400, "BadRequest")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": "nope"}), 400, "BadRequest")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID, "port_id": portID}), 400, "BadRequest")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": "6b7c7cd4-0d9a-4c7c-9d0f-1d0d2c7c1a11"}), 404, "SubnetNotFound")

	// By port: the port becomes the router's.
	sub3 := tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(net2), "ip_version": 4, "cidr": "10.3.0.0/24"})
	p3 := tp.c.Create("ports", "port", map[string]any{"network_id": id(net2), "fixed_ips": []any{map[string]any{"subnet_id": id(sub3)}}})
	add = addInterface(tp.c, tp.rtrID, map[string]any{"port_id": id(p3)})
	expect(t, add, 200, "")
	if add.Body["port_id"] != id(p3) || add.Body["subnet_id"] != id(sub3) {
		t.Fatalf("interface by port: %s", add.Raw)
	}
	p3 = tp.c.Must(200, "GET", "/v2.0/ports/"+id(p3), nil)["port"].(map[string]any)
	if p3["device_owner"] != "network:router_interface" || p3["device_id"] != tp.rtrID {
		t.Fatalf("port not attached: %v", p3)
	}
	r2 := tp.c.Create("routers", "router", map[string]any{"name": "r2"})
	expect(t, addInterface(tp.c, id(r2), map[string]any{"port_id": id(p3)}), 409, "PortInUse")
	bare := tp.c.Create("ports", "port", map[string]any{"network_id": id(tp.net), "fixed_ips": []any{}})
	expect(t, addInterface(tp.c, id(r2), map[string]any{"port_id": id(bare)}), 400, "BadRequest")

	// The ports API may neither delete nor repurpose router ports.
	expect(t, tp.c.Do("DELETE", "/v2.0/ports/"+portID, nil), 409, "ServicePortInUse")
	expect(t, put(tp.c, "/v2.0/ports/"+portID, map[string]any{"port": map[string]any{"device_owner": "compute:nova"}}), 409, "PortInUse")
	gwPort := ports(tp.admin, "device_owner=network:router_gateway&device_id="+tp.rtrID)[0]
	expect(t, tp.admin.Do("DELETE", "/v2.0/ports/"+id(gwPort), nil), 409, "ServicePortInUse")
	// A router with interfaces stays.
	expect(t, tp.c.Do("DELETE", "/v2.0/routers/"+tp.rtrID, nil), 409, "RouterInUse")

	// The interface list is the router's ports; revision moved on.
	if got := ports(tp.c, "device_owner=network:router_interface&device_id="+tp.rtrID); len(got) != 2 {
		t.Fatalf("interfaces: %v", got)
	}
	if rev := apitest.S(tp.c.Must(200, "GET", "/v2.0/routers/"+tp.rtrID, nil)["router"].(map[string]any)["revision_number"]); rev == apitest.S(tp.router["revision_number"]) {
		t.Fatalf("interface changes did not bump the router revision (%s)", rev)
	}

	// Removal by subnet and by port.
	rm := removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID})
	expect(t, rm, 200, "")
	if rm.Body["port_id"] != portID || rm.Body["subnet_id"] != tp.subID {
		t.Fatalf("remove info: %s", rm.Raw)
	}
	expect(t, tp.c.Do("GET", "/v2.0/ports/"+portID, nil), 404, "PortNotFound")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 404, "RouterInterfaceNotFoundForSubnet")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"port_id": id(bare)}), 404, "RouterInterfaceNotFound")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"port_id": id(p3), "subnet_id": tp.subID}), 400, "SubnetMismatchForPort")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"port_id": id(p3)}), 200, "")
	expect(t, tp.c.Do("GET", "/v2.0/ports/"+id(p3), nil), 404, "PortNotFound")

	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/routers/"+tp.rtrID, nil)
	if left := ports(tp.admin, "device_id="+tp.rtrID); len(left) != 0 {
		t.Fatalf("ports left: %v", left)
	}
}

func setRoutes(c *apitest.Client, router string, routes ...map[string]any) *apitest.Response {
	l := make([]any, len(routes))
	for i, r := range routes {
		l[i] = r
	}
	return put(c, "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"routes": l}})
}

func route(dst, nexthop string) map[string]any {
	return map[string]any{"destination": dst, "nexthop": nexthop}
}

func TestExtraRoutes(t *testing.T) { backends(t, testExtraRoutes) }

func testExtraRoutes(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", "10.0.0.5")), 400, "InvalidRoutes")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")

	// A nexthop on the external subnet that is not the router's own
	// (random) gateway address.
	nexthop := unusedAddress(t, tp.admin, tp.extID, "203.0.113.254", "203.0.113.253")
	up := setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", "10.0.0.5"), route("0.0.0.0/0", nexthop))
	expect(t, up, 200, "")
	if got := up.Item("router")["routes"].([]any); len(got) != 2 {
		t.Fatalf("routes: %s", up.Raw)
	}
	// The nexthop must be on a connected subnet, not the router itself,
	// and a route may not be given twice.
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", "172.16.0.1")), 400, "InvalidRoutes")
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", apitest.S(tp.sub["gateway_ip"]))), 400, "InvalidRoutes")
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", "10.0.0.5"), route("192.168.0.0/24", "10.0.0.5")), 400, "")
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.1/24", "10.0.0.5")), 400, "")
	expect(t, setRoutes(tp.c, tp.rtrID, route("192.168.0.0/24", "not-an-ip")), 400, "")
	var many []map[string]any
	for i := range 31 {
		many = append(many, route(fmt.Sprintf("192.168.%d.0/24", i), "10.0.0.5"))
	}
	expect(t, setRoutes(tp.c, tp.rtrID, many...), 409, "OverQuota")
	shown := tp.c.Must(200, "GET", "/v2.0/routers/"+tp.rtrID, nil)["router"].(map[string]any)
	if len(shown["routes"].([]any)) != 2 {
		t.Fatalf("refused updates changed the routes: %v", shown["routes"])
	}

	// Interfaces and gateways that routes depend on stay.
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 409, "RouterInterfaceInUseByRoute")
	expect(t, put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{"external_gateway_info": nil}}), 400, "InvalidRoutes")

	expect(t, setRoutes(tp.c, tp.rtrID), 200, "")

	// extraroute-atomic: add and remove without sending the whole list.
	atomic := func(action string, routes ...map[string]any) *apitest.Response {
		l := make([]any, len(routes))
		for i, r := range routes {
			l[i] = r
		}
		return put(tp.c, "/v2.0/routers/"+tp.rtrID+"/"+action, map[string]any{"router": map[string]any{"routes": l}})
	}
	r := atomic("add_extraroutes", route("192.168.1.0/24", "10.0.0.5"), route("192.168.2.0/24", "10.0.0.6"))
	expect(t, r, 200, "")
	r = atomic("add_extraroutes", route("192.168.1.0/24", "10.0.0.5"), route("192.168.3.0/24", "10.0.0.7"))
	expect(t, r, 200, "")
	if got := r.Item("router")["routes"].([]any); len(got) != 3 || r.Item("router")["id"] != tp.rtrID {
		t.Fatalf("after adds: %s", r.Raw)
	}
	if _, ok := r.Item("router")["gw_port_id"]; ok {
		t.Fatalf("gw_port_id shown: %s", r.Raw)
	}
	expect(t, atomic("add_extraroutes", route("192.168.4.0/24", "172.16.0.1")), 400, "InvalidRoutes")
	expect(t, put(tp.c, "/v2.0/routers/"+tp.rtrID+"/add_extraroutes", map[string]any{"routes": []any{}}), 400, "")
	r = atomic("remove_extraroutes", route("192.168.1.0/24", "10.0.0.5"), route("10.99.0.0/16", "10.0.0.9"))
	expect(t, r, 200, "")
	got := tp.c.Must(200, "GET", "/v2.0/routers/"+tp.rtrID, nil)["router"].(map[string]any)["routes"].([]any)
	if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(r.Item("router")["routes"]) {
		t.Fatalf("after remove: %v", got)
	}
	expect(t, atomic("remove_extraroutes", route("192.168.2.0/24", "10.0.0.6"), route("192.168.3.0/24", "10.0.0.7")), 200, "")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
}

func TestFloatingIPs(t *testing.T) { backends(t, testFloatingIPs) }

func testFloatingIPs(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	vm := tp.c.Create("ports", "port", map[string]any{"network_id": id(tp.net), "name": "vm"})
	vmIP := fixedIPs(vm)[0]["ip_address"]

	fip := tp.c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID})
	fipID := id(fip)
	if fip["status"] != "DOWN" || fip["router_id"] != nil || fip["port_id"] != nil || fip["fixed_ip_address"] != nil ||
		fip["project_id"] != "p1" || fip["floating_network_id"] != tp.extID || fip["floating_ip_address"] == nil {
		t.Fatalf("floating IP: %v", fip)
	}
	if _, ok := fip["floating_port_id"]; ok {
		t.Fatalf("floating_port_id is not part of the API: %v", fip)
	}
	fport := ports(tp.admin, "device_id="+fipID)
	if len(fport) != 1 || fport[0]["device_owner"] != "network:floatingip" || fport[0]["project_id"] != "" ||
		fixedIPs(fport[0])[0]["ip_address"] != fip["floating_ip_address"] {
		t.Fatalf("floating port: %v", fport)
	}

	// Association needs a router between the port's subnet and the
	// external network.
	expect(t, put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": id(vm)}}), 404, "ExternalGatewayForFloatingIPNotFound")
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
	up := put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": id(vm)}})
	expect(t, up, 200, "")
	if f := up.Item("floatingip"); f["router_id"] != tp.rtrID || f["port_id"] != id(vm) || f["fixed_ip_address"] != vmIP {
		t.Fatalf("associated: %s", up.Raw)
	}
	// An address of the subnet that the port does not hold.
	notMine := "10.0.0.254"
	if vmIP == notMine {
		notMine = "10.0.0.253"
	}
	expect(t, put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": id(vm), "fixed_ip_address": notMine}}), 400, "BadRequest")
	expect(t, put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": "6b7c7cd4-0d9a-4c7c-9d0f-1d0d2c7c1a11"}}), 404, "PortNotFound")

	// One floating IP per fixed IP.
	r := tp.c.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID, "port_id": id(vm)}})
	expect(t, r, 409, "FloatingIPPortAlreadyAssociated")
	if n := len(ports(tp.admin, "device_owner=network:floatingip")); n != 1 {
		t.Fatalf("refused floating IP left %d floating ports", n)
	}

	// What the floating IP goes through stays.
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 409, "RouterInterfaceInUseByFloatingIP")
	expect(t, put(tp.c, "/v2.0/routers/"+tp.rtrID, map[string]any{"router": map[string]any{"external_gateway_info": nil}}), 409, "RouterExternalGatewayInUseByFloatingIp")
	expect(t, tp.admin.Do("DELETE", "/v2.0/ports/"+id(fport[0]), nil), 409, "ServicePortInUse")

	// Disassociation clears the router.
	up = put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": nil}})
	expect(t, up, 200, "")
	if f := up.Item("floatingip"); f["router_id"] != nil || f["port_id"] != nil || f["fixed_ip_address"] != nil {
		t.Fatalf("disassociated: %s", up.Raw)
	}
	expect(t, put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"fixed_ip_address": vmIP}}), 400, "BadRequest")

	// Deleting the fixed port disassociates.
	expect(t, put(tp.c, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": id(vm), "description": "web"}}), 200, "")
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+id(vm), nil)
	f := tp.c.Must(200, "GET", "/v2.0/floatingips/"+fipID, nil)["floatingip"].(map[string]any)
	if f["port_id"] != nil || f["router_id"] != nil || f["fixed_ip_address"] != nil || f["description"] != "web" {
		t.Fatalf("after port delete: %v", f)
	}

	// Deleting the floating IP deletes its port.
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/floatingips/"+fipID, nil)
	if n := len(ports(tp.admin, "device_id="+fipID)); n != 0 {
		t.Fatalf("floating port left behind")
	}

	// Only external networks with IPv4 subnets give floating IPs.
	expect(t, tp.c.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": id(tp.net)}}), 400, "BadRequest")
	// A chosen address that is taken. The router's gateway holds a random
	// address of the same subnet, so the chosen one avoids it.
	chosen := unusedAddress(t, tp.admin, tp.extID, "203.0.113.77", "203.0.113.78")
	f1 := tp.c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID, "floating_ip_address": chosen})
	if f1["floating_ip_address"] != chosen {
		t.Fatalf("chosen address: %v", f1)
	}
	expect(t, tp.c.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID, "floating_ip_address": chosen}}), 409, "IpAddressAlreadyAllocated")
	// From a chosen subnet.
	f2 := tp.c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID, "subnet_id": id(tp.extSub)})
	if fp := ports(tp.admin, "device_id="+id(f2)); len(fp) != 1 || fixedIPs(fp[0])[0]["subnet_id"] != id(tp.extSub) {
		t.Fatalf("floating IP from a subnet: %v", fp)
	}
	// A port with two IPv4 addresses needs fixed_ip_address.
	two := tp.c.Create("ports", "port", map[string]any{"network_id": id(tp.net), "fixed_ips": []any{
		map[string]any{"subnet_id": tp.subID}, map[string]any{"subnet_id": tp.subID}}})
	expect(t, put(tp.c, "/v2.0/floatingips/"+id(f2), map[string]any{"floatingip": map[string]any{"port_id": id(two)}}), 400, "BadRequest")
	second := apitest.S(fixedIPs(two)[1]["ip_address"])
	up = put(tp.c, "/v2.0/floatingips/"+id(f2), map[string]any{"floatingip": map[string]any{"port_id": id(two), "fixed_ip_address": second}})
	expect(t, up, 200, "")
	if up.Item("floatingip")["fixed_ip_address"] != second {
		t.Fatalf("chosen fixed IP: %s", up.Raw)
	}
	// An update of other attributes keeps the association; an empty
	// update clears it, as Neutron does for old clients.
	up = put(tp.c, "/v2.0/floatingips/"+id(f2), map[string]any{"floatingip": map[string]any{"description": "kept"}})
	if f := up.Item("floatingip"); up.Status != 200 || f["port_id"] != id(two) || f["fixed_ip_address"] != second {
		t.Fatalf("description update: %s", up.Raw)
	}
	up = put(tp.c, "/v2.0/floatingips/"+id(f2), map[string]any{"floatingip": map[string]any{}})
	if f := up.Item("floatingip"); up.Status != 200 || f["port_id"] != nil || f["fixed_ip_address"] != nil || f["router_id"] != nil || f["description"] != "kept" {
		t.Fatalf("empty update: %s", up.Raw)
	}
	expect(t, put(tp.c, "/v2.0/floatingips/"+id(f2), map[string]any{"floatingip": map[string]any{"port_id": id(two), "fixed_ip_address": second}}), 200, "")
	// The fixed IP a floating IP uses stays on the port.
	expect(t, put(tp.c, "/v2.0/ports/"+id(two), map[string]any{"port": map[string]any{"fixed_ips": []any{
		map[string]any{"subnet_id": tp.subID, "ip_address": fixedIPs(two)[0]["ip_address"]}}}}), 400, "BadRequest")
	// fixed_ip_address needs a port.
	expect(t, tp.c.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID, "fixed_ip_address": "10.0.0.3"}}), 400, "BadRequest")
	// Quotas apply, and a refused floating IP leaves no floating port.
	tp.admin.Must(200, "PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"floatingip": 2}})
	expect(t, tp.c.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID}}), 409, "OverQuota")
	if n := len(ports(tp.admin, "device_owner=network:floatingip")); n != 2 {
		t.Fatalf("refused floating IPs left %d floating ports", n)
	}
}

// TestFullSequence walks what a user does: external network and subnet,
// tenant network and subnet, router with gateway, interface, extra route,
// floating IP for a server port, then takes it all down in order.
func TestFullSequence(t *testing.T) { backends(t, testFullSequence) }

func testFullSequence(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
	expect(t, setRoutes(tp.c, tp.rtrID, route("172.16.0.0/16", "10.0.0.200")), 200, "")
	vm := tp.c.Create("ports", "port", map[string]any{"network_id": id(tp.net), "device_owner": "compute:nova", "device_id": "server-1"})
	fip := tp.c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID, "port_id": id(vm)})
	if fip["router_id"] != tp.rtrID || fip["fixed_ip_address"] != fixedIPs(vm)[0]["ip_address"] {
		t.Fatalf("floating IP created associated: %v", fip)
	}
	if l := tp.c.Do("GET", "/v2.0/floatingips?router_id="+tp.rtrID, nil).Items("floatingips"); len(l) != 1 {
		t.Fatalf("filter by router: %v", l)
	}
	// The external network cannot go while the router uses it.
	expect(t, tp.admin.Do("DELETE", "/v2.0/networks/"+tp.extID, nil), 409, "NetworkInUse")

	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/floatingips/"+id(fip), nil)
	expect(t, setRoutes(tp.c, tp.rtrID), 200, "")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/routers/"+tp.rtrID, nil)
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+id(vm), nil)
	tp.c.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+id(tp.net), nil)
	tp.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/networks/"+tp.extID, nil)
	if left := ports(tp.admin, ""); len(left) != 0 {
		t.Fatalf("ports left: %v", left)
	}
}

// TestConcurrentChanges races clients on one router: of several
// overlapping subnets added at once, one becomes an interface; of several
// floating IPs pointed at one port at once, one is associated.
func TestConcurrentChanges(t *testing.T) { backends(t, testConcurrentChanges) }

func testConcurrentChanges(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	const n = 6
	subnets := make([]string, n)
	for i := range subnets {
		net := tp.c.Create("networks", "network", map[string]any{"name": fmt.Sprint("n", i)})
		subnets[i] = id(tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(net), "ip_version": 4, "cidr": "10.7.0.0/24"}))
	}
	statuses := race(n, func(i int) int {
		return addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": subnets[i]}).Status
	})
	if statuses[200] != 1 || statuses[400] != n-1 {
		t.Fatalf("overlapping interfaces at once: %v", statuses)
	}
	intf := ports(tp.c, "device_owner=network:router_interface&device_id="+tp.rtrID)
	if len(intf) != 1 {
		t.Fatalf("interfaces: %v", intf)
	}
	vmNet := apitest.S(intf[0]["network_id"])
	vm := tp.c.Create("ports", "port", map[string]any{"network_id": vmNet})
	fips := make([]string, n)
	for i := range fips {
		fips[i] = id(tp.c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID}))
	}
	statuses = race(n, func(i int) int {
		return put(tp.c, "/v2.0/floatingips/"+fips[i], map[string]any{"floatingip": map[string]any{"port_id": id(vm)}}).Status
	})
	if statuses[200] != 1 || statuses[409] != n-1 {
		t.Fatalf("associations at once: %v", statuses)
	}
	if l := tp.c.Do("GET", "/v2.0/floatingips?port_id="+id(vm), nil).Items("floatingips"); len(l) != 1 {
		t.Fatalf("associated floating IPs: %v", l)
	}
}

// race runs fn for 0..n-1 at once and counts the statuses.
func race(n int, fn func(i int) int) map[int]int {
	out := make(chan int, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			out <- fn(i)
		}()
	}
	close(start)
	counts := map[int]int{}
	for range n {
		counts[<-out]++
	}
	return counts
}

// TestIPv6Prefixes: IPv6 subnets of one network share one router port,
// whose prefixes come and go one at a time.
func TestIPv6Prefixes(t *testing.T) { backends(t, testIPv6Prefixes) }

func testIPv6Prefixes(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	gateways := map[string]any{}
	v6 := func(cidr, mode string) string {
		s := tp.c.Create("subnets", "subnet", map[string]any{"network_id": id(tp.net), "ip_version": 6, "cidr": cidr,
			"ipv6_ra_mode": mode, "ipv6_address_mode": mode})
		gateways[id(s)] = s["gateway_ip"]
		return id(s)
	}
	a, b := v6("2001:db8:1::/64", "slaac"), v6("2001:db8:2::/64", "dhcpv6-stateful")
	first := addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": a})
	expect(t, first, 200, "")
	second := addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": b})
	expect(t, second, 200, "")
	intf := ports(tp.c, "device_owner=network:router_interface&device_id="+tp.rtrID)
	if len(intf) != 1 || len(fixedIPs(intf[0])) != 2 || second.Body["port_id"] != intf[0]["id"] {
		t.Fatalf("one port for both prefixes: %v %s", intf, second.Raw)
	}
	for _, ip := range fixedIPs(intf[0]) {
		if want := gateways[apitest.S(ip["subnet_id"])]; want == nil || ip["ip_address"] != want {
			t.Fatalf("prefix addresses: %v", intf[0]["fixed_ips"])
		}
	}
	// An IPv4 subnet of the same network gets a port of its own.
	expect(t, addInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")

	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": a}), 200, "")
	intf = ports(tp.c, "device_owner=network:router_interface&device_id="+tp.rtrID+"&fixed_ips=subnet_id%3D"+b)
	if len(intf) != 1 || len(fixedIPs(intf[0])) != 1 || fixedIPs(intf[0])[0]["subnet_id"] != b {
		t.Fatalf("after removing one prefix: %v", intf)
	}
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": b}), 200, "")
	expect(t, removeInterface(tp.c, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
	if l := ports(tp.c, "device_owner=network:router_interface&device_id="+tp.rtrID); len(l) != 0 {
		t.Fatalf("interfaces left: %v", l)
	}
}
