package l2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ofctl programs bridges with ovs-ofctl over their OpenFlow management
// sockets (<rundir>/<bridge>.mgmt), so it works for any ovs-vswitchd whose
// run directory it is given, inside or outside network namespaces.
type Ofctl struct {
	// RunDir is ovs-vswitchd's run directory (OVS_RUNDIR).
	RunDir string
	// Binary is the ovs-ofctl to run; "" finds it in PATH.
	Binary string
}

// DefaultRunDir is where a packaged Open vSwitch keeps its sockets.
const DefaultRunDir = "/var/run/openvswitch"

func (o Ofctl) binary() string {
	if o.Binary != "" {
		return o.Binary
	}
	return "ovs-ofctl"
}

// Socket is the management socket of bridge.
func (o Ofctl) Socket(bridge string) string {
	dir := o.RunDir
	if dir == "" {
		dir = DefaultRunDir
	}
	return filepath.Join(dir, bridge+".mgmt")
}

func (o Ofctl) exec(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, o.binary(), append([]string{"-O", "OpenFlow14"}, args...)...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ovs-ofctl %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Bundle applies lines to bridge in one OpenFlow 1.4 bundle.
func (o Ofctl) Bundle(ctx context.Context, bridge string, lines []string) error {
	var in bytes.Buffer
	for _, l := range lines {
		in.WriteString(l)
		in.WriteByte('\n')
	}
	_, err := o.exec(ctx, &in, "--bundle", "add-flows", "unix:"+o.Socket(bridge), "-")
	return err
}

// Cookies returns the distinct cookies of bridge's flows.
func (o Ofctl) Cookies(ctx context.Context, bridge string) ([]uint64, error) {
	out, err := o.exec(ctx, nil, "dump-flows", "--no-stats", "unix:"+o.Socket(bridge))
	if err != nil {
		return nil, err
	}
	return parseCookies(out)
}

// DumpFlows returns bridge's flows as ovs-ofctl shows them, without
// statistics, sorted: for tests and debugging.
func (o Ofctl) DumpFlows(ctx context.Context, bridge string) ([]string, error) {
	out, err := o.exec(ctx, nil, "dump-flows", "--no-stats", "--sort", "unix:"+o.Socket(bridge))
	if err != nil {
		return nil, err
	}
	var flows []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "OFPST_FLOW") && !strings.HasPrefix(l, "NXST_FLOW") {
			flows = append(flows, l)
		}
	}
	return flows, nil
}

// parseCookies reads the cookie= fields of a dump-flows output. A flow
// shown without one has cookie 0.
func parseCookies(out []byte) ([]uint64, error) {
	seen := map[uint64]bool{}
	var cookies []uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") || strings.HasPrefix(line, "NXST_FLOW") {
			continue
		}
		var c uint64
		if i := strings.Index(line, "cookie="); i >= 0 {
			v := line[i+len("cookie="):]
			if j := strings.IndexAny(v, ", "); j >= 0 {
				v = v[:j]
			}
			n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parse cookie of %q: %w", line, err)
			}
			c = n
		}
		if !seen[c] {
			seen[c] = true
			cookies = append(cookies, c)
		}
	}
	return cookies, sc.Err()
}

// WatchSwitch keeps an OpenFlow connection to bridge's management socket
// open and calls restarted each time it has been re-established after a
// loss: ovs-vswitchd restarted (or the bridge was re-created), and its flow
// tables are empty. It returns when ctx ends.
func (o Ofctl) WatchSwitch(ctx context.Context, bridge string, restarted func()) {
	lost := false
	for ctx.Err() == nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", o.Socket(bridge))
		if err != nil {
			lost = true
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		established := holdOpenFlow(conn, func() {
			if lost {
				restarted()
			}
		})
		stop()
		conn.Close()
		if established {
			lost = true
		} else {
			// Refused (e.g. OpenFlow 1.4 disabled on the bridge): the
			// programming fails loudly anyway; don't spin.
			sleepCtx(ctx, time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// OpenFlow message types used to keep a connection open.
const (
	ofptHello       = 0
	ofptError       = 1
	ofptEchoRequest = 2
	ofptEchoReply   = 3
	ofVersion14     = 5
)

// holdOpenFlow says hello and answers echo requests until the connection
// ends. It calls up once the switch has said hello, and reports whether it
// did.
func holdOpenFlow(conn net.Conn, up func()) (established bool) {
	hello := []byte{ofVersion14, ofptHello, 0, 8, 0, 0, 0, 1}
	if _, err := conn.Write(hello); err != nil {
		return false
	}
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return established
		}
		n := int(binary.BigEndian.Uint16(hdr[2:4]))
		if n < 8 {
			return established
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(conn, body); err != nil {
			return established
		}
		switch {
		case hdr[1] == ofptHello && !established:
			established = true
			up()
		case hdr[1] == ofptError && !established:
			return false
		}
		if hdr[1] == ofptEchoRequest {
			reply := append([]byte{hdr[0], ofptEchoReply, hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], hdr[7]}, body...)
			if _, err := conn.Write(reply); err != nil {
				return established
			}
		}
	}
}
