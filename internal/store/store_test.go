package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/resource"
)

// openTest opens a migrated SQLite store in a temporary directory.
func openTest(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "n.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestCRUDAndConstraints(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	reg, err := resource.NewRegistry(resource.All()...)
	if err != nil {
		t.Fatal(err)
	}
	nets, ports := reg.ByPlural("networks"), reg.ByPlural("ports")
	netID := "11111111-1111-1111-1111-111111111111"
	err = db.Tx(ctx, func(tx *Tx) error {
		return tx.Insert(ctx, nets, resource.Object{"id": netID, "project_id": "p1", "name": "n1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got resource.Object
	if err := db.View(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.Get(ctx, nets, netID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got["name"] != "n1" || got["revision_number"] != int64(0) {
		t.Fatalf("got %v", got)
	}
	got["name"] = "n2"
	if err := db.Tx(ctx, func(tx *Tx) error { return tx.Update(ctx, nets, got) }); err != nil {
		t.Fatal(err)
	}
	if got["revision_number"] != int64(1) {
		t.Fatalf("revision not bumped: %v", got["revision_number"])
	}
	// A port on a missing network violates the foreign key.
	err = db.Tx(ctx, func(tx *Tx) error {
		return tx.Insert(ctx, ports, resource.Object{"id": "22222222-2222-2222-2222-222222222222", "network_id": "nope", "mac_address": "fa:16:3e:00:00:01"})
	})
	if !errors.Is(err, ErrReferenced) {
		t.Fatalf("want ErrReferenced, got %v", err)
	}
	// Two ports with one MAC on a network violate the unique key.
	insertPort := func(id string) error {
		return db.Tx(ctx, func(tx *Tx) error {
			return tx.Insert(ctx, ports, resource.Object{"id": id, "network_id": netID, "mac_address": "fa:16:3e:00:00:01"})
		})
	}
	if err := insertPort("33333333-3333-3333-3333-333333333333"); err != nil {
		t.Fatal(err)
	}
	if err := insertPort("44444444-4444-4444-4444-444444444444"); !errors.Is(err, ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
	// The network is in use by a port.
	err = db.Tx(ctx, func(tx *Tx) error { return tx.Delete(ctx, nets, netID) })
	if !errors.Is(err, ErrReferenced) {
		t.Fatalf("want ErrReferenced deleting a used network, got %v", err)
	}
	var list []resource.Object
	_ = db.View(ctx, func(tx *Tx) error {
		list, err = tx.List(ctx, ports, Where{"network_id": {netID}})
		return err
	})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
}
