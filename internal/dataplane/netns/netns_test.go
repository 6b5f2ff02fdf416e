package netns_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// newName returns a namespace name no other test uses and deletes the
// namespace when the test ends.
func newName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "nt-netns-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// threadsOutsideHome lists the threads of this process whose network
// namespace is not the process's own.
func threadsOutsideHome(t *testing.T) []string {
	t.Helper()
	home := inode(t, "/proc/self/ns/net")
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var strays []string
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join("/proc/self/task", task.Name(), "ns/net"), &st); err != nil {
			continue // the thread exited meanwhile
		}
		if st.Ino != home {
			strays = append(strays, task.Name())
		}
	}
	return strays
}

func TestCreateDoCommandDelete(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.LookPathOrSkip(t, "ip", "apt-get install iproute2")
	name := newName(t)

	if netns.Exists(name) {
		t.Fatalf("%s exists before Create", name)
	}
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	if !netns.Exists(name) {
		t.Fatalf("%s does not exist after Create", name)
	}
	if err := netns.Create(name); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: got %v, want fs.ErrExist", err)
	}
	names, err := netns.List()
	if err != nil || !slices.Contains(names, name) {
		t.Fatalf("List = %v, %v; want it to hold %s", names, err, name)
	}

	want := inode(t, netns.Path(name))
	if want == inode(t, "/proc/self/ns/net") {
		t.Fatal("the new namespace is the process's own")
	}
	var got uint64
	if err := netns.Do(name, func() error {
		got = inode(t, "/proc/thread-self/ns/net")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("inside Do the thread is in namespace %d, want %d", got, want)
	}
	sentinel := errors.New("from fn")
	if err := netns.Do(name, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}

	// A fresh namespace holds only its loopback, and `ip netns exec` sees it.
	out, err := netns.Command(name, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v: %s", name, err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") {
		t.Fatalf("links in a new namespace:\n%s", out)
	}
	var exitErr *exec.ExitError
	if err := netns.Command(name, "sh", "-c", "exit 3").Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("exit status not passed through: %v", err)
	}

	// Sysctls under net/ are the namespace's own.
	if err := netns.SetSysctl(name, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if out, err := netns.Command(name, "cat", "/proc/sys/net/ipv4/ip_forward").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("ip_forward inside: %q, %v", out, err)
	}
	if host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(host)) == "1" {
		t.Log("the host forwards IPv4 itself; the check above proves less")
	}
	if err := netns.SetSysctl(name, "net/../kernel/x", "1"); err == nil {
		t.Fatal("a sysctl outside /proc/sys was written")
	}

	if err := netns.Delete(name); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(name) {
		t.Fatalf("%s exists after Delete", name)
	}
	if err := netns.Delete(name); err != nil {
		t.Fatalf("deleting a missing namespace: %v", err)
	}
	if err := netns.Do(name, func() error { return nil }); err == nil {
		t.Fatal("Do in a deleted namespace succeeded")
	}
}

// Many concurrent Do calls must leave every thread of the process in the
// process's own namespace.
func TestDoLeavesNoThreadBehind(t *testing.T) {
	testenv.RequireRoot(t)
	name := newName(t)
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := netns.Do(name, func() error { return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if strays := threadsOutsideHome(t); len(strays) > 0 {
		t.Fatalf("threads left in a foreign namespace: %v", strays)
	}
}

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b"} {
		if err := netns.Create(name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
		if err := netns.Delete(name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
		if netns.Exists(name) {
			t.Errorf("Exists(%q) = true", name)
		}
	}
}
