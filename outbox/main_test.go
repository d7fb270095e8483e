package outbox_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// databases runs f once on a fresh SQLite file and once on a fresh
// PostgreSQL database, each with the outbox table migrated.
func databases(t *testing.T, f func(t *testing.T, db *outbox.DB)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "test.db")
			if name == "postgres" {
				dsn = pgtest.Database(t)
			}
			f(t, openDB(t, dsn))
		})
	}
}

func openDB(t testing.TB, dsn string) *outbox.DB {
	t.Helper()
	ctx := context.Background()
	db, err := outbox.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := outbox.Migrate(ctx, db, ""); err != nil {
		t.Fatal(err)
	}
	return db
}

// startBroker starts an embedded Kafka broker (kfake over real sockets) with
// its log in a temporary directory, and returns its addresses.
func startBroker(t testing.TB) []string {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addrs()
}

// markerHeader marks the records readCommitted writes to find a partition's
// end; it leaves them out of what it returns.
const markerHeader = "streamfold-test-end-marker"

// readCommitted reads every committed record of topic written so far, per
// partition in offset order, as a consumer that reads committed records
// does (the relays publish in transactions: an aborted batch is never
// seen). A partition's end is where a marker record readCommitted writes to
// it lands — its high watermark alone is not, as the last offsets of a
// transactional partition are commit markers no consumer receives.
func readCommitted(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	sc, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	parts, err := sc.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	ends := map[int32]int64{}
	for _, p := range parts {
		rec := &kgo.Record{Topic: topic, Partition: p, Headers: []kgo.RecordHeader{{Key: markerHeader}}}
		if err := pr.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("marker to %s/%d: %v", topic, p, err)
		}
		ends[p] = rec.Offset
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: partitions %v not read to their markers", topic, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := ends[r.Partition]; ok && r.Offset >= end {
				delete(ends, r.Partition)
			}
			for _, h := range r.Headers {
				if h.Key == markerHeader {
					return
				}
			}
			recs = append(recs, r)
		})
	}
	return recs
}

// killAt runs the test named child in a child process (this test binary,
// with env added), waits until it prints a line starting with prefix — the
// point the test crashes it at — and kills it there with SIGKILL, so
// nothing after that point runs. It returns that line, or fails t when the
// child ends or wait passes first.
func killAt(t *testing.T, child string, env []string, prefix string, wait time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), prefix) {
				reached <- s.Text()
				return
			}
		}
		close(reached)
	}()
	var line string
	select {
	case line = <-reached:
	case <-time.After(wait):
	}
	_ = cmd.Process.Kill() // SIGKILL: nothing more runs in the child
	_ = cmd.Wait()
	if line == "" {
		t.Fatalf("%s did not reach %q; stderr:\n%s", child, prefix, stderr.String())
	}
	return line
}
