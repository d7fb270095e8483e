package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// sinkWait bounds every wait of the sink tests: a condition polled until
// it holds, never a sleep.
const sinkWait = 30 * time.Second

// sinkCustomer is a group table's state, as a fold would keep it.
type sinkCustomer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	State   string `json:"state"`
	Version int64  `json:"version"`
}

// sinkRecord is one changelog record the tests produce: a value (nil for
// a tombstone), or raw bytes as they are.
type sinkRecord struct {
	key   string
	value *sinkCustomer
	raw   []byte // instead of value: bytes exactly as given
}

// sinkGroupValue is v as a group's table holds it: the framework's
// bookkeeping (a fold's, in the binary envelope) in front of the state.
func sinkGroupValue(t testing.TB, v sinkCustomer, offset int64) []byte {
	t.Helper()
	state, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := envelope.Join(envelope.Meta{Offsets: map[string]int64{"customer-events": offset}, IDs: []string{fmt.Sprintf("ev-%s-%d", v.ID, v.Version)}, At: 1}, state)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sinkParkedOnly is a group table value with bookkeeping only: records
// parked under a key that has no state. Readers see no value.
func sinkParkedOnly(t testing.TB) []byte {
	t.Helper()
	b, err := envelope.Join(envelope.Meta{Absent: true, Parked: []envelope.Parked{{Topic: "customer-events", Offset: 1, Value: []byte(`{}`), Kind: "parent"}}}, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if !envelope.Absent(b) {
		t.Fatal("a bookkeeping-only value is not absent")
	}
	return b
}

// sinkTable declares the group table the tests read and creates its topic.
func sinkTable(t testing.TB, brokers []string, group string) tables.Table[sinkCustomer] {
	t.Helper()
	tbl := processors.GroupTable[sinkCustomer](group)
	sinkCreateTopic(t, brokers, tbl.Name)
	return tbl
}

// sinkCreateTopic creates a topic of 4 partitions.
func sinkCreateTopic(t testing.TB, brokers []string, topic string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, kafkaconf.Sarama("sink-test-admin", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
}

// sinkProduce writes records to topic in order (keys partitioned with
// murmur2, as the framework does) and returns each partition's end offset.
func sinkProduce(t testing.TB, brokers []string, topic string, records []sinkRecord) map[int32]int64 {
	t.Helper()
	c := kafkaconf.Sarama("sink-test-producer", 0)
	c.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(records))
	for i, r := range records {
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.key)}
		switch {
		case r.raw != nil:
			m.Value = sarama.ByteEncoder(r.raw)
		case r.value != nil:
			m.Value = sarama.ByteEncoder(sinkGroupValue(t, *r.value, int64(i)))
		}
		msgs[i] = m
	}
	for len(msgs) > 0 { // in slices, so one request stays small
		n := min(len(msgs), 500)
		if err := p.SendMessages(msgs[:n]); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	client, err := sarama.NewClient(brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	for _, part := range parts {
		if end[part], err = client.GetOffset(topic, part, sarama.OffsetNewest); err != nil {
			t.Fatal(err)
		}
	}
	return end
}

// sinkHistory is a changelog with updates and tombstones: keys c0…c(n-1),
// each written versions 1…v; every third key is then tombstoned, and every
// sixth written again after its tombstone. fold is the table it leaves.
func sinkHistory(n, v int) (records []sinkRecord, fold map[string]sinkCustomer) {
	fold = map[string]sinkCustomer{}
	for ver := 1; ver <= v; ver++ {
		for k := range n {
			c := sinkCustomer{ID: fmt.Sprintf("c%d", k), Name: fmt.Sprintf("name %d.%d", k, ver), Email: fmt.Sprintf("c%d@example.com", k), State: "active", Version: int64(ver)}
			records = append(records, sinkRecord{key: c.ID, value: &c})
			fold[c.ID] = c
		}
	}
	for k := 0; k < n; k += 3 {
		id := fmt.Sprintf("c%d", k)
		records = append(records, sinkRecord{key: id})
		delete(fold, id)
	}
	for k := 0; k < n; k += 6 {
		c := sinkCustomer{ID: fmt.Sprintf("c%d", k), Name: "again", State: "deleted", Version: int64(v + 1)}
		records = append(records, sinkRecord{key: c.ID, value: &c})
		fold[c.ID] = c
	}
	return records, fold
}

// sinkSchema creates the read model's table and an audit table that
// records every application of a record, by its coordinates.
func sinkSchema(t testing.TB, db *outbox.DB, table string) {
	t.Helper()
	for _, ddl := range []string{
		`CREATE TABLE ` + table + ` (id text PRIMARY KEY, name text NOT NULL, email text, state text NOT NULL, version bigint NOT NULL)`,
		`CREATE TABLE ` + table + `_audit (part integer NOT NULL, off bigint NOT NULL, id text NOT NULL)`,
	} {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
}

// sinkRows projects a customer into table's row; an empty name is written
// as NULL, which the table refuses (a record the read model cannot take).
func sinkRows(table string) outbox.Rows[sinkCustomer] {
	return outbox.Rows[sinkCustomer]{Table: table, Key: "id", Columns: func(c sinkCustomer) map[string]any {
		var name any = c.Name
		if c.Name == "" {
			name = nil
		}
		return map[string]any{"name": name, "email": c.Email, "state": c.State, "version": c.Version}
	}}
}

// sinkAudited applies rows and notes the application in table_audit, in
// the same transaction.
func sinkAudited(table string) func(context.Context, *sql.Tx, outbox.Change[sinkCustomer]) error {
	rows := sinkRows(table)
	return func(ctx context.Context, tx *sql.Tx, c outbox.Change[sinkCustomer]) error {
		if err := rows.Apply(ctx, tx, c); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+`_audit (part, off, id) VALUES ($1, $2, $3)`, c.Partition, c.Offset, c.Key)
		return err
	}
}

// sinkQuerier is what the checks read through: the sink's *outbox.DB, or a
// connection of the test's own where the test kills the others.
type sinkQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sinkConn is a connection of the test's own, closed when the test ends.
func sinkConn(t testing.TB, db *outbox.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sinkContent reads the read model back.
func sinkContent(t testing.TB, db sinkQuerier, table string) map[string]sinkCustomer {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT id, name, email, state, version FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]sinkCustomer{}
	for rows.Next() {
		var c sinkCustomer
		var email sql.NullString
		if err := rows.Scan(&c.ID, &c.Name, &email, &c.State, &c.Version); err != nil {
			t.Fatal(err)
		}
		c.Email = email.String
		got[c.ID] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// sinkStored reads the sink's stored next offsets.
func sinkStored(t testing.TB, db sinkQuerier, sink string) map[int32]int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT partition, next_offset FROM `+outbox.SinkOffsetsTable+` WHERE sink = $1`, sink)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		got[p] = n
	}
	return got
}

// sinkCaughtUp says whether the stored offsets reached end on every
// partition (an empty partition stays at -2: not read yet).
func sinkCaughtUp(t testing.TB, db sinkQuerier, sink string, end map[int32]int64) bool {
	stored := sinkStored(t, db, sink)
	for p, e := range end {
		want := e
		if e == 0 {
			want = sarama.OffsetOldest
		}
		if n, ok := stored[p]; !ok || n != want {
			return false
		}
	}
	return true
}

// sinkEventually polls cond until it holds or sinkWait passes.
func sinkEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(sinkWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", sinkWait, what)
		}
		<-tick.C
	}
}

// sinkRunning runs sink until the test ends, checking that it stopped only
// because it was told to.
func sinkRunning[V any](t testing.TB, sink *outbox.Sink[V]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sink %s ended with %v, want nil once stopped", sink.Name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// sinkAuditCounts returns how many records table_audit holds, and how many
// of them applied a record already applied.
func sinkAuditCounts(t testing.TB, db sinkQuerier, table string) (total, doubled int) {
	t.Helper()
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM `+table+`_audit`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(context.Background(), `SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM `+table+`_audit GROUP BY part, off) AS a`).Scan(&doubled); err != nil {
		t.Fatal(err)
	}
	return total, doubled
}

func sameContent(t testing.TB, got, want map[string]sinkCustomer) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v (%v), want %+v (%v)", k, g, gok, w, wok))
		}
	}
	sort.Strings(diffs)
	t.Errorf("read model differs from the table in %d keys:\n%s", len(diffs), strings.Join(diffs, "\n"))
}

func TestSink_GivenAGroupTablesChangelogWithUpdatesAndTombstones_WhenSunk_ThenTheSQLTableEqualsTheTable(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "customers-"+string(db.Dialect))
		records, fold := sinkHistory(24, 3)
		// a key with bookkeeping only (records parked for it): no row
		records = append(records, sinkRecord{key: "parked", raw: sinkParkedOnly(t)})
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")

		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkAudited("customers"), Batch: 10,
		}
		stop := sinkRunning(t, sink)
		sinkEventually(t, "the sink reached the end of the changelog", func() bool { return sinkCaughtUp(t, db, sink.Name, end) })
		stop() // Stats are final once Run returned

		sameContent(t, sinkContent(t, db, "customers"), fold)
		total, doubled := sinkAuditCounts(t, db, "customers")
		if total != len(records) || doubled != 0 {
			t.Errorf("applied %d records (%d twice), want each of %d once", total, doubled, len(records))
		}
		st := sink.Stats()
		if st.Applied != int64(len(records)) || st.DeadLettered != 0 {
			t.Errorf("stats: applied %d, dead-lettered %d; want %d and 0", st.Applied, st.DeadLettered, len(records))
		}
		for p, e := range end {
			if sp := st.Partitions[p]; sp.Next != e || sp.Lag != 0 {
				t.Errorf("stats of partition %d: %+v, want next %d and lag 0", p, sp, e)
			}
		}
	})
}

func TestSink_GivenABuiltReadModel_WhenItsTablesAreEmptiedAndTheSinkReset_ThenItRebuildsTheSameContent(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		tbl := sinkTable(t, brokers, "rebuild-"+string(db.Dialect))
		records, fold := sinkHistory(16, 2)
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")
		newSink := func() *outbox.Sink[sinkCustomer] {
			return &outbox.Sink[sinkCustomer]{
				Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
				Source: outbox.TableSource(tbl), Apply: sinkRows("customers").Apply,
			}
		}
		stop := sinkRunning(t, newSink())
		sinkEventually(t, "the first build reached the end", func() bool { return sinkCaughtUp(t, db, "customers-sql", end) })
		stop()
		built := sinkContent(t, db, "customers")
		sameContent(t, built, fold)

		// the rebuild: the table emptied and the offsets forgotten in one transaction
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM customers`); err != nil {
			t.Fatal(err)
		}
		if err := outbox.ResetSink(ctx, tx, "customers-sql"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := len(sinkStored(t, db, "customers-sql")); n != 0 {
			t.Fatalf("after ResetSink %d offsets rows remain", n)
		}

		again := newSink()
		stop = sinkRunning(t, again)
		sinkEventually(t, "the rebuild reached the end", func() bool { return sinkCaughtUp(t, db, "customers-sql", end) })
		stop() // Stats are final once Run returned
		sameContent(t, sinkContent(t, db, "customers"), built)
		if st := again.Stats(); st.Applied != int64(len(records)) {
			t.Errorf("the rebuild applied %d records, want the whole changelog's %d", st.Applied, len(records))
		}
	})
}

// Offsets ahead of the log — the broker was wiped or the topic recreated
// while the database kept its read model — are not read from as if nothing
// happened: without Rebuild the sink stops with ErrSinkAhead; with it, the
// read model is emptied and built again from the log's start.
func TestSink_GivenStoredOffsetsAheadOfTheLog_ThenItStopsOrRebuildsTheReadModel(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		tbl := sinkTable(t, brokers, "ahead-"+string(db.Dialect))
		records, fold := sinkHistory(12, 2)
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")
		rows := sinkRows("customers")
		newSink := func() *outbox.Sink[sinkCustomer] {
			return &outbox.Sink[sinkCustomer]{Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
				Source: outbox.TableSource(tbl), Apply: rows.Apply}
		}
		stop := sinkRunning(t, newSink())
		sinkEventually(t, "the first build reached the end", func() bool { return sinkCaughtUp(t, db, "customers-sql", end) })
		stop()
		// the database remembers more than the log now has: a row of a
		// record gone with the old log, and offsets past its end
		if _, err := db.ExecContext(ctx, `INSERT INTO customers (id, name, state, version) VALUES ('gone', 'from the old log', 'active', 1)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE `+outbox.SinkOffsetsTable+` SET next_offset = next_offset + 1000 WHERE sink = 'customers-sql'`); err != nil {
			t.Fatal(err)
		}

		runCtx, cancel := context.WithTimeout(ctx, sinkWait)
		defer cancel()
		if err := newSink().Run(runCtx); !errors.Is(err, outbox.ErrSinkAhead) {
			t.Fatalf("without Rebuild: Run = %v, want ErrSinkAhead", err)
		}

		rebuilding := newSink()
		rebuilding.Rebuild = rows.Clear
		stop = sinkRunning(t, rebuilding)
		sinkEventually(t, "the rebuild reached the end", func() bool { return sinkCaughtUp(t, db, "customers-sql", end) })
		stop()
		sameContent(t, sinkContent(t, db, "customers"), fold)
	})
}

func TestSink_GivenPoisonRecords_WhenSunk_ThenEachIsDeadLetteredWithItsCoordinatesAndTheRestApplied(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "poison-"+string(db.Dialect))
		records, fold := sinkHistory(8, 2)
		nameless := sinkCustomer{ID: "nameless", State: "active", Version: 1} // NULL name: the table refuses it
		records = append(records,
			sinkRecord{key: "garbled", raw: []byte("not a snapshot")},
			sinkRecord{key: nameless.ID, value: &nameless},
			sinkRecord{key: "c1", value: &sinkCustomer{ID: "c1", Name: "after the poison", State: "active", Version: 9}},
		)
		fold["c1"] = sinkCustomer{ID: "c1", Name: "after the poison", State: "active", Version: 9}
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")

		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql-" + string(db.Dialect), DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkAudited("customers"), Batch: 7,
		}
		stop := sinkRunning(t, sink)
		sinkEventually(t, "the sink went past the poison records to the end", func() bool { return sinkCaughtUp(t, db, sink.Name, end) })
		stop() // Stats are final once Run returned
		sameContent(t, sinkContent(t, db, "customers"), fold)
		if total, doubled := sinkAuditCounts(t, db, "customers"); total != len(records)-2 || doubled != 0 {
			t.Errorf("applied %d records (%d twice), want each of the %d good ones once", total, doubled, len(records)-2)
		}

		dead := sinkReadAll(t, brokers, sink.DLQTopic(), 2)
		byKey := map[string]*sarama.ConsumerMessage{}
		for _, m := range dead {
			byKey[string(m.Key)] = m
		}
		for key, class := range map[string]string{"garbled": processors.ClassDecode, "nameless": processors.ClassHandler} {
			m := byKey[key]
			if m == nil {
				t.Errorf("no dead letter for %s", key)
				continue
			}
			h := map[string]string{}
			for _, rh := range m.Headers {
				h[string(rh.Key)] = string(rh.Value)
			}
			at := sinkFind(t, brokers, tbl.Name, key)
			want := map[string]string{
				processors.HeaderOriginalTopic:     tbl.Name,
				processors.HeaderOriginalPartition: fmt.Sprint(at.Partition),
				processors.HeaderOriginalOffset:    fmt.Sprint(at.Offset),
				processors.HeaderOriginalKey:       key,
				processors.HeaderOriginalGroup:     sink.Name,
				processors.HeaderExceptionClass:    class,
			}
			for k, v := range want {
				if h[k] != v {
					t.Errorf("dead letter of %s: header %s = %q, want %q", key, k, h[k], v)
				}
			}
			if h[processors.HeaderExceptionMessage] == "" {
				t.Errorf("dead letter of %s has no error message", key)
			}
			if string(m.Value) != string(at.Value) {
				t.Errorf("dead letter of %s holds %q, want the record as it arrived, %q", key, m.Value, at.Value)
			}
		}
		if st := sink.Stats(); st.DeadLettered != 2 {
			t.Errorf("stats count %d dead letters, want 2", st.DeadLettered)
		}
	})
}

func TestSink_GivenATransientDatabaseError_WhenApplying_ThenTheBatchIsRetriedWithoutAdvancingAndAppliedOnce(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "transient-"+string(db.Dialect))
		records, fold := sinkHistory(6, 2)
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")
		audited := sinkAudited("customers")
		failures := 3
		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			Apply: func(ctx context.Context, tx *sql.Tx, c outbox.Change[sinkCustomer]) error {
				if err := audited(ctx, tx, c); err != nil {
					return err
				}
				if c.Key == "c4" && c.Value != nil && c.Value.Version == 2 && failures > 0 { // after its writes: they must roll back
					failures--
					return fmt.Errorf("connection reset: %w", outbox.ErrTransient)
				}
				return nil
			},
		}
		stop := sinkRunning(t, sink)
		sinkEventually(t, "the sink reached the end", func() bool { return sinkCaughtUp(t, db, sink.Name, end) })
		stop() // Stats are final once Run returned
		sameContent(t, sinkContent(t, db, "customers"), fold)
		if total, doubled := sinkAuditCounts(t, db, "customers"); total != len(records) || doubled != 0 {
			t.Errorf("applied %d records (%d twice), want each of %d once", total, doubled, len(records))
		}
		if st := sink.Stats(); st.Retries != 3 || st.DeadLettered != 0 {
			t.Errorf("stats: %d retries and %d dead letters, want 3 and 0", st.Retries, st.DeadLettered)
		}
	})
}

func TestSink_GivenAMissingTable_WhenRun_ThenItStopsWithErrSinkSQLInsteadOfDeadLetteringEverything(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "missing-"+string(db.Dialect))
		records, _ := sinkHistory(2, 1)
		sinkProduce(t, brokers, tbl.Name, records)
		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkRows("no_such_table").Apply,
		}
		ctx, cancel := context.WithTimeout(context.Background(), sinkWait)
		defer cancel()
		if err := sink.Run(ctx); !errors.Is(err, outbox.ErrSinkSQL) {
			t.Fatalf("Run = %v, want ErrSinkSQL", err)
		}
		if st := sink.Stats(); st.DeadLettered != 0 || st.Applied != 0 {
			t.Errorf("stats %+v: want nothing applied or dead-lettered", st)
		}
	})
}

func TestSink_GivenABadSetUp_WhenRun_ThenItSaysWhatIsMissing(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "test.db"))
	apply := sinkRows("customers").Apply
	src := outbox.StreamSource(tables.NewStream[sinkCustomer]("s", nil))
	for name, s := range map[string]*outbox.Sink[sinkCustomer]{
		"bad name":   {Name: "a b", DB: db, Kafka: outbox.Kafka{Brokers: []string{"x"}}, Source: src, Apply: apply},
		"no db":      {Name: "a", Kafka: outbox.Kafka{Brokers: []string{"x"}}, Source: src, Apply: apply},
		"no source":  {Name: "a", DB: db, Kafka: outbox.Kafka{Brokers: []string{"x"}}, Apply: apply},
		"no apply":   {Name: "a", DB: db, Kafka: outbox.Kafka{Brokers: []string{"x"}}, Source: src},
		"no brokers": {Name: "a", DB: db, Source: src, Apply: apply},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Run(context.Background()); err == nil {
				t.Fatal("Run started")
			}
		})
	}
}

// sinkReadAll reads n records of topic, from the start of each partition.
func sinkReadAll(t testing.TB, brokers []string, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer(brokers, kafkaconf.Sarama("sink-test-reader", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *sarama.ConsumerMessage)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case m := <-pc.Messages():
					select {
					case out <- m:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	timeout := time.After(sinkWait)
	for len(got) < n {
		select {
		case m := <-out:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("read %d records of %s, want %d", len(got), topic, n)
		}
	}
	return got
}

// sinkFind returns the record of topic with key (the first one).
func sinkFind(t testing.TB, brokers []string, topic, key string) *sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewClient(brokers, kafkaconf.Sarama("sink-test-find", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range parts {
		n, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		total += int(n)
	}
	for _, m := range sinkReadAll(t, brokers, topic, total) {
		if string(m.Key) == key {
			return m
		}
	}
	t.Fatalf("no record with key %s in %s", key, topic)
	return nil
}

func TestSink_GivenTwoInstancesOfOneSink_WhenBothRun_ThenNoRecordIsAppliedTwice(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		tbl := sinkTable(t, brokers, "twice-"+string(db.Dialect))
		records, fold := sinkHistory(30, 4)
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")
		for range 2 {
			sinkRunning(t, &outbox.Sink[sinkCustomer]{
				Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
				Source: outbox.TableSource(tbl), Apply: sinkAudited("customers"), Batch: 5,
			})
		}
		sinkEventually(t, "the sinks reached the end", func() bool { return sinkCaughtUp(t, db, "customers-sql", end) })
		total, doubled := sinkAuditCounts(t, db, "customers")
		t.Logf("two instances: %d records applied, %d twice", total, doubled)
		if total != len(records) || doubled != 0 {
			t.Errorf("applied %d records (%d twice), want each of %d once", total, doubled, len(records))
		}
		sameContent(t, sinkContent(t, db, "customers"), fold)
	})
}

func TestSink_GivenAStreamOfPlainJSONWithTombstones_WhenSunk_ThenEachKeysLastValueIsItsRow(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		stream := tables.NewStream[sinkCustomer]("customer-states-"+string(db.Dialect), codecs.JSON[sinkCustomer]{})
		sinkCreateTopic(t, brokers, stream.Name)
		var records []sinkRecord
		want := map[string]sinkCustomer{}
		for i := range 12 {
			c := sinkCustomer{ID: fmt.Sprintf("s%d", i%4), Name: fmt.Sprintf("n%d", i), State: "active", Version: int64(i)}
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			records = append(records, sinkRecord{key: c.ID, raw: b})
			want[c.ID] = c
		}
		records = append(records, sinkRecord{key: "s2"})
		delete(want, "s2")
		end := sinkProduce(t, brokers, stream.Name, records)
		sinkSchema(t, db, "customers")
		sink := &outbox.Sink[sinkCustomer]{
			Name: "states-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.StreamSource(stream), Apply: sinkRows("customers").Apply,
		}
		sinkRunning(t, sink)
		sinkEventually(t, "the sink reached the end", func() bool { return sinkCaughtUp(t, db, sink.Name, end) })
		sameContent(t, sinkContent(t, db, "customers"), want)
	})
}

func TestSink_GivenPostgreSQLConnectionsKilledWhileSinking_ThenNothingIsDeadLetteredLostOrAppliedTwice(t *testing.T) {
	const every, kills = 40, 6
	brokers := startBroker(t)
	db := openDB(t, pgtest.Database(t))
	tbl := sinkTable(t, brokers, "terminated")
	records, fold := sinkHistory(40, 10)
	end := sinkProduce(t, brokers, tbl.Name, records)
	sinkSchema(t, db, "customers")
	// The test's own queries go through connections of their own, so that
	// terminating every other backend hits only the sink's: admin reads,
	// killer terminates.
	admin, killer := sinkConn(t, db), sinkConn(t, db)
	var adminPID int
	if err := admin.QueryRowContext(context.Background(), `SELECT pg_backend_pid()`).Scan(&adminPID); err != nil {
		t.Fatal(err)
	}
	// Every 40th record Apply sees (retries count too), up to six times,
	// every backend but the test's is terminated while the sink's
	// transaction is open: the kills follow the sink's progress, not how
	// often the test looks, so all six happen however fast it runs.
	apply := sinkAudited("customers")
	var calls, killed int
	sink := &outbox.Sink[sinkCustomer]{
		Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
		Source: outbox.TableSource(tbl), Batch: 8,
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Apply: func(ctx context.Context, tx *sql.Tx, c outbox.Change[sinkCustomer]) error {
			if err := apply(ctx, tx, c); err != nil {
				return err
			}
			if calls++; calls%every == 0 && killed < kills {
				if _, err := killer.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1`, adminPID); err != nil {
					return fmt.Errorf("terminating the sink's backends: %w", err)
				}
				killed++
			}
			return nil
		},
	}
	stop := sinkRunning(t, sink)
	sinkEventually(t, "the sink reached the end through the kills", func() bool {
		return sinkCaughtUp(t, admin, sink.Name, end)
	})
	stop()
	st := sink.Stats()
	total, doubled := sinkAuditCounts(t, admin, "customers")
	t.Logf("%d backend terminations: %d retries, %d records applied, %d twice, %d dead-lettered", killed, st.Retries, total, doubled, st.DeadLettered)
	if killed != kills {
		t.Errorf("the sink's backends were terminated %d times, want %d", killed, kills)
	}
	if st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered for a lost connection", st.DeadLettered)
	}
	if total != len(records) || doubled != 0 {
		t.Errorf("applied %d records (%d twice), want each of %d once", total, doubled, len(records))
	}
	sameContent(t, sinkContent(t, admin, "customers"), fold)
}
