package metadata_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/metadata"
)

func TestSignAndVerify(t *testing.T) {
	// HMAC-SHA256("secret", "abc"), hex: what Nova computes.
	const want = "9946dad4e00e913fc8be8e5d3f7e110a4a9e832f83fb09c345285d78638d8a0e"
	if got := metadata.Sign("secret", "abc"); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !metadata.Verify("secret", "abc", want) {
		t.Fatal("a good signature is refused")
	}
	for _, c := range []struct{ secret, id, sig string }{
		{"other", "abc", want}, {"secret", "abd", want}, {"secret", "abc", ""}, {"secret", "", metadata.Sign("secret", "")},
		{"secret", "abc", strings.ToUpper(want)},
	} {
		if metadata.Verify(c.secret, c.id, c.sig) {
			t.Errorf("Verify(%q, %q, %q) accepted", c.secret, c.id, c.sig)
		}
	}
}

func TestServiceRefusesBadSignatures(t *testing.T) {
	srv := apitest.Start(t)
	svc := metadata.NewService(metadata.NewRegistry(srv.Srv.Service), "s3cret", nil)
	admin := srv.Client(t, "admin")
	admin.Must(http.StatusOK, "PUT", "/v2.0/instance-metadata/inst-1", map[string]any{"instance_metadata": map[string]any{"name": "vm1"}})
	for name, h := range map[string]map[string]string{
		"missing":        {metadata.HeaderInstanceID: "inst-1"},
		"wrong secret":   {metadata.HeaderInstanceID: "inst-1", metadata.HeaderSignature: metadata.Sign("guess", "inst-1")},
		"other instance": {metadata.HeaderInstanceID: "inst-1", metadata.HeaderSignature: metadata.Sign("s3cret", "inst-2")},
		"no instance":    {metadata.HeaderSignature: metadata.Sign("s3cret", "")},
	} {
		rec := get(svc, "/openstack/latest/meta_data.json", h)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s signature: %d %s, want 403", name, rec.Code, rec.Body)
		}
	}
	rec := get(svc, "/openstack/latest/meta_data.json", map[string]string{
		metadata.HeaderInstanceID: "inst-1", metadata.HeaderSignature: metadata.Sign("s3cret", "inst-1")})
	if rec.Code != http.StatusOK {
		t.Fatalf("good signature: %d %s", rec.Code, rec.Body)
	}
	// A signed but unregistered instance is not found.
	rec = get(svc, "/openstack/latest/meta_data.json", map[string]string{
		metadata.HeaderInstanceID: "inst-9", metadata.HeaderSignature: metadata.Sign("s3cret", "inst-9")})
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unregistered instance: %d %s", rec.Code, rec.Body)
	}
}

func TestRegistrationAPI(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	if r := admin.Do("PUT", "/v2.0/instance-metadata/x", map[string]any{"instance_metadata": map[string]any{"name": ""}}); r.Status != http.StatusBadRequest {
		t.Fatalf("no name: %d %s", r.Status, r.Raw)
	}
	if r := admin.Do("PUT", "/v2.0/instance-metadata/x", map[string]any{"other": 1}); r.Status != http.StatusBadRequest {
		t.Fatalf("bad body: %d %s", r.Status, r.Raw)
	}
	admin.Must(http.StatusOK, "PUT", "/v2.0/instance-metadata/x", map[string]any{"instance_metadata": map[string]any{
		"name": "vm1", "project_id": "p1", "public_keys": map[string]any{"default": "ssh-ed25519 AAAA k"}, "user_data": "#!/bin/sh\n"}})
	got := admin.Must(http.StatusOK, "GET", "/v2.0/instance-metadata/x", nil)["instance_metadata"].(map[string]any)
	if got["name"] != "vm1" || got["user_data"] != "#!/bin/sh\n" || got["project_id"] != "p1" {
		t.Fatalf("stored: %v", got)
	}
	admin.Must(http.StatusNoContent, "DELETE", "/v2.0/instance-metadata/x", nil)
	if r := admin.Do("GET", "/v2.0/instance-metadata/x", nil); r.Status != http.StatusNotFound || r.ErrorType() != "InstanceNotFound" {
		t.Fatalf("deleted: %d %s", r.Status, r.Raw)
	}
}

// TestTwoTenantsSameAddress: two projects, the same CIDR and VM address
// behind two routers, each with a floating IP: the lookup by router and
// address finds each its own instance, and the service answers each
// with its own name, key and floating IP.
func TestTwoTenantsSameAddress(t *testing.T) {
	srv := apitest.Start(t)
	admin := srv.Client(t, "admin")
	ext := admin.Create("networks", "network", map[string]any{"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"})
	admin.Create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4})
	reg := metadata.NewRegistry(srv.Srv.Service)
	svc := metadata.NewService(reg, "s3cret", nil)
	type tenant struct{ router, network, instance, fip string }
	var ts []tenant
	for _, p := range []string{"p1", "p2"} {
		c := srv.Client(t, p)
		n := c.Create("networks", "network", map[string]any{"name": "net"})
		s := c.Create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24", "ip_version": 4})
		r := c.Create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext["id"]}})
		c.Must(http.StatusOK, "PUT", "/v2.0/routers/"+apitest.S(r["id"])+"/add_router_interface", map[string]any{"subnet_id": s["id"]})
		inst := "instance-of-" + p
		port := c.Create("ports", "port", map[string]any{"network_id": n["id"], "device_id": inst, "device_owner": "compute:nova",
			"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.5"}}})
		fip := c.Create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "port_id": port["id"]})
		admin.Must(http.StatusOK, "PUT", "/v2.0/instance-metadata/"+inst, map[string]any{"instance_metadata": map[string]any{
			"name": "vm-" + p, "project_id": p, "public_keys": map[string]any{"default": "ssh-ed25519 KEY-" + p}, "user_data": "data-" + p}})
		ts = append(ts, tenant{apitest.S(r["id"]), apitest.S(n["id"]), inst, apitest.S(fip["floating_ip_address"])})
	}
	ctx := context.Background()
	for i, tn := range ts {
		p := []string{"p1", "p2"}[i]
		for _, q := range []msg.MetadataLookup{{RouterID: tn.router, IP: "10.0.0.5"}, {NetworkID: tn.network, IP: "10.0.0.5"}} {
			q.Version = msg.Version
			got, err := reg.Lookup(ctx, q)
			if err != nil || !got.Found || got.InstanceID != tn.instance || got.ProjectID != p {
				t.Fatalf("lookup %+v: %+v %v", q, got, err)
			}
		}
		// The router's own address on the network is no instance.
		if got, err := reg.Lookup(ctx, msg.MetadataLookup{RouterID: tn.router, IP: "10.0.0.1"}); err != nil || got.Found {
			t.Fatalf("router address: %+v %v", got, err)
		}
		h := map[string]string{metadata.HeaderInstanceID: tn.instance, metadata.HeaderSignature: metadata.Sign("s3cret", tn.instance),
			metadata.HeaderForwardedFor: "10.0.0.5"}
		rec := get(svc, "/openstack/latest/meta_data.json", h)
		var md map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &md); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("meta_data.json: %d %s", rec.Code, rec.Body)
		}
		keys, _ := md["public_keys"].(map[string]any)
		if md["uuid"] != tn.instance || md["hostname"] != "vm-"+p || md["name"] != "vm-"+p || keys["default"] != "ssh-ed25519 KEY-"+p || md["project_id"] != p {
			t.Fatalf("meta_data.json of %s: %v", p, md)
		}
		for path, want := range map[string]string{
			"/openstack/latest/user_data":                 "data-" + p,
			"/latest/meta-data/hostname":                  "vm-" + p,
			"/latest/meta-data/instance-id":               tn.instance,
			"/latest/meta-data/local-ipv4":                "10.0.0.5",
			"/latest/meta-data/public-ipv4":               tn.fip,
			"/latest/meta-data/public-keys/":              "0=default",
			"/latest/meta-data/public-keys/0/openssh-key": "ssh-ed25519 KEY-" + p,
			"/2009-04-04/user-data":                       "data-" + p,
		} {
			if rec := get(svc, path, h); rec.Code != http.StatusOK || rec.Body.String() != want {
				t.Errorf("%s of %s: %d %q, want %q", path, p, rec.Code, rec.Body, want)
			}
		}
		rec = get(svc, "/openstack/latest/network_data.json", h)
		var nd struct {
			Links    []map[string]any `json:"links"`
			Networks []map[string]any `json:"networks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &nd); err != nil || len(nd.Links) != 1 || len(nd.Networks) != 1 ||
			nd.Networks[0]["ip_address"] != "10.0.0.5" || nd.Networks[0]["netmask"] != "255.255.255.0" || nd.Networks[0]["network_id"] != tn.network {
			t.Fatalf("network_data.json: %s", rec.Body)
		}
		if rec := get(svc, "/latest/meta-data/nothing", h); rec.Code != http.StatusNotFound {
			t.Errorf("unknown key: %d", rec.Code)
		}
	}
}

func get(h http.Handler, path string, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
