package server_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// keystone is the Keystone the tests of this package share, with its
// projects and users: it takes seconds to start, so the first test that
// needs it starts it and TestMain stops it once all tests have run.
var keystone struct {
	mu  sync.Mutex
	srv *testenv.Keystone
	ids identities
	err error
}

// identities are the projects and users of the shared Keystone: alice
// (member) and rita (reader only) in project-a, bob (member) in project-b,
// carol (member) in project-c. Passwords are the user name + "-secret".
type identities struct {
	projA, projB, projC string
}

func TestMain(m *testing.M) {
	code := apitest.Run(m)
	keystone.mu.Lock()
	if keystone.srv != nil {
		keystone.srv.Stop()
	}
	keystone.mu.Unlock()
	os.Exit(code)
}

// sharedKeystone returns the package's Keystone and its identities,
// starting it on first use. t is skipped in -short mode, when not root, or
// when Keystone is not installed.
func sharedKeystone(t *testing.T) (*testenv.Keystone, identities) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: starts a real Keystone")
	}
	testenv.RequireRoot(t)
	keystone.mu.Lock()
	defer keystone.mu.Unlock()
	if keystone.srv == nil && keystone.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		keystone.srv, keystone.ids, keystone.err = startKeystone(ctx)
		cancel()
	}
	if errors.Is(keystone.err, testenv.ErrKeystoneNotFound) {
		t.Skipf("skipping: %v", keystone.err)
	}
	if keystone.err != nil {
		t.Fatalf("start Keystone: %v", keystone.err)
	}
	return keystone.srv, keystone.ids
}

func startKeystone(ctx context.Context) (*testenv.Keystone, identities, error) {
	var ids identities
	ks, err := testenv.StartKeystoneServer(ctx, "")
	if err != nil {
		return nil, ids, err
	}
	users := []struct {
		project, user, role string
		id                  *string
	}{
		{"project-a", "alice", "member", &ids.projA},
		{"project-a", "rita", "reader", nil},
		{"project-b", "bob", "member", &ids.projB},
		{"project-c", "carol", "member", &ids.projC},
	}
	for _, u := range users {
		project, _, err := ks.CreateProjectUserContext(ctx, u.project, u.user, u.user+"-secret", u.role)
		if err != nil {
			ks.Stop()
			return nil, ids, err
		}
		if u.id != nil {
			*u.id = project
		}
	}
	// Setting a user's password revokes the user's tokens issued up to
	// that second (Keystone's revocation events have one-second
	// resolution): wait, so the tests' tokens are issued after it.
	time.Sleep(1100 * time.Millisecond)
	return ks, ids, nil
}
