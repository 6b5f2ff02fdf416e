package l3

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// BenchmarkFloatingIPAssociate measures, on a test-bed network node, the
// time from handing the l3 role a router with a new floating IP to the
// outside host's first TCP connection through it, and the time the role
// takes to apply its disassociation (after which the next attempt must
// fail). Each iteration associates and disassociates once; p50/p99 are
// reported.
//
//	sudo go test -run - -bench FloatingIPAssociate -benchtime 50x ./internal/agent/l3/
func BenchmarkFloatingIPAssociate(b *testing.B) {
	nn := newNetNode(b)
	outside := nn.bed.Outside
	nn.addVM("vma", "port-vm-a", "fa:16:3e:aa:00:05", "10.0.0.5", "10.0.0.1")
	nn.setRouters(routerA())
	target := netip.AddrPortFrom(fipA, whoPort)
	reachable := func() bool {
		var conn net.Conn
		err := netns.Do(outside.Netns, func() error {
			var err error
			conn, err = net.DialTimeout("tcp4", target.String(), 200*time.Millisecond)
			return err
		})
		if err == nil {
			conn.Close()
		}
		return err == nil
	}
	waitReachable := func() {
		deadline := time.Now().Add(10 * time.Second)
		for !reachable() {
			if time.Now().After(deadline) {
				b.Fatal("floating IP unreachable after 10 s")
			}
		}
	}
	var assoc, disassoc []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		nn.setRouters(withFIP(routerA(), "fip-a", fipA, "10.0.0.5", "port-vm-a"))
		waitReachable()
		assoc = append(assoc, time.Since(start))
		// Once the role has applied the change, the next attempt fails (a
		// refused attempt takes the whole dial timeout, so it is not timed).
		start = time.Now()
		nn.setRouters(routerA())
		disassoc = append(disassoc, time.Since(start))
		if reachable() {
			b.Fatal("floating IP reachable after the role applied its disassociation")
		}
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, name+"-p99-ms")
		b.Logf("%s over %d: p50 %v, p99 %v", name, len(d), p(0.5), p(0.99))
	}
	report("associate", assoc)
	report("disassociate", disassoc)
}
