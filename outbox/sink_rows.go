package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Rows projects each key of a sink's source into one row of a SQL table:
// a value is upserted, a tombstone deletes the row. Its Apply is a
// Sink.Apply:
//
//	Apply: outbox.Rows[shop.Customer]{Table: "customers", Key: "id",
//		Columns: func(c shop.Customer) map[string]any {
//			return map[string]any{"name": c.Name, "email": c.Email, "state": c.State}
//		}}.Apply
//
// The statements are the same on SQLite and PostgreSQL:
//
//	INSERT INTO customers (id, email, name, state) VALUES ($1, $2, $3, $4)
//	ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, state = excluded.state
//	DELETE FROM customers WHERE id = $1
//
// Names are checked (letters, digits and _) and written unquoted, as a
// migration usually writes them; the key column must be the table's
// primary key or carry a unique constraint. A Rows is safe for concurrent
// use; it keeps nothing between calls.
type Rows[V any] struct {
	// Table is the table's name.
	Table string
	// Key is the column that holds the record's key.
	Key string
	// Columns gives a value's other columns and their values, by column
	// name; the key column, if it is there, is ignored (the record's key is
	// written). Returning nil deletes the key's row, as a tombstone does: a
	// value the read model leaves out.
	Columns func(V) map[string]any
}

// Clear deletes every row of the table inside tx: a Sink's Rebuild.
func (r Rows[V]) Clear(ctx context.Context, tx *sql.Tx) error {
	if err := r.check(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+r.Table); err != nil {
		return fmt.Errorf("outbox: clear %s: %w", r.Table, err)
	}
	return nil
}

// Apply upserts c's row, or deletes it for a tombstone.
func (r Rows[V]) Apply(ctx context.Context, tx *sql.Tx, c Change[V]) error {
	if err := r.check(); err != nil {
		return err
	}
	var cols map[string]any
	if c.Value != nil {
		cols = r.Columns(*c.Value)
	}
	if cols == nil {
		if _, err := sinkExec(ctx, tx, `DELETE FROM `+r.Table+` WHERE `+r.Key+` = $1`, c.Key); err != nil {
			return fmt.Errorf("outbox: delete %s %q: %w", r.Table, c.Key, err)
		}
		return nil
	}
	names := make([]string, 0, len(cols))
	for n := range cols {
		if n != r.Key {
			names = append(names, n)
		}
	}
	slices.Sort(names) // the same statement text for the same columns
	args := make([]any, 0, len(names)+1)
	args = append(args, c.Key)
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + r.Table + ` (` + r.Key)
	for _, n := range names {
		if !identifier.MatchString(n) {
			return fmt.Errorf("%w: %s column name %q: want letters, digits and _", ErrSinkSQL, r.Table, n)
		}
		b.WriteString(", " + n)
		args = append(args, cols[n])
	}
	b.WriteString(`) VALUES ($1`)
	for i := range names {
		b.WriteString(", $" + strconv.Itoa(i+2))
	}
	b.WriteString(`) ON CONFLICT (` + r.Key + `) DO `)
	if len(names) == 0 {
		b.WriteString(`NOTHING`)
	} else {
		b.WriteString(`UPDATE SET `)
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(n + " = excluded." + n)
		}
	}
	if _, err := sinkExec(ctx, tx, b.String(), args...); err != nil {
		return fmt.Errorf("outbox: upsert %s %q: %w", r.Table, c.Key, err)
	}
	return nil
}

// check refuses names that cannot go into SQL text as they are: a fault of
// the sink's set-up, which ends its Run.
func (r Rows[V]) check() error {
	switch {
	case !identifier.MatchString(r.Table):
		return fmt.Errorf("%w: table name %q: want letters, digits and _", ErrSinkSQL, r.Table)
	case !identifier.MatchString(r.Key):
		return fmt.Errorf("%w: key column name %q: want letters, digits and _", ErrSinkSQL, r.Key)
	case r.Columns == nil:
		return fmt.Errorf("%w: rows of %s: no Columns", ErrSinkSQL, r.Table)
	}
	return nil
}

// sinkStmts are the statements prepared in a sink's transaction, by text:
// a batch runs the same few statements hundreds of times, and SQLite would
// parse each one every time. The sink puts them in Apply's context; they
// close with the transaction.
type sinkStmts struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

type sinkStmtsKey struct{}

// sinkExec runs query in tx, through the transaction's prepared statement
// when the sink keeps them.
func sinkExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, _ := ctx.Value(sinkStmtsKey{}).(*sinkStmts)
	if st == nil || st.tx != tx {
		return tx.ExecContext(ctx, query, args...)
	}
	stmt := st.stmts[query]
	if stmt == nil {
		var err error
		if stmt, err = tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		st.stmts[query] = stmt
	}
	return stmt.ExecContext(ctx, args...)
}
