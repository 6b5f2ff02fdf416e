package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// runScript runs the udhcpc event script for event with udhcpc's
// environment, with a stand-in `ip` that records its arguments, and
// returns the ip commands it ran.
func runScript(t *testing.T, event string, env map[string]string) (ipCalls []string, leaseFile string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "dhcp-script")
	if err := os.WriteFile(script, []byte(dhcpScript), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "ip-calls")
	fakeIP := "#!/bin/sh\necho \"$*\" >>" + calls + "\n"
	if err := os.WriteFile(filepath.Join(bin, "ip"), []byte(fakeIP), 0o755); err != nil {
		t.Fatal(err)
	}
	leaseFile = filepath.Join(dir, "lease")
	cmd := exec.Command("/bin/sh", script, event)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "NEUTRINO_LEASE_FILE=" + leaseFile, "interface=eth0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script %s: %v\n%s", event, err, out)
	}
	data, _ := os.ReadFile(calls)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			ipCalls = append(ipCalls, l)
		}
	}
	return ipCalls, leaseFile
}

func TestScriptBoundConfiguresAndRecordsTheLease(t *testing.T) {
	calls, leaseFile := runScript(t, "bound", map[string]string{
		"ip": "10.0.0.5", "mask": "24", "router": "10.0.0.1 10.0.0.254", "mtu": "1450",
		"dns": "10.0.0.2 10.0.0.3", "lease": "86400", "serverid": "10.0.0.2",
	})
	want := []string{
		"link set dev eth0 mtu 1450",
		"-4 addr flush dev eth0",
		"addr replace 10.0.0.5/24 dev eth0",
		"route replace default via 10.0.0.1 dev eth0",
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("ip calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	l, err := readLease(leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	wantLease := Lease{Address: "10.0.0.5/24", Router: "10.0.0.1", MTU: 1450, DNS: []string{"10.0.0.2", "10.0.0.3"}, Seconds: 86400, Server: "10.0.0.2"}
	if !reflect.DeepEqual(l, wantLease) {
		t.Errorf("lease %+v, want %+v", l, wantLease)
	}
	if l.IP() != "10.0.0.5" {
		t.Errorf("IP() = %q", l.IP())
	}
}

func TestScriptClasslessRoutesWinOverRouter(t *testing.T) {
	calls, leaseFile := runScript(t, "renew", map[string]string{
		"ip": "192.168.1.9", "mask": "24", "router": "192.168.1.1",
		"staticroutes": "0.0.0.0/0 192.168.1.1 10.9.0.0/16 192.168.1.7 169.254.169.254/32 0.0.0.0",
	})
	want := []string{
		// renew keeps the address: no flush.
		"addr replace 192.168.1.9/24 dev eth0",
		"route replace 0.0.0.0/0 via 192.168.1.1 dev eth0",
		"route replace 10.9.0.0/16 via 192.168.1.7 dev eth0",
		"route replace 169.254.169.254/32 dev eth0",
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("ip calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	l, err := readLease(leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.StaticRoutes, ","); got != "0.0.0.0/0 192.168.1.1,10.9.0.0/16 192.168.1.7,169.254.169.254/32 0.0.0.0" {
		t.Errorf("static routes %q", got)
	}
}

func TestScriptDeconfigForgetsTheLease(t *testing.T) {
	calls, leaseFile := runScript(t, "deconfig", nil)
	if want := []string{"-4 addr flush dev eth0", "link set dev eth0 up"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("ip calls %q, want %q", calls, want)
	}
	if _, err := os.Stat(leaseFile); !os.IsNotExist(err) {
		t.Errorf("lease file after deconfig: %v", err)
	}
}

// The script never writes outside the lease file: no resolv.conf.
func TestScriptWritesNoResolvConf(t *testing.T) {
	if strings.Contains(dhcpScript, "resolv.conf") && !strings.Contains(dhcpScript, "never touches the host's /etc/resolv.conf") {
		t.Fatal("the DHCP script mentions resolv.conf")
	}
	for _, line := range strings.Split(dhcpScript, "\n") {
		if strings.Contains(line, ">") && !strings.HasPrefix(strings.TrimSpace(line), "#") && !strings.Contains(line, "$tmp") {
			t.Errorf("the script writes somewhere else: %q", line)
		}
	}
}

func TestReadLeaseRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	os.WriteFile(path, []byte("ip=not-an-ip\n"), 0o600)
	if _, err := readLease(path); err == nil {
		t.Fatal("a lease without a valid address was read")
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"vm1", "web-01", "a", "A.b_c"} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a/b", "a b", ".", "..", strings.Repeat("x", 64)} {
		if err := checkName(bad); err == nil {
			t.Errorf("checkName(%q) accepted it", bad)
		}
	}
	if got := tapName("0123456789abcdef"); got != "tap0123456789a" || len(got) > 15 {
		t.Errorf("tapName = %q", got)
	}
	if Namespace("vm1") != "vm-vm1" {
		t.Errorf("Namespace(vm1) = %q", Namespace("vm1"))
	}
}
