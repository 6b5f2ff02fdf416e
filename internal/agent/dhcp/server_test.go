package dhcp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The server tests run a Server in one namespace and busybox's udhcpc in
// others, joined by a Linux bridge in a "switch" namespace. udhcpc runs
// with the script clientScript, which only touches the client's own
// interface (never /etc/resolv.conf) and logs every event.

// clientScript is udhcpc's event script: it configures the address and
// MTU as a VM's client would, then logs the event with what the server
// said.
const clientScript = `#!/bin/sh
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/$subnet" broadcast "$broadcast" dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	;;
esac
echo "t=$(date +%s.%N)|event=$1|ip=$ip|subnet=$subnet|router=$router|dns=$dns|mtu=$mtu|staticroutes=$staticroutes|lease=$lease|serverid=$serverid|broadcast=$broadcast|domain=$domain|hostname=$hostname" >> "$DHCP_LOG"
exit 0
`

func requireNamespaces(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (needs root, network namespaces and busybox udhcpc) in -short mode")
	}
	testenv.RequireRoot(t)
	testenv.LookPathOrSkip(t, "ip", "install Debian's iproute2")
	testenv.LookPathOrSkip(t, "busybox", "install Debian's busybox (scripts/install-deps.sh); its udhcpc is the test's DHCP client")
}

func randomPrefix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "dh" + hex.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newNamespace makes a namespace with loopback up and IPv6 off, deleted
// when the test ends.
func newNamespace(t *testing.T, name string) {
	t.Helper()
	must(t, netns.Create(name))
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		must(t, netns.SetSysctl(name, key, "1"))
	}
	withLinks(t, name, func(h *link.Handle) error { return h.SetUp("lo") })
}

func withLinks(t testing.TB, ns string, fn func(h *link.Handle) error) {
	t.Helper()
	h, err := link.Open(ns)
	must(t, err)
	defer h.Close()
	must(t, fn(h))
}

// lan is a switch namespace with a Linux bridge; attach plugs namespaces
// into it.
type lan struct {
	t      *testing.T
	prefix string
	sw     string
	n      int
}

func newLAN(t *testing.T) *lan {
	l := &lan{t: t, prefix: randomPrefix(t)}
	l.sw = l.prefix + "-sw"
	newNamespace(t, l.sw)
	withLinks(t, l.sw, func(h *link.Handle) error { return h.AddBridge("br0") })
	return l
}

// attach makes namespace <prefix>-<name> with interface dev (MAC mac, if
// given) on the switch, and returns the namespace's name.
func (l *lan) attach(name, dev string, mac net.HardwareAddr) string {
	t := l.t
	ns := l.prefix + "-" + name
	newNamespace(t, ns)
	l.n++
	peer := fmt.Sprintf("p%d", l.n)
	withLinks(t, ns, func(h *link.Handle) error {
		if err := h.AddVeth(link.Veth{Name: dev, PeerName: peer, PeerNetns: l.sw, MAC: mac}); err != nil {
			return err
		}
		if err := h.DisableTXChecksum(dev); err != nil {
			return err
		}
		return h.SetUp(dev)
	})
	withLinks(t, l.sw, func(h *link.Handle) error {
		if err := h.SetMaster(peer, "br0"); err != nil {
			return err
		}
		return h.SetUp(peer)
	})
	return ns
}

// client is a running udhcpc.
type client struct {
	t   *testing.T
	ns  string
	log string
	cmd *exec.Cmd
	out *strings.Builder
}

// startClient runs udhcpc on eth0 of ns with extra flags, stopped when the
// test ends.
func startClient(t *testing.T, ns string, flags ...string) *client {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.script")
	must(t, os.WriteFile(script, []byte(clientScript), 0o755))
	c := &client{t: t, ns: ns, log: filepath.Join(dir, "events"), out: &strings.Builder{}}
	args := append([]string{"udhcpc", "-f", "-i", "eth0", "-s", script, "-O", "mtu", "-O", "staticroutes", "-t", "5", "-T", "1", "-A", "1"}, flags...)
	c.cmd = netns.Command(ns, "busybox", args...)
	c.cmd.Env = append(os.Environ(), "DHCP_LOG="+c.log)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	must(t, c.cmd.Start())
	t.Cleanup(c.stop)
	return c
}

func (c *client) stop() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// renew makes udhcpc renew its lease now.
func (c *client) renew() {
	c.t.Helper()
	must(c.t, c.cmd.Process.Signal(syscall.SIGUSR1))
}

// events returns the logged events, each as a map of udhcpc's variables.
func (c *client) events() []map[string]string {
	f, err := os.Open(c.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev := map[string]string{}
		for _, kv := range strings.Split(sc.Text(), "|") {
			k, v, _ := strings.Cut(kv, "=")
			ev[k] = v
		}
		out = append(out, ev)
	}
	return out
}

// waitEvent waits for the first event from index after on that matches,
// and returns it with the index that follows it.
func (c *client) waitEvent(after int, match func(map[string]string) bool, what string) (map[string]string, int) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		evs := c.events()
		for i := after; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], i + 1
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("udhcpc in %s: no %s; events %v; output:\n%s", c.ns, what, c.events(), c.out.String())
	return nil, 0
}

func eventIs(name string) func(map[string]string) bool {
	return func(ev map[string]string) bool { return ev["event"] == name }
}

// serverNetwork is the test network as the server sees it: vm-1 on
// 10.0.0.0/24 with a gateway, DNS, a host route and MTU 1450.
func serverNetwork(vmMAC string) msg.DHCPNetwork {
	dhcpPort := msg.Port{ID: "dhcp-port", NetworkID: "net-1", MAC: "fa:16:3e:00:00:02", DeviceOwner: ownerDHCP, Host: host,
		FixedIPs: []msg.FixedIP{fixedIP("sub-a", "10.0.0.2")}}
	return msg.DHCPNetwork{
		ID: "net-1", AdminStateUp: true, MTU: 1450,
		Subnets: []msg.Subnet{{ID: "sub-a", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1", EnableDHCP: true,
			DNSNameservers: []string{"10.0.0.53"},
			HostRoutes:     []msg.HostRoute{{Destination: "192.168.0.0/16", Nexthop: "10.0.0.254"}}}},
		DHCPPort: &dhcpPort,
		Ports:    []msg.Port{dhcpPort, vmPort("vm-1", vmMAC, fixedIP("sub-a", "10.0.0.5"))},
	}
}

func TestServerWithRealClient(t *testing.T) {
	requireNamespaces(t)
	l := newLAN(t)
	srvNS := l.attach("srv", "ns-dhcp", mustMAC(t, "fa:16:3e:00:00:02"))
	withLinks(t, srvNS, func(h *link.Handle) error { return h.AddAddr("ns-dhcp", netip.MustParsePrefix("10.0.0.2/24")) })
	vmMAC := "fa:16:3e:00:00:05"
	vm := l.attach("vm", "eth0", mustMAC(t, vmMAC))
	stranger := l.attach("xx", "eth0", mustMAC(t, "fa:16:3e:00:00:99"))

	n := serverNetwork(vmMAC)
	settings := Settings{LeaseDuration: time.Hour, DomainName: "example.org"}
	srv, err := Listen(srvNS, "ns-dhcp", BuildTable(n, n.DHCPPort, settings), nil)
	must(t, err)
	t.Cleanup(srv.Close)

	// A MAC the network does not know gets nothing: udhcpc gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	script := filepath.Join(dir, "s")
	must(t, os.WriteFile(script, []byte(clientScript), 0o755))
	unknown := netns.CommandContext(ctx, stranger, "busybox", "udhcpc", "-n", "-q", "-i", "eth0", "-s", script, "-t", "3", "-T", "1")
	unknown.Env = append(os.Environ(), "DHCP_LOG="+filepath.Join(dir, "events"))
	if out, err := unknown.CombinedOutput(); err == nil {
		t.Errorf("udhcpc with an unknown MAC got a lease:\n%s", out)
	}
	if got := srv.Answered(); got != 0 {
		t.Errorf("server sent %d answers to an unknown MAC", got)
	}

	// The VM gets exactly its port's address and the subnet's options.
	c := startClient(t, vm)
	ev, seen := c.waitEvent(0, eventIs("bound"), "lease")
	want := map[string]string{
		"ip": "10.0.0.5", "subnet": "255.255.255.0", "router": "10.0.0.1", "dns": "10.0.0.53", "mtu": "1450",
		"staticroutes": "192.168.0.0/16 10.0.0.254 0.0.0.0/0 10.0.0.1", "lease": "3600", "serverid": "10.0.0.2",
		"broadcast": "10.0.0.255", "domain": "example.org", "hostname": "host-10-0-0-5",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("lease %s = %q, want %q", k, ev[k], v)
		}
	}
	withLinks(t, vm, func(h *link.Handle) error {
		addrs, err := h.Addrs("eth0")
		if err != nil {
			return err
		}
		info, err := h.Get("eth0")
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0].String() != "10.0.0.5/24" || info.MTU != 1450 {
			t.Errorf("VM's eth0: addresses %v, MTU %d; want 10.0.0.5/24, 1450", addrs, info.MTU)
		}
		return nil
	})

	// A subnet change reaches the client at its next renewal, with no
	// restart of the server. (udhcpc stretches short leases to 30 s, so
	// the test asks for the renewal as an operator would, with SIGUSR1.)
	n.Subnets[0].DNSNameservers = []string{"10.0.0.54", "10.0.0.55"}
	n.Subnets[0].HostRoutes = nil
	srv.SetTable(BuildTable(n, n.DHCPPort, settings))
	c.renew()
	ev, seen = c.waitEvent(seen, func(ev map[string]string) bool { return ev["event"] == "renew" && ev["dns"] == "10.0.0.54 10.0.0.55" }, "renewal with the new DNS servers")
	if ev["ip"] != "10.0.0.5" || ev["staticroutes"] != "" || ev["router"] != "10.0.0.1" {
		t.Errorf("renewal after the subnet change: %v; want the same address, the router, no option 121", ev)
	}

	// The port's address changes: the renewal is NAKed and the client
	// starts over and gets the new address.
	n.Ports[1].FixedIPs = []msg.FixedIP{fixedIP("sub-a", "10.0.0.50")}
	srv.SetTable(BuildTable(n, n.DHCPPort, settings))
	c.renew()
	nakAt := seen
	_, seen = c.waitEvent(seen, eventIs("nak"), "NAK of the old address")
	ev, _ = c.waitEvent(seen, eventIs("bound"), "lease of the new address")
	if ev["ip"] != "10.0.0.50" {
		t.Errorf("after the port's address changed the client got %q, want 10.0.0.50", ev["ip"])
	}
	if nakAt == seen {
		t.Error("no NAK seen")
	}

	// The port is deleted: renewals go unanswered (no NAK either: the MAC
	// is unknown now).
	n.Ports = n.Ports[:1]
	srv.SetTable(BuildTable(n, n.DHCPPort, settings))
	before := srv.Answered()
	c.renew()
	time.Sleep(time.Second)
	if got := srv.Answered(); got != before {
		t.Errorf("server answered %d messages of a deleted port", got-before)
	}
}

func TestServerCloseEndsServing(t *testing.T) {
	requireNamespaces(t)
	l := newLAN(t)
	srvNS := l.attach("srv", "ns-dhcp", nil)
	withLinks(t, srvNS, func(h *link.Handle) error { return h.AddAddr("ns-dhcp", netip.MustParsePrefix("10.0.0.2/24")) })
	n := serverNetwork("fa:16:3e:00:00:05")
	for i := range 3 {
		// Port 67 is free again each time: Close really closed the socket.
		srv, err := Listen(srvNS, "ns-dhcp", BuildTable(n, n.DHCPPort, Settings{}), nil)
		if err != nil {
			t.Fatalf("listen #%d: %v", i+1, err)
		}
		if again, err := Listen(srvNS, "ns-dhcp", nil, nil); err == nil {
			again.Close()
			t.Fatal("two servers listen on one interface")
		}
		srv.Close()
		srv.Close() // closing twice is harmless
	}
	if _, err := Listen(srvNS, "missing0", nil, nil); err == nil || !strings.Contains(err.Error(), "missing0") {
		t.Errorf("listening on a missing interface: %v", err)
	}
}

// TestServerSecondSubnet: a client on the DHCP port's second subnet is
// answered from the server's address there, and its unicast renewal too.
func TestServerSecondSubnet(t *testing.T) {
	requireNamespaces(t)
	l := newLAN(t)
	srvNS := l.attach("srv", "ns-dhcp", mustMAC(t, "fa:16:3e:00:00:02"))
	withLinks(t, srvNS, func(h *link.Handle) error {
		for _, a := range []string{"10.0.0.2/24", "10.1.0.2/24"} {
			if err := h.AddAddr("ns-dhcp", netip.MustParsePrefix(a)); err != nil {
				return err
			}
		}
		return nil
	})
	vm := l.attach("vm", "eth0", mustMAC(t, "fa:16:3e:00:00:06"))
	n := testNetwork()
	srv, err := Listen(srvNS, "ns-dhcp", BuildTable(n, n.DHCPPort, Settings{}), nil)
	must(t, err)
	t.Cleanup(srv.Close)

	c := startClient(t, vm)
	ev, seen := c.waitEvent(0, eventIs("bound"), "lease on the second subnet")
	want := map[string]string{
		"ip": "10.1.0.6", "serverid": "10.1.0.2", "router": "", "mtu": "1450",
		"staticroutes": "10.0.0.0/24 0.0.0.0 10.2.0.0/24 0.0.0.0", "lease": "86400",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("lease %s = %q, want %q", k, ev[k], v)
		}
	}
	c.renew()
	if ev, _ = c.waitEvent(seen, eventIs("renew"), "renewal"); ev["ip"] != "10.1.0.6" || ev["serverid"] != "10.1.0.2" {
		t.Errorf("renewal: %v", ev)
	}
}
