package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/resource"
)

// inChunk bounds the ids one IN list carries, well under the bound
// parameters SQLite and PostgreSQL accept in one statement.
const inChunk = 500

// QueryIn runs q once per chunk of ids and calls row for every row. q has
// ? placeholders for args, and "(?...)" where the chunk of ids goes (as an
// IN list), after args. Lists use it to read what they need about many
// objects in a few queries instead of one per object.
func (t *Tx) QueryIn(ctx context.Context, q string, ids []string, row func(*sql.Rows) error, args ...any) error {
	if !strings.Contains(q, "(?...)") {
		return fmt.Errorf("store: QueryIn: query has no (?...) for the ids: %s", q)
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), inChunk)]
		ids = ids[len(chunk):]
		marks := "(" + strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + ")"
		all := append([]any{}, args...)
		for _, id := range chunk {
			all = append(all, id)
		}
		if err := t.eachRow(ctx, strings.Replace(q, "(?...)", marks, 1), all, row); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) eachRow(ctx context.Context, q string, args []any, row func(*sql.Rows) error) error {
	rows, err := t.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Owners returns the project_id of each of the resources ids that exists.
func (t *Tx) Owners(ctx context.Context, r *resource.Resource, ids []string) (map[string]string, error) {
	owners := make(map[string]string, len(ids))
	err := t.QueryIn(ctx, "SELECT id, project_id FROM "+r.Table+" WHERE id IN (?...)", ids, func(rows *sql.Rows) error {
		var id string
		var project sql.NullString
		if err := rows.Scan(&id, &project); err != nil {
			return err
		}
		owners[id] = project.String
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: owners of %s: %w", r.Plural, err)
	}
	return owners, nil
}

// ListIn is List of the resources whose attr (an indexed column) is one
// of values, in a few queries however many values there are.
func (t *Tx) ListIn(ctx context.Context, r *resource.Resource, attr string, values []string) ([]resource.Object, error) {
	var out []resource.Object
	for len(values) > 0 {
		chunk := values[:min(len(values), inChunk)]
		values = values[len(chunk):]
		in := make([]any, len(chunk))
		for i, v := range chunk {
			in[i] = v
		}
		objs, err := t.List(ctx, r, Where{attr: in})
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// ListByID reads up to limit resources matching where, in the byte order
// of their ids (descending with desc), after the id after ("": from the
// first). Lists sorted by id page through it without reading every row.
func (t *Tx) ListByID(ctx context.Context, r *resource.Resource, where Where, after string, desc bool, limit int) ([]resource.Object, error) {
	q, args, err := t.selectQuery(r, "data", where)
	if err != nil {
		return nil, err
	}
	// Byte order, as Go compares strings: PostgreSQL would otherwise sort
	// by the database's collation.
	id := "id"
	if t.db.dialect == postgresDialect {
		id = `id COLLATE "C"`
	}
	cmp, dir := " > ?", " ASC"
	if desc {
		cmp, dir = " < ?", " DESC"
	}
	if after != "" {
		if len(where) > 0 {
			q += " AND "
		} else {
			q += " WHERE "
		}
		q += id + cmp
		args = append(args, after)
	}
	var out []resource.Object
	err = t.eachRow(ctx, q+" ORDER BY "+id+dir+" LIMIT "+strconv.Itoa(limit), args, func(rows *sql.Rows) error {
		var data string
		if err := rows.Scan(&data); err != nil {
			return err
		}
		o, err := decode(data)
		out = append(out, o)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %s by id: %w", r.Plural, err)
	}
	return out, nil
}
