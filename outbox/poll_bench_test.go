package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
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

// BenchmarkPollingRelayLatency writes b.N rows, one transaction each, at
// most 200 a second (a service's steady load, not a flood: writing as fast
// as SQLite commits measures the writer's queue, not the relay), while a
// relay with the default options runs, and reports the time from each
// commit to the broker's acknowledgement (p50, p99): mostly the polling
// Interval (100 ms by default).
//
//	go test -run '^$' -bench PollingRelayLatency -benchtime 1000x ./outbox/
func BenchmarkPollingRelayLatency(b *testing.B) {
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

			var mu sync.Mutex
			committed := map[string]time.Time{}
			var latencies []time.Duration
			r := &outbox.PollingRelay{DB: db, Kafka: outbox.Kafka{Brokers: broker.Addrs()}}
			outbox.PollSetHooks(r, nil, func(rows []outbox.Row) {
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				for _, row := range rows {
					if c, ok := committed[row.ID]; ok {
						latencies = append(latencies, now.Sub(c))
						delete(committed, row.ID)
					}
				}
			})
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()

			b.ResetTimer()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := range b.N {
				<-tick.C
				e, err := codecs.NewEvent("urn:bench", "PaymentReceived", fmt.Sprintf("agg-%d", i%100), map[string]int{"n": i})
				if err != nil {
					b.Fatal(err)
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := outbox.Write(ctx, tx, pollTopic, e); err != nil {
					b.Fatal(err)
				}
				mu.Lock() // before the commit: the relay may publish the row at once
				committed[e.ID] = time.Now()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				committed[e.ID] = time.Now()
				mu.Unlock()
			}
			for r.Stats().Published < int64(b.N) {
				time.Sleep(time.Millisecond) // polling a counter
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			slices.Sort(latencies)
			if len(latencies) != b.N {
				b.Fatalf("%d latencies for %d rows", len(latencies), b.N)
			}
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
