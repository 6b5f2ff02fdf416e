package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRuntimeRoundTrip(t *testing.T) {
	d, err := New(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadRuntime(); !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("ReadRuntime of a fresh directory: %v, want ErrNoRuntime", err)
	}
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		t.Fatal(err)
	}
	want := Runtime{
		PID: 42, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), APIURL: "http://127.0.0.1:9696",
		Host: "node1", DatabaseURL: "sqlite:" + d.Database(), NetNS: "net:[1]",
		OVS: OVS{Own: true, DB: "unix:" + filepath.Join(d.OVS(), "db.sock"), RunDir: d.OVS(), IntegrationBridge: "br-int", VSwitchdPID: 7},
	}
	if err := d.WriteRuntime(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadRuntime()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %+v, wrote %+v", got, want)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "up.json.tmp")); !os.IsNotExist(err) {
		t.Errorf("a temporary file is left behind: %v", err)
	}
}

func TestNewMakesPathsAbsolute(t *testing.T) {
	d, err := New("rel/state")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(d.Path) {
		t.Errorf("path %q is not absolute", d.Path)
	}
	if _, err := New(""); err == nil {
		t.Error("an empty state directory was accepted")
	}
}

func TestLockTellsWhetherUpRuns(t *testing.T) {
	d, _ := New(filepath.Join(t.TempDir(), "state"))
	if _, ok := d.Running(); ok {
		t.Fatal("Running on a directory that does not exist")
	}
	if _, err := d.RequireRunning(); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "neutrino up --state-dir "+d.Path) {
		t.Fatalf("RequireRunning: %v", err)
	}
	lock, err := d.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteRuntime(Runtime{PID: os.Getpid(), APIURL: "http://x"}); err != nil {
		t.Fatal(err)
	}
	rt, ok := d.Running()
	if !ok || rt.APIURL != "http://x" {
		t.Fatalf("Running while locked: %v %+v", ok, rt)
	}
	if _, err := d.Acquire(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("a second Acquire: %v, want ErrBusy naming the pid", err)
	}
	lock.Release()
	if _, ok := d.Running(); ok {
		t.Fatal("Running after Release")
	}
	lock, err = d.Acquire()
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	lock.Release()
}

func TestProcessAlive(t *testing.T) {
	self := os.Getpid()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skip("no /proc")
	}
	if !ProcessAlive(self, strings.TrimSpace(string(comm))) {
		t.Error("this process is not alive")
	}
	if ProcessAlive(self, "ovs-vswitchd") {
		t.Error("this process was taken for ovs-vswitchd")
	}
	if ProcessAlive(0, "x") || ProcessAlive(-1, "x") {
		t.Error("pid 0 or -1 alive")
	}
	if id, err := NetNSOf("self"); err != nil || !strings.HasPrefix(id, "net:[") {
		t.Errorf("NetNSOf(self) = %q, %v", id, err)
	}
}

func TestEntriesStayInside(t *testing.T) {
	d, _ := New("/var/lib/neutrino")
	for _, e := range d.Entries() {
		if filepath.Dir(e) != d.Path {
			t.Errorf("entry %s is not directly in %s", e, d.Path)
		}
	}
}
