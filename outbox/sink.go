package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/producer"
	"github.com/streamfold/streamfold/internal/topics"
	"github.com/streamfold/streamfold/tables"
)

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
	// common case. Records of one partition come in order. A record's
	// effect counts once, but Apply may see it again in a transaction that
	// is then rolled back (a retry, a crash): write only through tx.
	Apply func(ctx context.Context, tx *sql.Tx, c Change[V]) error
	// Batch is the most records applied in one transaction; 500 when 0.
	Batch int
	// Backoff is the first wait after a transient error, doubled up to
	// MaxBackoff; 100 ms and 10 s when 0.
	Backoff, MaxBackoff time.Duration
	// Rebuild, if set, empties the read model inside tx: when a stored
	// offset is no longer in the source's log (the topic was recreated or
	// truncated), the sink runs it and resets its offsets in one
	// transaction, then builds the read model again from the log's start —
	// as a table's store that is ahead of its changelog is rebuilt. Without
	// it, Run stops with ErrSinkAhead. Rows.Clear is the common case.
	Rebuild func(ctx context.Context, tx *sql.Tx) error
	// OnCommit, if set, is called after each transaction commits, on Run's
	// goroutine (a slow OnCommit slows the sink).
	OnCommit func(SinkCommit)
	// Logger receives the sink's warnings; nil discards them.
	Logger *slog.Logger

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
	// ErrSinkAhead is returned by Run, without Sink.Rebuild, when a stored
	// offset is no longer in the source's log: the topic was recreated or
	// truncated (a wiped broker, a new cluster), so the read model holds
	// effects of records the log no longer has.
	ErrSinkAhead = errors.New("outbox: sink offsets are ahead of the log")
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
// returns nil, like PollingRelay.Run) or a fatal error: a Kafka client that cannot start,
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
		if ctx.Err() != nil {
			// Stopped: what is committed stays, the rest is read again. An
			// error on the way out (SQLite's "interrupted", a closed
			// consumer) is the stop's, not the sink's.
			return nil
		}
		if errors.Is(err, ErrSinkAhead) && s.Rebuild != nil {
			if err := s.rebuild(ctx); err != nil {
				return err
			}
			s.log().Warn("sink offsets were ahead of the log (topic recreated or truncated); read model emptied, rebuilding from the log's start",
				"sink", s.Name, "topic", topic, "cause", err)
			continue
		}
		if !errors.Is(err, errOffsetsMoved) {
			return err
		}
		s.log().Warn("sink offsets moved by another writer; resuming from the stored ones", "sink", s.Name, "topic", topic)
	}
}

// rebuild empties the read model and resets the sink's offsets in one
// transaction.
func (s *Sink[V]) rebuild(ctx context.Context) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: sink %s: rebuild: %w", s.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := s.Rebuild(ctx, tx); err != nil {
		return fmt.Errorf("outbox: sink %s: rebuild: %w", s.Name, err)
	}
	if err := ResetSink(ctx, tx, s.Name); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: sink %s: rebuild: %w", s.Name, err)
	}
	return nil
}

func (s *Sink[V]) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Sink[V]) batch() int {
	if s.Batch > 0 {
		return s.Batch
	}
	return 500
}
