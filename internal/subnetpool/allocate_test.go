package subnetpool_test

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

func TestAllocatePrefix(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	e := newEnv(t, srv)
	pool := createPool(t, admin, map[string]any{"prefixes": []any{"10.11.12.0/24", "10.20.0.0/16"}, "min_prefixlen": 24, "max_prefixlen": 30, "default_prefixlen": 26})
	id := apitest.S(pool["id"])
	want := func(c *service.Call, ver int, cidr string, plen int, wantPrefix string) {
		t.Helper()
		got, err := e.allocate(c, id, ver, cidr, plen)
		if err != nil || got.String() != wantPrefix {
			t.Fatalf("allocate(%d, %q, %d) = %v, %v; want %s", ver, cidr, plen, got, err, wantPrefix)
		}
	}
	fail := func(c *service.Call, ver int, cidr string, plen int, typ string) {
		t.Helper()
		got, err := e.allocate(c, id, ver, cidr, plen)
		if errType(err) != typ {
			t.Fatalf("allocate(%d, %q, %d) = %v, %v; want %s", ver, cidr, plen, got, err, typ)
		}
	}
	// Best fit, as Neutron: the smallest free block that holds the request.
	want(e.admin, 4, "", 0, "10.11.12.0/26")
	want(e.admin, 4, "", 30, "10.11.12.64/30")
	want(e.admin, 4, "", 24, "10.20.0.0/24")
	want(e.admin, 0, "10.20.5.0/24", 0, "10.20.5.0/24")
	fail(e.admin, 4, "10.20.5.128/25", 0, "SubnetAllocationError") // taken
	fail(e.admin, 4, "192.168.0.0/24", 0, "SubnetAllocationError") // outside
	fail(e.admin, 4, "", 16, "MinPrefixSubnetAllocationError")     // too big
	fail(e.admin, 4, "", 31, "MaxPrefixSubnetAllocationError")     // too small
	fail(e.admin, 4, "10.20.6.0/31", 0, "MaxPrefixSubnetAllocationError")
	fail(e.admin, 6, "", 0, "BadRequest")
	fail(e.admin, 4, "2001:db8::/64", 0, "BadRequest")
	fail(e.admin, 4, "nonsense", 0, "HTTPBadRequest")
	if _, err := e.allocate(e.admin, service.NewID(), 4, "", 0); errType(err) != "SubnetPoolNotFound" {
		t.Fatalf("missing pool: %v", err)
	}
	// Another project's private pool is not found; shared pools serve all.
	if _, err := e.allocate(member("p2"), id, 4, "", 0); errType(err) != "SubnetPoolNotFound" {
		t.Fatalf("invisible pool: %v", err)
	}
	shared := createPool(t, admin, map[string]any{"prefixes": []any{"2001:db8::/48"}, "shared": true})
	got, err := e.allocate(member("p2"), apitest.S(shared["id"]), 6, "", 0)
	if err != nil || got.String() != "2001:db8::/64" {
		t.Fatalf("shared IPv6 pool: %v %v", got, err)
	}
	// Exhaustion.
	small := createPool(t, admin, map[string]any{"prefixes": []any{"192.168.0.0/29"}, "min_prefixlen": 29})
	if _, err := e.allocate(e.admin, apitest.S(small["id"]), 4, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.allocate(e.admin, apitest.S(small["id"]), 4, "", 0); errType(err) != "SubnetAllocationError" {
		t.Fatalf("exhausted pool: %v", err)
	}
}

func TestAllocatePrefixHonoursDefaultQuota(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	e := newEnv(t, srv)
	// IPv4 quota counts addresses: 8 per project.
	pool := createPool(t, admin, map[string]any{"prefixes": []any{"10.0.0.0/24"}, "min_prefixlen": 28, "max_prefixlen": 30, "default_quota": 8, "shared": true})
	id := apitest.S(pool["id"])
	p1, p2 := member("p1"), member("p2")
	for _, plen := range []int{30, 30} {
		if _, err := e.allocate(p1, id, 4, "", plen); err != nil {
			t.Fatalf("within quota: %v", err)
		}
	}
	if _, err := e.allocate(p1, id, 4, "", 30); errType(err) != "SubnetPoolQuotaExceeded" {
		t.Fatalf("past quota: %v", err)
	}
	if _, err := e.allocate(p2, id, 4, "", 29); err != nil {
		t.Fatalf("another project has its own quota: %v", err)
	}
	if _, err := e.allocate(p2, id, 4, "", 28); errType(err) != "SubnetPoolQuotaExceeded" {
		t.Fatalf("/28 is 16 addresses: %v", err)
	}
	// IPv6 quota counts /64s.
	v6 := createPool(t, admin, map[string]any{"prefixes": []any{"2001:db8::/48"}, "min_prefixlen": 62, "default_quota": 4, "shared": true})
	if _, err := e.allocate(p1, apitest.S(v6["id"]), 6, "", 62); err != nil {
		t.Fatalf("IPv6 /62 in a quota of four /64s: %v", err)
	}
	if _, err := e.allocate(p1, apitest.S(v6["id"]), 6, "", 64); errType(err) != "SubnetPoolQuotaExceeded" {
		t.Fatalf("IPv6 past quota: %v", err)
	}
}

func TestConcurrentAllocationsNeverOverlap(t *testing.T) {
	srv := apitest.Start(t)
	allocateConcurrently(t, []*env{newEnv(t, srv)}, srv.Client(t, "admin"))
}

// Several servers on one PostgreSQL database allocate from one pool.
func TestConcurrentAllocationsNeverOverlapOnPostgres(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	a := apitest.Start(t, apitest.WithDatabase(dsn))
	b := apitest.Start(t, apitest.WithDatabase(dsn))
	ea := newEnv(t, a)
	eb := newEnv(t, b)
	eb.netID = ea.netID
	allocateConcurrently(t, []*env{ea, eb}, a.Client(t, "admin"))
}

func allocateConcurrently(t *testing.T, envs []*env, admin *apitest.Client) {
	pool := createPool(t, admin, map[string]any{"prefixes": []any{"10.0.0.0/22"}, "min_prefixlen": 26, "max_prefixlen": 28})
	id := apitest.S(pool["id"])
	const workers = 100 // for at most 64 /28s, mixed with /27s and /26s
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  []netip.Prefix
		errs []error
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := envs[i%len(envs)]
			p, err := e.allocate(e.admin, id, 4, "", 26+i%3)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			got = append(got, p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if errType(err) != "SubnetAllocationError" {
			t.Errorf("allocation failed with %v", err)
		}
	}
	addrs := 0
	for i, p := range got {
		addrs += 1 << (32 - p.Bits())
		for _, q := range got[:i] {
			if p.Overlaps(q) {
				t.Errorf("allocated %s and %s overlap", p, q)
			}
		}
	}
	if len(got) == 0 || len(got)+len(errs) != workers {
		t.Fatalf("%d allocations, %d failures", len(got), len(errs))
	}
	// Requests of three sizes leave at most a /27 and a /28 free when the
	// last one fails; a greedy scheme with no overlaps fills most of the pool.
	if addrs < 1024-32-16 {
		t.Errorf("only %d of 1024 addresses allocated: %v", addrs, got)
	}
	t.Logf("%d prefixes allocated (%d addresses), %d refused", len(got), addrs, len(errs))
}
