package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

func dbCmd() *cobra.Command {
	// Only --config, --database and --state-dir are registered; load
	// applies the flags a command has and the user set.
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Operate the database: migrate, status, backup",
		Long: `Operate the database the server uses: the one --database names, else the
config file's database, else SQLite in the state directory (as neutrino server).

  neutrino db migrate          apply pending schema migrations (safe to run on several hosts at once)
  neutrino db status           print the schema version and whether migrations are pending
  neutrino db backup --to FILE consistent copy of an SQLite store while the server runs`,
		Args: cobra.NoArgs,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.configFile, "config", "", "configuration file (TOML); see docs/configuration.md")
	fl.StringVar(&f.database, "database", "", "database URL: sqlite:PATH or postgres://… (default: the config's, else sqlite under --state-dir)")
	fl.StringVar(&f.stateDir, "state-dir", config.DefaultStateDir(), "directory of the embedded database")

	var to string
	backup := &cobra.Command{
		Use:   "backup --to FILE",
		Short: "Copy an SQLite store consistently while the server runs (PostgreSQL: use pg_dump)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, f, true, func(ctx context.Context, db *store.DB, dbURL string) error {
				if err := db.Backup(ctx, to); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s\nto restore, stop the server and run it with --database sqlite:%s, or put the copy in place of the old file after removing the old file's -wal and -shm\n", dbURL, to, to)
				return nil
			})
		},
	}
	backup.Flags().StringVar(&to, "to", "", "the backup file to create; it must not exist")
	_ = backup.MarkFlagRequired("to")

	cmd.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations and print them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, f, false, func(ctx context.Context, db *store.DB, dbURL string) error {
				applied, err := db.ApplyMigrations(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, m := range applied {
					fmt.Fprintf(out, "applied %s (%s)\n", m.Name, m.Took.Round(time.Microsecond))
				}
				st, err := db.SchemaStatus(ctx)
				if err != nil {
					return err
				}
				if len(applied) == 0 {
					fmt.Fprint(out, "nothing to apply: ")
				}
				return printSchemaStatus(out, dbURL, st)
			})
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Print the schema version and whether migrations are pending",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, f, true, func(ctx context.Context, db *store.DB, dbURL string) error {
				st, err := db.SchemaStatus(ctx)
				if err != nil {
					return err
				}
				return printSchemaStatus(cmd.OutOrStdout(), dbURL, st)
			})
		},
	}, backup)
	return cmd
}

// withDB opens the configured database for fn. mustExist refuses an SQLite
// file that is not there, which opening would otherwise create empty.
func withDB(cmd *cobra.Command, f *serverFlags, mustExist bool, fn func(ctx context.Context, db *store.DB, dbURL string) error) error {
	cfg, err := f.load(cmd)
	if err != nil {
		return err
	}
	dbURL := cfg.DatabaseURL()
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok && mustExist {
		path = strings.TrimPrefix(path, "//")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no database at %s (neutrino db migrate creates one; --database or --state-dir name another)", path)
		}
	}
	// The commands print what they did; the store's own log would repeat it.
	db, err := store.Open(cmd.Context(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(cmd.Context(), db, redactPassword(dbURL))
}

func printSchemaStatus(out io.Writer, dbURL string, st store.SchemaStatus) error {
	fmt.Fprintf(out, "database %s: schema version %d, newest known %d\n", dbURL, st.Current, st.Latest)
	switch {
	case st.Current > st.Latest:
		fmt.Fprintln(out, "the database is newer than this neutrino: upgrade the binary")
	case len(st.Pending) == 0:
		fmt.Fprintln(out, "up to date")
	default:
		names := make([]string, len(st.Pending))
		for i, m := range st.Pending {
			names[i] = m.Name
		}
		fmt.Fprintf(out, "%d pending: %s (run neutrino db migrate)\n", len(st.Pending), strings.Join(names, ", "))
	}
	return nil
}

// redactPassword hides the password of a postgres:// URL for printing.
func redactPassword(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.User == nil {
		return dbURL
	}
	return u.Redacted()
}
