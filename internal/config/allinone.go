package config

// AllInOneExternalPhysnet is the physical network of the all-in-one's
// external (router:external) networks; AllInOneExternalBridge is its bridge,
// which `neutrino up` creates with no NIC on it (an operator attaches one).
const (
	AllInOneExternalPhysnet = "public"
	AllInOneExternalBridge  = "br-ex"
)

// AllInOne returns the built-in configuration of `neutrino up`: Default,
// except that the agent also runs the l3 and metadata roles and maps the external
// physical network to its bridge, so routers get gateways on a flat
// external network out of the box. `neutrino agent` keeps Default's roles:
// routers belong on network nodes, which say so in their configuration.
func AllInOne() Config {
	cfg := Default()
	cfg.Agent.Roles = []string{RoleL2, RoleDHCP, RoleL3, RoleMetadata}
	cfg.Agent.L2.BridgeMappings = []string{AllInOneExternalPhysnet + ":" + AllInOneExternalBridge}
	return cfg
}
