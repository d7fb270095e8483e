package outbox

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// sinkClass is what a sink does about an error of Apply.
type sinkClass int

const (
	sinkPoisonClass sinkClass = iota // the record's fault: dead-letter it
	sinkRetry                        // the database's passing trouble: roll back, wait, try again
	sinkFatal                        // the statement or schema is wrong: stop (ErrSinkSQL)
)

// SQLite primary result codes (extended codes keep them in the low byte).
const (
	sqliteError    = 1  // SQL error or missing database object
	sqliteBusy     = 5  // the database file is locked
	sqliteLocked   = 6  // a table in the database is locked
	sqliteNoMem    = 7  // out of memory
	sqliteReadOnly = 8  // attempt to write a readonly database
	sqliteIOErr    = 10 // disk I/O error
	sqliteFull     = 13 // database or disk is full
	sqliteProtocol = 15 // database lock protocol error
	sqliteAuth     = 23 // authorization denied
)

// sinkClassify sorts an error of Apply: transient errors are those a wait
// can cure (a lost connection, a lock, a serialization failure, a full
// disk), fatal ones say the SQL is wrong whatever the record (PostgreSQL's
// class 42, SQLite's SQLITE_ERROR), and everything else is the record's.
func sinkClassify(err error) sinkClass {
	if errors.Is(err, ErrSinkSQL) {
		return sinkFatal
	}
	if errors.Is(err, ErrTransient) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sinkRetry
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03", // serialization failure, deadlock, lock not available
			strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"), // insufficient resources
			strings.HasPrefix(pe.Code, "57"), // operator intervention: shutdown, statement timeout
			strings.HasPrefix(pe.Code, "58"): // system error (I/O)
			return sinkRetry
		case strings.HasPrefix(pe.Code, "42"), strings.HasPrefix(pe.Code, "0A"): // syntax error or access rule violation, feature not supported
			return sinkFatal
		}
		return sinkPoisonClass
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteIOErr, sqliteFull, sqliteProtocol:
			return sinkRetry
		case sqliteError, sqliteReadOnly, sqliteAuth:
			return sinkFatal
		}
		return sinkPoisonClass
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return sinkRetry
	}
	var ne net.Error
	var pce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &pce) {
		return sinkRetry
	}
	return sinkPoisonClass
}
