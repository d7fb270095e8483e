package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgconn"
)

// SinkOffsetsTable holds, for every sink, the next offset to read of each
// partition of its source. A sink writes its row in the same transaction as
// the effects of the records before that offset.
const SinkOffsetsTable = "streamfold_sink_offsets"

// sinkOldest is the next offset stored for a partition the sink has not
// read yet: it starts from the earliest record.
const sinkOldest = sarama.OffsetOldest

// sinkMigrate creates SinkOffsetsTable if it is missing (the same DDL on
// both databases).
func sinkMigrate(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}) error {
	ddl := `CREATE TABLE IF NOT EXISTS ` + SinkOffsetsTable + ` (
	sink text NOT NULL,
	topic text NOT NULL,
	partition integer NOT NULL,
	next_offset bigint NOT NULL,
	PRIMARY KEY (sink, topic, partition)
)`
	_, err := db.ExecContext(ctx, ddl)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07" || pe.Code == "42710") {
		// Two sinks created it at once: PostgreSQL's IF NOT EXISTS does not
		// cover the race (a duplicate in its catalogue). Now it exists.
		_, err = db.ExecContext(ctx, ddl)
	}
	if err != nil {
		return fmt.Errorf("outbox: create table %s: %w", SinkOffsetsTable, err)
	}
	return nil
}

// sinkLoadOffsets reads a sink's stored offsets of topic, first adding a
// row (the earliest record is next) for each partition that has none, so
// that every later update is a compare-and-set on an existing row.
func sinkLoadOffsets(ctx context.Context, db *DB, sink, topic string, parts []int32) (map[int32]int64, error) {
	for _, p := range parts {
		if _, err := db.ExecContext(ctx, `INSERT INTO `+SinkOffsetsTable+` (sink, topic, partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT (sink, topic, partition) DO NOTHING`,
			sink, topic, p, sinkOldest); err != nil {
			return nil, fmt.Errorf("outbox: sink %s: add offsets of %s/%d: %w", sink, topic, p, err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT partition, next_offset FROM `+SinkOffsetsTable+` WHERE sink = $1 AND topic = $2`, sink, topic)
	if err != nil {
		return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
	}
	defer rows.Close()
	next := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
		}
		next[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
	}
	return next, nil
}

// ResetSink forgets where the sink named name is, so its next Run reads its
// source from the earliest record again: it deletes the sink's rows of
// SinkOffsetsTable. To rebuild a read model, empty its tables and call
// ResetSink in one transaction, with the sink stopped:
//
//	tx, _ := db.BeginTx(ctx, nil)
//	tx.ExecContext(ctx, `DELETE FROM customers`)
//	outbox.ResetSink(ctx, tx, "customers-sql")
//	tx.Commit()
//
// exec is a *sql.Tx, a *DB or a *sql.DB.
func ResetSink(ctx context.Context, exec interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, name string) error {
	if err := sinkMigrate(ctx, exec); err != nil {
		return err
	}
	if _, err := exec.ExecContext(ctx, `DELETE FROM `+SinkOffsetsTable+` WHERE sink = $1`, name); err != nil {
		return fmt.Errorf("outbox: reset sink %s: %w", name, err)
	}
	return nil
}
