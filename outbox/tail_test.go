package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
)

// tailWait bounds every wait of the log relay tests.
const tailWait = 30 * time.Second

// tailDB is a fresh PostgreSQL database with the outbox table, and a slot
// name of its own (slot names are cluster-wide), dropped when the test ends.
func tailDB(t testing.TB) (dsn string, db *outbox.DB, slot string) {
	t.Helper()
	dsn = pgtest.Database(t)
	db = openDB(t, dsn)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	slot = "slot_" + strings.TrimPrefix(u.Path, "/")
	t.Cleanup(func() { tailDropSlot(t, db, slot) })
	return dsn, db, slot
}

// tailDropSlot drops slot, ending the walsender that may still hold it: a
// slot left behind keeps WAL on the test server's disk.
func tailDropSlot(t testing.TB, db *outbox.DB, slot string) {
	deadline := time.Now().Add(tailWait)
	for {
		_, err := db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("drop slot %s: %v", slot, err)
			return
		}
		_, _ = db.Exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		time.Sleep(20 * time.Millisecond) // retry pacing, not synchronisation
	}
}

// tailTopics creates the topics the relay writes to (it creates none: an
// application's topology declares them) on the embedded broker.
func tailTopics(t testing.TB, brokers []string) {
	t.Helper()
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, name := range []string{"payments", "outbox-dlq"} {
		if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
}

// tailBroker is an embedded broker with the relay's topics.
func tailBroker(t testing.TB) []string {
	t.Helper()
	brokers := startBroker(t)
	tailTopics(t, brokers)
	return brokers
}

// tailLog writes a relay's log into the test's.
type tailLog struct{ t testing.TB }

func (l tailLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// tailRelay is a LogRelay with the test's slot and short intervals.
func tailRelay(t testing.TB, dsn, slot string, brokers []string) *outbox.LogRelay {
	return &outbox.LogRelay{
		URL: dsn, Slot: slot, Kafka: outbox.Kafka{Brokers: brokers},
		Logger: slog.New(slog.NewTextHandler(tailLog{t}, nil)), StatusInterval: 100 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
}

// tailRun runs r until the returned stop is called (or the test ends); stop
// returns Run's error.
func tailRun(t testing.TB, r *outbox.LogRelay) (stop func() error) {
	t.Helper()
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// tailEventually polls cond until it holds, failing t after tailWait.
func tailEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(tailWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling pace
	}
}

// tailTx writes events for aggregate type "payments" in one transaction,
// committed or rolled back.
func tailTx(t testing.TB, db *outbox.DB, w outbox.Writer, commit bool, events ...codecs.Event) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tx, "payments", events...); err != nil {
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
}

// tailRecords reads every committed record of topic written so far, in
// offset order per partition.
func tailRecords(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	return readCommitted(t, brokers, topic)
}

// tailIDs are the CloudEvent ids of records, decoded.
func tailEvents(t *testing.T, recs []*kgo.Record) []codecs.Event {
	t.Helper()
	es := make([]codecs.Event, len(recs))
	for i, r := range recs {
		e, err := codecs.CloudEvents{}.Decode(r.Value)
		if err != nil {
			t.Fatalf("record %s/%d/%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		if string(r.Key) != e.Subject {
			t.Errorf("record %s key %q, want the aggregate id %q", e.ID, r.Key, e.Subject)
		}
		es[i] = e
	}
	return es
}

// tailCheck compares what a topic holds with the events committed, in
// commit order: none lost, none unknown, each partition in commit order
// (a duplicate, re-published after a crash, repeats an earlier event with
// the same bytes and is left out of the order). It returns the duplicates.
func tailCheck(t *testing.T, recs []*kgo.Record, committed []codecs.Event) (dups int) {
	t.Helper()
	got := tailEvents(t, recs)
	want := map[string]codecs.Event{}
	pos := map[string]int{}
	for i, e := range committed {
		want[e.ID], pos[e.ID] = e, i
	}
	seen := map[string][]byte{}
	last := map[int32]int{}
	for i, e := range got {
		r := recs[i]
		if prev, ok := seen[e.ID]; ok {
			dups++
			if !bytes.Equal(prev, r.Value) {
				t.Errorf("duplicate of %s differs:\n%s\n%s", e.ID, prev, r.Value)
			}
			continue
		}
		seen[e.ID] = r.Value
		w, ok := want[e.ID]
		if !ok {
			t.Errorf("published %s, never committed", e.ID)
			continue
		}
		if p, ok := last[r.Partition]; ok && pos[e.ID] < p {
			t.Errorf("partition %d: %s (committed %d) after an event committed %d", r.Partition, e.ID, pos[e.ID], p)
		}
		last[r.Partition] = pos[e.ID]
		if e.Subject != w.Subject || e.Type != w.Type || e.Source != w.Source || !e.Time.Equal(w.Time) || e.SpecVersion != w.SpecVersion {
			t.Errorf("event %s = %+v, want %+v", e.ID, e, w)
		}
		if !tailSameJSON(e.Data, w.Data) {
			t.Errorf("event %s data %s, want %s", e.ID, e.Data, w.Data)
		}
	}
	for _, e := range committed {
		if _, ok := seen[e.ID]; !ok {
			t.Errorf("lost %s", e.ID)
		}
	}
	return dups
}

func tailSameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// tailEvent is a payment event for aggregate id.
func tailEvent(t testing.TB, id string, n int) codecs.Event {
	return event(t, id, map[string]any{"amount": n, "note": fmt.Sprintf("payment %d of %s", n, id)})
}

// tailSlotLSN is the slot's confirmed position as the server has it.
func tailSlotLSN(t *testing.T, db *outbox.DB, slot string) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := db.QueryRow(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func TestLogRelay_GivenTransientKeptAndRolledBackWrites_ThenEveryCommittedEventIsPublishedOnceInCommitOrder(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	r.BatchSize = 7 // batches end inside transactions, too
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	var committed []codecs.Event
	var rolledBack []string
	write := func(i int) {
		w := outbox.Writer{Transient: i%2 == 0}
		es := []codecs.Event{tailEvent(t, fmt.Sprintf("o%d", i%3), i), tailEvent(t, fmt.Sprintf("o%d", (i+1)%3), i)}
		commit := i%5 != 4
		tailTx(t, db, w, commit, es...)
		if commit {
			committed = append(committed, es...)
		} else {
			rolledBack = append(rolledBack, es[0].ID, es[1].ID)
		}
	}
	for i := range 20 { // written before the relay runs: it catches up from the slot
		write(i)
	}
	stop := tailRun(t, r)
	for i := 20; i < 40; i++ { // written while it runs
		write(i)
	}
	tailEventually(t, "every committed event published", func() bool { return r.Stats().Published >= int64(len(committed)) })
	tailEventually(t, "the slot to confirm the relay's position", func() bool {
		return tailSlotLSN(t, db, slot).String() == r.Stats().ConfirmedLSN
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	recs := tailRecords(t, brokers, "payments")
	if dups := tailCheck(t, recs, committed); dups != 0 || len(recs) != len(committed) {
		t.Errorf("%d records (%d duplicates), want each of the %d committed events once", len(recs), dups, len(committed))
	}
	ids := map[string]bool{}
	for _, e := range tailEvents(t, recs) {
		ids[e.ID] = true
	}
	for _, id := range rolledBack {
		if ids[id] {
			t.Errorf("rolled-back event %s was published", id)
		}
	}
	if n, want := count(t, db), len(committed)/2; n != want {
		t.Errorf("outbox holds %d rows, want the %d kept ones (transient writes leave none; the relay deletes none)", n, want)
	}
	if s := r.Stats(); s.Published != int64(len(committed)) || s.DeadLettered != 0 || s.Streaming {
		t.Errorf("stats = %+v, want %d published, nothing dead-lettered, not streaming after Run returned", s, len(committed))
	}
}

func TestLogRelay_GivenAStoppedRelay_WhenANewOneStarts_ThenItPublishesExactlyWhatWasWrittenMeanwhile(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	var committed []codecs.Event
	write := func(from, to int) {
		for i := from; i < to; i++ {
			e := tailEvent(t, fmt.Sprintf("o%d", i%4), i)
			tailTx(t, db, outbox.Writer{Transient: true}, true, e)
			committed = append(committed, e)
		}
	}
	first := tailRelay(t, dsn, slot, brokers)
	stop := tailRun(t, first)
	write(0, 12)
	tailEventually(t, "the first relay to publish 12", func() bool { return first.Stats().Published == 12 })
	if err := stop(); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	stoppedAt := tailSlotLSN(t, db, slot)
	if stoppedAt.String() != first.Stats().ConfirmedLSN {
		t.Errorf("slot at %s after a clean stop, want the relay's confirmed %s", stoppedAt, first.Stats().ConfirmedLSN)
	}

	write(12, 20)
	second := tailRelay(t, dsn, slot, brokers)
	stop = tailRun(t, second)
	tailEventually(t, "all 20 events on the topic", func() bool {
		return second.Stats().Published >= 8 && len(tailRecords(t, brokers, "payments")) >= 20
	})
	if err := stop(); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	recs := tailRecords(t, brokers, "payments")
	if dups := tailCheck(t, recs, committed); dups != 0 || len(recs) != 20 {
		t.Errorf("%d records, %d duplicates; want the 20 events once each", len(recs), dups)
	}
	if n := second.Stats().Published; n != 8 {
		t.Errorf("the second relay published %d rows, want exactly the 8 written while none ran", n)
	}
}

func TestLogRelay_GivenKafkaUnreachable_ThenRowsWaitWithTheSlotInPlace_AndDrainInOrderWhenItReturns(t *testing.T) {
	dsn, db, slot := tailDB(t)
	l, err := net.Listen("tcp", "127.0.0.1:0") // an address nothing listens on, until the broker does
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := tailRelay(t, dsn, slot, []string{addr})
	r.Kafka.Config = kafkaconf.Sarama("outbox-relay", 0)
	r.Kafka.Config.Metadata.Retry.Max = 0 // each attempt fails at once: the test need not wait out the client's own retries
	tailRun(t, r)
	tailEventually(t, "the relay to stream", func() bool { return r.Stats().Streaming })
	var committed []codecs.Event
	for i := range 10 {
		e := tailEvent(t, fmt.Sprintf("o%d", i%3), i)
		tailTx(t, db, outbox.Writer{Transient: i%2 == 0}, true, e)
		committed = append(committed, e)
	}

	tailEventually(t, "a failed publish", func() bool { return r.Stats().LastError != nil })
	held := tailSlotLSN(t, db, slot)
	failedAt := r.Stats().LastErrorAt
	for range 2 {
		tailEventually(t, "another attempt", func() bool { return r.Stats().LastErrorAt.After(failedAt) })
		failedAt = r.Stats().LastErrorAt
		if now := tailSlotLSN(t, db, slot); now != held {
			t.Fatalf("the slot moved from %s to %s while Kafka was unreachable", held, now)
		}
	}
	if s := r.Stats(); s.Published != 0 || !s.Streaming || s.ConfirmedLSN != held.String() {
		t.Fatalf("stats while Kafka is unreachable = %+v, want nothing published, still streaming, confirmed %s", s, held)
	}
	t.Logf("waiting while Kafka is unreachable: %v", r.Stats().LastError)

	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: addr, Partitions: 4})
	if err != nil {
		t.Fatalf("start the broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { b.Close() })
	tailTopics(t, b.Addrs())
	tailEventually(t, "the rows to drain", func() bool { return r.Stats().Published == 10 })
	tailEventually(t, "the slot to move on", func() bool { return tailSlotLSN(t, db, slot) > held })
	recs := tailRecords(t, b.Addrs(), "payments")
	if dups := tailCheck(t, recs, committed); dups != 0 || len(recs) != 10 {
		t.Errorf("%d records, %d duplicates; want the 10 events once each, in order", len(recs), dups)
	}
}

func TestLogRelay_GivenItsReplicationConnectionTerminated_ThenItReconnectsAndContinuesWithoutLoss(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	tailRun(t, r)
	var committed []codecs.Event
	write := func(from, to int) {
		for i := from; i < to; i++ {
			e := tailEvent(t, fmt.Sprintf("o%d", i%3), i)
			tailTx(t, db, outbox.Writer{Transient: true}, true, e)
			committed = append(committed, e)
		}
	}
	write(0, 10)
	tailEventually(t, "10 published and confirmed to the server", func() bool {
		return r.Stats().Published == 10 && tailSlotLSN(t, db, slot).String() == r.Stats().ConfirmedLSN
	})
	var terminated bool
	if err := db.QueryRow(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate the walsender: %v (%v)", terminated, err)
	}
	write(10, 20) // while the relay notices and reconnects
	tailEventually(t, "all 20 published", func() bool { return r.Stats().Published >= 20 })
	if s := r.Stats(); s.Reconnects < 1 || s.LastError == nil {
		t.Errorf("stats = %+v, want a reconnection after an error", s)
	} else {
		t.Logf("reconnected after: %v", s.LastError)
	}
	recs := tailRecords(t, brokers, "payments")
	if dups := tailCheck(t, recs, committed); dups != 0 || len(recs) != 20 {
		t.Errorf("%d records, %d duplicates; want the 20 events once each (the first 10 were confirmed before the connection dropped)", len(recs), dups)
	}
}

func TestLogRelay_GivenTwoRelaysOnOneSlot_ThenOneStreams_AndTheOtherTakesOverWhenItStops(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	a, b := tailRelay(t, dsn, slot, brokers), tailRelay(t, dsn, slot, brokers)
	stops := map[*outbox.LogRelay]func() error{a: tailRun(t, a), b: tailRun(t, b)}
	var committed []codecs.Event
	write := func(from, to int) {
		for i := from; i < to; i++ {
			e := tailEvent(t, fmt.Sprintf("o%d", i%3), i)
			tailTx(t, db, outbox.Writer{Transient: true}, true, e)
			committed = append(committed, e)
		}
	}
	write(0, 5)
	tailEventually(t, "5 published", func() bool { return a.Stats().Published+b.Stats().Published == 5 })
	active, standby := a, b
	if b.Stats().Streaming {
		active, standby = b, a
	}
	if !active.Stats().Streaming || standby.Stats().Streaming || standby.Stats().Published != 0 {
		t.Fatalf("streaming: %v and %v, want exactly one relay on the slot", a.Stats(), b.Stats())
	}
	if err := stops[active](); err != nil {
		t.Fatal(err)
	}
	write(5, 10)
	tailEventually(t, "the standby to publish the next 5", func() bool { return standby.Stats().Published == 5 })
	recs := tailRecords(t, brokers, "payments")
	if dups := tailCheck(t, recs, committed); dups != 0 || len(recs) != 10 {
		t.Errorf("%d records, %d duplicates; want the 10 events once each", len(recs), dups)
	}
}

func TestLogRelay_GivenPoisonRows_ThenTheyAreDeadLetteredAndTheRowsAroundThemFlow(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	tailRun(t, r)
	good1, good2 := tailEvent(t, "o1", 1), tailEvent(t, "o1", 2)
	tailTx(t, db, outbox.Writer{}, true, good1)
	poison := map[string]string{ // id → what makes it unpublishable
		"no-type":       `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, timestamp) VALUES ('no-type', 'payments', 'o1', '', '{}', now())`,
		"bad-headers":   `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, timestamp, headers) VALUES ('bad-headers', 'payments', 'o1', 'T', '{}', now(), '[1]')`,
		"bad-timestamp": `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, timestamp) VALUES ('bad-timestamp', 'payments', 'o1', 'T', '{}', 'infinity')`,
	}
	for _, q := range poison {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	tailTx(t, db, outbox.Writer{Transient: true}, true, good2)

	tailEventually(t, "the good rows published and the poison dead-lettered", func() bool {
		s := r.Stats()
		return s.Published == 2 && s.DeadLettered == 3
	})
	var end string
	if err := db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	endLSN, _ := pglogrepl.ParseLSN(end)
	tailEventually(t, "the slot to move past the poison", func() bool { return tailSlotLSN(t, db, slot) >= endLSN })
	if dups := tailCheck(t, tailRecords(t, brokers, "payments"), []codecs.Event{good1, good2}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	dead := tailRecords(t, brokers, "outbox-dlq")
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		id := h[outbox.HeaderOutboxID]
		if _, ok := poison[id]; !ok || string(d.Key) != "o1" || h[outbox.HeaderOutboxTable] != "outbox" ||
			h[processors.HeaderExceptionMessage] == "" || h[outbox.HeaderOutboxLSN] == "" {
			t.Errorf("dead letter key %q headers %v, want a poison row's id, key o1, table, reason and position", d.Key, h)
		}
		var cols map[string]any
		if err := json.Unmarshal(d.Value, &cols); err != nil || cols["id"] != id {
			t.Errorf("dead letter value %s (%v), want the row's columns", d.Value, err)
		}
		t.Logf("dead letter %s: %s", id, h[processors.HeaderExceptionMessage])
	}
}

func TestLogRelay_GivenABadConfiguration_ThenRunFailsAtOnce(t *testing.T) {
	dsn, _, slot := tailDB(t)
	for name, r := range map[string]*outbox.LogRelay{
		"no URL":         {Slot: slot, Kafka: outbox.Kafka{Brokers: []string{"x:1"}}},
		"no brokers":     {URL: dsn, Slot: slot},
		"bad slot name":  {URL: dsn, Slot: "Bad-Slot", Kafka: outbox.Kafka{Brokers: []string{"x:1"}}},
		"no such table":  {URL: dsn, Slot: slot, Table: "nothere", Kafka: outbox.Kafka{Brokers: []string{"x:1"}}},
		"bad table name": {URL: dsn, Slot: slot, Table: "a;b", Kafka: outbox.Kafka{Brokers: []string{"x:1"}}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), tailWait)
		err := r.Run(ctx)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Run = %v, want an error at once", name, err)
		}
	}
}
