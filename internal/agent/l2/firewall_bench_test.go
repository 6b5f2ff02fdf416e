package l2

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// BenchmarkFirewallRemoteGroup200 wires one group "web" of 200 ports on a
// node (veths) plus two VMs, with one remote-group rule (ingress IPv4
// from members of web) and egress open. It reports the flows in the
// firewall's rule tables next to what one flow per port × member × rule
// would be, and the time from the state adding the second VM to the
// group until its pings to the first are answered (a ping every 5 ms
// runs all along).
func BenchmarkFirewallRemoteGroup200(b *testing.B) {
	const members = 200
	bd := newBed(b, 1)
	nd := bd.nodes[0]
	web := msg.SecurityGroup{ID: "web", Stateful: true, Rules: []msg.SecurityGroupRule{
		{ID: "e4", Direction: msg.DirectionEgress, Ethertype: msg.EthertypeIPv4},
		{ID: "i4", Direction: msg.DirectionIngress, Ethertype: msg.EthertypeIPv4, RemoteGroupID: "web"},
	}}
	other := msg.SecurityGroup{ID: "other", Stateful: true, Rules: web.Rules[:1]}
	ports := []msg.Port{
		securePort("target", "net", "fa:16:3e:01:00:01", "10.1.0.1/16", "web"),
		securePort("newcomer", "net", "fa:16:3e:01:00:02", "10.1.0.2/16", "other"),
	}
	for i := range members - 1 {
		ports = append(ports, securePort(fmt.Sprintf("port-%d", i), "net", fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256), fmt.Sprintf("10.0.%d.%d/16", i/250, i%250+1), "web"))
	}
	s := secured{
		placement: placement{networks: []msg.Network{network("net", "vxlan", 100)}, ports: map[*node][]msg.Port{nd: ports}},
		groups:    map[string]msg.SecurityGroup{"web": web, "other": other},
	}
	s.apply(bd)
	nd.startRole()
	target := bd.addVM(nd, "t", "target", "fa:16:3e:01:00:01", "10.1.0.1/16")
	newcomer := bd.addVM(nd, "n", "newcomer", "fa:16:3e:01:00:02", "10.1.0.2/16")
	for j, vif := range addVIFs(bd, nd, members-1) {
		nd.plugVIF(bd, vif, fmt.Sprintf("port-%d", j))
	}
	waitFor(b, func() bool { return nd.role.Stats().Wired == members+1 }, "ports wired")
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		ports[1].SecurityGroups = []string{"other"}
		s.apply(bd)
		waitFor(b, func() bool { return newcomer.ping(target.addr(), 1, "0.1") == 0 }, "newcomer out of web")

		pinger := netns.Command(newcomer.Netns, "ping", "-n", "-D", "-i", "0.005", "-W", "1", target.addr())
		out, err := pinger.StdoutPipe()
		bd.must(err)
		bd.must(pinger.Start())
		time.Sleep(50 * time.Millisecond) // pinging, unanswered
		ports[1].SecurityGroups = []string{"other", "web"}
		start := time.Now()
		s.apply(bd)
		first := make(chan time.Time, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				// "[1732480000.123456] 64 bytes from 10.1.0.1: …"
				l := sc.Text()
				if !strings.Contains(l, "bytes from") {
					continue
				}
				if ts, err := strconv.ParseFloat(strings.Trim(strings.Fields(l)[0], "[]"), 64); err == nil {
					first <- time.Unix(0, int64(ts*1e9))
					return
				}
			}
		}()
		select {
		case t := <-first:
			lat = append(lat, t.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatal("the newcomer's pings were never answered after it joined web")
		}
		pinger.Process.Kill()
		pinger.Wait()
	}
	b.StopTimer()
	tables := map[string]int{}
	for _, f := range nd.flows(b, "br-int") {
		var t int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "table=%d,", &t); err == nil {
			tables[TableName(RoleIntegration, Table(t))]++
		}
	}
	b.ReportMetric(float64(tables["ingress-rules"]), "ingress-rules-flows")
	b.ReportMetric(float64(tables["egress-rules"]), "egress-rules-flows")
	b.ReportMetric(float64(nd.role.Stats().Flows["br-int"]), "br-int-flows")
	// Without conjunctions: a flow per port, member and rule, for new and
	// established connections.
	b.ReportMetric(float64((members+1)*members*1*2), "ports×members×rules×2")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "join-to-traffic-p50-ms")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds())/1000, "join-to-traffic-max-ms")
	b.Logf("flows by table: %v", tables)
}
