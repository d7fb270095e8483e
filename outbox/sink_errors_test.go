package outbox

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestSinkClassify_GivenAnErrorOfApply_ThenItIsRetriedStopsTheSinkOrDeadLettersTheRecord(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "classify.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id text PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	_, sqliteMissing := db.Exec(`INSERT INTO missing (id) VALUES ('a')`)
	_, sqliteNotNull := db.Exec(`INSERT INTO t (id, name) VALUES ('a', NULL)`)
	_, sqliteColumn := db.Exec(`INSERT INTO t (id, nope) VALUES ('a', 'b')`)

	for _, tc := range []struct {
		name string
		err  error
		want sinkClass
	}{
		{"marked transient", fmt.Errorf("later: %w", ErrTransient), sinkRetry},
		{"bad connection", fmt.Errorf("exec: %w", driver.ErrBadConn), sinkRetry},
		{"pg serialization failure", &pgconn.PgError{Code: "40001"}, sinkRetry},
		{"pg deadlock", &pgconn.PgError{Code: "40P01"}, sinkRetry},
		{"pg connection failure", &pgconn.PgError{Code: "08006"}, sinkRetry},
		{"pg admin shutdown", fmt.Errorf("apply: %w", &pgconn.PgError{Code: "57P01"}), sinkRetry},
		{"pg disk full", &pgconn.PgError{Code: "53100"}, sinkRetry},
		{"pg undefined table", &pgconn.PgError{Code: "42P01"}, sinkFatal},
		{"pg syntax error", &pgconn.PgError{Code: "42601"}, sinkFatal},
		{"pg unique violation", &pgconn.PgError{Code: "23505"}, sinkPoisonClass},
		{"pg check violation", &pgconn.PgError{Code: "23514"}, sinkPoisonClass},
		{"pg invalid text", &pgconn.PgError{Code: "22P02"}, sinkPoisonClass},
		{"sqlite no such table", sqliteMissing, sinkFatal},
		{"sqlite no such column", sqliteColumn, sinkFatal},
		{"sqlite not null", sqliteNotNull, sinkPoisonClass},
		{"bad Rows set-up", fmt.Errorf("%w: table name", ErrSinkSQL), sinkFatal},
		{"the application's own", errors.New("customer has no e-mail"), sinkPoisonClass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error to classify")
			}
			if got := sinkClassify(tc.err); got != tc.want {
				t.Errorf("sinkClassify(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
