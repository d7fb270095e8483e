//go:build unix

package outbox_test

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamfold/streamfold/outbox"
)

// sinkBenchCPU is the CPU time (user and system) the process has used.
func sinkBenchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSinkThroughput measures how fast a sink projects a group table's
// changelog into SQL with Rows (an upsert or delete per record, 500 per
// transaction with the offsets): records per second and process CPU per
// record, on SQLite and PostgreSQL. The process holds the embedded broker
// too (its CPU is counted), PostgreSQL's server is another process (its CPU
// is not). Run with
//
//	STREAMFOLD_SINK_BENCH=20000 go test -run '^TestSinkThroughput$' -v ./outbox/
func TestSinkThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STREAMFOLD_SINK_BENCH"))
	if n <= 0 {
		t.Skip("a measurement: set STREAMFOLD_SINK_BENCH to a record count")
	}
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "bench-"+string(db.Dialect))
		keys := max(n/10, 1)
		records, fold := sinkHistory(keys, max(n/keys, 1))
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")
		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkRows("customers").Apply,
		}
		var commits atomic.Int64
		sink.OnCommit = func(outbox.SinkCommit) { commits.Add(1) }
		cpu0, t0 := sinkBenchCPU(), time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sink.Run(ctx) }()
		deadline := time.Now().Add(5 * time.Minute)
		tick := time.NewTicker(5 * time.Millisecond)
		for !sinkCaughtUp(t, db, sink.Name, end) {
			if time.Now().After(deadline) {
				t.Fatal("the sink did not reach the end in 5 minutes")
			}
			<-tick.C
		}
		tick.Stop()
		elapsed, cpu := time.Since(t0), sinkBenchCPU()-cpu0
		cancel()
		<-done
		sameContent(t, sinkContent(t, db, "customers"), fold)
		r := len(records)
		t.Logf("%s: %d records in %v: %.0f records/s, %.1f µs CPU per record, %d transactions",
			db.Dialect, r, elapsed.Round(time.Millisecond), float64(r)/elapsed.Seconds(), float64(cpu.Microseconds())/float64(r), commits.Load())
	})
}
