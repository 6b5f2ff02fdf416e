package agentrpc_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// reportL3 reports an l3 agent through the RPC method.
func (r *rig) reportL3(host string) {
	r.t.Helper()
	r.mustCall(msg.MethodReportState, msg.ReportState{
		Version: msg.Version, AgentType: msg.AgentTypeL3, Binary: msg.BinaryL3, Topic: msg.TopicL3, Host: host, Started: true,
		Configurations: msg.L3Configurations{AgentMode: msg.L3AgentModeLegacy, InterfaceDriver: "openvswitch", HandleInternalOnlyRouters: true}.Map(),
	}, nil)
}

// l3Net is an external flat network on physnet1 and a tenant network
// with a VM port.
type l3Net struct {
	ext, extSub, net, sub, vm, vmIP string
}

func (r *rig) l3Networks() l3Net {
	r.t.Helper()
	var n l3Net
	n.ext = r.network(map[string]any{"router:external": true, "provider:network_type": "flat", "provider:physical_network": "physnet1"})
	n.extSub = apitest.S(r.subnet(n.ext, "203.0.113.0/24", map[string]any{"enable_dhcp": false})["id"])
	n.net = r.network(nil)
	n.sub = apitest.S(r.subnet(n.net, "10.0.0.0/24", nil)["id"])
	vm := r.port(n.net, nil)
	n.vm = apitest.S(vm["id"])
	n.vmIP = apitest.S(vm["fixed_ips"].([]any)[0].(map[string]any)["ip_address"])
	return n
}

// router makes a router with its gateway on ext and an interface on sub.
func (r *rig) router(ext, sub string) string {
	r.t.Helper()
	id := apitest.S(r.admin.Create("routers", "router", map[string]any{"name": "r",
		"external_gateway_info": map[string]any{"network_id": ext}})["id"])
	if sub != "" {
		r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+id+"/add_router_interface", map[string]any{"subnet_id": sub})
	}
	return id
}

func (r *rig) routerHosts(id string) []string {
	r.t.Helper()
	var hosts []string
	for _, a := range r.admin.Do("GET", "/v2.0/routers/"+id+"/l3-agents", nil).Items("agents") {
		hosts = append(hosts, apitest.S(a["host"]))
	}
	return hosts
}

// routerPortsOn checks that every port of a router is bound to host.
func (r *rig) routerPortsOn(id, host string) bool {
	r.t.Helper()
	ports := r.admin.Do("GET", "/v2.0/ports?device_id="+id, nil).Items("ports")
	for _, p := range ports {
		if p["binding:host_id"] != host || (host != "" && p["binding:vif_type"] != "ovs") {
			return false
		}
	}
	return len(ports) > 0
}

func (r *rig) l3Sync(host string) *msg.L3State {
	r.t.Helper()
	var st msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: host, Roles: []string{msg.RoleL3}}, &st)
	if st.L2 != nil || st.DHCP != nil || st.L3 == nil {
		r.t.Fatalf("l3 sync of %s: %+v", host, st)
	}
	return st.L3
}

// routerIn finds a router in a notification.
func routerIn(n msg.Notification, id string) (msg.Router, bool) {
	if n.L3 == nil {
		return msg.Router{}, false
	}
	for _, rt := range n.L3.Routers {
		if rt.ID == id {
			return rt, true
		}
	}
	return msg.Router{}, false
}

func TestRouterStateAndNotifications(t *testing.T) {
	r := newRig(t)
	notes := r.listen("net1")
	r.reportL2("net1", vxlanAgent("192.0.2.1"))
	r.reportL3("net1")
	n := r.l3Networks()
	routerID := r.router(n.ext, n.sub)

	if h := r.routerHosts(routerID); !slices.Equal(h, []string{"net1"}) {
		t.Fatalf("router hosted by %v", h)
	}
	if !r.routerPortsOn(routerID, "net1") {
		t.Fatalf("router ports not bound to net1: %v", r.admin.Do("GET", "/v2.0/ports?device_id="+routerID, nil).Items("ports"))
	}
	fip := r.admin.Create("floatingips", "floatingip", map[string]any{"floating_network_id": n.ext, "port_id": n.vm})
	fipID := apitest.S(fip["id"])

	st := r.l3Sync("net1")
	if len(st.Routers) != 1 {
		t.Fatalf("routers of net1: %+v", st.Routers)
	}
	rt := st.Routers[0]
	if rt.ID != routerID || !rt.AdminStateUp || !rt.EnableSNAT || rt.Gateway == nil || len(rt.Interfaces) != 1 || len(rt.Routes) != 0 {
		t.Fatalf("router: %+v", rt)
	}
	gw := rt.Gateway
	if gw.NetworkID != n.ext || gw.Segment != (msg.Segment{NetworkType: "flat", PhysicalNetwork: "physnet1"}) || gw.MTU != 1500 ||
		len(gw.FixedIPs) != 1 || gw.FixedIPs[0].CIDR != "203.0.113.0/24" || gw.FixedIPs[0].GatewayIP != "203.0.113.1" || gw.MAC == "" {
		t.Fatalf("gateway: %+v", gw)
	}
	intf := rt.Interfaces[0]
	if intf.NetworkID != n.net || intf.MTU != 1450 || intf.Segment.NetworkType != "vxlan" || len(intf.FixedIPs) != 1 ||
		intf.FixedIPs[0] != (msg.RouterIP{SubnetID: n.sub, IPAddress: "10.0.0.1", CIDR: "10.0.0.0/24", IPVersion: 4, GatewayIP: "10.0.0.1"}) {
		t.Fatalf("interface: %+v", intf)
	}
	if len(rt.FloatingIPs) != 1 || rt.FloatingIPs[0].ID != fipID || rt.FloatingIPs[0].FixedIPAddress != n.vmIP ||
		rt.FloatingIPs[0].FloatingIPAddress != fip["floating_ip_address"] || rt.FloatingIPs[0].PortID != n.vm || rt.FloatingIPs[0].Status != "DOWN" {
		t.Fatalf("floating IPs: %+v", rt.FloatingIPs)
	}
	// The l2 role of the host wires the router's ports.
	var full msg.HostState
	r.mustCall(msg.MethodSync, msg.SyncRequest{Version: msg.Version, Host: "net1", Roles: []string{msg.RoleL2}}, &full)
	if _, ok := hasPort(full.L2.Ports, gw.ID); !ok {
		t.Errorf("the gateway port is not in net1's l2 state")
	}
	if _, ok := hasPort(full.L2.Ports, intf.ID); !ok {
		t.Errorf("the interface port is not in net1's l2 state")
	}

	// The agent reports the floating IP configured; another host may not.
	var reply msg.FloatingIPStatusReply
	r.mustCall(msg.MethodFloatingIPStatus, msg.FloatingIPStatus{Version: msg.Version, Host: "elsewhere", Active: []string{fipID}}, &reply)
	if !slices.Equal(reply.Unknown, []string{fipID}) {
		t.Errorf("status from another host: %+v", reply)
	}
	reply = msg.FloatingIPStatusReply{}
	r.mustCall(msg.MethodFloatingIPStatus, msg.FloatingIPStatus{Version: msg.Version, Host: "net1", Active: []string{fipID}}, &reply)
	if len(reply.Unknown) != 0 || r.admin.Do("GET", "/v2.0/floatingips/"+fipID, nil).Item("floatingip")["status"] != "ACTIVE" {
		t.Fatalf("floating IP after the agent's report: %+v", reply)
	}

	// Disassociating tells the router's host at once, and the floating IP
	// goes DOWN.
	up := r.admin.Must(http.StatusOK, "PUT", "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": nil}})["floatingip"].(map[string]any)
	if up["status"] != "DOWN" {
		t.Errorf("disassociated floating IP: %v", up)
	}
	notes.waitFor(t, "the router without its floating IP", func(n msg.Notification) bool {
		rt, ok := routerIn(n, routerID)
		return ok && len(rt.FloatingIPs) == 0
	})
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": n.vm}})
	notes.waitFor(t, "the router with its floating IP again", func(nt msg.Notification) bool {
		rt, ok := routerIn(nt, routerID)
		return ok && len(rt.FloatingIPs) == 1 && rt.FloatingIPs[0].FixedIPAddress == n.vmIP
	})
	// Deleting the VM's port disassociates its floating IP without the
	// floating IP API: the host still hears of it.
	before := len(notes.all())
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/ports/"+n.vm, nil)
	testenv.Eventually(t, 10*time.Second, "the router after its floating IP's port went", func() bool {
		for _, nt := range notes.all()[before:] {
			if rt, ok := routerIn(nt, routerID); ok && len(rt.FloatingIPs) == 0 {
				return true
			}
		}
		return false
	})
	// Extra routes and admin state reach the host.
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+routerID, map[string]any{"router": map[string]any{
		"admin_state_up": false, "routes": []any{map[string]any{"destination": "198.51.100.0/24", "nexthop": "10.0.0.9"}}}})
	notes.waitFor(t, "the router's routes", func(n msg.Notification) bool {
		rt, ok := routerIn(n, routerID)
		return ok && !rt.AdminStateUp && len(rt.Routes) == 1 && rt.Routes[0] == (msg.HostRoute{Destination: "198.51.100.0/24", Nexthop: "10.0.0.9"})
	})
	// Removing the interface and deleting the router.
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+routerID, map[string]any{"router": map[string]any{"routes": []any{}}})
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+routerID+"/remove_router_interface", map[string]any{"subnet_id": n.sub})
	notes.waitFor(t, "the router without its interface", func(n msg.Notification) bool {
		rt, ok := routerIn(n, routerID)
		return ok && len(rt.Interfaces) == 0 && rt.Gateway != nil
	})
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/floatingips/"+fipID, nil)
	r.admin.Must(http.StatusNoContent, "DELETE", "/v2.0/routers/"+routerID, nil)
	notes.waitFor(t, "the router's removal", func(n msg.Notification) bool {
		return n.L3 != nil && slices.Contains(n.L3.DeletedRouters, routerID)
	})
	if st := r.l3Sync("net1"); len(st.Routers) != 0 {
		t.Fatalf("routers left on net1: %+v", st.Routers)
	}
	assertNumbered(t, notes.all())
}

func TestRoutersGoToTheLeastLoadedL3Agent(t *testing.T) {
	r := newRig(t)
	for _, h := range []string{"net1", "net2"} {
		r.reportL2(h, vxlanAgent("192.0.2.1"))
	}
	n := r.l3Networks()
	// No l3 agent yet: the router waits, its ports unbound.
	first := r.router(n.ext, n.sub)
	if h := r.routerHosts(first); len(h) != 0 || !r.routerPortsOn(first, "") {
		t.Fatalf("router without l3 agents hosted by %v", h)
	}
	// An l3 agent appears: the router goes there with its ports.
	r.reportL3("net2")
	testenv.Eventually(t, 10*time.Second, "the router on net2", func() bool { return slices.Equal(r.routerHosts(first), []string{"net2"}) })
	if !r.routerPortsOn(first, "net2") {
		t.Fatalf("ports not bound to net2")
	}
	r.reportL3("net1")
	second := r.router(n.ext, "")
	third := r.router(n.ext, "")
	if h1, h2 := r.routerHosts(second), r.routerHosts(third); !slices.Equal(h1, []string{"net1"}) || !slices.Equal(h2, []string{"net1"}) && !slices.Equal(h2, []string{"net2"}) {
		t.Fatalf("second router on %v, third on %v", h1, h2)
	}
	if st := r.l3Sync("net2"); len(st.Routers) == 0 || st.Routers[0].ID > st.Routers[len(st.Routers)-1].ID {
		t.Fatalf("net2's routers: %+v", st.Routers)
	}
}

func TestRoutersMoveFromDeadL3Agents(t *testing.T) {
	r := newRig(t, fastChecks)
	r.reportAt(msg.AgentTypeOVS, "hostA", vxlanAgent("192.0.2.1").Map(), aliveForever)
	r.reportAt(msg.AgentTypeL3, "hostA", nil, aliveForever)
	notesA := r.listen("hostA")
	notesB := r.listen("hostB")
	n := r.l3Networks()
	routerID := r.router(n.ext, n.sub)
	if h := r.routerHosts(routerID); !slices.Equal(h, []string{"hostA"}) {
		t.Fatalf("router on %v", h)
	}
	// hostA dies; with nobody to take over it keeps the router.
	r.reportAt(msg.AgentTypeL3, "hostA", nil, deadLongAgo)
	time.Sleep(300 * time.Millisecond)
	if h := r.routerHosts(routerID); !slices.Equal(h, []string{"hostA"}) {
		t.Fatalf("with no alive l3 agent the router went to %v", h)
	}
	r.reportAt(msg.AgentTypeOVS, "hostB", vxlanAgent("192.0.2.2").Map(), aliveForever)
	r.reportAt(msg.AgentTypeL3, "hostB", nil, aliveForever)
	testenv.Eventually(t, 10*time.Second, "the router on hostB", func() bool { return slices.Equal(r.routerHosts(routerID), []string{"hostB"}) })
	testenv.Eventually(t, 10*time.Second, "the router's ports on hostB", func() bool { return r.routerPortsOn(routerID, "hostB") })
	notesA.waitFor(t, "the router leaving hostA", func(n msg.Notification) bool {
		return n.L3 != nil && slices.Contains(n.L3.DeletedRouters, routerID)
	})
	notesB.waitFor(t, "the router arriving on hostB", func(n msg.Notification) bool {
		rt, ok := routerIn(n, routerID)
		return ok && rt.Gateway != nil && len(rt.Interfaces) == 1
	})
}

func TestL3AgentSchedulerAPI(t *testing.T) {
	r := newRig(t)
	r.reportL2("net1", vxlanAgent("192.0.2.1"))
	r.reportL2("net2", vxlanAgent("192.0.2.2"))
	r.reportL3("net1")
	n := r.l3Networks()
	routerID := r.router(n.ext, n.sub)
	r.reportL3("net2")
	agentID := func(host string) string {
		return apitest.S(r.admin.Do("GET", "/v2.0/agents?agent_type=L3+agent&host="+host, nil).Items("agents")[0]["id"])
	}
	id1, id2 := agentID("net1"), agentID("net2")
	ovs := apitest.S(r.admin.Do("GET", "/v2.0/agents?agent_type=Open+vSwitch+agent&host=net1", nil).Items("agents")[0]["id"])
	path := func(id string) string { return "/v2.0/agents/" + id + "/l3-routers" }
	body := map[string]any{"router_id": routerID}
	missing := "2b1f0c8e-0000-4000-8000-000000000000"
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		typ          string
	}{
		{"POST", path(id2), body, http.StatusConflict, "RouterHostedByL3Agent"},
		{"POST", path(ovs), body, http.StatusNotFound, "InvalidL3Agent"},
		{"POST", path(missing), body, http.StatusNotFound, "AgentNotFound"},
		{"POST", path(id2), map[string]any{"router_id": missing}, http.StatusNotFound, "RouterNotFound"},
		{"POST", path(id2), map[string]any{}, http.StatusBadRequest, "HTTPBadRequest"},
		{"DELETE", path(id2) + "/" + routerID, nil, http.StatusConflict, "RouterNotHostedByL3Agent"},
		{"GET", "/v2.0/routers/" + missing + "/l3-agents", nil, http.StatusNotFound, "RouterNotFound"},
	} {
		resp := r.admin.Do(c.method, c.path, c.body)
		if resp.Status != c.status || resp.ErrorType() != c.typ {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, resp.Status, resp.Raw, c.status, c.typ)
		}
	}
	if got := r.admin.Do("GET", path(id1), nil).Items("routers"); len(got) != 1 || got[0]["id"] != routerID {
		t.Fatalf("routers of net1: %v", got)
	}
	// Adding it again where it is changes nothing.
	r.admin.Must(http.StatusCreated, "POST", path(id1), body)
	// Moved by hand: off net1 (its ports unbound), onto net2.
	r.admin.Must(http.StatusNoContent, "DELETE", path(id1)+"/"+routerID, nil)
	if h := r.routerHosts(routerID); len(h) != 0 || !r.routerPortsOn(routerID, "") {
		t.Fatalf("removed router still on %v", h)
	}
	r.admin.Must(http.StatusCreated, "POST", path(id2), body)
	if h := r.routerHosts(routerID); !slices.Equal(h, []string{"net2"}) || !r.routerPortsOn(routerID, "net2") {
		t.Fatalf("router added to net2 is on %v", h)
	}
}

func TestRouterPortsAddedLaterFollowTheRouter(t *testing.T) {
	r := newRig(t)
	notes := r.listen("net1")
	r.reportL2("net1", vxlanAgent("192.0.2.1"))
	r.reportL3("net1")
	n := r.l3Networks()
	routerID := apitest.S(r.admin.Create("routers", "router", map[string]any{"name": "r"})["id"])
	if h := r.routerHosts(routerID); !slices.Equal(h, []string{"net1"}) {
		t.Fatalf("router without ports hosted by %v", h)
	}
	// A gateway set later is bound to the router's host.
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+routerID, map[string]any{"router": map[string]any{
		"external_gateway_info": map[string]any{"network_id": n.ext, "enable_snat": false}}})
	notes.waitFor(t, "the router with its gateway", func(n msg.Notification) bool {
		rt, ok := routerIn(n, routerID)
		return ok && rt.Gateway != nil && !rt.EnableSNAT
	})
	// An interface made of an existing port (bound elsewhere) moves to
	// the router's host.
	p := r.port(n.net, map[string]any{"binding:host_id": "compute9"})
	r.admin.Must(http.StatusOK, "PUT", "/v2.0/routers/"+routerID+"/add_router_interface", map[string]any{"port_id": p["id"]})
	testenv.Eventually(t, 10*time.Second, "the interface port on net1", func() bool { return r.routerPortsOn(routerID, "net1") })
	notes.waitFor(t, "the router with its interface", func(nt msg.Notification) bool {
		rt, ok := routerIn(nt, routerID)
		return ok && len(rt.Interfaces) == 1 && rt.Interfaces[0].ID == p["id"]
	})
	assertNumbered(t, notes.all())
}
