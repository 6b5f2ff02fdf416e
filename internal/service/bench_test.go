package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/config"
)

// Shape of the cloud BenchmarkList lists from.
const (
	benchProjects    = 50
	benchNetworks    = 2000
	benchPortsPerNet = 10
	benchLister      = "p00" // the member project that lists
)

// memberAuth authenticates every request as a member (and reader) of one
// project, as a Keystone token scoped to it would: the policy then works as
// for any non-admin caller, without a Keystone to issue tokens.
type memberAuth struct{ project string }

func (m memberAuth) Authenticate(context.Context, *http.Request) (*auth.Identity, error) {
	return &auth.Identity{UserID: "user-" + m.project, ProjectID: m.project,
		Roles: []string{auth.RoleMember, auth.RoleReader}}, nil
}

// BenchmarkList measures list requests over HTTP on a cloud of 2,000
// networks in 50 projects (every 10th shared with everyone, every 50th
// external, every 20th shared with the listing project by an RBAC entry),
// a subnet on each and 20,000 ports, as the admin and as a member of one
// project. It reports each request's p50 and p99 in ms. The store is
// SQLite, or PostgreSQL with NEUTRINO_TEST_DB=postgres.
//
//	go test ./internal/service -run '^$' -bench BenchmarkList -benchtime 20x
func BenchmarkList(b *testing.B) {
	srv := apitest.Start(b, func(c *config.Config) { c.ML2.VNIRanges = "1:10000" })
	admin := srv.Client(b, "admin")
	nets := populate(b, admin)
	member := httptest.NewServer(api.New(srv.Srv.Service, memberAuth{benchLister}, slog.New(slog.DiscardHandler), nil))
	b.Cleanup(member.Close)
	callers := map[string]*apitest.Client{
		"admin":  admin,
		"member": apitest.NewClient(b, member.URL, ""),
	}
	// What each caller must get back, so the figures are for right answers.
	want := map[string]map[string]int{
		"admin": {"networks": benchNetworks, "subnets": benchNetworks, "ports?network_id": benchPortsPerNet, "ports?device_owner": benchNetworks},
		"member": {
			"networks":           nets.visibleToLister,
			"subnets":            nets.subnetsVisibleToLister,
			"ports?network_id":   benchPortsPerNet, // the listing project owns the network
			"ports?device_owner": nets.listerDeviceOwnerPorts,
		},
	}
	for _, who := range []string{"admin", "member"} {
		c := callers[who]
		requests := []struct {
			name, path, key string
		}{
			{"networks", "/v2.0/networks", "networks"},
			{"subnets", "/v2.0/subnets", "subnets"},
			{"ports?network_id", "/v2.0/ports?network_id=" + nets.listerNet, "ports"},
			{"ports?device_owner", "/v2.0/ports?device_owner=compute:other", "ports"},
		}
		for _, req := range requests {
			b.Run(who+"/"+req.name, func(b *testing.B) {
				measure(b, func() {
					if got := len(c.Do("GET", req.path, nil).Items(req.key)); got != want[who][req.name] {
						b.Fatalf("GET %s as %s: %d %s, want %d", req.path, who, got, req.key, want[who][req.name])
					}
				})
			})
		}
		b.Run(who+"/networks?limit=100 (all pages)", func(b *testing.B) {
			measure(b, func() {
				if got := pages(b, c, "/v2.0/networks?limit=100"); got != want[who]["networks"] {
					b.Fatalf("paging networks as %s: %d networks, want %d", who, got, want[who]["networks"])
				}
			})
		})
	}
}

// measure runs op b.N times and reports its p50 and p99 in ms.
func measure(b *testing.B, op func()) {
	b.Helper()
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		op()
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	pct := func(p float64) float64 {
		return float64(took[int(p*float64(len(took)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// pages follows the next links of a paged list to its end and returns how
// many items it saw.
func pages(b *testing.B, c *apitest.Client, path string) int {
	b.Helper()
	n := 0
	for path != "" {
		r := c.Do("GET", path, nil)
		if r.Status != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, r.Status, r.Raw)
		}
		items := r.Items("networks")
		n += len(items)
		path = ""
		if len(items) == 0 {
			break
		}
		for _, l := range r.Body["networks_links"].([]any) {
			if link := l.(map[string]any); link["rel"] == "next" {
				u, err := url.Parse(apitest.S(link["href"]))
				if err != nil {
					b.Fatalf("next link: %v", err)
				}
				path = u.RequestURI()
			}
		}
	}
	return n
}

// benchCloud is what populate made.
type benchCloud struct {
	listerNet              string // a network of the listing project
	visibleToLister        int    // networks the listing project sees
	subnetsVisibleToLister int    // subnets the listing project sees
	listerDeviceOwnerPorts int    // compute:other ports the listing project sees
}

// populate makes the benchmark's cloud through the API, in bulk requests.
func populate(b *testing.B, admin *apitest.Client) benchCloud {
	b.Helper()
	var cloud benchCloud
	for p := range benchProjects {
		admin.Must(http.StatusOK, "PUT", fmt.Sprintf("/v2.0/quotas/p%02d", p),
			map[string]any{"quota": map[string]any{"network": -1, "subnet": -1, "port": -1, "rbac_policy": -1}})
	}
	type net struct {
		id, owner        string
		sharedWithLister bool
	}
	var nets []net
	const batch = 100
	for first := 0; first < benchNetworks; first += batch {
		var bodies []any
		for i := first; i < first+batch; i++ {
			bodies = append(bodies, map[string]any{
				"name": fmt.Sprintf("net-%04d", i), "project_id": fmt.Sprintf("p%02d", i%benchProjects),
				"shared": i%10 == 3, "router:external": i%50 == 7,
			})
		}
		r := admin.Must(http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"networks": bodies})
		for _, n := range r["networks"].([]any) {
			n := n.(map[string]any)
			nets = append(nets, net{id: apitest.S(n["id"]), owner: apitest.S(n["project_id"])})
		}
	}
	for i := range nets {
		if i%20 == 11 && nets[i].owner != benchLister {
			admin.Create("rbac-policies", "rbac_policy", map[string]any{
				"object_type": "network", "object_id": nets[i].id, "action": "access_as_shared",
				"target_tenant": benchLister, "project_id": nets[i].owner,
			})
			nets[i].sharedWithLister = true
		}
	}
	for i, n := range nets {
		if n.owner == benchLister || i%10 == 3 || i%50 == 7 || n.sharedWithLister {
			cloud.visibleToLister++
		}
		if n.owner == benchLister && cloud.listerNet == "" {
			cloud.listerNet = n.id
		}
		// Its owner's subnet, which an external network does not expose.
		if n.owner == benchLister || i%10 == 3 || n.sharedWithLister {
			cloud.subnetsVisibleToLister++
		}
	}
	// Ten ports a network, each of its network's project except every
	// seventh, which is the listing project's; the last port of each
	// network is compute:other, the rest compute:nova.
	var bodies []any
	flush := func() {
		admin.Must(http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"ports": bodies})
		bodies = bodies[:0]
	}
	k := 0
	for _, n := range nets {
		for j := range benchPortsPerNet {
			owner := n.owner
			if k%7 == 0 {
				owner = benchLister
			}
			k++
			deviceOwner := "compute:nova"
			if j == benchPortsPerNet-1 {
				deviceOwner = "compute:other"
				if owner == benchLister || n.owner == benchLister {
					cloud.listerDeviceOwnerPorts++
				}
			}
			bodies = append(bodies, map[string]any{"network_id": n.id, "project_id": owner, "device_owner": deviceOwner})
			if len(bodies) == 500 {
				flush()
			}
		}
	}
	if len(bodies) > 0 {
		flush()
	}
	// A subnet on each network, after the ports, which so have no
	// addresses (as before subnets were listed here).
	for first := 0; first < len(nets); first += batch {
		var bodies []any
		for i := first; i < min(first+batch, len(nets)); i++ {
			bodies = append(bodies, map[string]any{
				"network_id": nets[i].id, "project_id": nets[i].owner, "ip_version": 4,
				"cidr": fmt.Sprintf("10.%d.%d.0/24", i/256, i%256),
			})
		}
		admin.Must(http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnets": bodies})
	}
	return cloud
}
