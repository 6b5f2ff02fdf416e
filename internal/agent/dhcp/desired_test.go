package dhcp

import (
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

func portIDs(n desiredNetwork) []string {
	var ids []string
	for _, p := range n.Ports {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestDesiredStateFindsOwnDHCPPort(t *testing.T) {
	n := testNetwork()
	n.DHCPPort = nil // not yet named by the server
	other := msg.Port{ID: "dhcp-other", NetworkID: "net-1", MAC: "fa:16:3e:00:00:03", DeviceOwner: ownerDHCP, Host: "node-2"}
	n.Ports = append([]msg.Port{other}, n.Ports...)
	d := newDesiredState(host)
	d.replace(&msg.DHCPState{Networks: []msg.DHCPNetwork{n}})
	got := d.networks["net-1"]
	if got.DHCPPort == nil || got.DHCPPort.ID != "dhcp-port" {
		t.Fatalf("DHCP port %+v, want this host's", got.DHCPPort)
	}
	if ids := portIDs(got); len(ids) != 4 || ids[0] != "dhcp-other" || ids[1] != "dhcp-port" || ids[3] != "vm-2" {
		t.Errorf("ports %v, want sorted by id", ids)
	}
	d.replace(nil)
	if len(d.networks) != 0 {
		t.Error("an empty state kept networks")
	}
}

func TestDesiredStateUpdates(t *testing.T) {
	d := newDesiredState(host)
	other := testNetwork()
	other.ID = "net-2"
	d.replace(&msg.DHCPState{Networks: []msg.DHCPNetwork{testNetwork(), other}})
	before := d.snapshot()
	gen2 := before["net-2"].gen

	d.update(&msg.DHCPUpdate{Ports: []msg.Port{
		vmPort("vm-0", "fa:16:3e:00:00:10", fixedIP("sub-a", "10.0.0.10")),
		vmPort("vm-1", "fa:16:3e:00:00:05", fixedIP("sub-a", "10.0.0.50")),
		{ID: "stray", NetworkID: "net-9"},
	}})
	after := d.snapshot()
	n := after["net-1"]
	if ids := portIDs(n); len(ids) != 4 || ids[1] != "vm-0" || ids[2] != "vm-1" {
		t.Fatalf("ports after update %v", ids)
	}
	if n.Ports[2].FixedIPs[0].IPAddress != "10.0.0.50" {
		t.Errorf("vm-1 not replaced: %+v", n.Ports[2])
	}
	if n.gen == before["net-1"].gen || after["net-2"].gen != gen2 {
		t.Errorf("generations: net-1 %d→%d, net-2 %d→%d; want only net-1's to change", before["net-1"].gen, n.gen, gen2, after["net-2"].gen)
	}
	if _, ok := after["net-9"]; ok {
		t.Error("a port of a network not served here added that network")
	}
	if ids := portIDs(before["net-1"]); len(ids) != 3 || before["net-1"].Ports[1].FixedIPs[0].IPAddress != "10.0.0.5" {
		t.Errorf("an earlier snapshot changed: %v", before["net-1"].Ports)
	}

	d.update(&msg.DHCPUpdate{DeletedPorts: []msg.PortRef{{NetworkID: "net-1", ID: "vm-0"}}, DeletedNetworks: []string{"net-2"}})
	after = d.snapshot()
	if ids := portIDs(after["net-1"]); len(ids) != 3 || ids[1] != "vm-1" {
		t.Errorf("ports after delete %v", ids)
	}
	if _, ok := after["net-2"]; ok {
		t.Error("deleted network still served")
	}
}

func TestDesiredStateDHCPPortComesAndGoes(t *testing.T) {
	n := testNetwork()
	own := *n.DHCPPort
	n.DHCPPort = nil
	n.Ports = n.Ports[1:] // the server has not made it yet
	d := newDesiredState(host)
	d.replace(&msg.DHCPState{Networks: []msg.DHCPNetwork{n}})
	if d.networks["net-1"].DHCPPort != nil {
		t.Fatal("a DHCP port out of nowhere")
	}
	d.update(&msg.DHCPUpdate{Ports: []msg.Port{own}})
	if p := d.networks["net-1"].DHCPPort; p == nil || p.ID != own.ID {
		t.Fatalf("DHCP port after it was made: %+v", p)
	}
	// Reserved for another agent: no longer ours.
	reserved := own
	reserved.Host, reserved.DeviceID = "", "reserved_dhcp_port"
	d.update(&msg.DHCPUpdate{Ports: []msg.Port{reserved}})
	if p := d.networks["net-1"].DHCPPort; p != nil {
		t.Fatalf("reserved DHCP port still ours: %+v", p)
	}
	d.update(&msg.DHCPUpdate{Ports: []msg.Port{own}})
	d.update(&msg.DHCPUpdate{DeletedPorts: []msg.PortRef{{NetworkID: "net-1", ID: own.ID}}})
	if p := d.networks["net-1"].DHCPPort; p != nil {
		t.Fatalf("deleted DHCP port still ours: %+v", p)
	}
}

func TestPlumbingFor(t *testing.T) {
	cfg := Config{NamespacePrefix: "qdhcp-"}
	n := testNetwork()
	p, err := cfg.plumbingFor(n)
	if err != nil || p == nil {
		t.Fatalf("plumbing: %v %v", p, err)
	}
	if p.Netns != "qdhcp-net-1" || p.Dev != "ns-dhcp-port" || p.Tap != "tapdhcp-port" || p.MTU != 1450 || p.MAC.String() != "fa:16:3e:00:00:02" {
		t.Errorf("plumbing %+v", p)
	}
	if len(p.Addrs) != 2 || p.Addrs[0].String() != "10.0.0.2/24" || p.Addrs[1].String() != "10.1.0.2/24" {
		t.Errorf("addresses %v: want the IPv4 ones with their subnets' prefix lengths", p.Addrs)
	}
	long := *n.DHCPPort
	long.ID = "0123456789abcdef-0123"
	n.DHCPPort = &long
	if p, _ := cfg.plumbingFor(n); p.Tap != "tap0123456789a" || p.Dev != "ns-0123456789a" {
		t.Errorf("names %s %s: want 11 characters of the port id, as Neutron", p.Tap, p.Dev)
	}
	for name, change := range map[string]func(*msg.DHCPNetwork){
		"admin down":   func(n *msg.DHCPNetwork) { n.AdminStateUp = false },
		"no DHCP port": func(n *msg.DHCPNetwork) { n.DHCPPort = nil },
		"DHCP off": func(n *msg.DHCPNetwork) {
			for i := range n.Subnets {
				n.Subnets[i].EnableDHCP = false
			}
		},
	} {
		n := testNetwork()
		change(&n)
		if p, err := cfg.plumbingFor(n); p != nil || err != nil {
			t.Errorf("%s: plumbing %+v, %v; want none", name, p, err)
		}
	}
	n = testNetwork()
	n.DHCPPort.MAC = "nonsense"
	if _, err := cfg.plumbingFor(n); err == nil {
		t.Error("a DHCP port with a bad MAC plumbed")
	}
}
