//go:build unix

package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamfold/streamfold/outbox"
)

// BenchmarkOutboxPollingRelay measures a polling relay with the default
// options on SQLite and on PostgreSQL, in two steps on one running relay.
// Throughput: it drains STREAMFOLD_BENCH_OUTBOX_ROWS committed rows (100
// aggregates, 100 rows a transaction, written before it starts): row/s and
// the process's CPU per row (cpu-µs/row). Latency:
// STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS single-row transactions written at
// most 200 a second while it runs, timed from each commit to the broker's
// acknowledgement of its row (p50-µs, p99-µs): mostly the polling Interval
// (100 ms by default) a new row waits for.
//
//	STREAMFOLD_BENCH_OUTBOX_ROWS=10000 go test -run '^$' -bench '^BenchmarkOutboxPollingRelay$' -benchtime 1x ./outbox/
func BenchmarkOutboxPollingRelay(b *testing.B) {
	rows := benchEnvInt(b, "STREAMFOLD_BENCH_OUTBOX_ROWS", 10000)
	timed := benchEnvInt(b, "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS", 500)
	benchDatabases(b, func(b *testing.B, db *outbox.DB) {
		brokers := startBroker(b)
		pollCreateTopicTB(b, brokers)
		for i := 0; i < rows; i += 100 {
			subjects := make([]string, min(100, rows-i))
			for j := range subjects {
				subjects[j] = fmt.Sprintf("agg-%d", (i+j)%100)
			}
			pollWrite(b, db, true, subjects...)
		}
		lat := newBenchLatency()
		r := &outbox.PollingRelay{DB: db, Kafka: outbox.Kafka{Brokers: brokers}}
		outbox.PollSetHooks(r, nil, lat.ackedRows)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		defer func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		}()

		b.ResetTimer()
		// Stats, not Pending: counting the table would cost the database
		// more than the relay.
		tp := benchMeasure(b, rows, func() { go func() { done <- r.Run(ctx) }() },
			func() bool { return r.Stats().Published >= int64(rows) })
		lat.write(b, db, outbox.Writer{}, pollTopic, timed)
		b.StopTimer()

		benchUntil(b, "the outbox table empty", func() bool { n, err := r.Pending(ctx); return err == nil && n == 0 })
		if got, want := len(readCommitted(b, brokers, pollTopic)), rows+timed; got != want || r.Stats().Published != int64(want) {
			b.Fatalf("%d records on the topic, %d published; want %d", got, r.Stats().Published, want)
		}
		tp.report(b, "row")
		lat.report(b, timed)
	})
}
