package outbox_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

// pollWait bounds every wait of these tests: generous for a loaded 2-core
// machine, reached only when something is broken.
const pollWait = 30 * time.Second

const pollTopic = "payments"

// pollDSNs runs f once with a fresh SQLite file and once with a fresh
// PostgreSQL database, for tests that open the database more than once
// (a child process, a second relay).
func pollDSNs(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "test.db")
			if name == "postgres" {
				dsn = pgtest.Database(t)
			}
			f(t, dsn)
		})
	}
}

// pollBroker starts an embedded broker with the payments topic.
func pollBroker(t *testing.T) []string {
	t.Helper()
	addrs := startBroker(t)
	pollCreateTopic(t, addrs)
	return addrs
}

func pollSaramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "poll-test"
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Consumer.MaxWaitTime = 50 * time.Millisecond
	return c
}

func pollCreateTopic(t *testing.T, addrs []string) { pollCreateTopicTB(t, addrs) }

func pollCreateTopicTB(t testing.TB, addrs []string, configs ...string) {
	t.Helper()
	entries := map[string]*string{}
	for i := 0; i+1 < len(configs); i += 2 {
		entries[configs[i]] = &configs[i+1]
	}
	admin, err := sarama.NewClusterAdmin(addrs, pollSaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(pollTopic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1, ConfigEntries: entries}, false); err != nil {
		t.Fatalf("create topic %s: %v", pollTopic, err)
	}
}

// pollRelay is a relay with test-sized waits.
func pollRelay(t *testing.T, db *outbox.DB, addrs []string, instance string) *outbox.PollingRelay {
	return &outbox.PollingRelay{
		DB: db, Kafka: outbox.Kafka{Brokers: addrs}, Batch: 16,
		Interval: 5 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Lease: 2 * time.Second, Instance: instance, Logger: pollLogger(t),
	}
}

// pollLogger logs to the test's log.
func pollLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(pollTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type pollTestWriter struct{ t *testing.T }

func (w pollTestWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(b)))
	return len(b), nil
}

// pollStart runs r until the returned stop is called (at the latest when
// the test ends); stop waits for Run to return and checks it returned nil.
func pollStart(t *testing.T, r *outbox.PollingRelay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil after the context ended", err)
				}
			case <-time.After(pollWait):
				t.Errorf("Run did not return within %v of its context ending", pollWait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// pollEventually waits until cond holds, failing the test after pollWait.
func pollEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting until %s", pollWait, what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

// pollDrained waits until the outbox table is empty.
func pollDrained(t *testing.T, db *outbox.DB) {
	t.Helper()
	pollEventually(t, "the outbox is empty", func() bool { return count(t, db) == 0 })
}

// pollWrite writes one event per subject in one transaction, committed or
// rolled back, and returns them.
func pollWrite(t testing.TB, db *outbox.DB, commit bool, subjects ...string) []codecs.Event {
	t.Helper()
	ctx := context.Background()
	events := make([]codecs.Event, len(subjects))
	for i, s := range subjects {
		e, err := codecs.NewEvent("urn:test", "PaymentReceived", s, map[string]any{"subject": s, "n": i})
		if err != nil {
			t.Fatal(err)
		}
		events[i] = e
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, pollTopic, events...); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// pollRecord is a record read back from the topic.
type pollRecord struct {
	key         string
	partition   int32
	offset      int64
	value       []byte
	contentType string
	event       codecs.Event
}

// pollRead reads every committed record of the payments topic written so
// far, in partition and offset order.
func pollRead(t *testing.T, addrs []string) []pollRecord {
	t.Helper()
	var recs []pollRecord
	for _, m := range readCommitted(t, addrs, pollTopic) {
		r := pollRecord{key: string(m.Key), partition: m.Partition, offset: m.Offset, value: m.Value}
		for _, h := range m.Headers {
			if h.Key == codecs.ContentTypeHeader {
				r.contentType = string(h.Value)
			}
		}
		var err error
		if r.event, err = (codecs.CloudEvents{}).Decode(m.Value); err != nil {
			t.Fatalf("record %d/%d is not a CloudEvent: %v", m.Partition, m.Offset, err)
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b pollRecord) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
	})
	return recs
}

// pollCheck checks that recs hold every event of want exactly at least
// once, each aggregate's in the order written (want's order per subject),
// keyed by the aggregate id, and that a duplicate is the same record as the
// first copy. It returns the number of duplicates.
func pollCheck(t *testing.T, recs []pollRecord, want []codecs.Event) (duplicates int) {
	t.Helper()
	wantBy := map[string][]string{} // aggregate → ids in write order
	for _, e := range want {
		wantBy[e.Subject] = append(wantBy[e.Subject], e.ID)
	}
	gotBy := map[string][]string{}
	first := map[string]pollRecord{}
	for _, r := range recs {
		if r.key != r.event.Subject {
			t.Errorf("record %s keyed %q, want its aggregate id %q", r.event.ID, r.key, r.event.Subject)
		}
		if f, ok := first[r.event.ID]; ok {
			duplicates++
			if !bytes.Equal(f.value, r.value) || f.key != r.key {
				t.Errorf("duplicate of %s differs from the first copy:\n%s\n%s", r.event.ID, f.value, r.value)
			}
			continue
		}
		first[r.event.ID] = r
		gotBy[r.key] = append(gotBy[r.key], r.event.ID)
	}
	lost := 0
	for agg, ids := range wantBy {
		if got := gotBy[agg]; !slices.Equal(got, ids) {
			t.Errorf("aggregate %s: ids on Kafka (first copies, in offset order)\n%v\nwant the write order\n%v", agg, got, ids)
		}
		for _, id := range ids {
			if _, ok := first[id]; !ok {
				lost++
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events lost", lost, len(want))
	}
	if extra := len(first) + lost - len(want); extra != 0 {
		t.Errorf("%d records on Kafka that were never committed", extra)
	}
	return duplicates
}

func TestPollingRelay_GivenCommittedAndRolledBackTransactions_ThenTheCommittedRowsArePublishedAndTheTableEmpties(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		addrs := pollBroker(t)
		var want []codecs.Event
		want = append(want, pollWrite(t, db, true, "o1", "o2", "o1")...)
		rolledBack := pollWrite(t, db, false, "o3", "o1")
		want = append(want, pollWrite(t, db, true, "o2")...)
		r := pollRelay(t, db, addrs, "")
		pollStart(t, r)
		pollDrained(t, db)

		recs := pollRead(t, addrs)
		if dups := pollCheck(t, recs, want); dups != 0 {
			t.Errorf("%d duplicates without a crash", dups)
		}
		byID := map[string]codecs.Event{}
		for _, e := range want {
			byID[e.ID] = e
		}
		for _, r := range recs {
			w := byID[r.event.ID]
			if r.contentType != codecs.ContentTypeStructured {
				t.Errorf("record %s content-type %q, want %q", r.event.ID, r.contentType, codecs.ContentTypeStructured)
			}
			got := r.event
			if got.ID != w.ID || got.Source != w.Source || got.Type != w.Type || got.Subject != w.Subject ||
				!got.Time.Equal(w.Time) || got.DataContentType != w.DataContentType || got.SpecVersion != w.SpecVersion || !pollSameJSON(got.Data, w.Data) {
				t.Errorf("event on Kafka\n%+v\nwant as written\n%+v", got, w)
			}
		}
		for _, e := range rolledBack {
			if _, ok := byID[e.ID]; ok {
				t.Fatal("test bug: rolled-back id among the committed ones")
			}
		}
		if s := r.Stats(); s.Published != int64(len(want)) || s.Failing || s.DeadLettered != 0 {
			t.Errorf("stats = %+v, want %d published, not failing, none dead", s, len(want))
		}
		if n, err := r.Pending(context.Background()); err != nil || n != 0 {
			t.Errorf("Pending = %d, %v; want 0", n, err)
		}
	})
}

func pollSameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// pollWriters writes rows in many small transactions from several
// goroutines, each owning its aggregates (so each aggregate's write order
// is defined), some rolled back, and returns the committed events.
func pollWriters(t *testing.T, db *outbox.DB, writers, aggregates, txs int) []codecs.Event {
	t.Helper()
	var mu sync.Mutex
	var all []codecs.Event
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs <- fmt.Errorf("writer %d: %v", w, r)
				}
			}()
			for i := range txs {
				subjects := make([]string, 1+(i*7+w)%4)
				for j := range subjects {
					subjects[j] = fmt.Sprintf("w%d-a%d", w, (i*3+j*5)%aggregates)
				}
				commit := i%7 != 3
				es := pollWrite(pollFatalTB{t}, db, commit, subjects...)
				if commit {
					mu.Lock()
					all = append(all, es...)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return all
}

// pollFatalTB turns Fatal in a writer goroutine into a panic its recover
// reports, since FailNow must run on the test's goroutine.
type pollFatalTB struct{ testing.TB }

func (p pollFatalTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (p pollFatalTB) Helper()           {}

func TestPollingRelay_GivenTwoRelaysOnOneOutboxWhileRowsAreWritten_ThenEveryRowIsPublishedOnceInOrderPerAggregate(t *testing.T) {
	pollDSNs(t, func(t *testing.T, dsn string) {
		addrs := pollBroker(t)
		dbA, dbB := openDB(t, dsn), openDB(t, dsn)
		a, b := pollRelay(t, dbA, addrs, "a"), pollRelay(t, dbB, addrs, "b")
		a.Batch, b.Batch = 8, 8
		pollStart(t, a)
		pollStart(t, b)
		want := pollWriters(t, dbA, 4, 10, 60)
		pollDrained(t, dbA)

		if dups := pollCheck(t, pollRead(t, addrs), want); dups != 0 {
			t.Errorf("%d duplicates without a crash", dups)
		}
		// a relay counts what it published once its delete committed
		pollEventually(t, "the relays counted every row", func() bool {
			return a.Stats().Published+b.Stats().Published >= int64(len(want))
		})
		sa, sb := a.Stats(), b.Stats()
		t.Logf("%d rows: relay a published %d, relay b %d", len(want), sa.Published, sb.Published)
		if sa.Published+sb.Published != int64(len(want)) {
			t.Errorf("relays published %d + %d rows, want %d in all", sa.Published, sb.Published, len(want))
		}
	})
}

func TestPollingRelay_GivenAnotherRelayHoldsAnAggregatesEarlierRow_ThenItsLaterRowsWaitAndTheOthersGo(t *testing.T) {
	dsn := pgtest.Database(t)
	db := openDB(t, dsn)
	addrs := pollBroker(t)
	var want []codecs.Event
	want = append(want, pollWrite(t, db, true, "x")...)
	want = append(want, pollWrite(t, db, true, "y", "y", "x", "y")...)
	x1 := want[0]

	// Relay a takes x's first row and holds it (its transaction open, the
	// row locked) until released.
	a := pollRelay(t, db, addrs, "a")
	a.Batch = 1
	holding, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	outbox.PollSetHooks(a, func(rows []outbox.Row) {
		if rows[0].ID == x1.ID {
			once.Do(func() { close(holding); <-release })
		}
	}, nil)
	pollStart(t, a)
	t.Cleanup(func() { released.Do(func() { close(release) }) }) // runs before a's stop
	select {
	case <-holding:
	case <-time.After(pollWait):
		t.Fatal("relay a did not take x's first row")
	}

	// Relay b skips the locked row: it publishes y's rows, never x's second.
	b := pollRelay(t, openDB(t, dsn), addrs, "b")
	pollStart(t, b)
	pollEventually(t, "relay b published y's three rows", func() bool { return b.Stats().Published >= 3 })
	if n := count(t, db); n != 2 {
		t.Errorf("outbox holds %d rows while a holds x's first, want x's two", n)
	}
	released.Do(func() { close(release) })
	pollDrained(t, db)

	if dups := pollCheck(t, pollRead(t, addrs), want); dups != 0 {
		t.Errorf("%d duplicates without a crash", dups)
	}
}

func TestPollingRelay_GivenKafkaUnreachable_ThenRowsWaitAndDrainInOrderWhenItReturns(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		addr := pollFreeAddr(t)
		r := pollRelay(t, db, []string{addr}, "")
		r.MaxBackoff = 200 * time.Millisecond
		pollStart(t, r)
		var want []codecs.Event
		for i := range 8 {
			want = append(want, pollWrite(t, db, true, "p1", fmt.Sprintf("p%d", i%3), "p2", "p1", "p3")...)
		}

		// A few backoff rounds (STREAMFOLD_OUTBOX_DOWN makes it longer,
		// e.g. the 30s).
		down := time.Now()
		pollEventually(t, "the relay failed a few times", func() bool { s := r.Stats(); return s.Failing && s.Failures >= 4 })
		if d := pollDownFor(t); d > 0 {
			for time.Since(down) < d {
				time.Sleep(10 * time.Millisecond) // Kafka stays away: the scenario, not a synchronisation
			}
		}
		s := r.Stats()
		t.Logf("after %v down: %d failed rounds, last error: %v", time.Since(down).Round(time.Millisecond), s.Failures, s.LastError)
		if s.LastError == nil || s.Published != 0 {
			t.Errorf("stats while Kafka is down = %+v, want the error and nothing published", s)
		}
		if n := count(t, db); n != len(want) {
			t.Fatalf("outbox holds %d rows while Kafka is down, want all %d", n, len(want))
		}

		back := pollBrokerAt(t, addr)
		pollDrained(t, db)
		if dups := pollCheck(t, pollRead(t, back), want); dups != 0 {
			t.Errorf("%d duplicates without a crash", dups)
		}
		pollEventually(t, "the relay no longer reports failing", func() bool { return !r.Stats().Failing })
	})
}

func TestPollingRelay_GivenKafkaGoesAwayWhileRelaying_ThenRowsWaitAndDrainInOrderWhenItReturns(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		addr, dir := pollFreeAddr(t), t.TempDir()
		broker, err := embedded.Start(embedded.Config{Dir: dir, Listen: addr, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		pollCreateTopic(t, broker.Addrs())
		r := pollRelay(t, db, broker.Addrs(), "")
		r.Batch = 4
		// the broker stops right after it acknowledged the relay's third
		// batch
		stopped := make(chan struct{})
		batches := 0
		outbox.PollSetHooks(r, nil, func([]outbox.Row) {
			if batches++; batches == 3 {
				if err := broker.Close(); err != nil {
					t.Error(err)
				}
				close(stopped)
			}
		})
		var want []codecs.Event
		for i := range 10 {
			want = append(want, pollWrite(t, db, true, "p1", fmt.Sprintf("p%d", i%3), "p2", "p1")...)
		}
		pollStart(t, r)
		select {
		case <-stopped:
		case <-time.After(pollWait):
			t.Fatal("the relay did not publish three batches")
		}
		for i := range 5 {
			want = append(want, pollWrite(t, db, true, "p2", fmt.Sprintf("p%d", i%3), "p1")...)
		}
		pollEventually(t, "the relay failed a few times", func() bool { s := r.Stats(); return s.Failing && s.Failures >= 3 })
		// the three acknowledged batches are gone, the rest waits
		if n := count(t, db); n != len(want)-3*4 {
			t.Errorf("outbox holds %d rows while Kafka is away, want %d", n, len(want)-3*4)
		}

		back, err := embedded.Start(embedded.Config{Dir: dir, Listen: addr, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { back.Close() })
		pollDrained(t, db)
		recs := pollRead(t, back.Addrs())
		dups := pollCheck(t, recs, want)
		t.Logf("%d rows, %d records, %d duplicates", len(want), len(recs), dups)
	})
}

func TestPollingRelay_GivenRowsThatCannotBePublished_ThenTheyMoveToTheDeadTableAndTheOthersGo(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		addrs := pollBroker(t)
		ctx := context.Background()
		var want []codecs.Event
		want = append(want, pollWrite(t, db, true, "x")...)
		// headers that are JSON (PostgreSQL's jsonb would take nothing
		// else) but no CloudEvents attributes: time is not a time
		if _, err := db.ExecContext(ctx, `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, timestamp, headers)
			VALUES ('poison', 'payments', 'x', 'PaymentReceived', '{}', '2024-01-01T00:00:00Z', '{"time": "yesterday"}')`); err != nil {
			t.Fatal(err)
		}
		big, err := codecs.NewEvent("urn:test", "PaymentReceived", "y", map[string]string{"note": string(bytes.Repeat([]byte("x"), 1_100_000))})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Write(ctx, tx, pollTopic, big); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		want = append(want, pollWrite(t, db, true, "x", "y")...)

		r := pollRelay(t, db, addrs, "")
		pollStart(t, r)
		pollDrained(t, db)
		if dups := pollCheck(t, pollRead(t, addrs), want); dups != 0 {
			t.Errorf("%d duplicates without a crash", dups)
		}
		rows, err := db.QueryContext(ctx, `SELECT id, error FROM outbox_dead ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var dead []string
		for rows.Next() {
			var id, msg string
			if err := rows.Scan(&id, &msg); err != nil {
				t.Fatal(err)
			}
			t.Logf("dead: %s: %.200s", id, msg)
			if msg == "" {
				t.Errorf("dead row %s has no error", id)
			}
			dead = append(dead, id)
		}
		if !slices.Equal(dead, []string{"poison", big.ID}) {
			t.Errorf("dead rows %v, want the poison row and the oversized one", dead)
		}
		if s := r.Stats(); s.DeadLettered != 2 {
			t.Errorf("stats = %+v, want 2 dead-lettered", s)
		}
	})
}

func TestPollingRelay_GivenTheBrokerRefusesARecordInABatch_ThenOnlyThatRowIsDeadAndTheOthersArePublished(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		addrs := startBroker(t)
		// the topic takes record batches of at most 2 kB; the relay's
		// producer would send up to 1 MB
		pollCreateTopicTB(t, addrs, "max.message.bytes", "2048")
		ctx := context.Background()
		var want []codecs.Event
		want = append(want, pollWrite(t, db, true, "x", "y", "z")...)
		big, err := codecs.NewEvent("urn:test", "PaymentReceived", "y", map[string]string{"note": string(bytes.Repeat([]byte("x"), 3000))})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Write(ctx, tx, pollTopic, big); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		want = append(want, pollWrite(t, db, true, "y", "x", "z", "y")...)

		r := pollRelay(t, db, addrs, "")
		pollStart(t, r)
		pollDrained(t, db)
		dups := pollCheck(t, pollRead(t, addrs), want)
		t.Logf("%d duplicates (records acknowledged in the refused produce request, sent again one by one)", dups)
		var dead []string
		rows, err := db.QueryContext(ctx, `SELECT id FROM outbox_dead`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			dead = append(dead, id)
		}
		if !slices.Equal(dead, []string{big.ID}) {
			t.Errorf("dead rows %v, want only the oversized one %s", dead, big.ID)
		}
	})
}

func TestPollingRelay_GivenAnInvalidRelay_ThenRunSaysWhy(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "test.db"))
	for name, r := range map[string]*outbox.PollingRelay{
		"no DB":          {Kafka: outbox.Kafka{Brokers: []string{"127.0.0.1:1"}}},
		"no brokers":     {DB: db},
		"bad table":      {DB: db, Kafka: outbox.Kafka{Brokers: []string{"127.0.0.1:1"}}, Table: "out box"},
		"negative batch": {DB: db, Kafka: outbox.Kafka{Brokers: []string{"127.0.0.1:1"}}, Batch: -1},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), pollWait)
		err := r.Run(ctx)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Run = %v, want the reason it cannot run", name, err)
		}
	}
}

// pollFreeAddr reserves a loopback port nobody listens on (for now).
func pollFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pollBrokerAt starts an embedded broker listening on addr, with the
// payments topic, and returns its addresses.
func pollBrokerAt(t *testing.T, addr string) []string {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: addr, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pollCreateTopic(t, b.Addrs())
	return b.Addrs()
}

// pollDownFor is how long the Kafka-unreachable test keeps Kafka away at
// least: STREAMFOLD_OUTBOX_DOWN (a Go duration, e.g. 30s), else only the few
// backoff rounds the test waits for anyway.
func pollDownFor(t *testing.T) time.Duration {
	v := os.Getenv("STREAMFOLD_OUTBOX_DOWN")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("STREAMFOLD_OUTBOX_DOWN=%q: %v", v, err)
	}
	return d
}
