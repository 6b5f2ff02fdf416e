package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/neutrino-sdn/neutrino/internal/agent/l3"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// The external network of the router tests: flat on extPhysnet, which the
// network node maps to extBridge, holding the bed's external NIC.
const (
	extPhysnet = "public"
	extBridge  = "br-ex"
	// whoPort is where VMs answer with their own name; peerPort is where
	// the outside host answers with the address the connection came from.
	whoPort  = 7300
	peerPort = 7301
	echoPort = 7302
)

// networkNodeSpec: node1 is the network node (server, l2, dhcp, l3,
// metadata with isolated metadata, and br-ex on the external network),
// node2 and node3 compute nodes.
func networkNodeSpec() clusterSpec {
	return clusterSpec{
		roles:    [3][]string{{"l2", "dhcp", "l3", "metadata"}, {"l2"}, {"l2"}},
		external: [3]bool{true, false, false},
	}
}

// deleteRouters removes every router the test made with what hangs on it:
// floating IPs first, then interfaces, then the router, as Neutron
// requires.
func (c *cluster) deleteRouters() {
	for _, f := range c.api.Do("GET", "/v2.0/floatingips", nil).Items("floatingips") {
		c.api.Do("DELETE", "/v2.0/floatingips/"+apitest.S(f["id"]), nil)
	}
	for _, r := range c.api.Do("GET", "/v2.0/routers", nil).Items("routers") {
		id := apitest.S(r["id"])
		for _, p := range c.api.Do("GET", "/v2.0/ports?device_owner=network:router_interface&device_id="+id, nil).Items("ports") {
			c.api.Do("PUT", apitest.Path("routers", id, "remove_router_interface"), map[string]any{"port_id": p["id"]})
		}
		c.api.Do("DELETE", apitest.Path("routers", id), nil)
	}
}

// as is a client of the cluster's API acting for project.
func (c *cluster) as(project string) *apitest.Client {
	cp := *c.api
	cp.Project = project
	return &cp
}

// waitAnswer waits until asking addr from ns gives want.
func waitAnswer(t *testing.T, ns string, addr netip.AddrPort, want string) {
	t.Helper()
	var got string
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, err = testbed.Ask(t.Context(), ns, addr); err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("from %s, %s answers %q (%v); want %q", ns, addr, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstIP is the first fixed IP of a port or gateway info's list.
func firstIP(ips any) netip.Addr {
	return netip.MustParseAddr(apitest.S(ips.([]any)[0].(map[string]any)["ip_address"]))
}

// TestRoutersTwoProjectsSameCIDR is issue 4's two-project scenario with the
// real binary on three nodes: node1 the network node (server, l2, dhcp,
// l3, metadata, br-ex on the bed's external network), node2 and node3
// compute nodes. Two projects each make a network 10.0.0.0/24, a router
// with its gateway on the shared external flat network and a VM at
// 10.0.0.5, one on node2, one on node3. Each VM reaches the outside host
// through SNAT, which sees the router's gateway IP; each gets its own
// metadata (OpenStack and EC2 paths) although their IPs are equal, even
// sending headers that name the other; the outside host reaches each VM
// by its floating IP, and no more once it is disassociated; VMs in two
// subnets behind one router reach each other; a VM on a network without
// a router gets its metadata through the DHCP namespace; deleting a
// router removes its namespace, its NAT table and its OVS ports on node1;
// at the end nothing is left.
func TestRoutersTwoProjectsSameCIDR(t *testing.T) {
	c := newCluster(t, networkNodeSpec())
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	testenv.Eventually(t, 30*time.Second, "the L3 agent alive", func() bool {
		for _, a := range c.api.Do("GET", "/v2.0/agents?agent_type=L3+agent", nil).Items("agents") {
			if a["alive"] == true && a["host"] == n1.tb.Name {
				return true
			}
		}
		return false
	})
	outside := c.bed.Outside
	internet := netip.AddrPortFrom(testbed.InternetAddr, peerPort)
	testbed.ServeAnswer(t, outside.Netns, internet, func(conn net.Conn) string {
		return netip.MustParseAddrPort(conn.RemoteAddr().String()).Addr().String()
	})

	ext := c.api.Create("networks", "network", map[string]any{
		"name": c.bed.Prefix + "-public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": extPhysnet,
	})
	extID := apitest.S(ext["id"])
	c.mu.Lock()
	c.networks = append(c.networks, extID)
	c.mu.Unlock()
	c.api.Create("subnets", "subnet", map[string]any{
		"network_id": extID, "cidr": testbed.ExternalPrefix.String(), "ip_version": 4,
		"gateway_ip": testbed.OutsideAddr.String(), "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": "203.0.113.10", "end": "203.0.113.99"}},
	})

	type tenant struct {
		project        string
		api            *apitest.Client
		router, subnet string
		gateway        netip.Addr
		vm             vm.VM
	}
	// setUp makes the project's network, router (gateway and interface),
	// and VM at 10.0.0.5 on nd, and opens the project's default group to
	// TCP and ICMP from anywhere, so the outside host may reach the VM.
	setUp := func(project string, nd *node) *tenant {
		tn := &tenant{project: project, api: c.as(project)}
		netID := apitest.S(tn.api.Create("networks", "network", map[string]any{"name": "net"})["id"])
		c.mu.Lock()
		c.networks = append(c.networks, netID)
		c.mu.Unlock()
		// The pool leaves out 10.0.0.5, the VM's chosen address: the
		// DHCP port takes a random pool address before the VM is made.
		tn.subnet = apitest.S(tn.api.Create("subnets", "subnet", map[string]any{
			"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4, "name": "net",
			"allocation_pools": []any{map[string]any{"start": "10.0.0.10", "end": "10.0.0.254"}},
		})["id"])
		router := tn.api.Create("routers", "router", map[string]any{
			"name": "r", "external_gateway_info": map[string]any{"network_id": extID},
		})
		tn.router = apitest.S(router["id"])
		c.mu.Lock()
		c.routers = append(c.routers, tn.router)
		c.mu.Unlock()
		tn.gateway = firstIP(router["external_gateway_info"].(map[string]any)["external_fixed_ips"])
		tn.api.Must(200, "PUT", apitest.Path("routers", tn.router, "add_router_interface"), map[string]any{"subnet_id": tn.subnet})

		name := c.bed.Prefix + "-" + project
		nd.vms = append(nd.vms, name)
		key := writeFile(t, t.TempDir(), "key.pub", sshKey(project)+"\n")
		userData := writeFile(t, t.TempDir(), "user-data", "#cloud-config for "+project+"\n")
		nd.vmRun("create", "--network", netID, "--project", project, "--fixed-ip", "10.0.0.5",
			"--key", key, "--user-data", userData, name)
		tn.vm = nd.vm(name)
		if ip := checkLease(t, c, tn.vm); ip != netip.MustParseAddr("10.0.0.5") {
			t.Fatalf("%s's VM got %s; want 10.0.0.5", project, ip)
		}
		groups := tn.api.Do("GET", "/v2.0/security-groups?name=default&project_id="+project, nil).Items("security_groups")
		if len(groups) != 1 {
			t.Fatalf("%s has %d default security groups", project, len(groups))
		}
		for _, proto := range []string{"tcp", "icmp"} {
			tn.api.Create("security-group-rules", "security_group_rule", map[string]any{
				"security_group_id": groups[0]["id"], "direction": "ingress", "ethertype": "IPv4",
				"protocol": proto, "remote_ip_prefix": "0.0.0.0/0",
			})
		}
		testbed.ServeAnswer(t, tn.vm.Namespace, netip.AddrPortFrom(netip.IPv4Unspecified(), whoPort), func(net.Conn) string { return project })
		return tn
	}
	a, b := setUp("project-a", n2), setUp("project-b", n3)
	if a.gateway == b.gateway {
		t.Fatalf("both routers have the gateway IP %s", a.gateway)
	}

	t.Run("SNAT: the outside host sees each router's gateway IP", func(t *testing.T) {
		for _, tn := range []*tenant{a, b} {
			waitAnswer(t, tn.vm.Namespace, internet, tn.gateway.String())
		}
	})

	t.Run("metadata: each VM gets its own, whatever headers it sends", func(t *testing.T) {
		for _, tn := range []*tenant{a, b} {
			other := b
			if tn == b {
				other = a
			}
			checkOwnMetadata(t, tn.vm, tn.project, sshKey(tn.project), nil)
			// Headers naming the other project's router and instance.
			checkOwnMetadata(t, tn.vm, tn.project, sshKey(tn.project), map[string]string{
				"X-Forwarded-For": "10.0.0.5", "X-Neutron-Router-ID": other.router, "X-Neutron-Network-ID": other.vm.NetworkID,
				"X-Instance-ID": other.vm.InstanceID, "X-Tenant-ID": other.project, "X-Instance-ID-Signature": "00",
			})
			if got := metadata(t, tn.vm, "/latest/meta-data/hostname", nil); got != tn.vm.Name {
				t.Errorf("%s: EC2 hostname %q; want %q", tn.vm.Name, got, tn.vm.Name)
			}
			if got := metadata(t, tn.vm, "/openstack/latest/user_data", nil); got != "#cloud-config for "+tn.project+"\n" {
				t.Errorf("%s: user data %q", tn.vm.Name, got)
			}
		}
	})

	fips := map[*tenant]struct {
		id   string
		addr netip.Addr
	}{}
	t.Run("floating IPs reach each VM", func(t *testing.T) {
		for _, tn := range []*tenant{a, b} {
			f := tn.api.Create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "port_id": tn.vm.PortID})
			fip := netip.MustParseAddr(apitest.S(f["floating_ip_address"]))
			fips[tn] = struct {
				id   string
				addr netip.Addr
			}{apitest.S(f["id"]), fip}
			// The outside host reaches the right VM, and the VM now
			// leaves from its floating IP.
			waitAnswer(t, outside.Netns, netip.AddrPortFrom(fip, whoPort), tn.project)
			waitAnswer(t, tn.vm.Namespace, internet, fip.String())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := testbed.Ping(ctx, outside.Netns, fip, 2)
			cancel()
			if err != nil {
				t.Error(err)
			}
			testenv.Eventually(t, 20*time.Second, "floating IP "+fip.String()+" ACTIVE", func() bool {
				return c.api.Do("GET", apitest.Path("floatingips", fips[tn].id), nil).Item("floatingip")["status"] == "ACTIVE"
			})
			if got := metadata(t, tn.vm, "/latest/meta-data/public-ipv4", nil); got != fip.String() {
				t.Errorf("%s: EC2 public-ipv4 %q; want its floating IP %s", tn.vm.Name, got, fip)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("disassociating a floating IP stops it, established connections too", func(t *testing.T) {
		fa := fips[a]
		// A connection from the outside host through the floating IP,
		// established before the disassociation.
		echo := testbed.ServeTCPEcho(t, a.vm.Namespace, netip.AddrPortFrom(netip.IPv4Unspecified(), echoPort))
		var conn net.Conn
		must(t, netns.Do(outside.Netns, func() (err error) {
			conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(fa.addr, echo.Port()).String(), 5*time.Second)
			return err
		}))
		defer conn.Close()
		roundTrip := func(b byte) error {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write([]byte{b}); err != nil {
				return err
			}
			got := make([]byte, 1)
			if _, err := io.ReadFull(conn, got); err != nil {
				return err
			}
			if got[0] != b {
				return fmt.Errorf("echoed %q for %q", got, b)
			}
			return nil
		}
		must(t, roundTrip('x'))

		a.api.Must(200, "PUT", apitest.Path("floatingips", fa.id), map[string]any{"floatingip": map[string]any{"port_id": nil}})
		// The API answered after the router's notification was queued;
		// the agent applies it moments later, so look for a while.
		testenv.Eventually(t, 10*time.Second, "the established connection through the disassociated floating IP cut", func() bool {
			return roundTrip('y') != nil
		})
		testenv.Eventually(t, 10*time.Second, "the disassociated floating IP unreachable", func() bool {
			_, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(fa.addr, whoPort))
			return err != nil
		})
		// A leaves through SNAT again; B's floating IP still works.
		waitAnswer(t, a.vm.Namespace, internet, a.gateway.String())
		if got, err := testbed.Ask(t.Context(), outside.Netns, netip.AddrPortFrom(fips[b].addr, whoPort)); err != nil || got != b.project {
			t.Errorf("B's floating IP answers %q (%v); want %q", got, err, b.project)
		}
	})

	t.Run("east-west across two subnets behind one router", func(t *testing.T) {
		net2 := a.api.Create("networks", "network", map[string]any{"name": "net2"})
		net2ID := apitest.S(net2["id"])
		c.mu.Lock()
		c.networks = append(c.networks, net2ID)
		c.mu.Unlock()
		sub2 := a.api.Create("subnets", "subnet", map[string]any{
			"network_id": net2ID, "cidr": "10.1.0.0/24", "ip_version": 4, "name": "net2",
		})
		a.api.Must(200, "PUT", apitest.Path("routers", a.router, "add_router_interface"), map[string]any{"subnet_id": sub2["id"]})
		name := c.bed.Prefix + "-a2"
		n2.vms = append(n2.vms, name)
		// On node2, with A's first VM on node2: the router on node1 is
		// between them, across the tunnel both ways.
		n2.vmRun("create", "--network", net2ID, "--project", a.project, name)
		a2 := n2.vm(name)
		a2IP := checkLease(t, c, a2)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := testbed.Ping(ctx, a.vm.Namespace, a2IP, 3); err != nil {
			t.Error(err)
		}
		if err := testbed.Ping(ctx, a2.Namespace, netip.MustParseAddr("10.0.0.5"), 3); err != nil {
			t.Error(err)
		}
		// Not translated: a2 sees A's VM's own address.
		testbed.ServeAnswer(t, a2.Namespace, netip.AddrPortFrom(a2IP, peerPort), func(conn net.Conn) string {
			return netip.MustParseAddrPort(conn.RemoteAddr().String()).Addr().String()
		})
		waitAnswer(t, a.vm.Namespace, netip.AddrPortFrom(a2IP, peerPort), "10.0.0.5")
		// B's VM, at the same address as A's, is not on A's router.
		if got, err := testbed.Ask(t.Context(), b.vm.Namespace, netip.AddrPortFrom(a2IP, peerPort)); err == nil {
			t.Errorf("project B's VM reached project A's second subnet (answer %q)", got)
		}
	})

	t.Run("metadata on an isolated network, through the DHCP namespace", func(t *testing.T) {
		netID := apitest.S(a.api.Create("networks", "network", map[string]any{"name": "isolated"})["id"])
		c.mu.Lock()
		c.networks = append(c.networks, netID)
		c.mu.Unlock()
		a.api.Create("subnets", "subnet", map[string]any{"network_id": netID, "cidr": "10.2.0.0/24", "ip_version": 4})
		name := c.bed.Prefix + "-iso"
		n3.vms = append(n3.vms, name)
		key := writeFile(t, t.TempDir(), "key.pub", sshKey("iso")+"\n")
		n3.vmRun("create", "--network", netID, "--project", a.project, "--key", key, name)
		iso := n3.vm(name)
		checkLease(t, c, iso)
		checkOwnMetadata(t, iso, a.project, sshKey("iso"), map[string]string{"X-Neutron-Router-ID": a.router, "X-Instance-ID": a.vm.InstanceID})
	})

	t.Run("deleting a router removes its namespace and rules on node1", func(t *testing.T) {
		ns := "qrouter-" + b.router
		if !netns.Exists(ns) {
			t.Fatalf("router B has no namespace %s", ns)
		}
		if n, err := natRules(ns); err != nil || n == 0 {
			t.Errorf("router B's NAT table holds %d rules (%v); want its SNAT and floating IP rules", n, err)
		}
		db := n1.tb.OVSDB(t)
		routerIfaces := func() []string {
			var names []string
			for _, iface := range db.Interfaces() {
				if iface.ExternalIDs[l3.NetnsExternalID] == ns {
					names = append(names, iface.Name)
				}
			}
			return names
		}
		if len(routerIfaces()) != 2 {
			t.Errorf("router B's OVS interfaces on node1: %v; want its gateway and interface", routerIfaces())
		}
		b.api.Must(204, "DELETE", apitest.Path("floatingips", fips[b].id), nil)
		ifaces := b.api.Do("GET", "/v2.0/ports?device_owner=network:router_interface&device_id="+b.router, nil).Items("ports")
		for _, p := range ifaces {
			b.api.Must(200, "PUT", apitest.Path("routers", b.router, "remove_router_interface"), map[string]any{"port_id": p["id"]})
		}
		b.api.Must(204, "DELETE", apitest.Path("routers", b.router), nil)
		testenv.Eventually(t, 10*time.Second, "router B's namespace and OVS ports gone from node1", func() bool {
			return !netns.Exists(ns) && len(routerIfaces()) == 0
		})
		if ports := c.api.Do("GET", "/v2.0/ports?device_id="+b.router, nil).Items("ports"); len(ports) != 0 {
			t.Errorf("router B's ports left: %v", ports)
		}
		// Router A is untouched: its VM still leaves through its gateway.
		waitAnswer(t, a.vm.Namespace, internet, a.gateway.String())
		// B's VM has no way out any more.
		if got, err := testbed.Ask(t.Context(), b.vm.Namespace, internet); err == nil {
			t.Errorf("B's VM reached the outside with its router deleted (answer %q)", got)
		}
	})

	t.Run("nothing left behind", func(t *testing.T) {
		// VMs, floating IPs, router interfaces, routers, ports, networks.
		c.deleteEverything()
		if left := c.leftNamespaces(); len(left) != 0 {
			t.Errorf("namespaces left: %v", left)
		}
		db := n1.tb.OVSDB(t)
		for _, iface := range db.Interfaces() {
			if iface.ExternalIDs[l3.NetnsExternalID] != "" || iface.ExternalIDs["iface-id"] != "" {
				t.Errorf("node1's OVS still has %s (external_ids %v)", iface.Name, iface.ExternalIDs)
			}
		}
		for _, coll := range []string{"routers", "floatingips", "ports"} {
			if items := c.api.Do("GET", "/v2.0/"+coll, nil).Items(coll); len(items) != 0 {
				t.Errorf("%d %s left", len(items), coll)
			}
		}
	})
}

// metadata fetches path from 169.254.169.254 inside the VM with the given
// extra headers and returns the body; it retries for a while (listeners
// and routes come moments after the VM) and fails the test otherwise.
func metadata(t *testing.T, v vm.VM, path string, headers map[string]string) string {
	t.Helper()
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = netns.Do(v.Namespace, func() (err error) {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequest("GET", "http://169.254.169.254"+path, nil)
		must(t, err)
		for k, val := range headers {
			req.Header.Set(k, val)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET http://169.254.169.254%s: %s", v.Name, path, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOwnMetadata fails unless the VM's meta_data.json names the VM
// itself: its name as hostname, its uuid, its project and its key.
func checkOwnMetadata(t *testing.T, v vm.VM, project, key string, headers map[string]string) {
	t.Helper()
	var md struct {
		UUID       string            `json:"uuid"`
		Name       string            `json:"name"`
		Hostname   string            `json:"hostname"`
		ProjectID  string            `json:"project_id"`
		PublicKeys map[string]string `json:"public_keys"`
	}
	body := metadata(t, v, "/openstack/latest/meta_data.json", headers)
	if err := json.Unmarshal([]byte(body), &md); err != nil {
		t.Fatalf("%s: meta_data.json: %v: %s", v.Name, err, body)
	}
	if md.UUID != v.InstanceID || md.Name != v.Name || md.Hostname != v.Name || md.ProjectID != project {
		t.Errorf("%s (uuid %s, project %s) got the metadata of %+v (headers %v)", v.Name, v.InstanceID, project, md, headers)
	}
	if len(md.PublicKeys) != 1 || strings.TrimSpace(md.PublicKeys["default"]) != key {
		t.Errorf("%s: public keys %v; want its own", v.Name, md.PublicKeys)
	}
}

// sshKey is a public key line naming its owner.
func sshKey(owner string) string { return "ssh-ed25519 AAAAC3" + owner + " " + owner }

// natRules counts the rules of the l3 role's nftables table in ns.
func natRules(ns string) (int, error) {
	f, err := os.Open(netns.Path(ns))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return 0, err
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return 0, fmt.Errorf("list chains in %s: %w", ns, err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != "neutrino" {
			continue
		}
		rules, err := conn.GetRules(ch.Table, ch)
		if err != nil {
			return 0, fmt.Errorf("rules of chain %s in %s: %w", ch.Name, ns, err)
		}
		n += len(rules)
	}
	return n, nil
}
