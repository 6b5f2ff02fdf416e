// Package store owns persistence: the schema and its versioned migrations,
// and transactional access to resources on SQLite (embedded default) or
// PostgreSQL (for several server replicas), through one code path. Database
// constraints (unique addresses per network, unique segments, foreign keys)
// are translated into typed errors the service layer maps to Neutron errors.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/neutrino-sdn/neutrino/internal/resource"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Errors the store reports; callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict is a unique-constraint violation.
	ErrConflict = errors.New("unique constraint violated")
	// ErrReferenced is a foreign-key violation: the row is still referenced,
	// or references a row that does not exist.
	ErrReferenced = errors.New("foreign key constraint violated")
	// errRetry marks a transaction that lost a race and should be retried.
	errRetry = errors.New("transaction must be retried")
)

// ConstraintError says which constraint a write violated.
type ConstraintError struct {
	Kind       error // ErrConflict or ErrReferenced
	Constraint string
	Err        error
}

func (e *ConstraintError) Error() string {
	return fmt.Sprintf("%v (%s): %v", e.Kind, e.Constraint, e.Err)
}
func (e *ConstraintError) Is(target error) bool { return target == e.Kind }
func (e *ConstraintError) Unwrap() error        { return e.Err }

type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

// DB is an open store.
type DB struct {
	dialect dialect
	writer  *sql.DB // SQLite: one connection, so writers queue instead of failing busy
	reader  *sql.DB
	log     *slog.Logger
	// metrics, once RegisterMetrics made them, time every transaction.
	metrics atomic.Pointer[txMetrics]
}

// txMetrics are the store's Prometheus series.
type txMetrics struct {
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

// RegisterMetrics makes the store time its transactions and count their
// retries in series registered with reg: neutrino_db_transaction_duration_seconds
// (by kind, read or write, and result) and neutrino_db_transaction_retries_total.
func (db *DB) RegisterMetrics(reg prometheus.Registerer) error {
	m := &txMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "neutrino", Subsystem: "db", Name: "transaction_duration_seconds",
			Help:        "Duration of store transactions, retries included, by kind (read, write) and result (ok, error, conflict: still losing races after every retry).",
			ConstLabels: prometheus.Labels{"backend": db.Backend()},
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"kind", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neutrino", Subsystem: "db", Name: "transaction_retries_total",
			Help:        "Transactions run again after losing a race with another writer, by kind.",
			ConstLabels: prometheus.Labels{"backend": db.Backend()},
		}, []string{"kind"}),
	}
	if err := errors.Join(reg.Register(m.duration), reg.Register(m.retries)); err != nil {
		return fmt.Errorf("store: metrics: %w", err)
	}
	db.metrics.Store(m)
	return nil
}

// Open connects to url: "sqlite:PATH" or "postgres://…" (also "postgresql://").
func Open(ctx context.Context, url string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
		if path == "" {
			return nil, errors.New("store: sqlite URL needs a path, e.g. sqlite:/var/lib/neutrino/neutrino.db")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
			}
		}
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)"
		w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		w.SetMaxOpenConns(1)
		r, err := sql.Open("sqlite", dsn)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		r.SetMaxOpenConns(8)
		db := &DB{dialect: sqliteDialect, writer: w, reader: r, log: log}
		if err := w.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		return db, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		p, err := sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		p.SetMaxOpenConns(32)
		if err := p.PingContext(ctx); err != nil {
			p.Close()
			return nil, fmt.Errorf("store: connect to postgres: %w", err)
		}
		return &DB{dialect: postgresDialect, writer: p, reader: p, log: log}, nil
	}
	return nil, fmt.Errorf("store: unsupported database URL %q (want sqlite:PATH or postgres://…)", url)
}

// Close releases the connections.
func (db *DB) Close() error {
	err := db.writer.Close()
	if db.reader != db.writer {
		err = errors.Join(err, db.reader.Close())
	}
	return err
}

// Backend names the database in use, for logs and metrics.
func (db *DB) Backend() string {
	if db.dialect == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// Migrate brings the schema to the newest version; replicas starting
// together on one PostgreSQL take turns (see ApplyMigrations).
func (db *DB) Migrate(ctx context.Context) error {
	_, err := db.ApplyMigrations(ctx)
	return err
}

// Tx runs fn in a write transaction, retrying it when it loses a race with
// another writer (busy database, serialization failure, stale revision).
// fn must be safe to run more than once.
func (db *DB) Tx(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.writer, false, fn)
}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.reader, true, fn)
}

func (db *DB) run(ctx context.Context, pool *sql.DB, readOnly bool, fn func(*Tx) error) (err error) {
	kind := "write"
	if readOnly {
		kind = "read"
	}
	m := db.metrics.Load()
	if m != nil {
		start := time.Now()
		defer func() {
			result := "ok"
			if errors.Is(err, errRetry) || (err != nil && db.retryable(err)) {
				result = "conflict"
			} else if err != nil {
				result = "error"
			}
			m.duration.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
		}()
	}
	const attempts = 10
	for i := range attempts {
		err = db.once(ctx, pool, readOnly, fn)
		if err == nil || !db.retryable(err) {
			return err
		}
		if m != nil && i < attempts-1 {
			m.retries.WithLabelValues(kind).Inc()
		}
		// Back off with jitter so racing replicas spread out.
		d := time.Duration(1+rand.IntN(5<<i)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return fmt.Errorf("store: transaction still conflicting after %d attempts: %w", attempts, err)
}

func (db *DB) once(ctx context.Context, pool *sql.DB, readOnly bool, fn func(*Tx) error) (err error) {
	var opts *sql.TxOptions
	if readOnly && db.dialect == postgresDialect {
		opts = &sql.TxOptions{ReadOnly: true}
	}
	stx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin: %w", db.classify(err))
	}
	tx := &Tx{tx: stx, db: db}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", db.classify(err))
	}
	for _, fn := range tx.afterCommit {
		fn()
	}
	return nil
}

// Retry marks err so that Tx runs the whole transaction again: for a
// function that saw another writer's change it cannot yet act on.
func Retry(err error) error {
	return fmt.Errorf("%w (%w)", err, errRetry)
}

func (db *DB) retryable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// classify turns driver constraint errors into ConstraintError.
func (db *DB) classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &ConstraintError{Kind: ErrConflict, Constraint: constraintFromSQLite(se.Error()), Err: err}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &ConstraintError{Kind: ErrReferenced, Constraint: "foreign key", Err: err}
		}
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return &ConstraintError{Kind: ErrConflict, Constraint: pe.TableName + ":" + pe.ConstraintName, Err: err}
		case "23503":
			return &ConstraintError{Kind: ErrReferenced, Constraint: pe.TableName + ":" + pe.ConstraintName, Err: err}
		}
	}
	return err
}

// constraintFromSQLite extracts "table.col,…" from SQLite's message
// "UNIQUE constraint failed: ports.network_id, ports.mac_address".
func constraintFromSQLite(msg string) string {
	if i := strings.Index(msg, "failed: "); i >= 0 {
		return strings.TrimSuffix(msg[i+len("failed: "):], ")")
	}
	return msg
}

// Tx is one database transaction.
type Tx struct {
	tx          *sql.Tx
	db          *DB
	afterCommit []func()
}

// AfterCommit runs fn once the transaction has committed, in the order
// registered; it never runs for an attempt that rolled back (a retried
// transaction registers its callbacks again). The service engine uses it
// to announce changes only once they are durable.
func (t *Tx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// rebind rewrites ? placeholders to $n for PostgreSQL.
func (t *Tx) rebind(q string) string {
	if t.db.dialect != postgresDialect {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Exec runs a statement with ? placeholders.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(ctx, t.rebind(q), args...)
	return res, t.db.classify(err)
}

// Query runs a query with ? placeholders.
func (t *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, t.rebind(q), args...)
	return rows, t.db.classify(err)
}

// QueryRow runs a query expected to return at most one row.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.rebind(q), args...)
}

// Savepoint runs fn so that its writes are undone if it fails, without
// aborting the enclosing transaction (PostgreSQL aborts a transaction on any
// failed statement otherwise). Use it around inserts expected to conflict.
func (t *Tx) Savepoint(ctx context.Context, fn func() error) error {
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT sp"); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	if err := fn(); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sp"); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT sp")
	return err
}

// column maps an attribute name to its column name.
func column(attr string) string { return strings.ReplaceAll(attr, ":", "_") }

// Get loads one resource by id; ErrNotFound when absent.
func (t *Tx) Get(ctx context.Context, r *resource.Resource, id string) (resource.Object, error) {
	var data string
	err := t.QueryRow(ctx, "SELECT data FROM "+r.Table+" WHERE id = ?", id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", r.Singular, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s %s: %w", r.Singular, id, err)
	}
	return decode(data)
}

// Where is a list filter on indexed columns: attribute → accepted values
// (any of them matches; nil matches NULL).
type Where map[string][]any

// List loads resources matching the column filters, ordered by id.
func (t *Tx) List(ctx context.Context, r *resource.Resource, where Where) ([]resource.Object, error) {
	q, args, err := t.selectQuery(r, "data", where)
	if err != nil {
		return nil, err
	}
	rows, err := t.Query(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", r.Plural, err)
	}
	defer rows.Close()
	var out []resource.Object
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("store: list %s: %w", r.Plural, err)
		}
		o, err := decode(data)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Count counts resources matching the column filters.
func (t *Tx) Count(ctx context.Context, r *resource.Resource, where Where) (int, error) {
	q, args, err := t.selectQuery(r, "COUNT(*)", where)
	if err != nil {
		return 0, err
	}
	var n int
	if err := t.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count %s: %w", r.Plural, err)
	}
	return n, nil
}

func (t *Tx) selectQuery(r *resource.Resource, what string, where Where) (string, []any, error) {
	var conds []string
	var args []any
	for attr, vals := range where {
		if attr != "id" && attr != "project_id" && (r.Attr(attr) == nil || !r.Attr(attr).Column) {
			return "", nil, fmt.Errorf("store: %s.%s is not an indexed column", r.Plural, attr)
		}
		var alts []string
		var in []string
		for _, v := range vals {
			if v == nil {
				alts = append(alts, column(attr)+" IS NULL")
				continue
			}
			in = append(in, "?")
			args = append(args, fmt.Sprint(v))
		}
		if len(in) > 0 {
			alts = append(alts, column(attr)+" IN ("+strings.Join(in, ",")+")")
		}
		if len(alts) == 0 {
			alts = []string{"1=0"}
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	}
	q := "SELECT " + what + " FROM " + r.Table
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	return q, args, nil
}

// Insert writes a new resource. Timestamps and revision_number are set for
// standard resources.
func (t *Tx) Insert(ctx context.Context, r *resource.Resource, o resource.Object) error {
	if r.Standard {
		now := Now()
		o["created_at"], o["updated_at"] = now, now
		o["revision_number"] = int64(0)
	}
	cols := []string{"id", "revision_number", "data"}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", r.Singular, err)
	}
	args := []any{o["id"], revision(o), string(data)}
	if !r.NoProject {
		cols = append(cols, "project_id")
		args = append(args, str(o["project_id"]))
	}
	for _, c := range r.Columns() {
		if c == "project_id" {
			continue
		}
		cols = append(cols, column(c))
		args = append(args, columnValue(o[c]))
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",")
	_, err = t.Exec(ctx, "INSERT INTO "+r.Table+" ("+strings.Join(cols, ",")+") VALUES ("+marks+")", args...)
	if err != nil {
		return fmt.Errorf("store: insert %s: %w", r.Singular, err)
	}
	return nil
}

// Update writes a changed resource, bumping revision_number and updated_at.
// It fails with a retryable error if another writer changed the row since
// it was read (optimistic concurrency on revision_number).
func (t *Tx) Update(ctx context.Context, r *resource.Resource, o resource.Object) error {
	prev := revision(o)
	o["revision_number"] = prev + 1
	if r.Standard {
		o["updated_at"] = Now()
	}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", r.Singular, err)
	}
	sets := []string{"revision_number = ?", "data = ?"}
	args := []any{prev + 1, string(data)}
	for _, c := range r.Columns() {
		sets = append(sets, column(c)+" = ?")
		args = append(args, columnValue(o[c]))
	}
	args = append(args, o["id"], prev)
	res, err := t.Exec(ctx, "UPDATE "+r.Table+" SET "+strings.Join(sets, ", ")+" WHERE id = ? AND revision_number = ?", args...)
	if err != nil {
		return fmt.Errorf("store: update %s: %w", r.Singular, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: update %s: %w", r.Singular, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s %v changed concurrently: %w", r.Singular, o["id"], errRetry)
	}
	return nil
}

// Rewrite replaces the stored document of a resource inserted earlier in
// the same transaction, without bumping its revision: hooks use it to
// complete a document once rows that reference it exist.
func (t *Tx) Rewrite(ctx context.Context, r *resource.Resource, o resource.Object) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", r.Singular, err)
	}
	sets := []string{"data = ?"}
	args := []any{string(data)}
	for _, c := range r.Columns() {
		sets = append(sets, column(c)+" = ?")
		args = append(args, columnValue(o[c]))
	}
	args = append(args, o["id"])
	if _, err := t.Exec(ctx, "UPDATE "+r.Table+" SET "+strings.Join(sets, ", ")+" WHERE id = ?", args...); err != nil {
		return fmt.Errorf("store: rewrite %s: %w", r.Singular, err)
	}
	return nil
}

// Delete removes a resource; ErrNotFound when absent, ErrReferenced when
// other rows still point at it.
func (t *Tx) Delete(ctx context.Context, r *resource.Resource, id string) error {
	res, err := t.Exec(ctx, "DELETE FROM "+r.Table+" WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("store: delete %s %s: %w", r.Singular, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %s: %w", r.Singular, id, ErrNotFound)
	}
	return nil
}

// Now is the timestamp format Neutron uses: UTC, seconds, Z suffix.
func Now() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }

func decode(data string) (resource.Object, error) {
	d := json.NewDecoder(strings.NewReader(data))
	d.UseNumber()
	var o map[string]any
	if err := d.Decode(&o); err != nil {
		return nil, fmt.Errorf("store: decode: %w", err)
	}
	return resource.Normalise(o).(map[string]any), nil
}

func revision(o resource.Object) int64 {
	switch n := o["revision_number"].(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func columnValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}

func subFS() (fs.FS, error) {
	f, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return f, nil
}
