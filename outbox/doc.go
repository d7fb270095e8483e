// Package outbox keeps a service's database and Kafka in step without a
// distributed transaction: a service writes only to its database — its
// business rows and, in the same transaction, the events about them as rows
// of an outbox table — and a relay publishes the committed rows to Kafka.
//
// [Write] adds CloudEvents to the outbox inside the caller's *sql.Tx, so the
// rows and the events commit or roll back together. The table has the
// columns of Debezium's outbox event router (id, aggregatetype, aggregateid,
// type, payload, timestamp, headers), so a team can later relay it with
// Debezium instead, without touching a writer. [Migrate] creates it.
//
// [Open] opens the two databases the package supports through database/sql:
// SQLite (a pure-Go driver, no cgo; the embedded default, a file) and
// PostgreSQL (pgx).
package outbox
