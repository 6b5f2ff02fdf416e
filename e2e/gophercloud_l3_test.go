package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

func TestGophercloudSubnetsAndPorts(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	ctx := context.Background()
	c := networkClient(n, "e2e-project")

	net, err := networks.Create(ctx, c, networks.CreateOpts{Name: "gc-net"}).Extract()
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	gateway := "10.30.0.1"
	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{
		NetworkID: net.ID, Name: "gc-sub", CIDR: "10.30.0.0/24", IPVersion: gophercloud.IPv4,
		GatewayIP:       &gateway,
		AllocationPools: []subnets.AllocationPool{{Start: "10.30.0.10", End: "10.30.0.20"}},
		DNSNameservers:  []string{"192.0.2.53"},
	}).Extract()
	if err != nil {
		t.Fatalf("create subnet: %v", err)
	}
	if sub.GatewayIP != gateway || len(sub.AllocationPools) != 1 || sub.AllocationPools[0].Start != "10.30.0.10" || !sub.EnableDHCP {
		t.Fatalf("subnet: %+v", sub)
	}

	port, err := ports.Create(ctx, c, ports.CreateOpts{
		NetworkID: net.ID, Name: "gc-port",
		FixedIPs: []ports.IP{{SubnetID: sub.ID, IPAddress: "10.30.0.15"}},
	}).Extract()
	if err != nil {
		t.Fatalf("create port: %v", err)
	}
	if len(port.FixedIPs) != 1 || port.FixedIPs[0].IPAddress != "10.30.0.15" || port.MACAddress == "" || port.Status != "DOWN" {
		t.Fatalf("port: %+v", port)
	}
	_, err = ports.Create(ctx, c, ports.CreateOpts{
		NetworkID: net.ID, FixedIPs: []ports.IP{{SubnetID: sub.ID, IPAddress: "10.30.0.15"}},
	}).Extract()
	wantStatus(t, err, http.StatusConflict, "IpAddressAlreadyAllocated", "IpAddressInUse")

	// The pool holds 11 addresses, one is taken: 10 more ports fit, the
	// eleventh finds the pool exhausted.
	for range 10 {
		if _, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: net.ID}).Extract(); err != nil {
			t.Fatalf("create port from the pool: %v", err)
		}
	}
	_, err = ports.Create(ctx, c, ports.CreateOpts{NetworkID: net.ID}).Extract()
	wantStatus(t, err, http.StatusConflict, "IpAddressGenerationFailure")

	err = networks.Delete(ctx, c, net.ID).ExtractErr()
	wantStatus(t, err, http.StatusConflict, "NetworkInUse")

	pages, err := ports.List(c, ports.ListOpts{NetworkID: net.ID, Limit: 4}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list ports: %v", err)
	}
	all, err := ports.ExtractPorts(pages)
	if err != nil || len(all) != 11 {
		t.Fatalf("ports of the network, paged by 4: %d %v", len(all), err)
	}
	for _, p := range all {
		if err := ports.Delete(ctx, c, p.ID).ExtractErr(); err != nil {
			t.Fatalf("delete port: %v", err)
		}
	}
	_, err = ports.Get(ctx, c, port.ID).Extract()
	wantStatus(t, err, http.StatusNotFound, "PortNotFound")
	if err := subnets.Delete(ctx, c, sub.ID).ExtractErr(); err != nil {
		t.Fatalf("delete subnet: %v", err)
	}
	if err := networks.Delete(ctx, c, net.ID).ExtractErr(); err != nil {
		t.Fatalf("delete network: %v", err)
	}
	assertNothingLeft(t, n)
}

func TestGophercloudRoutersAndFloatingIPs(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	ctx := context.Background()
	admin := networkClient(n, "admin")
	c := networkClient(n, "e2e-project")

	iTrue := true
	ext, err := networks.Create(ctx, admin, external.CreateOptsExt{
		CreateOptsBuilder: providerOpts{networks.CreateOpts{Name: "public"}, "flat", "public"},
		External:          &iTrue,
	}).Extract()
	if err != nil {
		t.Fatalf("create external network: %v", err)
	}
	if _, err := subnets.Create(ctx, admin, subnets.CreateOpts{NetworkID: ext.ID, CIDR: "198.51.100.0/24", IPVersion: gophercloud.IPv4}).Extract(); err != nil {
		t.Fatalf("create external subnet: %v", err)
	}
	net, err := networks.Create(ctx, c, networks.CreateOpts{Name: "inside"}).Extract()
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: net.ID, CIDR: "10.40.0.0/24", IPVersion: gophercloud.IPv4}).Extract()
	if err != nil {
		t.Fatalf("create subnet: %v", err)
	}

	router, err := routers.Create(ctx, c, routers.CreateOpts{Name: "gc-router", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		t.Fatalf("create router: %v", err)
	}
	gw := router.GatewayInfo
	if gw.NetworkID != ext.ID || len(gw.ExternalFixedIPs) != 1 || !inPrefix(gw.ExternalFixedIPs[0].IPAddress, "198.51.100.0/24") {
		t.Fatalf("router gateway: %+v", gw)
	}
	iface, err := routers.AddInterface(ctx, c, router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract()
	if err != nil {
		t.Fatalf("add interface: %v", err)
	}
	if iface.SubnetID != sub.ID || iface.PortID == "" {
		t.Fatalf("interface: %+v", iface)
	}
	_, err = routers.AddInterface(ctx, c, router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) && !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Fatalf("second interface on the same subnet: want 400 or 409, got %v", err)
	}

	port, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: net.ID, Name: "vm"}).Extract()
	if err != nil {
		t.Fatalf("create port: %v", err)
	}
	fip, err := floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: ext.ID, PortID: port.ID}).Extract()
	if err != nil {
		t.Fatalf("create floating ip: %v", err)
	}
	if fip.PortID != port.ID || fip.RouterID != router.ID || fip.FixedIP != port.FixedIPs[0].IPAddress || !inPrefix(fip.FloatingIP, "198.51.100.0/24") {
		t.Fatalf("floating ip: %+v", fip)
	}
	empty := ""
	fip, err = floatingips.Update(ctx, c, fip.ID, floatingips.UpdateOpts{PortID: &empty}).Extract()
	if err != nil {
		t.Fatalf("disassociate floating ip: %v", err)
	}
	if fip.PortID != "" || fip.FixedIP != "" {
		t.Fatalf("floating ip after disassociation: %+v", fip)
	}

	err = routers.Delete(ctx, c, router.ID).ExtractErr()
	wantStatus(t, err, http.StatusConflict, "RouterInUse")

	if err := floatingips.Delete(ctx, c, fip.ID).ExtractErr(); err != nil {
		t.Fatalf("delete floating ip: %v", err)
	}
	if _, err := routers.RemoveInterface(ctx, c, router.ID, routers.RemoveInterfaceOpts{SubnetID: sub.ID}).Extract(); err != nil {
		t.Fatalf("remove interface: %v", err)
	}
	if err := routers.Delete(ctx, c, router.ID).ExtractErr(); err != nil {
		t.Fatalf("delete router: %v", err)
	}
	_, err = routers.Get(ctx, c, router.ID).Extract()
	wantStatus(t, err, http.StatusNotFound, "RouterNotFound")
	if err := ports.Delete(ctx, c, port.ID).ExtractErr(); err != nil {
		t.Fatalf("delete port: %v", err)
	}
	for _, id := range []string{net.ID, ext.ID} {
		if err := networks.Delete(ctx, admin, id).ExtractErr(); err != nil {
			t.Fatalf("delete network %s: %v", id, err)
		}
	}
	assertNothingLeft(t, n)
}
