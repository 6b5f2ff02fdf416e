package server

import (
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// registerPlugins installs the semantics of subnets, ports, routers,
// floating IPs, security groups and the other resources beyond networks.
func registerPlugins(svc *service.Service, cfg config.Config) error {
	return nil
}
