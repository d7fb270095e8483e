package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/producer"
	"github.com/streamfold/streamfold/internal/topics"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// SinkOffsetsTable holds, for every sink, the next offset to read of each
// partition of its source. A sink writes its row in the same transaction as
// the effects of the records before that offset.
const SinkOffsetsTable = "streamfold_sink_offsets"

// sinkOldest is the next offset stored for a partition the sink has not
// read yet: it starts from the earliest record.
const sinkOldest = sarama.OffsetOldest

// Change is one record of a sink's source, decoded: what Apply writes.
type Change[V any] struct {
	// Key is the record's key (the aggregate id).
	Key string
	// Value is the decoded value; nil for a tombstone (or, from a group
	// table, a key that has bookkeeping but no state): delete the key.
	Value *V
	// Topic, Partition, Offset and Timestamp say where the record was read.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// Source is the topic a sink reads and how it decodes a record's value: see
// TableSource and StreamSource.
type Source[V any] struct {
	topic  string
	decode func([]byte) (*V, error)
}

// TableSource reads a table's changelog — a group's table (<group>-table,
// processors.GroupTable) or any compacted topic of state — with the
// table's codec. The framework's bookkeeping in front of a group table's
// value is skipped; a tombstone, or a value holding bookkeeping only, is a
// delete.
func TableSource[V any](t tables.Table[V]) Source[V] {
	return Source[V]{topic: t.Name, decode: func(b []byte) (*V, error) {
		if b == nil || t.Codec == nil || envelope.Absent(b) {
			return nil, nil
		}
		_, state, err := envelope.Split(b)
		if err != nil {
			return nil, fmt.Errorf("group table value: %w", err)
		}
		v, err := t.Codec.Decode(state)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}}
}

// StreamSource reads a stream with its codec; a record with a null value is
// handed to Apply as a delete.
func StreamSource[V any](s tables.Stream[V]) Source[V] {
	return Source[V]{topic: s.Name, decode: func(b []byte) (*V, error) {
		if b == nil || s.Codec == nil {
			return nil, nil
		}
		v, err := s.Codec.Decode(b)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}}
}

// Topic is the source's topic name.
func (s Source[V]) Topic() string { return s.topic }

// Sink projects a stream or a table into SQL: it reads every partition of
// its Source from Kafka and calls Apply for each record inside a SQL
// transaction that also stores, in SinkOffsetsTable, the next offset of each
// partition the batch read. After any crash the database holds each
// record's effect exactly once: the offsets commit with the effects or not
// at all, and reading resumes at the stored offsets (Kafka's committed
// offsets are never used). A partition without a stored offset is read from
// its earliest record, which is how a sink builds, or rebuilds after
// ResetSink, a read model from the changelog.
//
// One Sink reads all partitions of its source. A second instance with the
// same Name is safe — each offsets update is a compare-and-set on the value
// the instance read, and one that lost the race rolls back and resumes from
// the stored offsets — but it only repeats the reads; run one per sink.
//
// A record that cannot be applied (its value does not decode, Apply returns
// an error that is not transient, or panics) is written to <Name>-dlq with
// the framework's dead-letter headers (processors.HeaderOriginalTopic, …;
// the consumer-group header names the sink) before the transaction that
// moves the offset past it commits: the partition keeps flowing, and a
// crash in between can only write the dead letter twice. Transient
// database errors (a lost connection, SQLITE_BUSY, a serialization
// failure, an error wrapping ErrTransient) roll the batch back and retry it
// with backoff, without advancing. Errors that say the SQL itself is wrong
// (a missing table or column, a syntax error) end Run: dead-lettering every
// record for them would empty the read model.
//
// Set the fields, then call Run once; Stats may be called concurrently with
// Run. Do not change the fields while Run runs.
type Sink[V any] struct {
	// Name identifies the sink: its rows in SinkOffsetsTable, its dead
	// letter topic <Name>-dlq and, by default, its Kafka client id. Letters,
	// digits, '.', '_' and '-'.
	Name string
	// DB is the database the read model and the offsets live in.
	DB *DB
	// Kafka is where the source is read: Brokers, Config (nil: the
	// framework's; a given one is copied and always reads committed records
	// only) and ClientID (Name when empty). Topic is not used.
	Kafka Kafka
	// Source is the topic read: TableSource or StreamSource.
	Source Source[V]
	// Apply writes one record's effect inside tx; a nil c.Value deletes
	// c.Key. It must not commit or roll back tx. Rows[V].Apply is the
	// common case. Records of one partition come in order.
	Apply func(ctx context.Context, tx *sql.Tx, c Change[V]) error
	// Batch is the most records applied in one transaction; 500 when 0.
	Batch int
	// Backoff is the first wait after a transient error, doubled up to
	// MaxBackoff; 100 ms and 10 s when 0.
	Backoff, MaxBackoff time.Duration
	// OnCommit, if set, is called after each transaction commits, on Run's
	// goroutine (a slow OnCommit slows the sink).
	OnCommit func(SinkCommit)
	// Log receives the sink's warnings; nil discards them.
	Log *slog.Logger

	mu    sync.Mutex
	stats SinkStats
}

// SinkCommit describes one committed transaction of a sink.
type SinkCommit struct {
	// Records is how many records the transaction applied; DeadLettered how
	// many it skipped after writing them to the dead-letter topic.
	Records, DeadLettered int
	// Next is the next offset now stored for each partition it moved.
	Next map[int32]int64
}

// SinkStats is a sink's progress since Run started.
type SinkStats struct {
	// Applied counts the records whose effect committed; DeadLettered those
	// written to <Name>-dlq instead; Retries the transactions rolled back
	// for a transient error and tried again.
	Applied, DeadLettered, Retries int64
	// Partitions is each source partition's progress.
	Partitions map[int32]SinkPartition
}

// SinkPartition is one source partition's progress.
type SinkPartition struct {
	// Next is the next offset stored in the database (-2: not read yet, the
	// earliest record is next).
	Next int64
	// HighWater is the partition's high-water mark last seen by the
	// consumer (-1 before it fetched); Lag is HighWater - Next when both
	// are known, else -1. Under read-committed a transaction's closing
	// marker can leave a lag of 1 at the end of a partition.
	HighWater, Lag int64
}

// Sink errors a caller tells apart.
var (
	// ErrTransient marks an error of Apply as transient: the batch is
	// rolled back and retried after a backoff instead of the record being
	// dead-lettered. Wrap it: fmt.Errorf("…: %w", outbox.ErrTransient).
	ErrTransient = errors.New("outbox: transient error")
	// ErrSinkSQL is returned by Run when the database says a statement is
	// wrong (no such table or column, a syntax error): a fault of the
	// sink's SQL or schema, not of a record.
	ErrSinkSQL = errors.New("outbox: sink statement rejected by the database")
)

// errOffsetsMoved: the stored offsets are not those the sink read from;
// another instance or a reset moved them. The sink resumes from them.
var errOffsetsMoved = errors.New("outbox: sink offsets moved by someone else")

var sinkNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// DLQTopic is the sink's dead-letter topic, <Name>-dlq.
func (s *Sink[V]) DLQTopic() string { return s.Name + "-dlq" }

// Stats returns the sink's progress. Safe to call concurrently with Run.
func (s *Sink[V]) Stats() SinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Partitions = make(map[int32]SinkPartition, len(s.stats.Partitions))
	for p, sp := range s.stats.Partitions {
		sp.Lag = -1
		if sp.HighWater >= 0 && sp.Next >= 0 {
			sp.Lag = max(sp.HighWater-sp.Next, 0)
		}
		st.Partitions[p] = sp
	}
	return st
}

func (s *Sink[V]) validate() error {
	switch {
	case !sinkNamePattern.MatchString(s.Name):
		return fmt.Errorf("outbox: sink name %q: want letters, digits, '.', '_' and '-'", s.Name)
	case s.DB == nil:
		return fmt.Errorf("outbox: sink %s: no database", s.Name)
	case s.Source.decode == nil || s.Source.topic == "":
		return fmt.Errorf("outbox: sink %s: no source (use TableSource or StreamSource)", s.Name)
	case s.Apply == nil:
		return fmt.Errorf("outbox: sink %s: no Apply", s.Name)
	case len(s.Kafka.Brokers) == 0:
		return fmt.Errorf("outbox: sink %s: no Kafka brokers", s.Name)
	}
	return nil
}

func (s *Sink[V]) saramaConfig() *sarama.Config {
	id := s.Kafka.ClientID
	if id == "" {
		id = s.Name
	}
	var c *sarama.Config
	if s.Kafka.Config != nil {
		c = kafkaconf.Copy(s.Kafka.Config, id)
	} else {
		c = kafkaconf.Sarama(id, 0)
		c.Producer.Flush.Frequency = time.Millisecond // dead letters go one at a time
	}
	// An aborted transaction's records never happened: never apply them.
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	return c
}

// Run creates SinkOffsetsTable and the dead-letter topic if they are
// missing, then reads and applies the source until ctx ends (it then
// returns ctx's error) or a fatal error: a Kafka client that cannot start,
// an offset no longer in the log, ErrSinkSQL. Transient database errors
// are retried, not returned.
func (s *Sink[V]) Run(ctx context.Context) error {
	if err := s.validate(); err != nil {
		return err
	}
	if err := sinkMigrate(ctx, s.DB); err != nil {
		return err
	}
	cfg := s.saramaConfig()
	client, err := sarama.NewClient(s.Kafka.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("outbox: sink %s: kafka client: %w", s.Name, err)
	}
	defer client.Close()
	topic := s.Source.topic
	parts, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("outbox: sink %s: partitions of %s: %w", s.Name, topic, err)
	}
	dlq := tables.Stream[[]byte]{Name: s.DLQTopic(), Partitions: len(parts)}.Spec()
	// -1: the cluster's default replication factor.
	if _, err := topics.Ensure(ctx, client, []tables.Spec{dlq}, -1, s.log()); err != nil {
		return fmt.Errorf("outbox: sink %s: dead-letter topic: %w", s.Name, err)
	}
	dead, err := producer.New(s.Kafka.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("outbox: sink %s: dead-letter producer: %w", s.Name, err)
	}
	defer dead.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("outbox: sink %s: consumer: %w", s.Name, err)
	}
	defer consumer.Close()
	r := &sinkRun[V]{sink: s, topic: topic, parts: parts, consumer: consumer, dead: dead}
	for {
		err := r.epoch(ctx)
		if !errors.Is(err, errOffsetsMoved) {
			return err
		}
		s.log().Warn("sink offsets moved by another writer; resuming from the stored ones", "sink", s.Name, "topic", topic)
	}
}

func (s *Sink[V]) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Sink[V]) batch() int {
	if s.Batch > 0 {
		return s.Batch
	}
	return 500
}

// sinkRun is one Run's Kafka side.
type sinkRun[V any] struct {
	sink     *Sink[V]
	topic    string
	parts    []int32
	consumer sarama.Consumer
	dead     *producer.Sender

	next map[int32]int64 // the offsets stored in the database, as last read or written
}

// sinkRecord is a record read, decoded or not.
type sinkRecord[V any] struct {
	msg   *sarama.ConsumerMessage
	value *V
	err   error // decoding failed: a poison record
	dead  bool  // dead-lettered: skipped by Apply, its offset still moves
}

// epoch reads the stored offsets, consumes every partition from them and
// applies batches until ctx ends, a fatal error, or errOffsetsMoved.
func (r *sinkRun[V]) epoch(ctx context.Context) error {
	s := r.sink
	next, err := sinkLoadOffsets(ctx, s.DB, s.Name, r.topic, r.parts)
	if err != nil {
		return err
	}
	r.next = next
	s.mu.Lock()
	s.stats.Partitions = make(map[int32]SinkPartition, len(r.parts))
	for _, p := range r.parts {
		s.stats.Partitions[p] = SinkPartition{Next: next[p], HighWater: -1}
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the forwarders see ctx end
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan *sarama.ConsumerMessage, s.batch())
	stopped := make(chan error, len(r.parts))
	for _, p := range r.parts {
		pc, err := r.consumer.ConsumePartition(r.topic, p, next[p])
		if err != nil {
			if errors.Is(err, sarama.ErrOffsetOutOfRange) {
				return fmt.Errorf("outbox: sink %s: stored offset %d of %s/%d is not in the log (topic recreated or truncated? ResetSink rebuilds the read model): %w", s.Name, next[p], r.topic, p, err)
			}
			return fmt.Errorf("outbox: sink %s: consume %s/%d from %d: %w", s.Name, r.topic, p, next[p], err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.forward(ctx, p, pc, in, stopped)
		}()
	}
	batch := make([]sinkRecord[V], 0, s.batch())
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stopped:
			return err
		case m := <-in:
			batch = append(batch, r.decode(m))
		}
	fill:
		for len(batch) < s.batch() {
			select {
			case m := <-in:
				batch = append(batch, r.decode(m))
			default:
				break fill
			}
		}
		if err := r.apply(ctx, batch); err != nil {
			return err
		}
	}
}

// forward hands a partition's records to the batching loop, in order, and
// notes the partition's high-water mark. A partition consumer that stops by
// itself (its offset left the log) is reported on stopped.
func (r *sinkRun[V]) forward(ctx context.Context, p int32, pc sarama.PartitionConsumer, in chan<- *sarama.ConsumerMessage, stopped chan<- error) {
	s := r.sink
	var last error
	errs := pc.Errors()
	defer func() {
		if err := pc.Close(); err != nil {
			s.log().Warn("sink partition consumer", "sink", s.Name, "topic", r.topic, "partition", p, "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-errs:
			if !ok {
				errs = nil // closed with Messages, which says so next
			} else {
				last = e.Err
				s.log().Warn("sink partition consumer", "sink", s.Name, "topic", r.topic, "partition", p, "err", e.Err)
			}
		case m, ok := <-pc.Messages():
			if !ok {
				stopped <- fmt.Errorf("outbox: sink %s: consumer of %s/%d stopped: %w", s.Name, r.topic, p, last)
				return
			}
			hw := pc.HighWaterMarkOffset()
			s.mu.Lock()
			sp := s.stats.Partitions[p]
			sp.HighWater = hw
			s.stats.Partitions[p] = sp
			s.mu.Unlock()
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (r *sinkRun[V]) decode(m *sarama.ConsumerMessage) sinkRecord[V] {
	v, err := r.sink.Source.decode(m.Value)
	if err != nil {
		err = &sinkPoison{class: processors.ClassDecode, err: fmt.Errorf("decode %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)}
	}
	return sinkRecord[V]{msg: m, value: v, err: err}
}

// sinkPoison is a record's own fault: it is dead-lettered and skipped.
type sinkPoison struct {
	index int
	class string
	err   error
}

func (e *sinkPoison) Error() string { return e.err.Error() }
func (e *sinkPoison) Unwrap() error { return e.err }

// apply commits batch: every record's effect and the partitions' next
// offsets in one transaction, retrying transient failures and
// dead-lettering poison records first.
func (r *sinkRun[V]) apply(ctx context.Context, batch []sinkRecord[V]) error {
	s := r.sink
	for i := range batch {
		if batch[i].err != nil {
			if err := r.deadLetter(ctx, &batch[i], batch[i].err); err != nil {
				return err
			}
		}
	}
	wait := s.Backoff
	if wait <= 0 {
		wait = 100 * time.Millisecond
	}
	maxWait := s.MaxBackoff
	if maxWait <= 0 {
		maxWait = 10 * time.Second
	}
	for {
		commit, err := r.try(ctx, batch)
		if err == nil {
			r.committed(commit)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var poison *sinkPoison
		switch {
		case errors.As(err, &poison):
			if err := r.deadLetter(ctx, &batch[poison.index], poison); err != nil {
				return err
			}
			continue // again without it, at once: the rest of the batch is fine
		case errors.Is(err, errOffsetsMoved), errors.Is(err, ErrSinkSQL):
			return err
		}
		s.mu.Lock()
		s.stats.Retries++
		s.mu.Unlock()
		s.log().Warn("sink transaction failed; retrying", "sink", s.Name, "topic", r.topic, "records", len(batch), "backoff", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// try runs batch in one transaction. An error is a *sinkPoison naming the
// record at fault, errOffsetsMoved, an ErrSinkSQL, or anything else
// (transient: try again).
func (r *sinkRun[V]) try(ctx context.Context, batch []sinkRecord[V]) (SinkCommit, error) {
	s := r.sink
	commit := SinkCommit{Next: map[int32]int64{}}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return commit, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after a commit it does nothing
	ctx = context.WithValue(ctx, sinkStmtsKey{}, &sinkStmts{tx: tx, stmts: map[string]*sql.Stmt{}})
	for i := range batch {
		rec := &batch[i]
		m := rec.msg
		commit.Next[m.Partition] = m.Offset + 1
		if rec.dead {
			commit.DeadLettered++
			continue
		}
		c := Change[V]{Key: string(m.Key), Value: rec.value, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp}
		if err := sinkSafely(func() error { return s.Apply(ctx, tx, c) }); err != nil {
			if ctx.Err() != nil {
				return commit, ctx.Err()
			}
			switch sinkClassify(err) {
			case sinkRetry:
				return commit, err
			case sinkFatal:
				if errors.Is(err, ErrSinkSQL) {
					return commit, fmt.Errorf("sink %s, %s/%d@%d: %w", s.Name, m.Topic, m.Partition, m.Offset, err)
				}
				return commit, fmt.Errorf("%w: sink %s, %s/%d@%d: %w", ErrSinkSQL, s.Name, m.Topic, m.Partition, m.Offset, err)
			}
			var poison *sinkPoison
			if !errors.As(err, &poison) {
				poison = &sinkPoison{class: processors.ClassHandler, err: err}
			}
			poison.index = i
			return commit, poison
		}
		commit.Records++
	}
	for p, n := range commit.Next {
		res, err := tx.ExecContext(ctx, `UPDATE `+SinkOffsetsTable+` SET next_offset = $1 WHERE sink = $2 AND topic = $3 AND partition = $4 AND next_offset = $5`,
			n, s.Name, r.topic, p, r.next[p])
		if err != nil {
			return commit, fmt.Errorf("store offset: %w", err)
		}
		if k, err := res.RowsAffected(); err != nil {
			return commit, fmt.Errorf("store offset: %w", err)
		} else if k != 1 {
			return commit, fmt.Errorf("%w: %s/%d is no longer at %d", errOffsetsMoved, r.topic, p, r.next[p])
		}
	}
	if err := tx.Commit(); err != nil {
		// Committed or not, the compare-and-set above tells on the retry.
		return commit, fmt.Errorf("commit: %w", err)
	}
	return commit, nil
}

func (r *sinkRun[V]) committed(c SinkCommit) {
	s := r.sink
	s.mu.Lock()
	for p, n := range c.Next {
		r.next[p] = n
		sp := s.stats.Partitions[p]
		sp.Next = n
		s.stats.Partitions[p] = sp
	}
	s.stats.Applied += int64(c.Records)
	s.mu.Unlock()
	if s.OnCommit != nil {
		s.OnCommit(c)
	}
}

// deadLetter writes rec to the sink's dead-letter topic, exactly as it
// arrived, with the framework's headers, and waits for the broker; it
// retries with backoff until the broker acknowledges or ctx ends, since the
// offset must not move past a record that is nowhere.
func (r *sinkRun[V]) deadLetter(ctx context.Context, rec *sinkRecord[V], cause error) error {
	s := r.sink
	m := rec.msg
	class := processors.ClassHandler
	var poison *sinkPoison
	if errors.As(cause, &poison) {
		class = poison.class
	}
	msg := &sarama.ProducerMessage{Topic: s.DLQTopic(), Key: sarama.ByteEncoder(m.Key)}
	if m.Value != nil {
		msg.Value = sarama.ByteEncoder(m.Value)
	}
	set := map[string]string{
		processors.HeaderOriginalTopic:     m.Topic,
		processors.HeaderOriginalPartition: strconv.Itoa(int(m.Partition)),
		processors.HeaderOriginalOffset:    strconv.FormatInt(m.Offset, 10),
		processors.HeaderOriginalTimestamp: m.Timestamp.UTC().Format(time.RFC3339Nano),
		processors.HeaderOriginalGroup:     s.Name,
		processors.HeaderOriginalKey:       string(m.Key),
		processors.HeaderExceptionClass:    class,
		processors.HeaderExceptionMessage:  cause.Error(),
		processors.HeaderAttempts:          "1",
		processors.HeaderFirstFailure:      time.Now().UTC().Format(time.RFC3339Nano),
	}
	for _, h := range m.Headers {
		if _, ours := set[string(h.Key)]; !ours {
			msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	for k, v := range set {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	s.log().Warn("dead-lettered record", "sink", s.Name, "topic", m.Topic, "partition", m.Partition,
		"offset", m.Offset, "key", string(m.Key), "class", class, "err", cause)
	wait := max(s.Backoff, time.Millisecond)
	for {
		_, _, err := r.dead.Send(ctx, msg)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log().Warn("dead letter not acknowledged; retrying", "sink", s.Name, "topic", s.DLQTopic(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, max(s.MaxBackoff, 10*time.Second))
	}
	rec.dead = true
	s.mu.Lock()
	s.stats.DeadLettered++
	s.mu.Unlock()
	return nil
}

// sinkSafely runs Apply, turning a panic into a poison record's error.
func sinkSafely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &sinkPoison{class: processors.ClassPanic, err: fmt.Errorf("apply panicked: %v\n%s", p, debug.Stack())}
		}
	}()
	return fn()
}

// sinkMigrate creates SinkOffsetsTable if it is missing (the same DDL on
// both databases).
func sinkMigrate(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}) error {
	ddl := `CREATE TABLE IF NOT EXISTS ` + SinkOffsetsTable + ` (
	sink text NOT NULL,
	topic text NOT NULL,
	partition integer NOT NULL,
	next_offset bigint NOT NULL,
	PRIMARY KEY (sink, topic, partition)
)`
	_, err := db.ExecContext(ctx, ddl)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07" || pe.Code == "42710") {
		// Two sinks created it at once: PostgreSQL's IF NOT EXISTS does not
		// cover the race (a duplicate in its catalogue). Now it exists.
		_, err = db.ExecContext(ctx, ddl)
	}
	if err != nil {
		return fmt.Errorf("outbox: create table %s: %w", SinkOffsetsTable, err)
	}
	return nil
}

// sinkLoadOffsets reads a sink's stored offsets of topic, first adding a
// row (the earliest record is next) for each partition that has none, so
// that every later update is a compare-and-set on an existing row.
func sinkLoadOffsets(ctx context.Context, db *DB, sink, topic string, parts []int32) (map[int32]int64, error) {
	for _, p := range parts {
		if _, err := db.ExecContext(ctx, `INSERT INTO `+SinkOffsetsTable+` (sink, topic, partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT (sink, topic, partition) DO NOTHING`,
			sink, topic, p, sinkOldest); err != nil {
			return nil, fmt.Errorf("outbox: sink %s: add offsets of %s/%d: %w", sink, topic, p, err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT partition, next_offset FROM `+SinkOffsetsTable+` WHERE sink = $1 AND topic = $2`, sink, topic)
	if err != nil {
		return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
	}
	defer rows.Close()
	next := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
		}
		next[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: sink %s: read offsets: %w", sink, err)
	}
	return next, nil
}

// ResetSink forgets where the sink named name is, so its next Run reads its
// source from the earliest record again: it deletes the sink's rows of
// SinkOffsetsTable. To rebuild a read model, empty its tables and call
// ResetSink in one transaction, with the sink stopped:
//
//	tx, _ := db.BeginTx(ctx, nil)
//	tx.ExecContext(ctx, `DELETE FROM customers`)
//	outbox.ResetSink(ctx, tx, "customers-sql")
//	tx.Commit()
//
// exec is a *sql.Tx, a *DB or a *sql.DB.
func ResetSink(ctx context.Context, exec interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, name string) error {
	if err := sinkMigrate(ctx, exec); err != nil {
		return err
	}
	if _, err := exec.ExecContext(ctx, `DELETE FROM `+SinkOffsetsTable+` WHERE sink = $1`, name); err != nil {
		return fmt.Errorf("outbox: reset sink %s: %w", name, err)
	}
	return nil
}
