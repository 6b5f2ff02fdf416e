package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// TestListAgreesWithShow checks that a list, which reads what visibility
// needs for all its rows at once, shows every caller exactly the objects
// that caller can show one by one, each as show presents it: networks
// private, shared with everyone, shared with or external to one project by
// RBAC, and external to all; subnets and ports on them of their owners and
// of others; security groups and their rules of two projects.
func TestListAgreesWithShow(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	svc := srv.Srv.Service
	ctx := context.Background()

	netOf := func(owner string, attrs map[string]any) string {
		attrs["project_id"] = owner
		return apitest.S(admin.Create("networks", "network", attrs)["id"])
	}
	rbac := func(net, action, target string) {
		admin.Create("rbac-policies", "rbac_policy", map[string]any{
			"object_type": "network", "object_id": net, "action": action, "target_tenant": target, "project_id": "owner",
		})
	}
	nets := []string{
		netOf("lister", map[string]any{}),
		netOf("owner", map[string]any{}),
		netOf("owner", map[string]any{"shared": true}),
		netOf("owner", map[string]any{"router:external": true}),
		netOf("owner", map[string]any{}),
		netOf("owner", map[string]any{}),
		netOf("owner", map[string]any{}),
	}
	rbac(nets[4], "access_as_shared", "lister")
	rbac(nets[5], "access_as_external", "lister")
	rbac(nets[6], "access_as_shared", "stranger")
	for i, n := range nets {
		for j, project := range []string{"owner", "lister"} {
			admin.Create("subnets", "subnet", map[string]any{
				"network_id": n, "project_id": project, "ip_version": 4, "cidr": fmt.Sprintf("10.%d.%d.0/24", i, j),
			})
			admin.Create("ports", "port", map[string]any{"network_id": n, "project_id": project, "device_owner": "compute:nova"})
		}
	}
	for _, project := range []string{"owner", "lister"} {
		g := admin.Create("security-groups", "security_group", map[string]any{"name": "web", "project_id": project})
		admin.Create("security-group-rules", "security_group_rule", map[string]any{
			"security_group_id": g["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "project_id": project,
		})
	}

	call := func(project string, roles ...string) *service.Call {
		id := &auth.Identity{UserID: "user", ProjectID: project, Roles: roles, IsAdmin: slices.Contains(roles, auth.RoleAdmin)}
		return &service.Call{ID: id, Project: project}
	}
	callers := map[string]*service.Call{
		"admin":           call("admin", auth.RoleAdmin),
		"lister member":   call("lister", auth.RoleMember, auth.RoleReader),
		"lister reader":   call("lister", auth.RoleReader),
		"owner member":    call("owner", auth.RoleMember),
		"stranger member": call("stranger", auth.RoleMember),
		"no-role caller":  call("lister", "auditor"),
	}
	for _, plural := range []string{"networks", "subnets", "ports", "security-groups", "security-group-rules"} {
		r := svc.Registry().ByPlural(plural)
		for name, c := range callers {
			listed, err := svc.List(ctx, c, r, &service.Query{Filters: map[string][]any{}})
			if err != nil {
				t.Fatalf("%s lists %s: %v", name, plural, err)
			}
			// Every object of the resource, read past the policy.
			var all []resource.Object
			err = svc.DB().View(ctx, func(tx *store.Tx) error {
				all, err = tx.List(ctx, r, store.Where{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var shown []resource.Object
			for _, o := range all {
				obj, err := svc.Show(ctx, c, r, apitest.S(o["id"]))
				var fe *fault.Error
				if errors.As(err, &fe) && fe.Status == 404 {
					continue
				}
				if err != nil {
					t.Fatalf("%s shows %s %v: %v", name, r.Singular, o["id"], err)
				}
				shown = append(shown, obj)
			}
			if len(shown) == 0 && (plural == "networks" || plural == "subnets") && name != "no-role caller" {
				t.Fatalf("%s sees no %s: the test shows nothing", name, plural)
			}
			if !reflect.DeepEqual(listed.Items, shown) && (len(listed.Items) > 0 || len(shown) > 0) {
				t.Errorf("%s lists %s:\n%v\nwhich show one by one as:\n%v", name, plural, listed.Items, shown)
			}
			checkPages(t, svc, c, r, all)
			if plural == "subnets" {
				checkSharedFilter(t, svc, c, r, shown)
			}
		}
	}
}

// checkSharedFilter checks that the lists of a caller's subnets filtered by
// shared, a hidden attribute only filters see, hold exactly the shown
// subnets whose network RBAC shares with the caller, as show decides it.
func checkSharedFilter(t *testing.T, svc *service.Service, c *service.Call, subnets *resource.Resource, shown []resource.Object) {
	t.Helper()
	ctx := context.Background()
	want := map[bool][]resource.Object{}
	err := svc.DB().View(ctx, func(tx *store.Tx) error {
		for _, sub := range shown {
			shared, _, err := network.Access(ctx, tx, apitest.S(sub["network_id"]), c.Project)
			if err != nil {
				return err
			}
			want[shared] = append(want[shared], sub)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, shared := range []bool{true, false} {
		q, err := service.ParseQuery(subnets, url.Values{"shared": {fmt.Sprint(shared)}})
		if err != nil {
			t.Fatal(err)
		}
		listed, err := svc.List(ctx, c, subnets, q)
		if err != nil {
			t.Fatalf("list subnets?shared=%v as %s: %v", shared, c.Project, err)
		}
		if !reflect.DeepEqual(listed.Items, want[shared]) && (len(listed.Items) > 0 || len(want[shared]) > 0) {
			t.Errorf("%s lists subnets?shared=%v:\n%v\nwant:\n%v", c.Project, shared, listed.Items, want[shared])
		}
	}
}

// checkPages checks that the pages of a list sorted by id, which are read
// from the store a page at a time, are those cut from the whole sorted
// list (sorting by id and then name reads it whole), whatever the marker
// (listed, hidden from the caller, unknown), direction and page size.
func checkPages(t *testing.T, svc *service.Service, c *service.Call, r *resource.Resource, all []resource.Object) {
	t.Helper()
	ctx := context.Background()
	markers := []string{"", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	for _, o := range all {
		markers = append(markers, apitest.S(o["id"]))
	}
	list := func(q *service.Query) *service.Page {
		t.Helper()
		q.Filters = map[string][]any{}
		page, err := svc.List(ctx, c, r, q)
		if err != nil {
			t.Fatalf("list %s: %v", r.Plural, err)
		}
		return page
	}
	for _, limit := range []int{1, 2, 5} {
		for _, marker := range markers {
			for _, reverse := range []bool{false, true} {
				for _, dir := range []string{"", "asc", "desc"} {
					byID := &service.Query{Limit: limit, Marker: marker, PageReverse: reverse}
					whole := &service.Query{Limit: limit, Marker: marker, PageReverse: reverse, SortKeys: []string{"id", "name"}, SortDirs: []string{"asc", "asc"}}
					if dir != "" {
						byID.SortKeys, byID.SortDirs = []string{"id"}, []string{dir}
						whole.SortDirs = []string{dir, dir}
					}
					got, want := list(byID), list(whole)
					if !reflect.DeepEqual(got, want) && (len(got.Items) > 0 || len(want.Items) > 0 || got.Next != want.Next || got.Previous != want.Previous) {
						t.Errorf("%s by %s: limit %d marker %q reverse %v dir %q: got %d items (next %v, previous %v), want %d (next %v, previous %v)",
							r.Plural, c.Project, limit, marker, reverse, dir, len(got.Items), got.Next, got.Previous, len(want.Items), want.Next, want.Previous)
					}
				}
			}
		}
	}
}
