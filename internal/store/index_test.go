package store

import (
	"context"
	"testing"
)

// TestListFiltersHaveIndexes checks that the columns clients filter lists
// by most (ports by device_owner, device_id, network_id, binding host and MAC,
// floating IPs by port, subnets by network) lead an index on both
// backends, so such a list reads its rows instead of scanning the table.
func TestListFiltersHaveIndexes(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *DB) {
		filters := []struct{ table, column string }{
			{"ports", "device_owner"},
			{"ports", "device_id"},
			{"ports", "network_id"},
			{"ports", "binding_host_id"},
			{"ports", "mac_address"}, // bare-metal services find ports by MAC
			{"floatingips", "port_id"},
			{"subnets", "network_id"},
		}
		// Indexes of the table whose first column is the column.
		leading := `SELECT COUNT(*) FROM pragma_index_list(?) l, pragma_index_info(l.name) i WHERE i.seqno = 0 AND i.name = ?`
		if db.Backend() == "postgres" {
			leading = `SELECT COUNT(*) FROM pg_index x
				JOIN pg_class t ON t.oid = x.indrelid
				JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
				WHERE t.relname = ? AND a.attname = ?`
		}
		ctx := context.Background()
		err := db.View(ctx, func(tx *Tx) error {
			for _, f := range filters {
				var n int
				if err := tx.QueryRow(ctx, leading, f.table, f.column).Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					t.Errorf("no index on %s (%s): lists filtered by it scan the table", f.table, f.column)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
