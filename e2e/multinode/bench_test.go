package multinode

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// The benchmarks run on the three-node cluster of the tests, each once
// (-benchtime=1x); docs/benchmarks.md has the figures and the command:
//
//	go test ./e2e/multinode -run '^$' -bench . -benchtime=1x -v

const benchPorts = 50

// BenchmarkPortActive measures, for 50 ports one after the other on
// node2, the time from POST /v2.0/ports with binding:host_id to the API
// showing the port ACTIVE, the VIF being plugged into br-int (an OVSDB
// transaction, as Nova's VIF driver makes) right after the POST returns.
// It also reports plug → ACTIVE alone.
func BenchmarkPortActive(b *testing.B) {
	c := newCluster(b, defaultSpec())
	n2 := c.nodes[1]
	net := c.network("bench", "10.100.0.0/16", nil)
	db := n2.tb.OVSDB(b)
	vifs := addVIFs(b, n2, "pa", benchPorts)
	ctx := context.Background()
	var total, plugged []time.Duration
	b.ResetTimer()
	for range b.N {
		total, plugged = total[:0], plugged[:0]
		for i := range benchPorts {
			start := time.Now()
			p := c.api.Create("ports", "port", map[string]any{
				"network_id": net["id"], "binding:host_id": n2.tb.Name,
				"device_owner": "compute:nova", "device_id": uuid.NewString(),
			})
			plugAt := time.Now()
			must(b, db.EnsurePort(ctx, "br-int", vifPort(vifs[i], p)))
			waitActive(b, c, apitest.S(p["id"]))
			total = append(total, time.Since(start))
			plugged = append(plugged, time.Since(plugAt))
			b.StopTimer()
			must(b, db.DeletePort(ctx, vifs[i]))
			c.api.Must(204, "DELETE", "/v2.0/ports/"+apitest.S(p["id"]), nil)
			b.StartTimer()
		}
	}
	reportPercentiles(b, "create→ACTIVE", total)
	reportPercentiles(b, "plug→ACTIVE", plugged)
}

// BenchmarkVMCreateLease measures `neutrino vm create` on node2, 50 VMs
// one after the other: the whole command (port create and binding, the
// namespace and veth, the plug, the port going ACTIVE, udhcpc's lease from
// node1's DHCP server across the tunnel), as a script sees it.
func BenchmarkVMCreateLease(b *testing.B) {
	c := newCluster(b, defaultSpec())
	n2 := c.nodes[1]
	c.network("bench", "10.101.0.0/16", nil)
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		took = took[:0]
		for i := range benchPorts {
			start := time.Now()
			v := n2.createVM("bench", fmt.Sprintf("v%d", i))
			took = append(took, time.Since(start))
			if v.Lease == nil {
				b.Fatalf("VM %s has no lease", v.Name)
			}
		}
		b.StopTimer()
		for _, name := range n2.vms {
			n2.deleteVM(name)
		}
		n2.vms = nil
		b.StartTimer()
	}
	reportPercentiles(b, "vm-create→lease", took)
}

// BenchmarkResync500 measures a restarted l2 agent taking over node2 with
// 500 wired ports: from starting the process to every flow of its bridges
// carrying the new run's cookie, with the same flows as before (flows are
// polled, so the figure is within one dump of the truth). The time to the
// agent's "full sync done" log line is reported too.
func BenchmarkResync500(b *testing.B) {
	const ports = 500
	c := newCluster(b, defaultSpec())
	n2 := c.nodes[1]
	net := c.network("bench", "10.102.0.0/16", nil)
	db := n2.tb.OVSDB(b)
	vifs := addVIFs(b, n2, "rs", ports)
	ctx := context.Background()
	var ids []string
	for chunk := 0; chunk < ports; chunk += 100 {
		var batch []map[string]any
		for range 100 {
			batch = append(batch, map[string]any{
				"network_id": net["id"], "binding:host_id": n2.tb.Name,
				"device_owner": "compute:nova", "device_id": uuid.NewString(),
			})
		}
		for _, p := range c.api.Must(201, "POST", "/v2.0/ports", map[string]any{"ports": batch})["ports"].([]any) {
			pm := p.(map[string]any)
			must(b, db.EnsurePort(ctx, "br-int", vifPort(vifs[len(ids)], pm)))
			ids = append(ids, apitest.S(pm["id"]))
		}
	}
	testenv.Eventually(b, time.Minute, "500 ports ACTIVE", func() bool {
		active := c.api.Do("GET", "/v2.0/ports?status=ACTIVE&fields=id&device_owner=compute:nova", nil).Items("ports")
		return len(active) >= ports
	})
	b.ResetTimer()
	var resync, synced []time.Duration
	for range b.N {
		b.StopTimer()
		before := flowsWithoutCookies(ctx, n2)
		oldCookies := cookies(ctx, b, n2)
		n2.stopAgent()
		logBefore := syncCount(n2)
		b.StartTimer()
		start := time.Now()
		n2.startAgent()
		var syncAt time.Duration
		testenv.Eventually(b, 30*time.Second, "the restarted agent's flows", func() bool {
			if syncAt == 0 && syncCount(n2) > logBefore {
				syncAt = time.Since(start)
			}
			for ck := range cookies(ctx, b, n2) {
				if oldCookies[ck] {
					return false
				}
			}
			return slices.Equal(flowsWithoutCookies(ctx, n2), before)
		})
		resync = append(resync, time.Since(start))
		if syncAt == 0 {
			syncAt = time.Since(start)
		}
		synced = append(synced, syncAt)
		b.Logf("br-int carries %d flows for %d ports", countPrefix(before, "br-int "), ports)
	}
	reportPercentiles(b, "resync-500", resync)
	reportPercentiles(b, "start→full-sync-log", synced)
}

// addVIFs makes n veth pairs in the node (prefix+i on the OVS side, up),
// to be plugged into br-int as VIFs.
func addVIFs(b testing.TB, nd *node, prefix string, n int) []string {
	h := nd.tb.Links(b)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		peer := fmt.Sprintf("%sp%d", prefix, i)
		must(b, h.AddVeth(link.Veth{Name: names[i], PeerName: peer}))
		must(b, h.SetUp(names[i]))
		must(b, h.SetUp(peer))
	}
	return names
}

// vifPort is the OVS port a VIF driver would make for the API port p.
func vifPort(name string, p map[string]any) ovs.Port {
	return ovs.Port{Name: name, ExternalIDs: map[string]string{
		"iface-id": apitest.S(p["id"]), "attached-mac": apitest.S(p["mac_address"]), "iface-status": "active",
	}}
}

// waitActive polls the port every 2 ms until it is ACTIVE.
func waitActive(b testing.TB, c *cluster, id string) {
	deadline := time.Now().Add(30 * time.Second)
	for c.api.Do("GET", "/v2.0/ports/"+id+"?fields=status", nil).Item("port")["status"] != "ACTIVE" {
		if time.Now().After(deadline) {
			b.Fatalf("port %s not ACTIVE after 30 s", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cookies are the cookies of the node's flows.
func cookies(ctx context.Context, b testing.TB, nd *node) map[uint64]bool {
	out := map[uint64]bool{}
	for _, br := range []string{"br-int", "br-tun", "br-" + physnet} {
		fl, err := nd.tb.OVS.OpenFlow(br).DumpFlows(ctx, "")
		must(b, err)
		for _, f := range fl {
			out[f.Cookie] = true
		}
	}
	return out
}

// syncCount is how many full syncs the node's agent log shows.
func syncCount(nd *node) int {
	data, _ := os.ReadFile(nd.agent.logPath)
	return strings.Count(string(data), `msg="full sync done"`)
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// reportPercentiles prints p50/p99/max of d and reports p50 and p99 as
// benchmark metrics in milliseconds.
func reportPercentiles(b *testing.B, what string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[int(float64(len(s)-1)*p)] }
	b.Logf("%s over %d: p50 %v, p99 %v, max %v", what, len(s), pct(0.5).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), s[len(s)-1].Round(100*time.Microsecond))
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, what+"-p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, what+"-p99-ms")
}
