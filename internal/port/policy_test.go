package port_test

import (
	"context"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// member is a non-admin caller with the member role in project.
func member(project string) *service.Call {
	return &service.Call{ID: &auth.Identity{UserID: "user-" + project, ProjectID: project, Roles: []string{auth.RoleMember}}, Project: project}
}

// TestPolicy checks, as non-admin callers (noauth API clients are
// admins), who may create and see ports and subnets on whose networks.
func TestPolicy(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	svc := srv.Srv.Service
	ctx := context.Background()
	ports := svc.Registry().ByPlural("ports")
	subnets := svc.Registry().ByPlural("subnets")
	mkNet := func(attrs map[string]any) (netID, subnetID string) {
		attrs["project_id"] = "owner"
		n := admin.Create("networks", "network", attrs)
		s := admin.Create("subnets", "subnet", map[string]any{"network_id": n["id"], "ip_version": 4, "cidr": "10.0.0.0/24", "project_id": "owner"})
		return apitest.S(n["id"]), apitest.S(s["id"])
	}
	private, privateSubnet := mkNet(map[string]any{})
	shared, sharedSubnet := mkNet(map[string]any{"shared": true})
	external, _ := mkNet(map[string]any{"router:external": true})

	create := func(c *service.Call, r *resource.Resource, body map[string]any) (resource.Object, string) {
		t.Helper()
		out, err := svc.Create(ctx, c, r, []map[string]any{body})
		if err != nil {
			fe, ok := fault.As(err)
			if !ok {
				t.Fatalf("create %s: unexpected error %v", r.Singular, err)
			}
			return nil, fe.Type
		}
		return out[0], ""
	}
	other := member("other")
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"private network", map[string]any{"network_id": private}, "NetworkNotFound"},
		{"external network", map[string]any{"network_id": external}, "PolicyNotAuthorized"},
		{"shared, own MAC", map[string]any{"network_id": shared, "mac_address": "fa:16:3e:00:00:01"}, "PolicyNotAuthorized"},
		{"shared, own IP", map[string]any{"network_id": shared, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.9"}}}, "PolicyNotAuthorized"},
		{"shared, network device", map[string]any{"network_id": shared, "device_owner": "network:dhcp"}, "PolicyNotAuthorized"},
		{"shared, port security", map[string]any{"network_id": shared, "port_security_enabled": false}, "PolicyNotAuthorized"},
		{"shared, by subnet", map[string]any{"network_id": shared, "fixed_ips": []any{map[string]any{"subnet_id": sharedSubnet}}}, ""},
		{"shared", map[string]any{"network_id": shared}, ""},
	} {
		if _, got := create(other, ports, tc.body); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, got := create(other, subnets, map[string]any{"network_id": shared, "ip_version": 4, "cidr": "10.1.0.0/24"}); got != "PolicyNotAuthorized" {
		t.Errorf("subnet on a shared network: %q", got)
	}
	if _, got := create(other, subnets, map[string]any{"network_id": private, "ip_version": 4, "cidr": "10.1.0.0/24"}); got != "NetworkNotFound" {
		t.Errorf("subnet on a private network: %q", got)
	}

	// The port's owner and the network's owner see it; a third project does not.
	p, _ := create(other, ports, map[string]any{"network_id": shared})
	id := apitest.S(p["id"])
	for _, c := range []*service.Call{other, member("owner")} {
		if _, err := svc.Show(ctx, c, ports, id); err != nil {
			t.Errorf("%s cannot see the port: %v", c.Project, err)
		}
	}
	if _, err := svc.Show(ctx, member("third"), ports, id); err == nil {
		t.Error("a third project sees the port")
	}
	// Subnets of shared and external networks are visible to everyone.
	for id, want := range map[string]bool{privateSubnet: false, sharedSubnet: true} {
		_, err := svc.Show(ctx, other, subnets, id)
		if (err == nil) != want {
			t.Errorf("subnet %s visible: %v, want %v", id, err == nil, want)
		}
	}
	// The network's owner may delete a port on its network.
	if err := svc.Delete(ctx, member("owner"), ports, id, service.AnyRevision); err != nil {
		t.Fatalf("network owner deletes the port: %v", err)
	}
}
