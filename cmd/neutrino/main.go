// Command neutrino is the single binary of the neutrino networking service:
// the API server, the node agent and the all-in-one, chosen by subcommand.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/neutrino-sdn/neutrino/internal/agent/roles"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/server"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		// vm exec passes the command's exit status through, silently.
		var exit *vm.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "neutrino:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "neutrino",
		Short: "neutrino: cloud networking that speaks the OpenStack Networking (Neutron) API v2.0",
		Long: `neutrino is a software-defined networking service for clouds. It serves the
OpenStack Networking API v2.0, so the openstack CLI, gophercloud and Terraform
work against it unchanged.

  neutrino up       run everything on this machine (all-in-one)
  neutrino down     remove everything up made
  neutrino vm       stand-in VMs on the all-in-one: create, list, exec, delete
  neutrino server   run the API server
  neutrino agent    run a node agent (l2, dhcp, l3) that the servers drive over NATS`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd(), upCmd(), downCmd(), vmCmd(), agentCmd(), dbCmd())
	return root
}

// serverFlags are the flags shared by server and up; they override the file.
type serverFlags struct {
	configFile, listen, database, authMode, keystoneURL, stateDir, logFormat string
	natsURL, natsListen                                                      string
	// upNATSListen is up's embedded NATS address unless file or flag say.
	upNATSListen string
	// allInOne starts from up's defaults (config.AllInOne) under the file.
	allInOne bool
}

func (f *serverFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "configuration file (TOML); see docs/configuration.md")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9696", "API listen address")
	fl.StringVar(&f.database, "database", "", "database URL: sqlite:PATH or postgres://… (default: sqlite under --state-dir)")
	fl.StringVar(&f.authMode, "auth", "noauth", "authentication: noauth (every caller is admin) or keystone")
	fl.StringVar(&f.keystoneURL, "keystone-url", "", "Keystone v3 URL for --auth keystone, e.g. http://127.0.0.1:5000/v3")
	fl.StringVar(&f.stateDir, "state-dir", config.DefaultStateDir(), "directory for the embedded database and local state")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.natsURL, "nats-url", "", "external NATS server or cluster for the agents' bus (default: an embedded NATS server)")
	fl.StringVar(&f.natsListen, "nats-listen", f.upNATSListen, "address where the embedded NATS server accepts agents on other hosts (empty: in-process only)")
}

// load reads the config file and applies the flags the user set.
func (f *serverFlags) load(cmd *cobra.Command) (config.Config, error) {
	base := config.Default()
	if f.allInOne {
		base = config.AllInOne()
	}
	cfg, err := config.LoadOver(base, f.configFile)
	if err != nil {
		return cfg, err
	}
	set := func(name string, dst *string, v string) {
		if cmd.Flags().Changed(name) {
			*dst = v
		}
	}
	set("listen", &cfg.Listen, f.listen)
	set("database", &cfg.Database, f.database)
	set("auth", &cfg.Auth, f.authMode)
	set("keystone-url", &cfg.Keystone.URL, f.keystoneURL)
	set("state-dir", &cfg.StateDir, f.stateDir)
	set("log-format", &cfg.LogFormat, f.logFormat)
	set("nats-url", &cfg.NATS.URL, f.natsURL)
	set("nats-listen", &cfg.NATS.Listen, f.natsListen)
	if !cmd.Flags().Changed("nats-listen") && cfg.NATS.URL == "" && cfg.NATS.Listen == "" {
		cfg.NATS.Listen = f.upNATSListen
	}
	return cfg, nil
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serverCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API server (OpenStack Networking API v2.0)",
		Long: `Run the neutrino API server. It is stateless: run any number of replicas over
one PostgreSQL database. With the default SQLite database it runs alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			return runServer(cmd.Context(), cfg)
		},
	}
	f.add(cmd)
	return cmd
}

func runServer(ctx context.Context, cfg config.Config) error {
	log := newLogger(cfg)
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, func(addr string) {
		fmt.Fprintf(os.Stderr, "neutrino is serving the Networking API at http://%s (database %s)\n", addr, cfg.DatabaseURL())
		if u := srv.NATSURL(); u != "" {
			fmt.Fprintf(os.Stderr, "agents connect to the bus at %s\n", u)
		}
	})
}

func agentCmd() *cobra.Command {
	var configFile, host, natsURL, logFormat string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent (roles from the config; default l2, dhcp)",
		Long: `Run the neutrino agent of this node. It reports its state to the servers over
NATS, takes the desired state of its host from them and wires it: the l2 role
on the local Open vSwitch, the dhcp role in qdhcp-* namespaces, the l3 role
(routers) in qrouter-* namespaces. Roles and options come from the [agent]
section of the config file (docs/configuration.md): by default l2 and dhcp;
a network node adds l3 and its external network's bridge mapping.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			if fl.Changed("host") {
				cfg.Agent.Host = host
			}
			if fl.Changed("nats-url") {
				cfg.NATS.URL = natsURL
			}
			if fl.Changed("log-format") {
				cfg.LogFormat = logFormat
			}
			log := newLogger(cfg)
			conn, err := roles.Connect(cfg.NATS.URL, log)
			if err != nil {
				return err
			}
			defer conn.Close()
			return roles.Run(cmd.Context(), cfg.Agent, conn, log, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configFile, "config", "", "configuration file (TOML); see docs/configuration.md")
	fl.StringVar(&host, "host", "", "this node's name, as ports' binding:host_id names it (default: the host name)")
	fl.StringVar(&natsURL, "nats-url", "", "the servers' NATS, e.g. nats://controller:4222 (default "+roles.DefaultNATSURL+")")
	fl.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}
