package main

import (
	"github.com/spf13/cobra"

	"github.com/neutrino-sdn/neutrino/internal/allinone"
	"github.com/neutrino-sdn/neutrino/internal/config"
)

func upCmd() *cobra.Command {
	// The all-in-one's agent and agents on other hosts find the bus here.
	f := &serverFlags{upNATSListen: "127.0.0.1:4222", allInOne: true}
	var roleNames []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run neutrino all-in-one on this machine",
		Long: `Run neutrino all-in-one: the API server with its embedded SQLite store and
NATS, in noauth mode, and an agent with the roles l2, dhcp, l3 and metadata on this
host's Open vSwitch — or, when none serves the host, on ovsdb-server and
ovs-vswitchd of its own under --state-dir. External networks are flat on
physical network "public", bridged to br-ex, which up creates with no NIC on
it (docs/allinone.md says how to attach one). Point the openstack CLI at it with
  export OS_AUTH_TYPE=none OS_ENDPOINT=http://127.0.0.1:9696
and make VMs with 'neutrino vm create'. Ctrl-C (SIGINT) or SIGTERM stops
every process it started; a later 'up' with the same --state-dir resumes its
networks and VMs; 'neutrino down' removes everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("roles") {
				cfg.Agent.Roles = roleNames
			}
			return allinone.Up(cmd.Context(), cfg, allinone.Options{Log: newLogger(cfg), DefaultStateDir: config.DefaultStateDir()})
		},
	}
	f.add(cmd)
	cmd.Flags().StringSliceVar(&roleNames, "roles", config.AllInOne().Agent.Roles,
		"the agent's roles (agent.roles); --roles '' runs the API server alone, with no agent, Open vSwitch or root")
	return cmd
}

func downCmd() *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove everything neutrino up made: VMs, namespaces, bridges, Open vSwitch daemons, files",
		Long: `Stop the all-in-one of --state-dir if it runs, then remove everything it and
its VMs made: the VMs (namespaces, veths, DHCP clients), the agents' qdhcp-
and qrouter- namespaces, the bridges, its own Open vSwitch daemons, and the
state directory's files (its database included). A host Open vSwitch keeps
the bridges the all-in-one did not create.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return allinone.Down(cmd.Context(), stateDir, newLogger(config.Default()), cmd.ErrOrStderr())
		},
	}
	addStateDirFlag(cmd, &stateDir)
	return cmd
}

// addStateDirFlag adds --state-dir, naming the all-in-one a command works on.
func addStateDirFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "state-dir", config.DefaultStateDir(), "state directory of the all-in-one (neutrino up --state-dir)")
}
