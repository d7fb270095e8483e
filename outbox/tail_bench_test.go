//go:build unix

package outbox_test

import (
	"fmt"
	"testing"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
)

// BenchmarkOutboxLogRelay measures a log relay (PostgreSQL only: it reads
// the write-ahead log) with the default options, in two steps on one
// running relay. Throughput: it drains a slot holding
// STREAMFOLD_BENCH_OUTBOX_ROWS transient rows (10 a transaction, written
// before it starts): row/s and the process's CPU per row (cpu-µs/row;
// PostgreSQL's walsender is another process). Latency:
// STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS single-row transactions written at
// most 200 a second while it streams, timed from each commit to the
// broker's acknowledgement of its row (p50-µs, p99-µs).
//
//	STREAMFOLD_BENCH_OUTBOX_ROWS=20000 go test -run '^$' -bench '^BenchmarkOutboxLogRelay$' -benchtime 1x ./outbox/
func BenchmarkOutboxLogRelay(b *testing.B) {
	rows := benchEnvInt(b, "STREAMFOLD_BENCH_OUTBOX_ROWS", 20000)
	timed := benchEnvInt(b, "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS", 500)
	b.Run("postgres", func(b *testing.B) {
		dsn, db, slot := tailDB(b)
		brokers := tailBroker(b)
		r := tailRelay(b, dsn, slot, brokers)
		r.StatusInterval, r.Backoff, r.MaxBackoff = 0, 0, 0 // the defaults
		lat := newBenchLatency()
		outbox.TailSetAfterAck(r, lat.ackedCount)
		if err := r.Prepare(b.Context()); err != nil { // the slot, so it keeps the backlog
			b.Fatal(err)
		}
		w := outbox.Writer{Transient: true}
		for i := 0; i < rows; i += 10 {
			es := make([]codecs.Event, min(10, rows-i))
			for j := range es {
				es[j] = tailEvent(b, fmt.Sprintf("customer-%d", (i+j)%1000), i+j)
			}
			tailTx(b, db, w, true, es...)
		}

		b.ResetTimer()
		// The hook's count, not Stats: the timed rows must find every
		// acknowledgement of the backlog counted before them.
		tp := benchMeasure(b, rows, func() { tailRun(b, r) }, func() bool { return lat.acked() >= rows })
		lat.write(b, db, w, "payments", timed)
		b.StopTimer()

		if got, want := len(readCommitted(b, brokers, "payments")), rows+timed; got != want || r.Stats().Published != int64(want) {
			b.Fatalf("%d records on the topic, %d published; want %d", got, r.Stats().Published, want)
		}
		tp.report(b, "row")
		lat.report(b, timed)
	})
}
