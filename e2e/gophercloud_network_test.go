package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// networkClient is a gophercloud Networking v2 client for n without
// Keystone: a fixed endpoint, and the project sent as X-Project-Id, which
// neutrino's noauth mode (like Neutron's) takes as the caller's project.
func networkClient(n *Neutrino, project string) *gophercloud.ServiceClient {
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{}},
		Endpoint:       n.URL + "/",
		ResourceBase:   n.URL + "/v2.0/",
		Type:           "network",
		MoreHeaders:    map[string]string{"X-Project-Id": project},
	}
}

// wantStatus fails the test unless err is gophercloud's
// ErrUnexpectedResponseCode with the given status and its body names one of
// the Neutron error types.
func wantStatus(t *testing.T, err error, status int, errTypes ...string) {
	t.Helper()
	var code gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &code) {
		t.Fatalf("want ErrUnexpectedResponseCode %d %v, got %T: %v", status, errTypes, err, err)
	}
	if code.Actual != status || !slices.ContainsFunc(errTypes, func(typ string) bool {
		return strings.Contains(string(code.Body), `"type":"`+typ+`"`)
	}) {
		t.Fatalf("want %d %v, got %d: %s", status, errTypes, code.Actual, code.Body)
	}
}

// providerOpts adds the single-segment provider attributes, which
// gophercloud's provider package (multi-provider segments) does not offer.
type providerOpts struct {
	networks.CreateOptsBuilder
	networkType, physicalNetwork string
}

func (o providerOpts) ToNetworkCreateMap() (map[string]any, error) {
	m, err := o.CreateOptsBuilder.ToNetworkCreateMap()
	if err != nil {
		return nil, err
	}
	net := m["network"].(map[string]any)
	net["provider:network_type"], net["provider:physical_network"] = o.networkType, o.physicalNetwork
	return m, nil
}

func TestGophercloudNetworks(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	ctx := context.Background()
	c := networkClient(n, "e2e-project")

	up := true
	net, err := networks.Create(ctx, c, networks.CreateOpts{Name: "gc-net", AdminStateUp: &up}).Extract()
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	if net.Status != "ACTIVE" || net.ProjectID != "e2e-project" || net.Shared {
		t.Fatalf("created network: %+v", net)
	}

	var public struct {
		ID              string `json:"id"`
		NetworkType     string `json:"provider:network_type"`
		PhysicalNetwork string `json:"provider:physical_network"`
		External        bool   `json:"router:external"`
	}
	iTrue := true
	ext := external.CreateOptsExt{
		CreateOptsBuilder: providerOpts{networks.CreateOpts{Name: "gc-public"}, "flat", "public"},
		External:          &iTrue,
	}
	if err := networks.Create(ctx, c, ext).ExtractInto(&public); err != nil {
		t.Fatalf("create external flat network: %v", err)
	}
	if public.NetworkType != "flat" || public.PhysicalNetwork != "public" || !public.External {
		t.Fatalf("external flat network: %+v", public)
	}
	// A second flat network on the same physical network is a conflict.
	_, err = networks.Create(ctx, c, providerOpts{networks.CreateOpts{Name: "gc-public2"}, "flat", "public"}).Extract()
	wantStatus(t, err, http.StatusConflict, "FlatNetworkInUse")

	name := "gc-net-renamed"
	if _, err := networks.Update(ctx, c, net.ID, networks.UpdateOpts{Name: &name}).Extract(); err != nil {
		t.Fatalf("update network: %v", err)
	}
	if _, err := attributestags.ReplaceAll(ctx, c, "networks", net.ID, attributestags.ReplaceAllOpts{Tags: []string{"red", "blue"}}).Extract(); err != nil {
		t.Fatalf("replace tags: %v", err)
	}
	got, err := networks.Get(ctx, c, net.ID).Extract()
	if err != nil {
		t.Fatalf("get network: %v", err)
	}
	slices.Sort(got.Tags)
	if got.Name != name || !slices.Equal(got.Tags, []string{"blue", "red"}) || got.RevisionNumber < 2 {
		t.Fatalf("network after update and tags: %+v", got)
	}

	pages, err := networks.List(c, networks.ListOpts{Tags: "red"}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list by tag: %v", err)
	}
	tagged, err := networks.ExtractNetworks(pages)
	if err != nil || len(tagged) != 1 || tagged[0].ID != net.ID {
		t.Fatalf("networks tagged red: %+v %v", tagged, err)
	}

	policy, err := rbacpolicies.Create(ctx, c, rbacpolicies.CreateOpts{
		ObjectType: "network", ObjectID: net.ID, Action: rbacpolicies.ActionAccessShared, TargetTenant: "other-project",
	}).Extract()
	if err != nil {
		t.Fatalf("create rbac policy: %v", err)
	}
	if policy.TargetTenant != "other-project" || policy.ObjectID != net.ID {
		t.Fatalf("rbac policy: %+v", policy)
	}
	_, err = rbacpolicies.Create(ctx, c, rbacpolicies.CreateOpts{
		ObjectType: "network", ObjectID: net.ID, Action: rbacpolicies.ActionAccessShared, TargetTenant: "other-project",
	}).Extract()
	wantStatus(t, err, http.StatusConflict, "DuplicateRbacPolicy")

	for _, id := range []string{net.ID, public.ID} {
		if err := networks.Delete(ctx, c, id).ExtractErr(); err != nil {
			t.Fatalf("delete network %s: %v", id, err)
		}
	}
	_, err = networks.Get(ctx, c, net.ID).Extract()
	wantStatus(t, err, http.StatusNotFound, "NetworkNotFound")
	if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("ResponseCodeIs(404) is false for %v", err)
	}
	err = networks.Delete(ctx, c, net.ID).ExtractErr()
	wantStatus(t, err, http.StatusNotFound, "NetworkNotFound")
}

// TestGophercloudPagination pages through more networks than one page holds
// with gophercloud's pager, which follows the networks_links "next" hrefs.
func TestGophercloudPagination(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	ctx := context.Background()
	c := networkClient(n, "e2e-project")

	const total, limit = 7, 2
	var want []string
	for i := range total {
		name := fmt.Sprintf("page-net-%02d", i)
		if _, err := networks.Create(ctx, c, networks.CreateOpts{Name: name}).Extract(); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		want = append(want, name)
	}

	var pageSizes []int
	var names []string
	err := networks.List(c, networks.ListOpts{Limit: limit, SortKey: "name", SortDir: "asc"}).EachPage(ctx,
		func(_ context.Context, page pagination.Page) (bool, error) {
			nets, err := networks.ExtractNetworks(page)
			if err != nil {
				return false, err
			}
			pageSizes = append(pageSizes, len(nets))
			for _, n := range nets {
				names = append(names, n.Name)
			}
			return true, nil
		})
	if err != nil {
		t.Fatalf("page through networks: %v", err)
	}
	if !slices.Equal(names, want) || !slices.Equal(pageSizes, []int{2, 2, 2, 1}) {
		t.Fatalf("paged names %v in pages of %v; want %v in pages of [2 2 2 1]", names, pageSizes, want)
	}

	// Descending, all at once through AllPages.
	pages, err := networks.List(c, networks.ListOpts{Limit: 3, SortKey: "name", SortDir: "desc"}).AllPages(ctx)
	if err != nil {
		t.Fatalf("all pages: %v", err)
	}
	all, err := networks.ExtractNetworks(pages)
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	slices.Reverse(want)
	var desc []string
	for _, n := range all {
		desc = append(desc, n.Name)
	}
	if !slices.Equal(desc, want) {
		t.Fatalf("descending: %v, want %v", desc, want)
	}
}
