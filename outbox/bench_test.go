//go:build unix

package outbox_test

// What the benchmarks of the relays and the sink share. Each benchmark
// measures once at the sizes its STREAMFOLD_BENCH_* variables give (b.N is
// not a size: run them with -benchtime 1x, as `go run ./bench/run` does),
// in one process with the embedded broker, whose CPU is counted with the
// relay's; a PostgreSQL server's CPU is not.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

// benchWait bounds a benchmark's waits for rows it wrote: generous, reached
// only when something is broken.
const benchWait = 5 * time.Minute

// benchLatencyRate is the most single-row transactions a second the latency
// measurements write: a service's steady load, not a flood (writing as
// fast as SQLite commits measures the writer's queue, not the relay).
const benchLatencyRate = 200

// benchEnvInt is the positive integer in the environment variable name, or
// def when it is unset.
func benchEnvInt(b *testing.B, name string, def int) int {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchCPU is the CPU time (user and system) the process has used so far.
func benchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDatabases runs f as a sub-benchmark on a fresh SQLite file and on a
// fresh PostgreSQL database, each with the outbox table migrated.
func benchDatabases(b *testing.B, f func(b *testing.B, db *outbox.DB)) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "bench.db")
			if name == "postgres" {
				dsn = pgtest.Database(b)
			}
			f(b, openDB(b, dsn))
		})
	}
}

// benchUntil polls cond until it holds, failing b after benchWait.
func benchUntil(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(benchWait)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling pace
	}
}

// benchThroughput is one drain of a backlog: the rate and the process's CPU
// per item.
type benchThroughput struct {
	n       int
	elapsed time.Duration
	cpu     time.Duration
}

// benchMeasure starts what run starts, waits until done says n items went
// through, and returns the time and process CPU that took.
func benchMeasure(b *testing.B, n int, run func(), done func() bool) benchThroughput {
	b.Helper()
	cpu0, start := benchCPU(b), time.Now()
	run()
	benchUntil(b, fmt.Sprintf("%d items through", n), done)
	return benchThroughput{n: n, elapsed: time.Since(start), cpu: benchCPU(b) - cpu0}
}

func (t benchThroughput) report(b *testing.B, unit string) {
	b.ReportMetric(float64(t.n)/t.elapsed.Seconds(), unit+"/s")
	b.ReportMetric(float64(t.cpu.Microseconds())/float64(t.n), "cpu-µs/"+unit)
}

// benchLatency times rows from their writer's commit to the broker's
// acknowledgement of them, fed by a relay's test hook: by ID (the polling
// relay's hook names the rows) or by count (the log relay's counts them,
// in commit order).
type benchLatency struct {
	mu        sync.Mutex
	committed map[string]time.Time // by event ID, until acknowledged
	order     []time.Time          // commit times not yet acknowledged, in commit order
	acks      int                  // rows the count hook reported, before the timed ones too
	writing   bool                 // write has begun: every acknowledgement from now on is of a timed row
	extra     int                  // acknowledgements by count with no timed row waiting
	latencies []time.Duration
}

func newBenchLatency() *benchLatency {
	return &benchLatency{committed: map[string]time.Time{}}
}

// ackedRows is the polling relay's hook: rows not written by write (a
// backlog) are not timed.
func (l *benchLatency) ackedRows(rows []outbox.Row) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rows {
		if c, ok := l.committed[r.ID]; ok {
			l.latencies = append(l.latencies, now.Sub(c))
			delete(l.committed, r.ID)
		}
	}
}

// ackedCount is the log relay's hook. Its acknowledgements come in commit
// order, so the caller starts write only once every earlier row is
// acknowledged (acked), and each acknowledgement after that is of the
// oldest row write committed.
func (l *benchLatency) ackedCount(n int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks += n
	for range n {
		if len(l.order) == 0 {
			if l.writing {
				l.extra++
			}
			continue
		}
		l.latencies = append(l.latencies, now.Sub(l.order[0]))
		l.order = l.order[1:]
	}
}

// acked is how many rows the count hook reported.
func (l *benchLatency) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks
}

// write commits n transactions of one event each for aggregateType with w,
// at most benchLatencyRate a second, and waits until the relay acknowledged
// them all. PostgreSQL commits with synchronous_commit on, as a production
// server does (the test server runs with it off, where a commit's WAL
// reaches a walsender only at the WAL writer's next round).
func (l *benchLatency) write(b *testing.B, db *outbox.DB, w outbox.Writer, aggregateType string, n int) {
	b.Helper()
	ctx := context.Background()
	l.mu.Lock()
	l.writing = true
	l.mu.Unlock()
	tick := time.NewTicker(time.Second / benchLatencyRate)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		e := event(b, fmt.Sprintf("agg-%d", i%100), map[string]int{"n": i})
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if db.Dialect == outbox.Postgres {
			if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Write(ctx, tx, aggregateType, e); err != nil {
			b.Fatal(err)
		}
		// Locked across the commit: a relay may acknowledge the row before
		// Commit returns, and its hook must find the row's commit time.
		l.mu.Lock()
		err = tx.Commit()
		now := time.Now()
		l.committed[e.ID] = now
		l.order = append(l.order, now)
		l.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	benchUntil(b, "every timed row acknowledged", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.latencies) >= n
	})
}

// report reports the p50 and p99 of the latencies, failing b if the hooks
// saw acknowledgements of rows nobody wrote or more than were written.
func (l *benchLatency) report(b *testing.B, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.extra > 0 || len(l.latencies) != n {
		b.Fatalf("%d latencies for %d rows, %d acknowledgements of unwritten rows", len(l.latencies), n, l.extra)
	}
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
