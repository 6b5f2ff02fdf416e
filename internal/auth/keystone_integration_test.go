package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/auth"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// countingTransport counts the token validations (GET /v3/auth/tokens) that
// pass through it.
type countingTransport struct {
	next        http.RoundTripper
	validations atomic.Int32
	requests    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	if r.Method == http.MethodGet && r.URL.Path == "/v3/auth/tokens" {
		c.validations.Add(1)
	}
	return c.next.RoundTrip(r)
}

func TestKeystoneIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts a real Keystone")
	}
	began := time.Now()
	ks := testenv.StartKeystone(t)
	t.Logf("Keystone at %s (pid %d) ready in %s", ks.URL, ks.PID(), time.Since(began).Round(time.Millisecond))

	began = time.Now()
	projA, userA := ks.CreateProjectUser(t, "project-a", "alice", "alice-secret", "member")
	projB, userB := ks.CreateProjectUser(t, "project-b", "bob", "bob-secret", "member", "reader")
	ks.CreateProjectUser(t, "service", "neutron", "neutron-secret", "service")
	// Keystone revokes a user's tokens issued in the second their password
	// was set (its revocation events have one-second resolution): tokens
	// issued at once may be rejected moments later.
	time.Sleep(1100 * time.Millisecond)
	tokA := ks.Token(t, "alice", "alice-secret", "project-a")
	tokB := ks.Token(t, "bob", "bob-secret", "project-b")
	tokAdmin := ks.Token(t, ks.AdminUser, ks.AdminPassword, ks.AdminProject)
	revoked := ks.Token(t, "alice", "alice-secret", "project-a")
	ks.RevokeToken(t, revoked)
	t.Logf("projects, users and tokens created in %s", time.Since(began).Round(time.Millisecond))

	modes := []struct {
		name string
		cfg  auth.KeystoneConfig
	}{
		{"self-validation", auth.KeystoneConfig{}},
		{"service-credentials", auth.KeystoneConfig{
			Username: "neutron", Password: "neutron-secret", ProjectName: "service",
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ct := &countingTransport{next: http.DefaultTransport}
			cfg := mode.cfg
			cfg.URL = ks.URL
			cfg.HTTPClient = &http.Client{Transport: ct, Timeout: 30 * time.Second}
			a, err := auth.NewKeystone(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			authenticate := func(token string) (*auth.Identity, error) {
				r := httptest.NewRequest(http.MethodGet, "/v2.0/networks", nil)
				r.Header.Set(auth.HeaderAuthToken, token)
				return a.Authenticate(ctx, r)
			}

			for _, tc := range []struct {
				token, user, userID, project, projectID string
				roles                                   []string
				admin                                   bool
			}{
				{tokA, "alice", userA, "project-a", projA, []string{"member"}, false},
				{tokB, "bob", userB, "project-b", projB, []string{"member", "reader"}, false},
				{tokAdmin, ks.AdminUser, ks.AdminUserID, ks.AdminProject, ks.AdminProjectID, []string{"admin"}, true},
			} {
				id, err := authenticate(tc.token)
				if err != nil {
					t.Fatalf("%s: %v", tc.user, err)
				}
				if id.UserName != tc.user || id.UserID != tc.userID || id.ProjectName != tc.project ||
					id.ProjectID != tc.projectID || id.DomainID != "default" || id.IsAdmin != tc.admin || id.NoAuth {
					t.Errorf("%s: identity %+v, want user %s (%s) in project %s (%s), admin %v",
						tc.user, id, tc.user, tc.userID, tc.project, tc.projectID, tc.admin)
				}
				for _, role := range tc.roles {
					if !id.HasRole(role) {
						t.Errorf("%s: roles %v lack %q", tc.user, id.Roles, role)
					}
				}
				if !tc.admin && id.HasRole("admin") {
					t.Errorf("%s: roles %v include admin", tc.user, id.Roles)
				}
			}
			if projA == projB {
				t.Errorf("both projects have id %s", projA)
			}

			// Cached: no second validation.
			before := ct.validations.Load()
			id, err := authenticate(tokA)
			if err != nil {
				t.Fatal(err)
			}
			if id.ProjectID != projA {
				t.Errorf("cached identity in project %s, want %s", id.ProjectID, projA)
			}
			if n := ct.validations.Load() - before; n != 0 {
				t.Errorf("second authentication of a token sent %d validations to Keystone, want 0", n)
			}

			for _, bad := range []string{"garbage", tokA[:len(tokA)-4] + "AAAA", revoked} {
				if _, err := authenticate(bad); !errors.Is(err, auth.ErrUnauthorized) {
					t.Errorf("bad token %.12q...: err = %v, want ErrUnauthorized", bad, err)
				}
			}
			t.Logf("%d requests to Keystone, %d of them validations", ct.requests.Load(), ct.validations.Load())
		})
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
