package outbox_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
)

// TestLogRelay_Throughput measures how fast a relay drains a slot holding
// STREAMFOLD_TAIL_BENCH_ROWS rows (transient writes, 10 per transaction)
// into the embedded broker, and the process CPU per row (the relay and the
// in-process broker; PostgreSQL's walsender is another process):
//
//	STREAMFOLD_TAIL_BENCH_ROWS=20000 go test -run TestLogRelay_Throughput -v ./outbox/
func TestLogRelay_Throughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STREAMFOLD_TAIL_BENCH_ROWS"))
	if n <= 0 {
		t.Skip("set STREAMFOLD_TAIL_BENCH_ROWS to measure")
	}
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	r.StatusInterval = 0 // the default
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		es := make([]codecs.Event, min(10, n-i))
		for j := range es {
			es[j] = tailEvent(t, fmt.Sprintf("customer-%d", (i+j)%1000), i+j)
		}
		tailTx(t, db, outbox.Writer{Transient: true}, true, es...)
	}

	cpu0, start := tailCPU(t), time.Now()
	tailRun(t, r)
	deadline := start.Add(5 * time.Minute)
	for r.Stats().Published < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("published %d of %d", r.Stats().Published, n)
		}
		time.Sleep(time.Millisecond) // polling pace
	}
	elapsed, cpu := time.Since(start), tailCPU(t)-cpu0
	t.Logf("log relay: %d rows in %v: %.0f rows/s, %.1f µs CPU per row (relay + embedded broker)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), float64(cpu.Microseconds())/float64(n))
}

// TestLogRelay_Latency measures commit-to-acknowledgement latency: one
// transaction of one row at a time, written while the relay runs, timed
// from the writer's commit to the broker's acknowledgement of its row.
//
//	STREAMFOLD_TAIL_BENCH_ROWS=300 go test -run TestLogRelay_Latency -v ./outbox/
func TestLogRelay_Latency(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STREAMFOLD_TAIL_BENCH_ROWS"))
	if n <= 0 {
		t.Skip("set STREAMFOLD_TAIL_BENCH_ROWS to measure")
	}
	n = min(n, 300)
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	acked := make(chan time.Time, n)
	outbox.TailSetAfterAck(r, func(int) { acked <- time.Now() })
	tailRun(t, r)
	tailEventually(t, "the relay to stream", func() bool { return r.Stats().Streaming })
	lat := make([]time.Duration, 0, n)
	ctx := context.Background()
	for i := range n {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The test server runs with synchronous_commit=off, where a commit's
		// WAL reaches the walsender only at the WAL writer's next round
		// (wal_writer_delay, 200 ms): measure as a production server commits.
		if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			t.Fatal(err)
		}
		if err := (outbox.Writer{Transient: true}).Write(ctx, tx, "payments", tailEvent(t, "o1", i)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		select {
		case at := <-acked:
			lat = append(lat, at.Sub(committed))
		case <-time.After(tailWait):
			t.Fatalf("row %d not acknowledged", i)
		}
	}
	slices.Sort(lat)
	t.Logf("log relay: commit to acknowledgement over %d single-row transactions: p50 %v, p99 %v, max %v",
		n, lat[n/2].Round(10*time.Microsecond), lat[n*99/100].Round(10*time.Microsecond), lat[n-1].Round(10*time.Microsecond))
}

func tailCPU(t *testing.T) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		t.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
