package metadata_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/agent"
	"github.com/neutrino-sdn/neutrino/internal/agent/dhcp"
	"github.com/neutrino-sdn/neutrino/internal/agent/l2"
	"github.com/neutrino-sdn/neutrino/internal/agent/l3"
	"github.com/neutrino-sdn/neutrino/internal/agent/metadata"
	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	md "github.com/neutrino-sdn/neutrino/internal/metadata"
	"github.com/neutrino-sdn/neutrino/internal/testbed"
)

const secret = "integration-secret"

// metadataBed is one test-bed node running the real agent loop with the
// l2, l3, dhcp and metadata roles against a real server whose built-in
// metadata service is on.
type metadataBed struct {
	t       testing.TB
	bed     *testbed.Bed
	node    *testbed.Node
	db      *ovs.Client
	srv     *apitest.Server
	admin   *apitest.Client
	role    *metadata.Role
	l3cfg   l3.Config
	dhcpCfg dhcp.Config
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newMetadataBed(t testing.TB) *metadataBed {
	bed := testbed.New(t, testbed.Spec{Nodes: 1})
	node := bed.Nodes[0]
	mdAddr := freeAddr(t)
	srv := apitest.Start(t, func(c *config.Config) {
		c.Metadata.Listen, c.Metadata.SharedSecret = mdAddr, secret
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := &metadataBed{t: t, bed: bed, node: node, db: node.OVSDB(t), srv: srv, admin: srv.Client(t, "admin")}
	b.l3cfg = l3.Config{OVS: node.OVS.Instance, BridgeNetns: node.Netns, NamespacePrefix: bed.Prefix + "-qrouter-"}
	b.dhcpCfg = dhcp.Config{OVS: node.OVS.Instance, BridgeNetns: node.Netns, NamespacePrefix: bed.Prefix + "-qdhcp-"}
	conn, err := bus.ConnectEmbedded(srv.Srv.NATS(), "agent-"+node.Name, quiet)
	must(t, err)
	r2, err := l2.Open(l2.Config{IntegrationBridge: "br-int", TunnelBridge: "br-tun", DatapathType: "netdev",
		LocalIP: node.TunnelIP.String(), TunnelTypes: []string{msg.NetworkTypeVXLAN}, ARPResponder: true}, node.OVS.Instance, quiet)
	must(t, err)
	r3, err := l3.New(b.l3cfg, quiet)
	must(t, err)
	rd, err := dhcp.New(b.dhcpCfg, quiet)
	must(t, err)
	b.role, err = metadata.New(metadata.Config{
		NovaMetadataURL: "http://" + mdAddr, SharedSecret: secret, Socket: filepath.Join(bed.Dir, "metadata.sock"),
		EnableIsolatedMetadata: true, RouterPrefix: b.l3cfg.NamespacePrefix, DHCPPrefix: b.dhcpCfg.NamespacePrefix,
	}, quiet)
	must(t, err)
	b.role.UseBus(conn)
	a, err := agent.New(conn, agent.Options{Host: node.Name, Roles: []agent.Role{r2, r3, rd, b.role}, ReportInterval: time.Second, Log: quiet})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-b.role.Stopped()
		<-r3.Stopped()
		conn.Close()
		if err := l3.Cleanup(context.Background(), b.l3cfg, quiet); err != nil {
			t.Errorf("l3 cleanup: %v", err)
		}
		if err := dhcp.Cleanup(context.Background(), b.dhcpCfg, quiet); err != nil {
			t.Errorf("dhcp cleanup: %v", err)
		}
	})
	testbed.WaitFor(t, "br-int made", func() error { _, err := b.db.Bridge("br-int"); return err })
	return b
}

// vm plugs a VM with address addr on network netID (subnet subID) as
// project, and registers its metadata.
func (b *metadataBed) vm(project, name, mac, netID, subID, addr string, gateway netip.Addr) *testbed.Host {
	t := b.t
	port := b.admin.Create("ports", "port", map[string]any{
		"network_id": netID, "project_id": project, "mac_address": mac,
		"fixed_ips":       []any{map[string]any{"subnet_id": subID, "ip_address": addr}},
		"binding:host_id": b.node.Name, "device_owner": "compute:nova", "device_id": "uuid-" + name,
	})
	portID := apitest.S(port["id"])
	tap := "tap" + portID[:11]
	hw, err := net.ParseMAC(mac)
	must(t, err)
	vm := b.bed.AddHost(t, testbed.HostSpec{
		Name: name, PeerNetns: b.node.Netns, PeerName: tap, Addr: netip.MustParsePrefix(addr + "/24"),
		Gateway: gateway, MTU: 1450, MAC: hw,
	})
	must(t, b.db.EnsurePort(context.Background(), "br-int", ovs.Port{Name: tap, ExternalIDs: map[string]string{
		"iface-id": portID, "attached-mac": mac, "iface-status": "active",
	}}))
	b.admin.Must(http.StatusOK, "PUT", "/v2.0/instance-metadata/uuid-"+name, map[string]any{"instance_metadata": map[string]any{
		"name": name, "project_id": project, "public_keys": map[string]any{"default": "ssh-ed25519 KEY-" + name}, "user_data": "#cloud-config " + name}})
	return vm
}

// guestClient is an HTTP client whose connections start in namespace ns.
func guestClient(ns string) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netns.Do(ns, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// fetch gets path from 169.254.169.254 inside ns, with the given headers.
func fetch(ns, path string, headers map[string]string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+metadata.Address+path, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := guestClient(ns).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// checkOwnMetadata waits until vm's meta_data.json is its own.
func checkOwnMetadata(t testing.TB, vm *testbed.Host, headers map[string]string) {
	t.Helper()
	testbed.WaitFor(t, vm.Name+" gets its metadata", func() error {
		code, body, err := fetch(vm.Netns, "/openstack/latest/meta_data.json", headers)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			return err
		}
		keys, _ := got["public_keys"].(map[string]any)
		if got["uuid"] != "uuid-"+vm.Name || got["hostname"] != vm.Name || keys["default"] != "ssh-ed25519 KEY-"+vm.Name {
			t.Fatalf("%s got someone else's metadata: %s", vm.Name, body)
		}
		return nil
	})
}

// tenantWithRouter makes project's network 10.0.0.0/24 behind its own
// router, and a VM at 10.0.0.5 on it.
func (b *metadataBed) tenantWithRouter(project, vmName, mac string) (vm *testbed.Host, routerID, netID string) {
	c := b.srv.Client(b.t, project)
	netID = apitest.S(c.Create("networks", "network", map[string]any{"name": "net"})["id"])
	subID := apitest.S(c.Create("subnets", "subnet", map[string]any{
		"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": false})["id"])
	routerID = apitest.S(c.Create("routers", "router", map[string]any{"name": "r"})["id"])
	c.Must(http.StatusOK, "PUT", apitest.Path("routers", routerID, "add_router_interface"), map[string]any{"subnet_id": subID})
	vm = b.vm(project, vmName, mac, netID, subID, "10.0.0.5", netip.MustParseAddr("10.0.0.1"))
	return vm, routerID, netID
}

// TestIntegrationMetadata: two projects with the same CIDR and VM address
// behind their own routers each get their own metadata through their
// router's namespace, whatever headers they send; the listener port is
// not reachable directly; a VM on a network without a router gets its
// metadata through the DHCP namespace; deleting a router leaves no
// listener behind.
func TestIntegrationMetadata(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: integration test (needs root and Open vSwitch) in -short mode")
	}
	b := newMetadataBed(t)
	vmA, _, netA := b.tenantWithRouter("project-a", "vma", "fa:16:3e:aa:00:05")
	vmB, routerB, _ := b.tenantWithRouter("project-b", "vmb", "fa:16:3e:bb:00:05")

	checkOwnMetadata(t, vmA, nil)
	checkOwnMetadata(t, vmB, nil)
	// A guest claiming to be the other one, with a valid signature of the
	// other instance, still gets only its own.
	spoof := map[string]string{
		"X-Forwarded-For": "10.0.0.5", "X-Neutron-Router-ID": routerB, "X-Neutron-Network-ID": netA,
		"X-Instance-ID": "uuid-vmb", "X-Tenant-ID": "project-b", "X-Instance-ID-Signature": signOf("uuid-vmb"),
	}
	checkOwnMetadata(t, vmA, spoof)
	for path, want := range map[string]string{
		"/latest/meta-data/hostname":                  "vma",
		"/latest/meta-data/instance-id":               "uuid-vma",
		"/latest/meta-data/local-ipv4":                "10.0.0.5",
		"/latest/meta-data/public-keys/0/openssh-key": "ssh-ed25519 KEY-vma",
		"/openstack/latest/user_data":                 "#cloud-config vma",
	} {
		if code, body, err := fetch(vmA.Netns, path, spoof); err != nil || code != http.StatusOK || body != want {
			t.Errorf("%s: %d %q %v, want %q", path, code, body, err, want)
		}
	}
	// The listener answers only what was redirected to it: the router's
	// own address at the listener port gets nothing.
	if _, _, err := fetchDirect(vmA.Netns, fmt.Sprintf("10.0.0.1:%d", metadata.DefaultListenPort)); err == nil {
		t.Errorf("the router's listener port answers without the redirect")
	}

	// An isolated network: metadata from the DHCP namespace, reached by
	// the route DHCP hands out (set here by hand: the VM has a static
	// address).
	c := b.srv.Client(t, "project-c")
	netC := apitest.S(c.Create("networks", "network", map[string]any{"name": "isolated"})["id"])
	// The pool leaves out 10.9.0.5, vmC's address: the DHCP port takes a
	// random pool address first.
	subC := apitest.S(c.Create("subnets", "subnet", map[string]any{"network_id": netC, "cidr": "10.9.0.0/24", "ip_version": 4,
		"allocation_pools": []any{map[string]any{"start": "10.9.0.100", "end": "10.9.0.254"}}})["id"])
	var dhcpIP string
	testbed.WaitFor(t, "the DHCP port", func() error {
		ports := b.admin.Do("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+netC, nil).Items("ports")
		if len(ports) != 1 {
			return fmt.Errorf("%d DHCP ports", len(ports))
		}
		dhcpIP = apitest.S(ports[0]["fixed_ips"].([]any)[0].(map[string]any)["ip_address"])
		return nil
	})
	vmC := b.vm("project-c", "vmc", "fa:16:3e:cc:00:05", netC, subC, "10.9.0.5", netip.Addr{})
	must(t, addRoute(vmC.Netns, netip.MustParsePrefix(metadata.Address+"/32"), netip.MustParseAddr(dhcpIP)))
	checkOwnMetadata(t, vmC, spoof)

	// Deleting router B removes its listener.
	cb := b.srv.Client(t, "project-b")
	for _, p := range b.admin.Do("GET", "/v2.0/ports?device_owner=network:router_interface&device_id="+routerB, nil).Items("ports") {
		cb.Must(http.StatusOK, "PUT", apitest.Path("routers", routerB, "remove_router_interface"), map[string]any{"port_id": p["id"]})
	}
	cb.Must(http.StatusNoContent, "DELETE", apitest.Path("routers", routerB), nil)
	nsB := b.l3cfg.NamespacePrefix + routerB
	testbed.WaitFor(t, "router B's listener closed", func() error {
		for _, ns := range b.role.Served() {
			if ns == nsB {
				return fmt.Errorf("still serving %s", ns)
			}
		}
		if netns.Exists(nsB) {
			return fmt.Errorf("%s still there", nsB)
		}
		return nil
	})
	checkOwnMetadata(t, vmA, nil)
}

func signOf(id string) string {
	return md.Sign(secret, id)
}

// fetchDirect connects to addr inside ns without the redirect.
func fetchDirect(ns, addr string) (int, string, error) {
	resp, err := guestClient(ns).Get("http://" + addr + "/openstack/latest/meta_data.json")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// addRoute adds dst via gw inside ns.
func addRoute(ns string, dst netip.Prefix, gw netip.Addr) error {
	return netns.Do(ns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		return h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)}, Gw: gw.AsSlice()})
	})
}

// BenchmarkMetadataFromVM measures metadata requests from a VM through
// its router's namespace, the metadata agent and the built-in service:
// the latency of one request at a time (p50/p99), then the throughput of
// 8 concurrent clients.
func BenchmarkMetadataFromVM(b *testing.B) {
	mb := newMetadataBed(b)
	vm, _, _ := mb.tenantWithRouter("project-a", "vma", "fa:16:3e:aa:00:05")
	checkOwnMetadata(b, vm, nil)
	client := guestClient(vm.Netns)
	get := func() error {
		resp, err := client.Get("http://" + metadata.Address + "/openstack/latest/meta_data.json")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	const n = 200
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		must(b, get())
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[n/2], lat[n*99/100]
	const workers, perWorker = 8, 100
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				if err := get(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	rate := float64(workers*perWorker) / time.Since(start).Seconds()
	b.Logf("metadata from a VM (new connection per request): p50 %s, p99 %s over %d sequential requests; %.0f requests/s with %d concurrent clients",
		p50, p99, n, rate, workers)
	for b.Loop() {
		must(b, get())
	}
	// After the loop: starting it deletes reported metrics.
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(rate, "req/s")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
