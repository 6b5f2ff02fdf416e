package testenv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// skipRecorder is a testing.TB whose Skip records the message and ends the
// calling goroutine, as the real one does, without skipping the real test.
type skipRecorder struct {
	testing.TB
	skipped string
}

func (r *skipRecorder) Helper() {}

func (r *skipRecorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *skipRecorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// recordSkip runs f with a skipRecorder and returns the skip message, or
// "" if f returned without skipping.
func recordSkip(t *testing.T, f func(testing.TB)) string {
	r := &skipRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.skipped
}

func TestLookPathOrSkip(t *testing.T) {
	var path string
	if msg := recordSkip(t, func(tb testing.TB) { path = LookPathOrSkip(tb, "sh", "install dash") }); msg != "" {
		t.Fatalf("LookPathOrSkip(sh) skipped: %s", msg)
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		t.Errorf("LookPathOrSkip(sh) = %q (%v), want the path of sh", path, err)
	}

	msg := recordSkip(t, func(tb testing.TB) {
		LookPathOrSkip(tb, "neutrino-no-such-binary", "apt-get install neutrino-no-such-package")
		t.Error("LookPathOrSkip returned for a missing binary")
	})
	for _, want := range []string{"neutrino-no-such-binary", "apt-get install neutrino-no-such-package"} {
		if !strings.Contains(msg, want) {
			t.Errorf("skip message %q does not mention %q", msg, want)
		}
	}
}

func TestRequireRoot(t *testing.T) {
	msg := recordSkip(t, RequireRoot)
	if os.Geteuid() == 0 {
		if msg != "" {
			t.Errorf("RequireRoot skipped as root: %s", msg)
		}
		return
	}
	if !strings.Contains(msg, "root") {
		t.Errorf("RequireRoot as uid %d: skip message %q, want one saying root is needed", os.Geteuid(), msg)
	}
}

func TestRequireOVS(t *testing.T) {
	msg := recordSkip(t, RequireOVS)
	if os.Geteuid() == 0 && ovs.Installed() == nil {
		if msg != "" {
			t.Errorf("RequireOVS skipped as root with Open vSwitch installed: %s", msg)
		}
		return
	}
	if msg == "" {
		t.Errorf("RequireOVS did not skip as uid %d (Open vSwitch: %v)", os.Geteuid(), ovs.Installed())
	}
}
