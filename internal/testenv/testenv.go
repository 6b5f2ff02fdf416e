// Package testenv owns the environment that neutrino's tests run in: private,
// throwaway instances of the external services the tests need (PostgreSQL
// here), and helpers that skip a test with a clear message when the machine
// lacks what it needs (root, a binary). Everything it starts is stopped by
// the test that started it, also when that test fails.
//
// Missing tools are installed by scripts/install-deps.sh, which CI runs.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// installHint tells how to get the Debian packages the tests use.
const installHint = "run scripts/install-deps.sh (as root on Debian 12) to install the test dependencies"

// RequireRoot skips t unless the test runs as root (effective uid 0).
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("skipping: this test needs root (network namespaces, OVS, nftables), running as uid %d; run it as root, e.g. sudo go test", euid)
	}
}

// RequireOVS skips t unless the test runs as root and the Open vSwitch
// programs and schema are installed (the test starts its own OVS daemons).
func RequireOVS(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if err := ovs.Installed(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// Eventually polls cond every few milliseconds until it holds, failing t
// with what it waited for after within has passed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LookPathOrSkip returns the path of the executable bin, found in PATH as
// exec.LookPath finds it. When it is missing it skips t with a message naming
// bin and hint, which should say how to get it (e.g. the Debian package).
func LookPathOrSkip(t testing.TB, bin, hint string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Skip(missingBinaryMessage(bin, hint, err))
	}
	return path
}

func missingBinaryMessage(bin, hint string, err error) string {
	msg := fmt.Sprintf("skipping: %q not found (%v)", bin, err)
	if hint != "" {
		msg += "; " + hint
	}
	return msg
}
