package subnet_test

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// TestSharedFilterAndVisibility: subnets have Neutron's hidden shared
// attribute, which filters but is never shown, and a network that is only
// external (not shared) does not expose its subnets to other projects.
func TestSharedFilterAndVisibility(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "p1")
	subnetOn := func(net map[string]any, cidr string) string {
		r := createSubnet(admin, apitest.S(net["id"]), map[string]any{"cidr": cidr})
		if r.Status != 201 {
			t.Fatalf("subnet %s: %d %s", cidr, r.Status, r.Raw)
		}
		return apitest.S(r.Item("subnet")["id"])
	}
	private := subnetOn(admin.Create("networks", "network", map[string]any{"name": "private"}), "10.0.1.0/24")
	shared := subnetOn(admin.Create("networks", "network", map[string]any{"name": "shared", "shared": true}), "10.0.2.0/24")
	external := subnetOn(admin.Create("networks", "network", map[string]any{"name": "ext", "router:external": true}), "10.0.3.0/24")

	ids := func(query string) []string {
		t.Helper()
		r := admin.Do("GET", "/v2.0/subnets?"+query, nil)
		if r.Status != 200 {
			t.Fatalf("list ?%s: %d %s", query, r.Status, r.Raw)
		}
		var out []string
		for _, s := range r.Items("subnets") {
			if _, shown := s["shared"]; shown {
				t.Fatalf("shared is shown: %v", s)
			}
			out = append(out, apitest.S(s["id"]))
		}
		slices.Sort(out)
		return out
	}
	want := []string{private, external}
	slices.Sort(want)
	if got := ids("shared=False"); !slices.Equal(got, want) {
		t.Fatalf("shared=False: %v, want %v", got, want)
	}
	if got := ids("shared=true"); !slices.Equal(got, []string{shared}) {
		t.Fatalf("shared=true: %v, want %v", got, []string{shared})
	}
	if r := admin.Do("GET", "/v2.0/subnets?shared=maybe", nil); r.Status != 400 {
		t.Fatalf("shared=maybe: %d %s", r.Status, r.Raw)
	}
	// Hidden attributes that are not filters stay refused.
	if r := admin.Do("GET", "/v2.0/subnets?prefixlen=24", nil); r.Status != 400 {
		t.Fatalf("prefixlen filter: %d %s", r.Status, r.Raw)
	}
	if r := admin.Do("GET", "/v2.0/subnets/"+shared, nil); r.Status != 200 || r.Item("subnet")["shared"] != nil {
		t.Fatalf("show: %d %s", r.Status, r.Raw)
	}

	// Another project sees the shared network's subnet only, and filters
	// it as shared.
	ctx := context.Background()
	svc := srv.Srv.Service
	other := &service.Call{ID: &auth.Identity{ProjectID: "p2", Roles: []string{auth.RoleMember, auth.RoleReader}}, Project: "p2"}
	subnets := svc.Registry().ByPlural("subnets")
	list := func(query string) []string {
		t.Helper()
		v, _ := url.ParseQuery(query)
		q, err := service.ParseQuery(subnets, v)
		if err != nil {
			t.Fatalf("parse %s: %v", query, err)
		}
		page, err := svc.List(ctx, other, subnets, q)
		if err != nil {
			t.Fatalf("list %s: %v", query, err)
		}
		var out []string
		for _, s := range page.Items {
			out = append(out, apitest.S(s["id"]))
		}
		return out
	}
	if got := list(""); !slices.Equal(got, []string{shared}) {
		t.Fatalf("other project lists %v, want only %s", got, shared)
	}
	if got := list("shared=True"); !slices.Equal(got, []string{shared}) {
		t.Fatalf("other project, shared=True: %v", got)
	}
	if got := list("shared=False"); len(got) != 0 {
		t.Fatalf("other project, shared=False: %v", got)
	}
	if _, err := svc.Show(ctx, other, subnets, external); !isFault(err, "SubnetNotFound") {
		t.Fatalf("external network's subnet shown to another project: %v", err)
	}
}

func isFault(err error, typ string) bool {
	fe, ok := fault.As(err)
	return ok && fe.Type == typ
}
