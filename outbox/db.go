package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", pure Go
)

// Dialect names the SQL database behind a DB.
type Dialect string

// The supported databases.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database/sql handle that knows which database it talks to, for
// the statements that differ between them (locking, upserts).
type DB struct {
	*sql.DB
	Dialect Dialect
}

// ErrUnsupportedURL is returned by Open for a URL it cannot tell the database of.
var ErrUnsupportedURL = errors.New("outbox: unsupported database URL")

// Open opens the database at dsn and checks that it answers:
//   - postgres://… or postgresql://… — PostgreSQL, through pgx;
//   - sqlite:PATH, file:PATH or a plain file path — SQLite (the file and its
//     directories are created when missing), in WAL mode with
//     a 10 s busy timeout, so several connections (a writer and a relay) wait
//     for each other instead of failing with SQLITE_BUSY.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("outbox: open postgres: %w", err)
		}
		db = &DB{DB: sdb, Dialect: Postgres}
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("%w: %s (want postgres://… or a SQLite file path)", ErrUnsupportedURL, Redact(dsn))
	default:
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		if path == "" {
			return nil, fmt.Errorf("%w: empty SQLite path", ErrUnsupportedURL)
		}
		// a new database's file goes where it is asked, directories and all
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("outbox: sqlite %s: %w", path, err)
		}
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(ON)")
		q.Add("_txlock", "immediate") // a writing transaction takes the lock up front: no upgrade deadlocks
		sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("outbox: open sqlite %s: %w", path, err)
		}
		db = &DB{DB: sdb, Dialect: SQLite}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: connect to %s: %w", Redact(dsn), err)
	}
	return db, nil
}

// Redact is dsn with its password hidden, for logs and errors.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}
