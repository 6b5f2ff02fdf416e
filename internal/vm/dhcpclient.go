package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// dhcpScript is the udhcpc event script of every VM. It configures eth0
// inside the VM's namespace (it runs there) and records the lease in
// $NEUTRINO_LEASE_FILE. Debian's stock scripts would rewrite the host's
// /etc/resolv.conf even from inside a namespace; this one writes no file
// but the lease.
const dhcpScript = `#!/bin/sh
# neutrino vm: udhcpc event script (udhcpc -s). Runs inside the VM's network
# namespace; never touches the host's /etc/resolv.conf.
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	rm -f "$NEUTRINO_LEASE_FILE"
	;;
bound|renew)
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	[ "$1" = bound ] && ip -4 addr flush dev "$interface"
	ip addr replace "$ip/${mask:-32}" dev "$interface"
	if [ -n "$staticroutes" ]; then
		# RFC 3442: a client given classless static routes ignores the router option.
		set -- $staticroutes
		while [ $# -ge 2 ]; do
			if [ "$2" = 0.0.0.0 ]; then
				ip route replace "$1" dev "$interface"
			else
				ip route replace "$1" via "$2" dev "$interface"
			fi
			shift 2
		done
	elif [ -n "$router" ]; then
		set -- $router
		ip route replace default via "$1" dev "$interface"
	fi
	tmp="$NEUTRINO_LEASE_FILE.tmp"
	{
		echo "ip=$ip"
		echo "mask=$mask"
		echo "router=$router"
		echo "mtu=$mtu"
		echo "dns=$dns"
		echo "lease=$lease"
		echo "staticroutes=$staticroutes"
		echo "serverid=$serverid"
	} >"$tmp" && mv "$tmp" "$NEUTRINO_LEASE_FILE"
	;;
esac
exit 0
`

// Lease is the DHCP lease a VM holds, as its DHCP client got it.
type Lease struct {
	// Address is the address with its prefix length, e.g. 10.0.0.5/24.
	Address string   `json:"address"`
	Router  string   `json:"router,omitempty"`
	MTU     int      `json:"mtu,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	// Seconds is the lease time.
	Seconds int `json:"lease_seconds,omitempty"`
	// StaticRoutes are option 121's routes as "destination gateway" pairs.
	StaticRoutes []string `json:"static_routes,omitempty"`
	Server       string   `json:"server,omitempty"`
}

// IP is the leased address without its prefix length.
func (l Lease) IP() string {
	p, err := netip.ParsePrefix(l.Address)
	if err != nil {
		return l.Address
	}
	return p.Addr().String()
}

// readLease parses the lease file the script writes.
func readLease(path string) (Lease, error) {
	f, err := os.Open(path)
	if err != nil {
		return Lease{}, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return Lease{}, err
	}
	ip, err := netip.ParseAddr(kv["ip"])
	if err != nil {
		return Lease{}, fmt.Errorf("lease file %s: address %q: %w", path, kv["ip"], err)
	}
	bits := 32
	if kv["mask"] != "" {
		if bits, err = strconv.Atoi(kv["mask"]); err != nil {
			return Lease{}, fmt.Errorf("lease file %s: mask %q: %w", path, kv["mask"], err)
		}
	}
	l := Lease{Address: netip.PrefixFrom(ip, bits).String(), Server: kv["serverid"]}
	if r := strings.Fields(kv["router"]); len(r) > 0 {
		l.Router = r[0]
	}
	l.MTU, _ = strconv.Atoi(kv["mtu"])
	l.Seconds, _ = strconv.Atoi(kv["lease"])
	l.DNS = strings.Fields(kv["dns"])
	routes := strings.Fields(kv["staticroutes"])
	for i := 0; i+1 < len(routes); i += 2 {
		l.StaticRoutes = append(l.StaticRoutes, routes[i]+" "+routes[i+1])
	}
	return l, nil
}

// busybox finds the busybox binary whose udhcpc the VMs run.
func busybox() (string, error) {
	for _, name := range []string{"busybox", "/usr/bin/busybox", "/bin/busybox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the VMs' DHCP client is busybox udhcpc, and busybox is not installed (Debian: apt-get install busybox, or `make up` installs it)")
}

// dhcpClient is a VM's udhcpc, running detached from `neutrino vm` so the
// VM keeps renewing its lease.
type dhcpClient struct {
	dir, netns, iface, hostname string
}

func (c dhcpClient) leaseFile() string  { return filepath.Join(c.dir, "lease") }
func (c dhcpClient) pidFile() string    { return filepath.Join(c.dir, "udhcpc.pid") }
func (c dhcpClient) logFile() string    { return filepath.Join(c.dir, "udhcpc.log") }
func (c dhcpClient) scriptFile() string { return filepath.Join(c.dir, "dhcp-script") }

// start starts udhcpc in the VM's namespace and returns its process id
// and a channel that receives its exit while this process runs.
func (c dhcpClient) start() (int, <-chan error, error) {
	bb, err := busybox()
	if err != nil {
		return 0, nil, err
	}
	if err := os.WriteFile(c.scriptFile(), []byte(dhcpScript), 0o755); err != nil {
		return 0, nil, fmt.Errorf("write the DHCP client script: %w", err)
	}
	os.Remove(c.leaseFile())
	logf, err := os.OpenFile(c.logFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return 0, nil, fmt.Errorf("DHCP client log: %w", err)
	}
	defer logf.Close()
	// -f: stay a child we can follow until the lease, then detach by
	// session; -t/-T/-A: retry quickly while the port is being wired.
	cmd := netns.Command(c.netns, bb, "udhcpc", "-f", "-i", c.iface,
		"-s", c.scriptFile(), "-p", c.pidFile(),
		"-t", "5", "-T", "1", "-A", "1",
		"-O", "mtu", "-O", "staticroutes", "-x", "hostname:"+c.hostname)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"NEUTRINO_LEASE_FILE=" + c.leaseFile(),
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start the DHCP client: %w", err)
	}
	// Wait reaps it should it die while this process still runs (init
	// does afterwards) and tells waitLease. (Its /proc entry cannot tell:
	// until ip execs, the child's command line is this process's.)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	// From here on stop() must recognise it by its command line.
	for deadline := time.Now().Add(5 * time.Second); !c.owns(pid); {
		select {
		case err := <-exited:
			return 0, nil, fmt.Errorf("the DHCP client exited at once (%v)%s", err, c.logTail())
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return 0, nil, errors.New("the DHCP client did not start within 5s")
		}
	}
	return pid, exited, nil
}

// waitLease waits until the client holds a lease, the client exits, or
// ctx ends.
func (c dhcpClient) waitLease(ctx context.Context, exited <-chan error) (Lease, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if l, err := readLease(c.leaseFile()); err == nil {
			return l, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Lease{}, err
		}
		select {
		case err := <-exited:
			return Lease{}, fmt.Errorf("the DHCP client exited without a lease (%v)%s", err, c.logTail())
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("no DHCP lease: %w%s", ctx.Err(), c.logTail())
		case <-t.C:
		}
	}
}

// owns reports whether pid is this VM's DHCP client (not a recycled pid).
func (c dhcpClient) owns(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// A zombie has an empty command line.
	return strings.Contains(string(data), c.pidFile())
}

// stop ends the client (by its recorded process id) and waits for it.
func (c dhcpClient) stop(pid int) error {
	if pid == 0 {
		if data, err := os.ReadFile(c.pidFile()); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
	}
	if !c.owns(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop the DHCP client (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.owns(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func (c dhcpClient) logTail() string {
	data, err := os.ReadFile(c.logFile())
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return ""
	}
	if len(data) > 1500 {
		data = data[len(data)-1500:]
	}
	return "\n--- " + c.logFile() + " ---\n" + strings.TrimSpace(string(data))
}
