package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// captureStartTimeout bounds the wait for tcpdump to listen.
const captureStartTimeout = 10 * time.Second

// Capture is a running tcpdump on one link. It prints link-level headers
// (-e), so 802.1Q frames show as "vlan N", and also writes a pcap file.
type Capture struct {
	Netns, Iface string
	// PcapPath is the pcap file tcpdump writes, for Wireshark when a test
	// fails (it goes with the test's temporary directory).
	PcapPath string

	stop     func() []string
	mu       sync.Mutex
	lines    []string
	changed  chan struct{} // closed and replaced on every new line
	finished chan struct{} // closed when tcpdump's output has ended
}

// Capture starts tcpdump on iface inside ns with filter (pcap-filter(7)
// syntax, "" for everything) and returns once it listens. It stops when
// Stop is called or the test ends. Skips the test if tcpdump is missing.
func (b *Bed) Capture(t testing.TB, ns, iface, filter string) *Capture {
	t.Helper()
	testenv.LookPathOrSkip(t, "tcpdump", "apt-get install tcpdump")
	c := &Capture{
		Netns: ns, Iface: iface,
		PcapPath: filepath.Join(t.TempDir(), iface+".pcap"),
		changed:  make(chan struct{}), finished: make(chan struct{}),
	}
	args := []string{"-i", iface, "-nn", "-e", "-l", "-U", "-Z", "root", "-w", c.PcapPath, "--print"}
	if filter != "" {
		args = append(args, filter)
	}
	cmd := netns.Command(ns, "tcpdump", args...)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	stderr, err := cmd.StderrPipe()
	must(t, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testbed: tcpdump on %s in %s: %v", iface, ns, err)
	}

	listening := make(chan struct{})
	var stderrText strings.Builder
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			stderrText.WriteString(line + "\n")
			c.mu.Unlock()
			if strings.Contains(line, "listening on") {
				once.Do(func() { close(listening) })
			}
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	exited := make(chan error, 1)
	go func() {
		readers.Wait()
		exited <- cmd.Wait()
		close(c.finished)
	}()

	var once sync.Once
	c.stop = func() []string {
		once.Do(func() {
			select {
			case <-c.finished:
				return
			default:
			}
			// SIGINT makes tcpdump flush and print its summary.
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-c.finished:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-c.finished
			}
		})
		return c.Lines()
	}
	t.Cleanup(func() { c.stop() })

	select {
	case <-listening:
	case err := <-exited:
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("testbed: tcpdump on %s in %s exited: %v\n%s", iface, ns, err, stderrText.String())
	case <-time.After(captureStartTimeout):
		c.stop()
		t.Fatalf("testbed: tcpdump on %s in %s did not start listening within %v", iface, ns, captureStartTimeout)
	}
	return c
}

// Lines returns the packets printed so far, one line each.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Stop stops tcpdump (by its process id) and returns every packet line.
func (c *Capture) Stop() []string { return c.stop() }

// Wait waits until a packet line contains substr and returns that line.
func (c *Capture) Wait(ctx context.Context, substr string) (string, error) {
	for {
		c.mu.Lock()
		changed := c.changed
		for _, l := range c.lines {
			if strings.Contains(l, substr) {
				c.mu.Unlock()
				return l, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-changed:
		case <-c.finished:
			return "", fmt.Errorf("capture on %s ended without a packet matching %q", c.Iface, substr)
		case <-ctx.Done():
			return "", fmt.Errorf("no packet matching %q on %s: %w", substr, c.Iface, ctx.Err())
		}
	}
}
