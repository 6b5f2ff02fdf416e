package store

import (
	"context"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationLockID is the PostgreSQL advisory lock that serialises schema
// migrations of one database: replicas started at once take turns, and
// the ones that come after the first find nothing left to apply.
const migrationLockID int64 = 0x6e657574 // "neut"

// versionTable is goose's record of applied migrations.
const versionTable = goose.DefaultTablename

// Migration names one schema migration this binary carries.
type Migration struct {
	Version int64
	Name    string // file name, e.g. 00001_initial.sql
}

// AppliedMigration is a migration ApplyMigrations ran.
type AppliedMigration struct {
	Migration
	Took time.Duration
}

// SchemaStatus is where a database's schema stands against the migrations
// this binary carries.
type SchemaStatus struct {
	// Current is the newest applied version; 0 for an empty database.
	Current int64
	// Latest is the newest migration this binary carries.
	Latest int64
	// Pending are the migrations not yet applied, oldest first.
	Pending []Migration
}

// UpToDate says whether nothing is pending and the database is not newer
// than this binary.
func (s SchemaStatus) UpToDate() bool { return len(s.Pending) == 0 && s.Current <= s.Latest }

// migrationProvider is goose over this store's migrations; on PostgreSQL it
// holds migrationLockID while it migrates.
func (db *DB) migrationProvider() (*goose.Provider, error) {
	fsys, err := subFS()
	if err != nil {
		return nil, err
	}
	d := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.dialect == postgresDialect {
		d = goose.DialectPostgres
		// Poll every second for up to five minutes: migrations take
		// well under a second, so a waiting replica starts soon after.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(d, db.writer, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// ApplyMigrations applies the pending migrations and returns those it ran,
// none when the schema was up to date. On PostgreSQL it holds an advisory
// lock meanwhile, so that several processes migrating one database at once
// (replicas starting together) apply each migration once and all succeed.
func (db *DB) ApplyMigrations(ctx context.Context) ([]AppliedMigration, error) {
	p, err := db.migrationProvider()
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	out := make([]AppliedMigration, 0, len(res))
	for _, r := range res {
		m := AppliedMigration{Migration: Migration{Version: r.Source.Version, Name: path.Base(r.Source.Path)}, Took: r.Duration}
		db.log.Info("applied migration", "version", m.Version, "name", m.Name, "took", m.Took)
		out = append(out, m)
	}
	return out, nil
}

// SchemaStatus reports the schema version and the pending migrations. It
// only reads: a database never migrated has version 0 and everything
// pending.
func (db *DB) SchemaStatus(ctx context.Context) (SchemaStatus, error) {
	p, err := db.migrationProvider()
	if err != nil {
		return SchemaStatus{}, err
	}
	applied, err := db.appliedVersions(ctx)
	if err != nil {
		return SchemaStatus{}, err
	}
	var st SchemaStatus
	for _, v := range applied {
		st.Current = max(st.Current, v)
	}
	for _, s := range p.ListSources() {
		st.Latest = max(st.Latest, s.Version)
		if !slices.Contains(applied, s.Version) {
			st.Pending = append(st.Pending, Migration{Version: s.Version, Name: path.Base(s.Path)})
		}
	}
	return st, nil
}

// appliedVersions lists the migration versions recorded as applied; none
// when the version table does not exist yet.
func (db *DB) appliedVersions(ctx context.Context) ([]int64, error) {
	exists := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if db.dialect == postgresDialect {
		exists = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	}
	var versions []int64
	err := db.View(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRow(ctx, exists, versionTable).Scan(&n); err != nil {
			return fmt.Errorf("store: look for %s: %w", versionTable, err)
		}
		if n == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, "SELECT version_id FROM "+versionTable+" WHERE is_applied AND version_id > 0")
		if err != nil {
			return fmt.Errorf("store: read %s: %w", versionTable, err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return fmt.Errorf("store: read %s: %w", versionTable, err)
			}
			versions = append(versions, v)
		}
		return rows.Err()
	})
	return versions, err
}
