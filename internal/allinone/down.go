package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/link"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/ovs"
	"github.com/neutrino-sdn/neutrino/internal/statedir"
	"github.com/neutrino-sdn/neutrino/internal/store"
	"github.com/neutrino-sdn/neutrino/internal/vm"
)

// upStopTimeout bounds how long Down waits for a running up to stop (it
// lets in-flight requests finish, up to shutdown_timeout).
const upStopTimeout = 60 * time.Second

// Namespace prefixes of the agents' per-network and per-router namespaces.
var agentNamespaces = []struct{ prefix, table string }{
	{"qdhcp-", "networks"},
	{"qrouter-", "routers"},
}

// Down stops the all-in-one of the state directory at path if it runs,
// and removes everything it and its VMs made: VMs (DHCP clients,
// namespaces, veths, OVS ports), the agents' namespaces, the bridges, its
// own Open vSwitch daemons and the files. The host's Open vSwitch, if the
// all-in-one used it, keeps every bridge the all-in-one did not create.
func Down(ctx context.Context, path string, log *slog.Logger, out io.Writer) error {
	if log == nil {
		log = slog.Default()
	}
	if out == nil {
		out = os.Stderr
	}
	dir, err := statedir.New(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir.Path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "nothing to remove: %s does not exist\n", dir.Path)
		return nil
	}
	// VMs' veths, the agents' devices and bridges' devices are in the
	// namespace up ran in.
	if rt, err := dir.ReadRuntime(); err == nil && rt.NetNS != "" {
		if self, err := statedir.NetNSOf("self"); err == nil && self != rt.NetNS {
			return fmt.Errorf("neutrino up for %s ran in another network namespace (%s, this is %s): run neutrino down there, e.g. with nsenter --net=/run/netns/NAME (ip netns exec would hide the namespaces it makes from the rest of the system)", dir.Path, rt.NetNS, self)
		}
	}
	if err := stopUp(ctx, dir, out); err != nil {
		return err
	}
	lock, err := dir.Acquire()
	if err != nil {
		return err
	}
	defer lock.Release()
	rt, err := dir.ReadRuntime()
	if err != nil && !errors.Is(err, statedir.ErrNoRuntime) {
		return err
	}
	var errs []error
	// The private Open vSwitch runs again for the cleanup: deleting its
	// bridges through OVSDB also removes their internal ports' devices.
	sw, err := cleanupVSwitch(ctx, dir, rt, log)
	if err != nil {
		errs = append(errs, err)
	}
	ovsdb := ""
	if sw != nil {
		ovsdb = sw.inst.DB
	}
	vms, err := vm.Records(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range vms {
		if err := vm.RemoveLocal(ctx, filepath.Join(dir.VMs(), v.Name), &v, ovsdb, log); err != nil {
			errs = append(errs, fmt.Errorf("VM %s: %w", v.Name, err))
		} else {
			fmt.Fprintf(out, "removed VM %s (namespace %s)\n", v.Name, v.Namespace)
		}
	}
	for _, ns := range agentNamespacesOf(ctx, dir, rt, log) {
		if err := netns.Delete(ns); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(out, "removed namespace %s\n", ns)
		}
	}
	if sw != nil {
		errs = append(errs, sw.removeBridges(ctx, rt, log, out))
		errs = append(errs, sw.stop())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("all-in-one: down left things behind in %s: %w", dir.Path, err)
	}
	for _, p := range dir.Entries() {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	lock.Release()
	if err := os.Remove(dir.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Files neutrino did not make (a config file, say) stay.
		fmt.Fprintf(out, "kept %s: it holds files neutrino did not make\n", dir.Path)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(out, "neutrino down: removed the all-in-one of %s\n", dir.Path)
	return nil
}

// stopUp stops a running up on the directory (SIGTERM to its pid) and
// waits until it has released the directory.
func stopUp(ctx context.Context, dir statedir.Dir, out io.Writer) error {
	rt, running := dir.Running()
	if !running {
		return nil
	}
	if rt.PID <= 0 {
		return fmt.Errorf("neutrino up holds %s but recorded no pid: stop it first", dir.Path)
	}
	fmt.Fprintf(out, "stopping neutrino up (pid %d)\n", rt.PID)
	if err := syscall.Kill(rt.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop neutrino up (pid %d): %w", rt.PID, err)
	}
	deadline := time.Now().Add(upStopTimeout)
	for {
		if _, still := dir.Running(); !still {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("neutrino up (pid %d) did not stop within %s", rt.PID, upStopTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanupVSwitch returns the Open vSwitch to clean up: our own daemons,
// started again from the state directory, or the system one; nil when
// there is none.
func cleanupVSwitch(ctx context.Context, dir statedir.Dir, rt statedir.Runtime, log *slog.Logger) (*vswitch, error) {
	stopStale(rt.OVS, log)
	if _, err := os.Stat(filepath.Join(dir.OVS(), "conf.db")); err == nil {
		d, err := ovs.StartDaemons(ctx, ovs.Options{Dir: dir.OVS(), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("start the all-in-one's Open vSwitch to remove its bridges: %w", err)
		}
		return &vswitch{inst: d.Instance, daemons: d}, nil
	}
	if rt.OVS.DB == "" || rt.OVS.Own {
		return nil, nil
	}
	inst, ok := ovs.DetectIn(rt.OVS.RunDir)
	if !ok {
		return nil, fmt.Errorf("the Open vSwitch the all-in-one used (%s) does not answer: its bridges %v stay", rt.OVS.DB, rt.OVS.CreatedBridges)
	}
	return &vswitch{inst: inst, createdBridges: rt.OVS.CreatedBridges}, nil
}

// removeBridges deletes every bridge of our own Open vSwitch, or the
// bridges the all-in-one created on the system's.
func (sw *vswitch) removeBridges(ctx context.Context, rt statedir.Runtime, log *slog.Logger, out io.Writer) error {
	c, err := ovs.Connect(ctx, sw.inst.DB, log)
	if err != nil {
		return err
	}
	defer c.Close()
	bridges := sw.createdBridges
	if sw.daemons != nil {
		bridges = c.BridgeNames()
	}
	var errs []error
	for _, br := range bridges {
		if err := c.DeleteBridge(ctx, br); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(out, "removed bridge %s\n", br)
		}
	}
	// ovs-vswitchd removes the bridges' devices when it applies the
	// change, which must happen before it is stopped.
	if err := c.WaitVSwitchd(ctx); err != nil {
		errs = append(errs, err)
	}
	if sw.daemons != nil {
		// The userspace datapath's own device outlives its bridges.
		if h, err := link.Open(""); err == nil {
			errs = append(errs, h.Delete(netdevDatapathDevice))
			h.Close()
		}
	}
	return errors.Join(errs...)
}

// netdevDatapathDevice is the tap device ovs-vswitchd makes for the
// userspace (netdev) datapath.
const netdevDatapathDevice = "ovs-netdev"

// stopStale stops daemons a previous up started and left running (it was
// killed before it could stop them), by their recorded pids.
func stopStale(rec statedir.OVS, log *slog.Logger) {
	for _, p := range []struct {
		pid  int
		comm string
	}{{rec.VSwitchdPID, "ovs-vswitchd"}, {rec.OVSDBServerPID, "ovsdb-server"}} {
		if !statedir.ProcessAlive(p.pid, p.comm) {
			continue
		}
		log.Warn("stopping an Open vSwitch daemon a previous neutrino up left running", "pid", p.pid, "daemon", p.comm)
		syscall.Kill(p.pid, syscall.SIGTERM)
		for i := 0; i < 200 && statedir.ProcessAlive(p.pid, p.comm); i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if statedir.ProcessAlive(p.pid, p.comm) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
}

// agentNamespacesOf lists the existing qdhcp-/qrouter- namespaces of the
// all-in-one's networks and routers, as its database names them.
func agentNamespacesOf(ctx context.Context, dir statedir.Dir, rt statedir.Runtime, log *slog.Logger) []string {
	url := rt.DatabaseURL
	if url == "" {
		url = "sqlite:" + dir.Database()
	}
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil
		}
	}
	existing, err := netns.List()
	if err != nil || len(existing) == 0 {
		return nil
	}
	db, err := store.Open(ctx, url, log)
	if err != nil {
		log.Warn("cannot read the all-in-one's database; its agents' namespaces stay", "err", err)
		return nil
	}
	defer db.Close()
	ids := map[string]bool{}
	for _, a := range agentNamespaces {
		err := db.View(ctx, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, "SELECT id FROM "+a.table)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids[a.prefix+id] = true
			}
			return rows.Err()
		})
		if err != nil {
			log.Warn("cannot list the all-in-one's "+a.table, "err", err)
		}
	}
	var out []string
	for _, ns := range existing {
		if ids[ns] {
			out = append(out, ns)
		}
	}
	return out
}
