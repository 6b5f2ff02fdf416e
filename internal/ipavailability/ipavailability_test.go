package ipavailability_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/ipavailability"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// fixture writes subnets, ports and address allocations straight to the
// store, as the subnet and port code do, so that the counts under test
// depend on nothing else.
type fixture struct {
	t      *testing.T
	svc    *service.Service
	srv    *apitest.Server
	nports int
}

func (f *fixture) network(name, project string) string {
	f.t.Helper()
	n := f.srv.Client(f.t, project).Create("networks", "network", map[string]any{"name": name})
	return apitest.S(n["id"])
}

func (f *fixture) subnet(netID, name, cidr string, pools ...[2]string) string {
	f.t.Helper()
	id := service.NewID()
	ver := int64(4)
	if strings.Contains(cidr, ":") {
		ver = 6
	}
	list := []any{}
	for _, p := range pools {
		list = append(list, map[string]any{"start": p[0], "end": p[1]})
	}
	f.insert("subnets", resource.Object{"id": id, "project_id": "p1", "tenant_id": "p1", "name": name,
		"network_id": netID, "ip_version": ver, "cidr": cidr, "allocation_pools": list})
	return id
}

// ports allocates n addresses of a subnet to n new ports.
func (f *fixture) ports(netID, subnetID, firstIP string, n int) {
	f.t.Helper()
	ip := netip.MustParseAddr(firstIP)
	ctx := context.Background()
	err := f.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		for range n {
			portID := service.NewID()
			f.nports++
			if err := tx.Insert(ctx, f.svc.Registry().ByPlural("ports"), resource.Object{"id": portID, "project_id": "p1", "tenant_id": "p1",
				"network_id": netID, "mac_address": fmt.Sprintf("fa:16:3e:00:%02x:%02x", f.nports/256, f.nports%256), "device_id": "", "device_owner": ""}); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO ipallocations (network_id, ip_address, ip_sort, subnet_id, port_id) VALUES (?, ?, ?, ?, ?)`,
				netID, ip.String(), ipam.SortKey(ip), subnetID, portID); err != nil {
				return err
			}
			ip = ip.Next()
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) insert(plural string, obj resource.Object) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		return tx.Insert(ctx, f.svc.Registry().ByPlural(plural), obj)
	}); err != nil {
		f.t.Fatal(err)
	}
}

func TestNetworkIPAvailability(t *testing.T) {
	srv := apitest.Start(t)
	f := &fixture{t: t, svc: srv.Srv.Service, srv: srv}
	admin := srv.Client(t, "admin")
	empty := f.network("empty", "p1")
	dual := f.network("dual", "p2")
	v4 := f.subnet(dual, "v4", "10.0.0.0/24", [2]string{"10.0.0.2", "10.0.0.100"}, [2]string{"10.0.0.200", "10.0.0.254"})
	v6 := f.subnet(dual, "v6", "2001:db8::/64", [2]string{"2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"})
	wide := f.subnet(dual, "wide", "2001:db8:1::/48") // no pools: the whole CIDR counts
	f.ports(dual, v4, "10.0.0.2", 3)
	f.ports(dual, v6, "2001:db8::10", 2)

	r := admin.Do("GET", "/v2.0/network-ip-availabilities", nil)
	list := r.Items("network_ip_availabilities")
	if r.Status != http.StatusOK || len(list) != 2 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	byNet := map[string]map[string]any{}
	for _, n := range list {
		byNet[apitest.S(n["network_id"])] = n
	}
	e := byNet[empty]
	if e["network_name"] != "empty" || e["project_id"] != "p1" || e["tenant_id"] != "p1" || apitest.S(e["total_ips"]) != "0" || apitest.S(e["used_ips"]) != "0" || len(e["subnet_ip_availability"].([]any)) != 0 {
		t.Errorf("network without subnets: %v", e)
	}
	d := byNet[dual]
	// 99 + 55 IPv4, 2^64-1 in the /64's pool, 2^80 in the /48: exact.
	const total = "1208944266358702884257945"
	if d["network_name"] != "dual" || d["project_id"] != "p2" || apitest.S(d["total_ips"]) != total || apitest.S(d["used_ips"]) != "5" {
		t.Errorf("dual-stack network: %v", d)
	}
	subs := map[string]map[string]any{}
	for _, s := range d["subnet_ip_availability"].([]any) {
		m := s.(map[string]any)
		subs[apitest.S(m["subnet_id"])] = m
	}
	for id, want := range map[string][5]string{
		v4:   {"v4", "10.0.0.0/24", "4", "154", "3"},
		v6:   {"v6", "2001:db8::/64", "6", "18446744073709551615", "2"},
		wide: {"wide", "2001:db8:1::/48", "6", "1208925819614629174706176", "0"},
	} {
		s := subs[id]
		got := [5]string{apitest.S(s["subnet_name"]), apitest.S(s["cidr"]), apitest.S(s["ip_version"]), apitest.S(s["total_ips"]), apitest.S(s["used_ips"])}
		if got != want {
			t.Errorf("subnet %s: %v, want %v", id, got, want)
		}
	}

	// Show is the same entry; unknown networks are NetworkNotFound.
	one := admin.Must(http.StatusOK, "GET", "/v2.0/network-ip-availabilities/"+dual, nil)["network_ip_availability"].(map[string]any)
	if apitest.S(one["total_ips"]) != total || apitest.S(one["used_ips"]) != "5" || len(one["subnet_ip_availability"].([]any)) != 3 {
		t.Errorf("show: %v", one)
	}
	missing := service.NewID()
	if r := admin.Do("GET", "/v2.0/network-ip-availabilities/"+missing, nil); r.Status != http.StatusNotFound || r.ErrorType() != "NetworkNotFound" ||
		r.Body["NeutronError"].(map[string]any)["message"] != "Network "+missing+" could not be found." {
		t.Errorf("show missing: %d %s", r.Status, r.Raw)
	}
	one = admin.Must(http.StatusOK, "GET", "/v2.0/network-ip-availabilities/"+dual+"?fields=network_id&fields=used_ips", nil)["network_ip_availability"].(map[string]any)
	if len(one) != 2 || apitest.S(one["used_ips"]) != "5" {
		t.Errorf("show with fields: %v", one)
	}
}

func TestNetworkIPAvailabilityFilters(t *testing.T) {
	srv := apitest.Start(t)
	f := &fixture{t: t, svc: srv.Srv.Service, srv: srv}
	admin := srv.Client(t, "admin")
	empty := f.network("empty", "p1")
	dual := f.network("dual", "p2")
	v4 := f.subnet(dual, "v4", "10.0.0.0/24", [2]string{"10.0.0.2", "10.0.0.254"})
	f.subnet(dual, "v6", "2001:db8::/64", [2]string{"2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"})
	f.ports(dual, v4, "10.0.0.2", 2)
	ids := func(query string) []string {
		t.Helper()
		r := admin.Do("GET", "/v2.0/network-ip-availabilities?"+query, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", query, r.Status, r.Raw)
		}
		var out []string
		for _, n := range r.Items("network_ip_availabilities") {
			out = append(out, apitest.S(n["network_id"]))
		}
		return out
	}
	for query, want := range map[string][]string{
		"network_id=" + empty:                         {empty},
		"network_id=" + empty + "&network_id=" + dual: nil, // both, checked by count below
		"network_name=dual":                           {dual},
		"network_name=nope":                           {},
		"project_id=p1":                               {empty},
		"tenant_id=p2":                                {dual},
		"ip_version=6":                                {dual},
	} {
		got := ids(query)
		if want == nil {
			if len(got) != 2 {
				t.Errorf("%s: %v", query, got)
			}
			continue
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
	// ip_version also narrows each network to the subnets of that version.
	r := admin.Do("GET", "/v2.0/network-ip-availabilities?ip_version=4", nil)
	l := r.Items("network_ip_availabilities")
	if len(l) != 1 || apitest.S(l[0]["total_ips"]) != "253" || apitest.S(l[0]["used_ips"]) != "2" || len(l[0]["subnet_ip_availability"].([]any)) != 1 {
		t.Errorf("ip_version=4: %s", r.Raw)
	}
	r = admin.Do("GET", "/v2.0/network-ip-availabilities?fields=network_name&network_id="+dual, nil)
	if l := r.Items("network_ip_availabilities"); len(l) != 1 || len(l[0]) != 1 || l[0]["network_name"] != "dual" {
		t.Errorf("fields: %s", r.Raw)
	}
	for _, query := range []string{"total_ips=3", "bogus=1", "ip_version=four"} {
		if r := admin.Do("GET", "/v2.0/network-ip-availabilities?"+query, nil); r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", query, r.Status, r.Raw)
		}
	}
}

// memberAuth authenticates every request as a project member.
type memberAuth struct{}

func (memberAuth) Authenticate(context.Context, *http.Request) (*auth.Identity, error) {
	return &auth.Identity{UserID: "u1", ProjectID: "p1", Roles: []string{auth.RoleMember}}, nil
}

func TestNetworkIPAvailabilityIsForAdmins(t *testing.T) {
	srv := apitest.Start(t)
	f := &fixture{t: t, svc: srv.Srv.Service, srv: srv}
	netID := f.network("mine", "p1")
	a := api.New(f.svc, memberAuth{}, slog.New(slog.DiscardHandler), nil)
	ipavailability.Register(f.svc, a)
	hs := httptest.NewServer(a)
	defer hs.Close()
	member := apitest.NewClient(t, hs.URL, "p1")
	r := member.Do("GET", "/v2.0/network-ip-availabilities", nil)
	if r.Status != http.StatusOK || len(r.Items("network_ip_availabilities")) != 0 {
		t.Errorf("member list: %d %s", r.Status, r.Raw)
	}
	r = member.Do("GET", "/v2.0/network-ip-availabilities/"+netID, nil)
	if r.Status != http.StatusNotFound || r.ErrorType() != "HTTPNotFound" {
		t.Errorf("member show: %d %s", r.Status, r.Raw)
	}
}

// As Tempest checks it: subnets and ports made through the API.
func TestAvailabilityFollowsPorts(t *testing.T) {
	srv := apitest.Start(t)
	c := srv.Client(t, "p1")
	netID := apitest.S(c.Create("networks", "network", map[string]any{"name": "n"})["id"])
	availability := func() (total, used string) {
		t.Helper()
		n := c.Must(http.StatusOK, "GET", "/v2.0/network-ip-availabilities/"+netID, nil)["network_ip_availability"].(map[string]any)
		return apitest.S(n["total_ips"]), apitest.S(n["used_ips"])
	}
	if total, used := availability(); total != "0" || used != "0" {
		t.Fatalf("before subnets: %s total, %s used", total, used)
	}
	c.Create("subnets", "subnet", map[string]any{"network_id": netID, "ip_version": 4, "cidr": "10.1.0.0/24", "enable_dhcp": false})
	c.Create("subnets", "subnet", map[string]any{"network_id": netID, "ip_version": 6, "cidr": "2001:db8::/64", "gateway_ip": "2001:db8::1", "enable_dhcp": false})
	// Tempest's count: 2^8-3 IPv4 and 2^64-2 IPv6 addresses (network,
	// broadcast and gateway addresses reserved).
	const total = "18446744073709551867"
	if got, used := availability(); got != total || used != "0" {
		t.Fatalf("after subnets: %s total, %s used", got, used)
	}
	port := c.Create("ports", "port", map[string]any{"network_id": netID})
	if got, used := availability(); got != total || used != "2" {
		t.Fatalf("after a dual-stack port: %s total, %s used", got, used)
	}
	c.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+apitest.S(port["id"]), nil)
	if _, used := availability(); used != "0" {
		t.Fatalf("after port delete: %s used", used)
	}
}
