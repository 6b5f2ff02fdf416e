package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/statedir"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// vmFlags are the flags every vm subcommand shares.
type vmFlags struct {
	stateDir string
	opts     vm.Options
}

func (f *vmFlags) manager(cmd *cobra.Command) (*vm.Manager, error) {
	dir, err := statedir.New(f.stateDir)
	if err != nil {
		return nil, err
	}
	opts := f.opts
	opts.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return vm.NewManager(dir, opts), nil
}

func vmCmd() *cobra.Command {
	f := &vmFlags{}
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Stand-in VMs on the all-in-one: network namespaces plugged into br-int",
		Long: `A VM is a network namespace (vm-NAME) whose eth0 is plugged into br-int the
way Nova's VIF driver plugs an instance, for a port bound to this host, and
that gets its address by DHCP. They work with the all-in-one that
'neutrino up --state-dir DIR' runs, or, on a node that runs 'neutrino agent'
only, with the API given by --url (and --host, --ovs-run-dir as the agent's).`,
	}
	cmd.PersistentFlags().StringVar(&f.stateDir, "state-dir", config.DefaultStateDir(), "state directory of the all-in-one (neutrino up --state-dir)")
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.opts.APIURL, "url", "", "the Networking API's URL (default: the one neutrino up recorded in --state-dir)")
	pf.StringVar(&f.opts.Host, "host", "", "host the VMs' ports bind to, the local agent's agent.host (default: neutrino up's, else this machine's host name)")
	pf.StringVar(&f.opts.OVSRunDir, "ovs-run-dir", "", "run directory of the local Open vSwitch when no neutrino up runs here, with --url (default /var/run/openvswitch)")
	cmd.AddCommand(vmCreateCmd(f), vmListCmd(f), vmExecCmd(f), vmDeleteCmd(f))
	return cmd
}

func vmCreateCmd(f *vmFlags) *cobra.Command {
	var req vm.CreateRequest
	cmd := &cobra.Command{
		Use:   "create --network NET [--project ID] [--fixed-ip IP] [--security-group SG]… NAME",
		Short: "Create a VM: a port bound to this host, a namespace plugged into br-int, a DHCP lease",
		Long: `Create a port on NET bound to this host (device_owner compute:nova), a network
namespace vm-NAME whose eth0 has the port's MAC and the network's MTU, plug
it into br-int, and run a DHCP client in it. Returns once the VM holds its
lease, or fails after --timeout, removing what it made.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.manager(cmd)
			if err != nil {
				return err
			}
			req.Name = args[0]
			v, err := m.Create(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v.Describe())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Network, "network", "", "network (name or id) of the VM's port")
	fl.StringVar(&req.Project, "project", "", "project that owns the VM's port (default: the API's default project)")
	fl.StringVar(&req.FixedIP, "fixed-ip", "", "IP address the VM's port asks for")
	fl.StringArrayVar(&req.SecurityGroups, "security-group", nil, "security group (name or id) of the VM's port; repeat for several (default: the project's default group)")
	fl.StringVar(&req.KeyFile, "key", "", "SSH public key file, stored for the instance metadata service")
	fl.StringVar(&req.UserDataFile, "user-data", "", "user data file, stored for the instance metadata service")
	fl.DurationVar(&req.Timeout, "timeout", vm.DefaultTimeout, "how long to wait for the VM's DHCP lease")
	cmd.MarkFlagRequired("network")
	return cmd
}

func vmListCmd(f *vmFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the VMs: name, port, network, IP address, namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.manager(cmd)
			if err != nil {
				return err
			}
			vms, err := m.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				if vms == nil {
					vms = []vm.VM{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(vms)
			case "table":
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPORT\tNETWORK\tIP\tNAMESPACE")
				for _, v := range vms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.PortID, v.NetworkName, v.IP(), v.Namespace)
				}
				return tw.Flush()
			}
			return fmt.Errorf("unknown --format %q (want table or json)", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}

func vmExecCmd(f *vmFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARG…]",
		Short: "Run a command inside a VM's namespace; its exit status is passed through",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.manager(cmd)
			if err != nil {
				return err
			}
			argv := args[1:]
			// Flags stop at NAME, so a "--" after it reaches us.
			if argv[0] == "--" {
				argv = argv[1:]
			}
			return m.Exec(cmd.Context(), args[0], argv, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	// Everything after NAME belongs to CMD, dashes included.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func vmDeleteCmd(f *vmFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME…",
		Short: "Delete VMs: their ports, namespaces, OVS ports and DHCP clients",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.manager(cmd)
			if err != nil {
				return err
			}
			var failed []string
			for _, name := range args {
				if err := m.Delete(cmd.Context(), name); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "neutrino: vm delete %s: %v\n", name, err)
					failed = append(failed, name)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted VM %s\n", name)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d VMs not deleted: %s", len(failed), len(args), strings.Join(failed, ", "))
			}
			return nil
		},
	}
}
