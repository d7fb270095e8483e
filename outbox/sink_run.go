package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/internal/producer"
	"github.com/streamfold/streamfold/processors"
)

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
				return fmt.Errorf("outbox: sink %s: stored offset %d of %s/%d is not in the log (topic recreated or truncated? Sink.Rebuild, or ResetSink, rebuilds the read model): %w: %w", s.Name, next[p], r.topic, p, ErrSinkAhead, err)
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

// backoff is the wait between a sink's tries, of a transaction or of a
// dead letter: Backoff doubling up to MaxBackoff, 100 ms and 10 s when 0.
func (s *Sink[V]) backoff() backoff {
	b := backoff{min: s.Backoff, max: s.MaxBackoff}
	if b.min <= 0 {
		b.min = 100 * time.Millisecond
	}
	if b.max <= 0 {
		b.max = 10 * time.Second
	}
	b.max = max(b.max, b.min)
	return b
}

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
	b := s.backoff()
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
		wait := b.next()
		s.log().Warn("sink transaction failed; retrying", "sink", s.Name, "topic", r.topic, "records", len(batch), "backoff", wait, "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
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
	b := s.backoff()
	for {
		_, _, err := r.dead.Send(ctx, msg)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log().Warn("dead letter not acknowledged; retrying", "sink", s.Name, "topic", s.DLQTopic(), "err", err)
		if !sleep(ctx, b.next()) {
			return ctx.Err()
		}
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
