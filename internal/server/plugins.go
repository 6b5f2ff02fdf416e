package server

import (
	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/ipavailability"
	"github.com/neutrino-sdn/neutrino/internal/l3"
	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/secgroup"
	"github.com/neutrino-sdn/neutrino/internal/segment"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/subnet"
	"github.com/neutrino-sdn/neutrino/internal/subnetpool"
)

// registerPlugins installs the semantics of subnets, ports, routers,
// floating IPs, security groups and the other resources beyond networks,
// and the API routes of collections that are not plain resources.
// Areas are wired to each other here through function values, so that no
// area imports another's package.
func registerPlugins(svc *service.Service, a *api.Server, cfg config.Config, segs *segment.Manager) error {
	pools := subnetpool.Register(svc)
	agentapi.Register(svc, agentapi.DefaultDownTime)
	ipavailability.Register(svc, a)
	groups := secgroup.Register(svc)
	ports, err := port.Register(svc, port.Options{BaseMAC: cfg.BaseMAC,
		DefaultSecurityGroup: groups.DefaultGroup, CheckSecurityGroups: groups.CheckGroups})
	if err != nil {
		return err
	}
	subnet.Register(svc, ports, subnet.Options{AllocatePrefix: pools.AllocatePrefix, DefaultSubnetPool: pools.DefaultPool})
	l3.Register(svc, network.Access)
	// Networks last: hooks run in registration order, and deleting a
	// network must first let l3 remove its unassociated floating IPs.
	network.Register(svc, segs)
	return nil
}
