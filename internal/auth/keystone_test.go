package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fakeToken struct {
	user, project string
	roles         []string
	expires       time.Time
}

// fakeKeystone serves GET and POST /v3/auth/tokens from a token table.
type fakeKeystone struct {
	t     *testing.T
	clock *fakeClock
	srv   *httptest.Server

	validations atomic.Int32 // GET /auth/tokens
	issues      atomic.Int32 // POST /auth/tokens

	mu        sync.Mutex
	tokens    map[string]fakeToken
	svcUser   string // accepted service user name; its tokens may validate others
	svcPass   string
	svcTokens map[string]bool
	svcLife   time.Duration
	status    int           // when non-zero, every GET answers this
	gate      chan struct{} // when non-nil, GETs wait for it to close
}

func newFakeKeystone(t *testing.T, clock *fakeClock) *fakeKeystone {
	f := &fakeKeystone{t: t, clock: clock, tokens: map[string]fakeToken{}, svcTokens: map[string]bool{}, svcLife: time.Hour}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKeystone) URL() string { return f.srv.URL + "/v3" }

func (f *fakeKeystone) add(token string, ft fakeToken) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = ft
}

func (f *fakeKeystone) revoke(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, token)
	delete(f.svcTokens, token)
}

func (f *fakeKeystone) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		f.issue(w, r)
	case http.MethodGet:
		f.validate(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *fakeKeystone) issue(w http.ResponseWriter, r *http.Request) {
	n := f.issues.Add(1)
	var req passwordAuthRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	u := req.Auth.Identity.Password.User
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.Name != f.svcUser || u.Password != f.svcPass || u.Domain.Name != "Default" ||
		req.Auth.Scope.Project.Name != "service" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok := fmt.Sprintf("svc-%d", n)
	f.svcTokens[tok] = true
	now := f.clock.now()
	w.Header().Set(HeaderSubjectToken, tok)
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"token":{"issued_at":%q,"expires_at":%q}}`,
		now.Format(time.RFC3339Nano), now.Add(f.svcLife).Format(time.RFC3339Nano))
}

func (f *fakeKeystone) validate(w http.ResponseWriter, r *http.Request) {
	f.validations.Add(1)
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		fmt.Fprint(w, `{"error":{"code":500,"message":"boom"}}`)
		return
	}
	auth, subject := r.Header.Get(HeaderAuthToken), r.Header.Get(HeaderSubjectToken)
	if f.svcUser != "" {
		if !f.svcTokens[auth] {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	} else if _, ok := f.tokens[auth]; !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ft, ok := f.tokens[subject]
	if !ok || !f.clock.now().Before(ft.expires) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":404,"message":"Could not find token"}}`)
		return
	}
	var roles []map[string]string
	for _, role := range ft.roles {
		roles = append(roles, map[string]string{"id": "id-" + role, "name": role})
	}
	dom := map[string]string{"id": "default", "name": "Default"}
	body := map[string]any{"token": map[string]any{
		"expires_at": ft.expires.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": "uid-" + ft.user, "name": ft.user, "domain": dom},
		"project":    map[string]any{"id": "pid-" + ft.project, "name": ft.project, "domain": dom},
		"roles":      roles,
	}}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(body); err != nil {
		f.t.Errorf("encode: %v", err)
	}
}

func newTestKeystone(t *testing.T, cfg KeystoneConfig, clock *fakeClock) *keystoneAuth {
	t.Helper()
	k, err := newKeystone(cfg, nil)
	if err != nil {
		t.Fatalf("newKeystone: %v", err)
	}
	k.now = clock.now
	return k
}

func request(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v2.0/networks", nil)
	if token != "" {
		r.Header.Set(HeaderAuthToken, token)
	}
	return r
}

func start() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func TestNoAuth(t *testing.T) {
	a := NewNoAuth()
	for _, tc := range []struct {
		name, header, value, want string
	}{
		{"project", HeaderProjectID, "p1", "p1"},
		{"tenant", HeaderTenantID, "t1", "t1"},
		{"none", "X-Other", "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("")
			r.Header.Set(tc.header, tc.value)
			id, err := a.Authenticate(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if id.ProjectID != tc.want || !id.IsAdmin || !id.NoAuth || !id.HasRole("admin") {
				t.Errorf("got %+v, want admin noauth identity of project %q", id, tc.want)
			}
		})
	}
}

func TestKeystoneValidates(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok-member", fakeToken{user: "alice", project: "p1", roles: []string{"member", "reader"}, expires: clock.now().Add(time.Hour)})
	fk.add("tok-admin", fakeToken{user: "root", project: "admin", roles: []string{"Admin"}, expires: clock.now().Add(time.Hour)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL()}, clock)
	ctx := context.Background()

	id, err := k.Authenticate(ctx, request("tok-member"))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{UserID: "uid-alice", UserName: "alice", ProjectID: "pid-p1", ProjectName: "p1", DomainID: "default"}
	if id.UserID != want.UserID || id.UserName != want.UserName || id.ProjectID != want.ProjectID ||
		id.ProjectName != want.ProjectName || id.DomainID != want.DomainID || id.IsAdmin || id.NoAuth {
		t.Errorf("member identity = %+v", id)
	}
	if !id.HasRole("member") || !id.HasRole("READER") || id.HasRole("admin") {
		t.Errorf("member roles = %v", id.Roles)
	}

	id, err = k.Authenticate(ctx, request("tok-admin"))
	if err != nil {
		t.Fatal(err)
	}
	if !id.IsAdmin {
		t.Errorf("admin identity = %+v, want IsAdmin", id)
	}
}

func TestKeystoneUnauthorized(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok", fakeToken{user: "alice", project: "p1", roles: []string{"member"}, expires: clock.now().Add(time.Hour)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL()}, clock)
	ctx := context.Background()

	if _, err := k.Authenticate(ctx, request("")); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("no token: err = %v, want ErrUnauthorized", err)
	}
	if n := fk.validations.Load(); n != 0 {
		t.Errorf("no token: %d requests to keystone, want 0", n)
	}
	for range 2 {
		if _, err := k.Authenticate(ctx, request("garbage")); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("garbage token: err = %v, want ErrUnauthorized", err)
		}
	}
	if n := fk.validations.Load(); n != 2 {
		t.Errorf("garbage token twice: %d requests, want 2 (failures are not cached)", n)
	}
}

func TestKeystoneCache(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("long", fakeToken{user: "alice", project: "p1", roles: []string{"member"}, expires: clock.now().Add(time.Hour)})
	fk.add("short", fakeToken{user: "bob", project: "p2", roles: []string{"member"}, expires: clock.now().Add(time.Minute)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL(), CacheTTL: 5 * time.Minute}, clock)
	ctx := context.Background()
	auth := func(tok string) (*Identity, error) { return k.Authenticate(ctx, request(tok)) }

	for range 3 {
		if _, err := auth("long"); err != nil {
			t.Fatal(err)
		}
	}
	if n := fk.validations.Load(); n != 1 {
		t.Fatalf("3 calls within TTL: %d requests, want 1", n)
	}
	// A cached identity handed out must not alias the cache.
	id, _ := auth("long")
	id.Roles[0] = "admin"
	if id, _ := auth("long"); id.HasRole("admin") {
		t.Fatal("modifying a returned identity changed the cache")
	}

	if _, err := auth("short"); err != nil {
		t.Fatal(err)
	}
	clock.advance(59 * time.Second)
	if _, err := auth("short"); err != nil {
		t.Fatal(err)
	}
	if n := fk.validations.Load(); n != 2 {
		t.Fatalf("short token within its life: %d requests, want 2", n)
	}
	// Past the short token's expiry, but within the TTL: the cache must
	// not vouch for it.
	clock.advance(2 * time.Second)
	if _, err := auth("short"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("expired token: err = %v, want ErrUnauthorized", err)
	}
	// Past the TTL the long token is validated again; revocation shows.
	clock.advance(5 * time.Minute)
	fk.revoke("long")
	if _, err := auth("long"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked token after TTL: err = %v, want ErrUnauthorized", err)
	}
	if n := fk.validations.Load(); n != 4 {
		t.Errorf("total requests %d, want 4", n)
	}
}

func TestKeystoneCacheDisabled(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok", fakeToken{user: "alice", project: "p1", expires: clock.now().Add(time.Hour)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL(), CacheTTL: -1}, clock)
	for range 2 {
		if _, err := k.Authenticate(context.Background(), request("tok")); err != nil {
			t.Fatal(err)
		}
	}
	if n := fk.validations.Load(); n != 2 {
		t.Errorf("cache disabled: %d requests, want 2", n)
	}
}

func TestKeystoneExpiredInResponse(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok", fakeToken{user: "alice", project: "p1", expires: clock.now().Add(time.Hour)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL()}, clock)
	// Our clock runs ahead of Keystone's: it says the token is valid, but
	// its expires_at has passed here.
	k.now = func() time.Time { return clock.now().Add(2 * time.Hour) }
	if _, err := k.Authenticate(context.Background(), request("tok")); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("err = %v, want ErrUnauthorized", err)
	}
}

func TestKeystoneServerErrors(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok", fakeToken{user: "alice", project: "p1", expires: clock.now().Add(time.Hour)})
	fk.status = http.StatusInternalServerError
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL()}, clock)
	_, err := k.Authenticate(context.Background(), request("tok"))
	if err == nil || errors.Is(err, ErrUnauthorized) {
		t.Errorf("keystone 500: err = %v, want a non-401 error", err)
	}

	fk.srv.Close()
	_, err = k.Authenticate(context.Background(), request("tok"))
	if err == nil || errors.Is(err, ErrUnauthorized) {
		t.Errorf("keystone down: err = %v, want a non-401 error", err)
	}
}

func TestKeystoneConcurrentSameToken(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.add("tok", fakeToken{user: "alice", project: "p1", expires: clock.now().Add(time.Hour)})
	fk.gate = make(chan struct{})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL()}, clock)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			id, err := k.Authenticate(context.Background(), request("tok"))
			if err == nil && id.UserName != "alice" {
				err = fmt.Errorf("user %q", id.UserName)
			}
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(fk.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fk.validations.Load(); n != 1 {
		t.Errorf("10 concurrent calls: %d requests, want 1", n)
	}
}

func TestKeystoneServiceToken(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.svcUser, fk.svcPass = "neutron", "secret"
	fk.svcLife = 10 * time.Minute
	for i := range 4 {
		fk.add(fmt.Sprint("tok", i), fakeToken{user: "alice", project: "p1", roles: []string{"member"}, expires: clock.now().Add(time.Hour)})
	}
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL(), CacheTTL: -1,
		Username: "neutron", Password: "secret", ProjectName: "service"}, clock)
	ctx := context.Background()
	auth := func(tok string) error {
		_, err := k.Authenticate(ctx, request(tok))
		return err
	}

	if err := auth("tok0"); err != nil {
		t.Fatal(err)
	}
	if err := auth("tok1"); err != nil {
		t.Fatal(err)
	}
	if n := fk.issues.Load(); n != 1 {
		t.Fatalf("service tokens issued: %d, want 1", n)
	}
	// Near expiry (within 2 minutes) the service token is renewed.
	clock.advance(9 * time.Minute)
	if err := auth("tok2"); err != nil {
		t.Fatal(err)
	}
	if n := fk.issues.Load(); n != 2 {
		t.Fatalf("after 9 of 10 minutes: %d service tokens issued, want 2", n)
	}
	// Revoked service token: renewed on 401, and the request succeeds.
	fk.revoke("svc-2")
	if err := auth("tok3"); err != nil {
		t.Fatalf("after service token revocation: %v", err)
	}
	if n := fk.issues.Load(); n != 3 {
		t.Fatalf("after revocation: %d service tokens issued, want 3", n)
	}
	// A bad user token is still the caller's fault.
	if err := auth("garbage"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("garbage token: err = %v, want ErrUnauthorized", err)
	}
}

func TestKeystoneServiceBadCredentials(t *testing.T) {
	clock := start()
	fk := newFakeKeystone(t, clock)
	fk.svcUser, fk.svcPass = "neutron", "secret"
	fk.add("tok", fakeToken{user: "alice", project: "p1", expires: clock.now().Add(time.Hour)})
	k := newTestKeystone(t, KeystoneConfig{URL: fk.URL(),
		Username: "neutron", Password: "wrong", ProjectName: "service"}, clock)
	_, err := k.Authenticate(context.Background(), request("tok"))
	if err == nil || errors.Is(err, ErrUnauthorized) {
		t.Errorf("bad service credentials: err = %v, want a non-401 error", err)
	}
}

func TestNewKeystoneConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     KeystoneConfig
		wantURL string
		wantErr bool
	}{
		{KeystoneConfig{URL: "http://ks:5000/v3/"}, "http://ks:5000/v3", false},
		{KeystoneConfig{URL: "http://ks:5000"}, "http://ks:5000/v3", false},
		{KeystoneConfig{URL: "https://ks/identity/v3"}, "https://ks/identity/v3", false},
		{KeystoneConfig{}, "", true},
		{KeystoneConfig{URL: "ks:5000"}, "", true},
		{KeystoneConfig{URL: "http://ks/v3", Username: "neutron"}, "", true},
	} {
		k, err := newKeystone(tc.cfg, nil)
		if (err != nil) != tc.wantErr {
			t.Errorf("%+v: err = %v, want error %v", tc.cfg, err, tc.wantErr)
			continue
		}
		if err == nil && k.base != tc.wantURL {
			t.Errorf("%+v: base = %q, want %q", tc.cfg, k.base, tc.wantURL)
		}
	}
}

func TestTokenCacheBound(t *testing.T) {
	c := newTokenCache(100)
	now := start().now()
	id := &Identity{UserID: "u"}
	for i := range 1000 {
		c.put(keyOf(fmt.Sprint(i)), id, now.Add(time.Minute), now)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries, bound 100", c.len())
		}
	}
	if _, ok := c.get(keyOf("999"), now); !ok {
		t.Error("the latest entry is missing")
	}
	if _, ok := c.get(keyOf("999"), now.Add(time.Minute)); ok {
		t.Error("an entry outlived its deadline")
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Error("identity in empty context")
	}
	id := &Identity{UserID: "u"}
	got, ok := FromContext(NewContext(context.Background(), id))
	if !ok || got != id {
		t.Errorf("FromContext = %v, %v", got, ok)
	}
}
