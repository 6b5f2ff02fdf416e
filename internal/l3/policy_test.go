package l3_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
)

// memberAuth authenticates every request as a member of the project named
// in X-Project-Id (the test server itself runs noauth, where every caller
// is an administrator).
type memberAuth struct{}

func (memberAuth) Authenticate(_ context.Context, r *http.Request) (*auth.Identity, error) {
	p := r.Header.Get("X-Project-Id")
	return &auth.Identity{UserID: "u-" + p, ProjectID: p, Roles: []string{auth.RoleMember, auth.RoleReader}}, nil
}

// members serves the API of srv to project members.
func members(t *testing.T, srv *apitest.Server) string {
	a := api.New(srv.Srv.Service, memberAuth{}, slog.New(slog.DiscardHandler), nil)
	hs := httptest.NewServer(a)
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestMemberPolicy(t *testing.T) { backends(t, testMemberPolicy) }

func testMemberPolicy(t *testing.T, srv *apitest.Server) {
	tp := setup(t, srv)
	url := members(t, srv)
	m1, m2 := apitest.NewClient(t, url, "p1"), apitest.NewClient(t, url, "p2")

	// enable_snat and external_fixed_ips are the admin's to set.
	gw := func(extra map[string]any) map[string]any {
		g := map[string]any{"network_id": tp.extID}
		for k, v := range extra {
			g[k] = v
		}
		return map[string]any{"router": map[string]any{"external_gateway_info": g}}
	}
	expect(t, m1.Do("POST", "/v2.0/routers", gw(map[string]any{"enable_snat": false})), 403, "PolicyNotAuthorized")
	expect(t, m1.Do("POST", "/v2.0/routers", gw(map[string]any{"external_fixed_ips": []any{map[string]any{"subnet_id": id(tp.extSub)}}})), 403, "PolicyNotAuthorized")
	expect(t, m1.Do("PUT", "/v2.0/routers/"+tp.rtrID, gw(map[string]any{"enable_snat": true})), 403, "PolicyNotAuthorized")
	mine := m1.Do("POST", "/v2.0/routers", gw(nil))
	expect(t, mine, 201, "")
	if g := mine.Item("router")["external_gateway_info"].(map[string]any); g["enable_snat"] != true {
		t.Fatalf("member router: %s", mine.Raw)
	}
	// The gateway port is nobody's: a member does not see it.
	if l := ports(m1, "device_id="+id(mine.Item("router"))); len(l) != 0 {
		t.Fatalf("member sees the gateway port: %v", l)
	}

	// Another project's router, network and ports are not there for p2.
	expect(t, m2.Do("GET", "/v2.0/routers/"+tp.rtrID, nil), 404, "RouterNotFound")
	expect(t, addInterface(m2, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 404, "RouterNotFound")
	r2 := m2.Create("routers", "router", map[string]any{"name": "r2"})
	expect(t, addInterface(m2, id(r2), map[string]any{"subnet_id": tp.subID}), 404, "SubnetNotFound")
	private := tp.admin.Create("networks", "network", map[string]any{"project_id": "p3"})
	expect(t, m2.Do("PUT", "/v2.0/routers/"+id(r2), map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": id(private)}}}), 404, "NetworkNotFound")

	// A subnet shared with everyone still is not p2's to route.
	shared := tp.admin.Create("networks", "network", map[string]any{"shared": true})
	sharedSub := tp.admin.Create("subnets", "subnet", map[string]any{"network_id": id(shared), "ip_version": 4, "cidr": "10.50.0.0/24"})
	expect(t, addInterface(m2, id(r2), map[string]any{"subnet_id": id(sharedSub)}), 400, "BadRequest")

	// Floating IPs: p2 cannot point one at p1's port, nor see p1's.
	expect(t, addInterface(m1, tp.rtrID, map[string]any{"subnet_id": tp.subID}), 200, "")
	vm := m1.Create("ports", "port", map[string]any{"network_id": id(tp.net)})
	f1 := m1.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID, "port_id": id(vm)})
	if f1["router_id"] != tp.rtrID || f1["status"] != "DOWN" {
		t.Fatalf("member floating IP: %v", f1)
	}
	expect(t, m2.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID, "port_id": id(vm)}}), 404, "PortNotFound")
	expect(t, m2.Do("GET", "/v2.0/floatingips/"+id(f1), nil), 404, "FloatingIPNotFound")
	if l := m2.Do("GET", "/v2.0/floatingips", nil).Items("floatingips"); len(l) != 0 {
		t.Fatalf("p2 lists p1's floating IPs: %v", l)
	}
	// The floating port is not p1's either.
	if l := ports(m1, "device_owner=network:floatingip"); len(l) != 0 {
		t.Fatalf("member sees the floating port: %v", l)
	}

	// Choosing the address is for admins and project managers.
	expect(t, m1.Do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": tp.extID, "floating_ip_address": "203.0.113.99"}}), 403, "PolicyNotAuthorized")

	// A port p1 may not undo an admin's floating IP on by deleting it.
	vm2 := m1.Create("ports", "port", map[string]any{"network_id": id(tp.net)})
	tp.admin.Create("floatingips", "floatingip", map[string]any{"floating_network_id": tp.extID, "port_id": id(vm2)})
	expect(t, m1.Do("DELETE", "/v2.0/ports/"+id(vm2), nil), 409, "FipAssociated")

	// A router port may not claim another project's router.
	expect(t, m1.Do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": id(tp.net), "device_owner": "network:router_interface", "device_id": id(r2)}}), 409, "DeviceIDNotOwnedByTenant")
}
