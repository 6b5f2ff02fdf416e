package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
	"github.com/neutrino-sdn/neutrino/internal/dataplane/vif"
)

// CheckNamespaces checks the configuration of role, one that serves from
// namespaces named prefix + id plugged into the Open vSwitch at ovsDB:
// the prefix must make namespace names, and the database is required.
func CheckNamespaces(role, prefix, ovsDB string) error {
	if strings.ContainsAny(prefix, "/\x00") {
		return fmt.Errorf("%s: namespace prefix %q", role, prefix)
	}
	if ovsDB == "" {
		return fmt.Errorf("%s: the Open vSwitch database endpoint is required", role)
	}
	return nil
}

// RemoveStale removes the namespaces of a role that it does not serve
// (those not in want): every namespace named with prefix, and every one
// that OVS interfaces tagged external_ids[key] name, each with the veths
// and OVS ports pl plugged into it. They are left by a previous run or by
// a failed teardown.
func RemoveStale(ctx context.Context, log *slog.Logger, pl vif.Plugger, key, prefix string, want map[string]bool) error {
	stale := map[string]bool{}
	for ns := range pl.Tagged(key) {
		stale[ns] = true
	}
	names, err := netns.List()
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			stale[name] = true
		}
	}
	var errs []error
	for ns := range stale {
		if want[ns] {
			continue
		}
		if err := pl.RemoveNamespace(ctx, key, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("removed stale namespace", "netns", ns)
	}
	return errors.Join(errs...)
}

// RemoveAll removes every namespace of a role and what pl plugged into
// them, as RemoveStale does with none wanted, on a connection of its own
// to the OVSDB at endpoint: for tearing a host down while no agent runs.
func RemoveAll(ctx context.Context, log *slog.Logger, endpoint string, pl vif.Plugger, key, prefix string) error {
	o := OVSDB{Endpoint: endpoint, Log: log}
	db, err := o.Client(ctx)
	if err != nil {
		return err
	}
	defer o.Close()
	pl.DB = db
	return RemoveStale(ctx, log, pl, key, prefix, nil)
}
