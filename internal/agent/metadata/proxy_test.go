package metadata

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	md "github.com/neutrino-sdn/neutrino/internal/metadata"
)

// spoofed are the headers a malicious guest sends.
var spoofed = map[string]string{
	md.HeaderForwardedFor: "10.9.9.9", md.HeaderRouterID: "someone-elses-router", md.HeaderNetworkID: "someone-elses-network",
	md.HeaderInstanceID: "someone-elses-instance", md.HeaderTenantID: "someone-elses-project", md.HeaderSignature: "forged",
}

// serveUnix serves h on a unix socket in a temporary directory.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// fromGuest makes h see requests as coming from addr.
func fromGuest(addr string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = addr
		h.ServeHTTP(w, r)
	})
}

func guestGet(t *testing.T, h http.Handler, path string, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestNamespaceProxyReplacesGuestHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	sock := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}))
	for _, scope := range []Scope{{RouterID: "router-1"}, {NetworkID: "network-1"}} {
		h := fromGuest("10.0.0.5:40000", NamespaceProxy(scope, sock, nil))
		rec := guestGet(t, h, "/openstack/latest/meta_data.json", spoofed)
		if rec.Code != http.StatusOK || rec.Body.String() != "ok /openstack/latest/meta_data.json" {
			t.Fatalf("%+v: %d %s", scope, rec.Code, rec.Body)
		}
		hd := <-got
		want := map[string]string{
			md.HeaderForwardedFor: "10.0.0.5", md.HeaderRouterID: scope.RouterID, md.HeaderNetworkID: scope.NetworkID,
			md.HeaderInstanceID: "", md.HeaderTenantID: "", md.HeaderSignature: "",
		}
		for k, v := range want {
			if vals := hd.Values(k); (v == "" && len(vals) != 0) || (v != "" && (len(vals) != 1 || vals[0] != v)) {
				t.Errorf("%+v: %s = %q, want %q", scope, k, vals, v)
			}
		}
	}
}

func TestAgentProxySignsTheLookedUpInstance(t *testing.T) {
	got := make(chan http.Header, 1)
	nova := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_, _ = io.WriteString(w, "meta")
	}))
	defer nova.Close()
	target, _ := url.Parse(nova.URL)
	var asked msg.MetadataLookup
	lookup := func(_ context.Context, q msg.MetadataLookup) (msg.MetadataLookupReply, error) {
		asked = q
		if q.IP != "10.0.0.5" {
			return msg.MetadataLookupReply{}, nil
		}
		return msg.MetadataLookupReply{Found: true, InstanceID: "inst-a", ProjectID: "proj-a"}, nil
	}
	h := AgentProxy(target, "s3cret", lookup, nil)
	// What the namespace listener sends, with what the guest added on top
	// dropped there; here the spoofed instance headers reach the agent too.
	in := map[string]string{md.HeaderForwardedFor: "10.0.0.5", md.HeaderRouterID: "router-1",
		md.HeaderInstanceID: "someone-elses-instance", md.HeaderSignature: "forged", md.HeaderTenantID: "x"}
	rec := guestGet(t, h, "/latest/meta-data/hostname", in)
	if rec.Code != http.StatusOK || rec.Body.String() != "meta" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if asked.RouterID != "router-1" || asked.IP != "10.0.0.5" || asked.NetworkID != "" {
		t.Fatalf("lookup asked %+v", asked)
	}
	hd := <-got
	if hd.Get(md.HeaderInstanceID) != "inst-a" || hd.Get(md.HeaderTenantID) != "proj-a" ||
		!md.Verify("s3cret", "inst-a", hd.Get(md.HeaderSignature)) || len(hd.Values(md.HeaderInstanceID)) != 1 ||
		hd.Get(md.HeaderForwardedFor) != "10.0.0.5" {
		t.Fatalf("forwarded headers: %v", hd)
	}
	// An address with no instance gets 404, and nothing is forwarded.
	in[md.HeaderForwardedFor] = "10.0.0.6"
	if rec := guestGet(t, h, "/latest/meta-data/hostname", in); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown address: %d %s", rec.Code, rec.Body)
	}
	// A request without the listener's headers is refused.
	if rec := guestGet(t, h, "/latest/meta-data/hostname", nil); rec.Code != http.StatusBadRequest {
		t.Fatalf("no headers: %d %s", rec.Code, rec.Body)
	}
}

// TestSpoofingGuestsGetTheirOwnMetadata runs the whole chain (namespace
// listener → unix socket → metadata agent → built-in service) against a
// real server: two projects with the same CIDR and VM address behind two
// routers each get their own hostname, uuid and key, whatever headers
// they send.
func TestSpoofingGuestsGetTheirOwnMetadata(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	reg := md.NewRegistry(srv.Srv.Service)
	nova := httptest.NewServer(md.NewService(reg, "s3cret", nil))
	defer nova.Close()
	target, _ := url.Parse(nova.URL)
	sock := serveUnix(t, AgentProxy(target, "s3cret", reg.Lookup, nil))

	type tenant struct{ project, router, network, instance string }
	var ts []tenant
	for _, p := range []string{"p1", "p2"} {
		c := srv.Client(t, p)
		n := c.Create("networks", "network", map[string]any{"name": "net"})
		s := c.Create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24", "ip_version": 4})
		r := c.Create("routers", "router", map[string]any{"name": "r"})
		c.Must(http.StatusOK, "PUT", "/v2.0/routers/"+apitest.S(r["id"])+"/add_router_interface", map[string]any{"subnet_id": s["id"]})
		inst := "instance-of-" + p
		c.Create("ports", "port", map[string]any{"network_id": n["id"], "device_id": inst, "device_owner": "compute:nova",
			"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.5"}}})
		admin.Must(http.StatusOK, "PUT", "/v2.0/instance-metadata/"+inst, map[string]any{"instance_metadata": map[string]any{
			"name": "vm-" + p, "project_id": p, "public_keys": map[string]any{"default": "ssh-ed25519 KEY-" + p}}})
		ts = append(ts, tenant{p, apitest.S(r["id"]), apitest.S(n["id"]), inst})
	}
	for i, tn := range ts {
		other := ts[1-i]
		headers := map[string]string{
			md.HeaderForwardedFor: "10.0.0.5", md.HeaderRouterID: other.router, md.HeaderNetworkID: other.network,
			md.HeaderInstanceID: other.instance, md.HeaderTenantID: other.project,
			md.HeaderSignature: md.Sign("s3cret", other.instance), // even a valid signature of another instance
		}
		for _, scope := range []Scope{{RouterID: tn.router}, {NetworkID: tn.network}} {
			h := fromGuest("10.0.0.5:41000", NamespaceProxy(scope, sock, nil))
			rec := guestGet(t, h, "/openstack/latest/meta_data.json", headers)
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
				t.Fatalf("%s %+v: %d %s", tn.project, scope, rec.Code, rec.Body)
			}
			keys, _ := got["public_keys"].(map[string]any)
			if got["uuid"] != tn.instance || got["hostname"] != "vm-"+tn.project || keys["default"] != "ssh-ed25519 KEY-"+tn.project {
				t.Fatalf("%s %+v got %v", tn.project, scope, got)
			}
		}
	}
	// A guest at an address no port holds gets nothing.
	h := fromGuest("10.0.0.77:41000", NamespaceProxy(Scope{RouterID: ts[0].router}, sock, nil))
	if rec := guestGet(t, h, "/openstack/latest/meta_data.json", spoofed); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown address: %d %s", rec.Code, rec.Body)
	}
}

func TestIsolatedNetwork(t *testing.T) {
	n := msg.DHCPNetwork{Subnets: []msg.Subnet{{ID: "s", IPVersion: 4, EnableDHCP: true}},
		Ports: []msg.Port{{ID: "d", DeviceOwner: "network:dhcp"}, {ID: "vm", DeviceOwner: "compute:nova"}}}
	if !IsolatedNetwork(n) {
		t.Fatal("a network without a router is isolated")
	}
	n.Ports = append(n.Ports, msg.Port{ID: "r", DeviceOwner: "network:router_interface"})
	if IsolatedNetwork(n) {
		t.Fatal("a network with a router interface is not isolated")
	}
	if IsolatedNetwork(msg.DHCPNetwork{Subnets: []msg.Subnet{{IPVersion: 4}}}) {
		t.Fatal("a network without DHCP is not served")
	}
}
