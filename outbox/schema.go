package outbox

import (
	"context"
	"fmt"
	"regexp"
)

// DefaultTable is the outbox table's name unless a Writer says otherwise.
const DefaultTable = "outbox"

// Migrate creates the outbox table named table (DefaultTable when empty) if
// it does not exist. Its columns are those of Debezium's outbox event router
// plus seq, the commit-order position a polling relay reads by:
//
//	seq            ascending position (bigserial / INTEGER PRIMARY KEY)
//	id             the CloudEvents id, unique: the event's idempotency key
//	aggregatetype  what the router routes by; our relays publish to the topic of that name
//	aggregateid    the aggregate's id: the Kafka record key
//	type           the CloudEvents type
//	payload        the CloudEvents data (JSON)
//	timestamp      the CloudEvents time
//	headers        the other CloudEvents attributes as a JSON object
func Migrate(ctx context.Context, db *DB, table string) error {
	table, err := tableName(table)
	if err != nil {
		return err
	}
	var ddl string
	switch db.Dialect {
	case Postgres:
		ddl = `CREATE TABLE IF NOT EXISTS ` + table + ` (
	seq bigserial PRIMARY KEY,
	id text NOT NULL UNIQUE,
	aggregatetype text NOT NULL,
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload jsonb,
	timestamp timestamptz NOT NULL,
	headers jsonb NOT NULL DEFAULT '{}'
)`
	default:
		ddl = `CREATE TABLE IF NOT EXISTS ` + table + ` (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	aggregatetype TEXT NOT NULL,
	aggregateid TEXT NOT NULL,
	type TEXT NOT NULL,
	payload TEXT,
	timestamp TEXT NOT NULL,
	headers TEXT NOT NULL DEFAULT '{}'
)`
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("outbox: create table %s: %w", table, err)
	}
	return nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// tableName checks a table name before it is put into SQL text.
func tableName(name string) (string, error) {
	if name == "" {
		return DefaultTable, nil
	}
	if !identifier.MatchString(name) {
		return "", fmt.Errorf("outbox: table name %q: want letters, digits and _", name)
	}
	return name, nil
}
