package msg_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

func TestL2ConfigurationsRoundTrip(t *testing.T) {
	in := msg.L2Configurations{
		BridgeMappings: map[string]string{"physnet1": "br-physnet1"},
		TunnelTypes:    []string{"vxlan"}, TunnelingIP: "192.0.2.1",
		DatapathType: "netdev", IntegrationBridge: "br-int", L2Population: true, Devices: 3,
	}
	m := in.Map()
	if m["tunneling_ip"] != "192.0.2.1" || m["l2_population"] != true {
		t.Fatalf("Map() = %v, want Neutron's keys", m)
	}
	out, err := msg.ParseL2Configurations(m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	if _, err := msg.ParseL2Configurations(map[string]any{"tunnel_types": "vxlan"}); err == nil {
		t.Error("a string where a list belongs was accepted")
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[int]bool{0: true, msg.Version: true, msg.Version + 1: false} {
		if err := msg.CheckVersion(v); (err == nil) != ok {
			t.Errorf("CheckVersion(%d) = %v", v, err)
		}
	}
}

func TestNotificationEncodesTunnelEndpointsOnlyWhenChanged(t *testing.T) {
	data, err := json.Marshal(msg.Notification{Version: msg.Version, Host: "h", Seq: 2, L2: &msg.L2Update{DeletedPorts: []string{"p"}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if n.L2.TunnelEndpointsChanged || n.L2.DeletedPorts[0] != "p" || n.Seq != 2 {
		t.Errorf("decoded %+v", n.L2)
	}
}

func decode(data []byte) (msg.Notification, error) {
	var n msg.Notification
	err := json.Unmarshal(data, &n)
	return n, err
}

func TestHostSubjectIsOneToken(t *testing.T) {
	for host, want := range map[string]string{
		"compute1": "neutrino.host.compute1", "compute1.example.com": "neutrino.host.compute1_example_com",
		"a b*>": "neutrino.host.a_b__", "node-2_x": "neutrino.host.node-2_x",
	} {
		if got := msg.HostSubject(host); got != want {
			t.Errorf("HostSubject(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestL3ConfigurationsRoundTrip(t *testing.T) {
	in := msg.L3Configurations{AgentMode: msg.L3AgentModeLegacy, InterfaceDriver: "openvswitch", HandleInternalOnlyRouters: true, Routers: 2, FloatingIPs: 1}
	m := in.Map()
	if m["agent_mode"] != "legacy" || m["handle_internal_only_routers"] != true || m["floating_ips"] != float64(1) {
		t.Fatalf("Map() = %v, want Neutron's keys", m)
	}
	out, err := msg.ParseL3Configurations(m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
}
