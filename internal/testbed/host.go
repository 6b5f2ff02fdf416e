package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// dialTimeout bounds a TCP connect: a tunnel that drops the SYN should
// fail a test quickly.
const dialTimeout = 10 * time.Second

// HostSpec describes a host: a namespace of its own with one interface,
// eth0, whose veth peer is PeerName in PeerNetns.
type HostSpec struct {
	// Name makes the namespace <prefix>-<Name>.
	Name string
	// PeerNetns and PeerName place the other end of eth0 (at most 15
	// characters); it is set up, and enslaved to PeerBridge (a Linux
	// bridge in PeerNetns) if given.
	PeerNetns, PeerName, PeerBridge string
	// Addr is eth0's address with its prefix length; zero for none.
	Addr netip.Prefix
	// Gateway, if valid, becomes the default route.
	Gateway netip.Addr
	// MTU of both ends; 0 for the kernel's 1500. Hosts behind VXLAN
	// tenant networks need 1450.
	MTU int
	// MAC of eth0; nil for a random one.
	MAC net.HardwareAddr
}

// Host is a namespace standing in for a machine: a VM endpoint or the
// outside host.
type Host struct {
	Name  string
	Netns string
	// Iface is "eth0", MAC its address and Addr its IP address.
	Iface string
	MAC   net.HardwareAddr
	Addr  netip.Prefix
	// PeerNetns and PeerName are the other end of eth0.
	PeerNetns, PeerName string
}

// AddHost creates a host as spec says, removed when the test ends. TX
// checksum offload is off on both ends of its veth, as every kernel
// endpoint behind the OVS userspace datapath needs.
func (b *Bed) AddHost(t testing.TB, spec HostSpec) *Host {
	t.Helper()
	if len(spec.PeerName) > 15 || spec.PeerName == "" {
		t.Fatalf("testbed: host %s: peer name %q must have 1-15 characters", spec.Name, spec.PeerName)
	}
	h := &Host{Name: spec.Name, Netns: b.newNetns(t, spec.Name), Iface: "eth0", Addr: spec.Addr, PeerNetns: spec.PeerNetns, PeerName: spec.PeerName}
	in := b.links(t, h.Netns)
	must(t, in.AddVeth(link.Veth{Name: h.Iface, PeerName: spec.PeerName, PeerNetns: spec.PeerNetns, MTU: spec.MTU, MAC: spec.MAC}))
	must(t, in.DisableTXChecksum(h.Iface))
	must(t, in.SetUp(h.Iface))
	if spec.Addr.IsValid() {
		must(t, in.AddAddr(h.Iface, spec.Addr))
	}
	if spec.Gateway.IsValid() {
		must(t, in.AddRoute(link.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: spec.Gateway, Dev: h.Iface}))
	}
	info, err := in.Get(h.Iface)
	must(t, err)
	h.MAC = info.MAC

	peer := b.links(t, spec.PeerNetns)
	must(t, peer.DisableTXChecksum(spec.PeerName))
	if spec.PeerBridge != "" {
		must(t, peer.SetMaster(spec.PeerName, spec.PeerBridge))
	}
	must(t, peer.SetUp(spec.PeerName))
	return h
}

// IP is the host's address without its prefix length.
func (h *Host) IP() netip.Addr { return h.Addr.Addr() }

// Command returns a command that runs prog inside the host's namespace.
func (h *Host) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return netns.CommandContext(ctx, h.Netns, prog, args...)
}

// Run runs prog inside the host and returns its combined output; it fails
// the test if prog fails.
func (h *Host) Run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	return run(t, h.Netns, prog, args...)
}

// Ping sends count echo requests to dst from inside ns and returns nil if
// every one was answered; the error holds ping's output.
func Ping(ctx context.Context, ns string, dst netip.Addr, count int) error {
	out, err := netns.CommandContext(ctx, ns, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, ns, err, out)
	}
	return nil
}

// Ping sends count echo requests to dst; nil if every one was answered.
func (h *Host) Ping(ctx context.Context, dst netip.Addr, count int) error {
	return Ping(ctx, h.Netns, dst, count)
}

// ServeTCPEcho listens on addr inside ns and echoes every connection's
// bytes back until the test ends. It returns the address listened on.
func ServeTCPEcho(t testing.TB, ns string, addr netip.AddrPort) netip.AddrPort {
	t.Helper()
	return serveTCP(t, ns, "tcp", addr, func(conn net.Conn) {
		// Connections are echoed side by side: one left open must not
		// hold up the next.
		go func() {
			defer conn.Close()
			io.Copy(conn, conn)
		}()
	})
}

// ServeAnswer listens on IPv4 address addr inside ns until the test ends
// and writes answer(conn) to every connection, then closes it.
func ServeAnswer(t testing.TB, ns string, addr netip.AddrPort, answer func(net.Conn) string) netip.AddrPort {
	t.Helper()
	return serveTCP(t, ns, "tcp4", addr, func(conn net.Conn) {
		io.WriteString(conn, answer(conn))
		conn.Close()
	})
}

// serveTCP listens on addr inside ns and hands every connection to handle
// until the test ends. It returns the address listened on.
func serveTCP(t testing.TB, ns, network string, addr netip.AddrPort, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("testbed: TCP server in %s: %v", ns, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			handle(conn)
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// Ask connects from inside ns to IPv4 address addr and returns what the
// server there writes before it closes the connection (ServeAnswer).
func Ask(ctx context.Context, ns string, addr netip.AddrPort) (string, error) {
	conn, err := dialIn(ctx, ns, "tcp4", addr, askTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(askTimeout))
	b, err := io.ReadAll(conn)
	return string(b), err
}

// dialIn connects from inside ns to addr, waiting at most timeout.
func dialIn(ctx context.Context, ns, network string, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := netns.Do(ns, func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr.String())
		return err
	})
	return conn, err
}

// askTimeout bounds Ask's connect and its read: tests ask again and
// again until what they wait for happens.
const askTimeout = 2 * time.Second

// TCPEcho connects from inside ns to an echo server at addr, sends payload
// and checks that the same bytes come back.
func TCPEcho(ctx context.Context, ns string, addr netip.AddrPort, payload []byte) error {
	conn, err := dialIn(ctx, ns, "tcp", addr, dialTimeout)
	if err != nil {
		return fmt.Errorf("TCP to %s from %s: %w", addr, ns, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(conn)
	if werr := <-writeErr; werr != nil {
		return fmt.Errorf("TCP to %s from %s: write: %w", addr, ns, werr)
	}
	if err != nil {
		return fmt.Errorf("TCP to %s from %s: read after %d of %d bytes: %w", addr, ns, len(got), len(payload), err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("TCP to %s from %s: %d bytes came back for %d sent, or different ones", addr, ns, len(got), len(payload))
	}
	return nil
}

// TCPEcho is TCPEcho from this host.
func (h *Host) TCPEcho(ctx context.Context, addr netip.AddrPort, payload []byte) error {
	return TCPEcho(ctx, h.Netns, addr, payload)
}

// ServeTCPEcho runs an echo server on this host's address at port.
func (h *Host) ServeTCPEcho(t testing.TB, port uint16) netip.AddrPort {
	t.Helper()
	return ServeTCPEcho(t, h.Netns, netip.AddrPortFrom(h.IP(), port))
}
