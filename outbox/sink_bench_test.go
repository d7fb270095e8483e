//go:build unix

package outbox_test

import (
	"context"
	"testing"

	"github.com/streamfold/streamfold/outbox"
)

// BenchmarkOutboxSink measures how fast a sink projects a group table's
// changelog into SQL with Rows (an upsert or delete per record, 500 a
// transaction with the offsets), on SQLite and on PostgreSQL: about
// STREAMFOLD_BENCH_SINK_RECORDS records (versions of a tenth as many keys,
// then tombstones and rewrites of some), produced before it starts.
// Reports rec/s and the process's CPU per record (cpu-µs/rec), and checks
// the SQL table ends equal to the changelog's table.
//
//	STREAMFOLD_BENCH_SINK_RECORDS=20000 go test -run '^$' -bench '^BenchmarkOutboxSink$' -benchtime 1x ./outbox/
func BenchmarkOutboxSink(b *testing.B) {
	n := benchEnvInt(b, "STREAMFOLD_BENCH_SINK_RECORDS", 20000)
	brokers := startBroker(b)
	benchDatabases(b, func(b *testing.B, db *outbox.DB) {
		tbl := sinkTable(b, brokers, "bench-"+string(db.Dialect))
		keys := max(n/10, 1)
		records, fold := sinkHistory(keys, max(n/keys, 1))
		end := sinkProduce(b, brokers, tbl.Name, records)
		sinkSchema(b, db, "customers")
		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkRows("customers").Apply,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)

		b.ResetTimer()
		tp := benchMeasure(b, len(records), func() { go func() { done <- sink.Run(ctx) }() },
			func() bool { return sinkCaughtUp(b, db, sink.Name, end) })
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("sink ended with %v, want nil once stopped", err)
		}

		sameContent(b, sinkContent(b, db, "customers"), fold)
		tp.report(b, "rec")
	})
}
