package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

// BenchmarkPollingRelay drains b.N committed rows (100 aggregates, written
// beforehand) to the embedded broker with the relay's default batch and
// reports rows/s and the process's CPU per row. The CPU includes the
// in-process broker (and, for SQLite, the database engine); a PostgreSQL
// server's CPU is not counted.
//
//	go test -run '^$' -bench PollingRelay -benchtime 20000x ./outbox/
func BenchmarkPollingRelay(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "bench.db")
			if name == "postgres" {
				dsn = pgtest.Database(b)
			}
			ctx := context.Background()
			db, err := outbox.Open(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := outbox.Migrate(ctx, db, ""); err != nil {
				b.Fatal(err)
			}
			broker, err := embedded.Start(embedded.Config{Dir: b.TempDir(), Listen: "127.0.0.1:0", Partitions: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer broker.Close()
			pollCreateTopicTB(b, broker.Addrs())
			for i := 0; i < b.N; i += 100 {
				subjects := make([]string, min(100, b.N-i))
				for j := range subjects {
					subjects[j] = fmt.Sprintf("agg-%d", (i+j)%100)
				}
				pollWrite(b, db, true, subjects...)
			}
			r := &outbox.PollingRelay{DB: db, Kafka: outbox.Kafka{Brokers: broker.Addrs()}, Interval: time.Millisecond}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)

			b.ResetTimer()
			cpu0, start := pollCPU(), time.Now()
			go func() { done <- r.Run(runCtx) }()
			// Stats, not Pending: counting the table would cost the
			// database more than the relay
			for r.Stats().Published < int64(b.N) {
				time.Sleep(time.Millisecond) // polling a counter
			}
			elapsed, cpu := time.Since(start), pollCPU()-cpu0
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if n, err := r.Pending(ctx); err != nil || n != 0 || r.Stats().Published != int64(b.N) {
				b.Fatalf("published %d rows, %d (%v) left; want %d, none left", r.Stats().Published, n, err, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
		})
	}
}

// pollCPU is the process's CPU time so far (user and system).
func pollCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
