// Package netns owns named Linux network namespaces: creating and deleting
// them the way `ip netns` does (a bind mount under /run/netns, so `ip netns
// exec` and every other tool see them too), running Go code inside one on a
// goroutine locked to its OS thread, and starting commands inside one.
//
// Invariant: no OS thread of this process is ever left in a foreign network
// namespace. A thread that cannot be moved back stays locked, so the Go
// runtime ends it when its goroutine exits.
package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted, as iproute2 does.
const RunDir = "/run/netns"

// threadNetns is the network namespace of the calling OS thread.
const threadNetns = "/proc/thread-self/ns/net"

// Path returns the file that names namespace name.
func Path(name string) string { return filepath.Join(RunDir, name) }

// validName rejects names that would escape RunDir or that ip(8) refuses.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("netns: invalid namespace name %q", name)
	}
	return nil
}

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	if validName(name) != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	// An empty file left behind by a failed create is not a namespace.
	return st.Type == unix.NSFS_MAGIC
}

// List returns the names of the namespaces under RunDir.
func List() ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: list %s: %w", RunDir, err)
	}
	var names []string
	for _, e := range entries {
		if Exists(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Create creates a new, empty network namespace called name (its loopback
// is down, as with `ip netns add`). It fails with an error wrapping
// fs.ErrExist when the name is taken.
func Create(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := prepareRunDir(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("netns: create %s: %w", name, err)
	}
	f.Close()
	if err := onFreshThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount(threadNetns, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount: %w", err)
		}
		return nil
	}); err != nil {
		os.Remove(path)
		return fmt.Errorf("netns: create %s: %w", name, err)
	}
	return nil
}

// Delete removes the named namespace. The kernel frees it, with every link
// inside it, once no process runs in it and no socket holds it. Deleting a
// namespace that does not exist is not an error, so cleanups can call it
// unconditionally.
func Delete(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns: delete %s: %w", name, err)
	}
	return nil
}

// Do runs fn on a goroutine locked to an OS thread that has entered the
// named namespace, and returns fn's error. Sockets fn opens stay in that
// namespace and may be used from any goroutine afterwards; goroutines fn
// starts do not run in the namespace.
func Do(name string, fn func() error) error {
	if err := validName(name); err != nil {
		return err
	}
	target, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns: open %s: %w", name, err)
	}
	defer unix.Close(target)
	var fnErr error
	err = onFreshThread(func() error {
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns: enter %s: %w", name, err)
		}
		fnErr = fn()
		return nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// onFreshThread runs fn on a new goroutine locked to its OS thread, then
// moves that thread back to the network namespace it started in. If fn
// leaves the thread somewhere it cannot be moved back from, the thread stays
// locked and dies with the goroutine.
func onFreshThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open own namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fnErr := fn()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// Deliberately no UnlockOSThread: the runtime retires the thread.
			errc <- errors.Join(fnErr, fmt.Errorf("netns: return to own namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// SetSysctl writes value to /proc/sys/<key> inside the named namespace, e.g.
// key "net/ipv4/ip_forward". Only the net/ sysctls are per namespace.
func SetSysctl(name, key, value string) error {
	if strings.Contains(key, "..") {
		return fmt.Errorf("netns: invalid sysctl %q", key)
	}
	path := filepath.Join("/proc/sys", key)
	if err := Do(name, func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		return fmt.Errorf("netns: sysctl %s=%s in %s: %w", key, value, name, err)
	}
	return nil
}

// Command returns an exec.Cmd that runs prog with args inside the named
// namespace through `ip netns exec`, which also gives the process the
// namespace's view of /sys. ip execs prog in place, so the Cmd's process id
// is prog's own and signals reach it directly.
func Command(name, prog string, args ...string) *exec.Cmd {
	return exec.Command("ip", netnsExecArgs(name, prog, args)...)
}

// CommandContext is Command with a context that kills the process when done.
func CommandContext(ctx context.Context, name, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", netnsExecArgs(name, prog, args)...)
}

func netnsExecArgs(name, prog string, args []string) []string {
	return append([]string{"netns", "exec", name, prog}, args...)
}

// prepareRunDir makes RunDir a shared mount point, as iproute2 does, so that
// namespaces mounted later propagate to other mount namespaces (such as the
// ones `ip netns exec` creates).
func prepareRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	mounted, err := isMountPoint(RunDir)
	if err != nil {
		return err
	}
	if !mounted {
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("netns: bind mount %s: %w", RunDir, err)
		}
	}
	if err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("netns: make %s shared: %w", RunDir, err)
	}
	return nil
}

// isMountPoint reports whether dir is a mount point in this mount namespace.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("netns: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point (octal escapes for spaces are not
		// expected in RunDir).
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("netns: read mountinfo: %w", err)
	}
	return false, nil
}
