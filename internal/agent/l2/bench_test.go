package l2

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
)

// addVIFs makes n veth pairs inside the node (the far ends stand in for
// VMs) and returns their names on the br-int side, not yet plugged.
func addVIFs(b *bed, nd *node, n int) []string {
	names := make([]string, n)
	h := nd.tb.Links(b.t)
	b.must(func() error {
		for i := range names {
			names[i] = fmt.Sprintf("vif%d", i)
			if err := h.AddVeth(link.Veth{Name: names[i], PeerName: fmt.Sprintf("vm%d", i)}); err != nil {
				return err
			}
			for _, dev := range []string{names[i], fmt.Sprintf("vm%d", i)} {
				if err := h.SetUp(dev); err != nil {
					return err
				}
			}
		}
		return nil
	}())
	return names
}

func benchState(n int) *msg.HostState {
	s := &msg.L2State{Networks: []msg.Network{network("net-red", "vxlan", 100)}}
	for i := 0; i < n; i++ {
		s.Ports = append(s.Ports, port(fmt.Sprintf("port-%d", i), "net-red", fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256), "10.0.0.1/8"))
	}
	return &msg.HostState{L2: s}
}

func (nd *node) plugVIF(b *bed, name, portID string) {
	b.must(nd.client.EnsurePort(context.Background(), "br-int", ovs.Port{Name: name, ExternalIDs: map[string]string{
		"iface-id": portID, "iface-status": "active",
	}}))
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkWiring measures, for 50 ports one after the other, the time from
// plugging a VIF into br-int (the OVSDB transaction a VIF driver makes) to
// the l2 role reporting its port up, with its flows installed.
func BenchmarkWiring(b *testing.B) {
	const ports = 50
	for i := 0; i < b.N; i++ {
		bd := newBed(b, 1)
		nd := bd.nodes[0]
		nd.sync(benchState(ports))
		nd.startRole()
		vifs := addVIFs(bd, nd, ports)
		var lat []time.Duration
		for j, vif := range vifs {
			id := fmt.Sprintf("port-%d", j)
			start := time.Now()
			nd.plugVIF(bd, vif, id)
			nd.waitWired(b, id)
			lat = append(lat, time.Since(start))
		}
		b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkResync500 measures a restarted l2 role taking over a node with
// 500 wired ports: from its start (with the desired state already known)
// until every bridge carries its flows under the new run.
func BenchmarkResync500(b *testing.B) {
	const ports = 500
	bd := newBed(b, 1)
	nd := bd.nodes[0]
	nd.sync(benchState(ports))
	nd.startRole()
	for j, vif := range addVIFs(bd, nd, ports) {
		nd.plugVIF(bd, vif, fmt.Sprintf("port-%d", j))
	}
	waitFor(b, func() bool { return nd.role.Stats().Wired == ports }, "500 ports wired")
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r := nd.startRole()
		waitFor(b, func() bool { s := r.Stats(); return s.FullPushes >= 3 && s.Wired == ports }, "resync")
		total += time.Since(start)
		b.ReportMetric(float64(r.Stats().Flows["br-int"]), "br-int-flows")
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "resync-ms")
}
