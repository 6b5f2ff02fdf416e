package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

func TestGophercloudSecurityGroups(t *testing.T) {
	t.Parallel()
	n := StartNeutrino(t)
	ctx := context.Background()
	c := networkClient(n, "e2e-project")

	sg, err := groups.Create(ctx, c, groups.CreateOpts{Name: "gc-web", Description: "web"}).Extract()
	if err != nil {
		t.Fatalf("create security group: %v", err)
	}
	if len(sg.Rules) != 2 {
		t.Fatalf("new group (want two default egress rules): %+v", sg)
	}
	rule, err := rules.Create(ctx, c, rules.CreateOpts{
		SecGroupID: sg.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 443, PortRangeMax: 443, RemoteIPPrefix: "0.0.0.0/0",
	}).Extract()
	if err != nil {
		t.Fatalf("create rule: %v", err)
	}
	if rule.PortRangeMin != 443 || rule.Protocol != "tcp" || rule.Direction != "ingress" {
		t.Fatalf("rule: %+v", rule)
	}
	_, err = rules.Create(ctx, c, rules.CreateOpts{
		SecGroupID: sg.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 443, PortRangeMax: 443, RemoteIPPrefix: "0.0.0.0/0",
	}).Extract()
	wantStatus(t, err, http.StatusConflict, "SecurityGroupRuleExists")
	_, err = rules.Create(ctx, c, rules.CreateOpts{
		SecGroupID: sg.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 500, PortRangeMax: 400,
	}).Extract()
	wantStatus(t, err, http.StatusBadRequest, "SecurityGroupInvalidPortRange")

	got, err := groups.Get(ctx, c, sg.ID).Extract()
	if err != nil || len(got.Rules) != 3 {
		t.Fatalf("group with its rules: %+v %v", got, err)
	}
	pages, err := rules.List(c, rules.ListOpts{SecGroupID: sg.ID, Direction: "ingress"}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list rules: %v", err)
	}
	ingress, err := rules.ExtractRules(pages)
	if err != nil || len(ingress) != 1 || ingress[0].ID != rule.ID {
		t.Fatalf("ingress rules of the group: %+v %v", ingress, err)
	}

	// A group in use by a port cannot be deleted.
	net, err := networks.Create(ctx, c, networks.CreateOpts{Name: "sg-net"}).Extract()
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	port, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: net.ID, SecurityGroups: &[]string{sg.ID}}).Extract()
	if err != nil {
		t.Fatalf("create port in the group: %v", err)
	}
	err = groups.Delete(ctx, c, sg.ID).ExtractErr()
	wantStatus(t, err, http.StatusConflict, "SecurityGroupInUse")

	if err := ports.Delete(ctx, c, port.ID).ExtractErr(); err != nil {
		t.Fatalf("delete port: %v", err)
	}
	if err := rules.Delete(ctx, c, rule.ID).ExtractErr(); err != nil {
		t.Fatalf("delete rule: %v", err)
	}
	if err := groups.Delete(ctx, c, sg.ID).ExtractErr(); err != nil {
		t.Fatalf("delete security group: %v", err)
	}
	_, err = groups.Get(ctx, c, sg.ID).Extract()
	wantStatus(t, err, http.StatusNotFound, "SecurityGroupNotFound")
	if err := networks.Delete(ctx, c, net.ID).ExtractErr(); err != nil {
		t.Fatalf("delete network: %v", err)
	}
	assertNothingLeft(t, n)
}
