package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrBackupExists is returned by Backup when the target file exists.
var ErrBackupExists = errors.New("backup file already exists")

// ErrBackupUnsupported is returned by Backup on PostgreSQL, whose own tools
// make consistent online copies.
var ErrBackupUnsupported = errors.New("store: neutrino backs up SQLite stores only; back up PostgreSQL with pg_dump, e.g. pg_dump --format=custom --file=neutrino.dump 'postgres://…' (restore with pg_restore)")

// Backup writes a consistent copy of an SQLite store to the new file to,
// while the store stays in use: SQLite's VACUUM INTO reads one snapshot,
// so the copy holds every transaction committed before it began and none
// after. The copy is a complete store (open it with "sqlite:"+to) whose
// hosts' notification sequences start a new epoch, as a new database's
// do: agents that heard later numbers from the original resync at once
// when a server runs on the copy, instead of skipping its numbers as
// already seen. Backup never overwrites: an existing to is
// ErrBackupExists, and a failed copy leaves no file behind.
func (db *DB) Backup(ctx context.Context, to string) error {
	if db.dialect != sqliteDialect {
		return ErrBackupUnsupported
	}
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("store: backup to %s: %w", to, ErrBackupExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	dir := filepath.Dir(to)
	// Write beside the target, then link it into place: the link fails
	// rather than replace a file that appeared meanwhile, and a half-written
	// copy never carries the target's name.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(to)+".partial-*")
	if err != nil {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	// VACUUM INTO wants a path that does not exist or is empty; the empty
	// temporary file keeps its 0600 mode, which suits a copy of the store.
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	if _, err := db.reader.ExecContext(ctx, "VACUUM INTO ?", tmpPath); err != nil {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	if err := newEpochs(ctx, tmpPath); err != nil {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	if err := os.Link(tmpPath, to); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store: backup to %s: %w", to, ErrBackupExists)
		}
		return fmt.Errorf("store: backup to %s: %w", to, err)
	}
	return syncFile(dir)
}

// newEpochs forgets the hosts' notification sequences in the SQLite file
// at path; the outbox starts each host again under a new epoch.
func newEpochs(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, "DELETE FROM host_sequences")
	if err != nil {
		err = fmt.Errorf("start new notification epochs: %w", err)
	}
	return errors.Join(err, c.Close())
}

// syncFile flushes a file or directory to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
