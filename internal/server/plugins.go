package server

import (
	"context"
	"log/slog"

	"github.com/neutrino-sdn/neutrino/internal/agentapi"
	"github.com/neutrino-sdn/neutrino/internal/api"
	"github.com/neutrino-sdn/neutrino/internal/binding"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/ipavailability"
	"github.com/neutrino-sdn/neutrino/internal/l3"
	"github.com/neutrino-sdn/neutrino/internal/metadata"
	"github.com/neutrino-sdn/neutrino/internal/network"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/scheduler"
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
//
// It returns the background loops the server runs while serving.
func registerPlugins(svc *service.Service, a *api.Server, cfg config.Config, segs *segment.Manager, log *slog.Logger) ([]func(context.Context), error) {
	pools := subnetpool.Register(svc)
	agentapi.Register(svc, cfg.AgentDownTime)
	binder := binding.New(svc, binding.Options{DownTime: cfg.AgentDownTime, Log: log})
	ipavailability.Register(svc, a)
	groups := secgroup.Register(svc)
	ports, err := port.Register(svc, port.Options{BaseMAC: cfg.BaseMAC,
		DefaultSecurityGroup: groups.DefaultGroup, CheckSecurityGroups: groups.CheckGroups, BindPort: binder.BindPort})
	if err != nil {
		return nil, err
	}
	binder.Register()
	subnet.Register(svc, ports, subnet.Options{AllocatePrefix: pools.AllocatePrefix, DefaultSubnetPool: pools.DefaultPool})
	routers := scheduler.RegisterL3(svc, a, scheduler.Options{DownTime: cfg.AgentDownTime, CheckInterval: cfg.Agent.ReportInterval, Bind: binder.BindPort, Log: log})
	l3.Register(svc, network.Access)
	// Networks last: hooks run in registration order, and deleting a
	// network must first let l3 remove its unassociated floating IPs.
	network.Register(svc, segs)
	dhcp := scheduler.Register(svc, a, scheduler.Options{AgentsPerNetwork: cfg.DHCPAgentsPerNetwork,
		DownTime: cfg.AgentDownTime, CheckInterval: cfg.Agent.ReportInterval, Bind: binder.BindPort, Log: log})
	bg := []func(context.Context){dhcp.Run, routers.Run}
	instances := metadata.NewRegistry(svc)
	instances.RegisterAPI(a)
	if cfg.Metadata.Listen != "" {
		bg = append(bg, metadata.NewService(instances, cfg.Metadata.SharedSecret, log).Runner(cfg.Metadata.Listen))
	}
	return bg, nil
}
