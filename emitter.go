package streamfold

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/tables"
)

// Position is where a record was written.
type Position struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Emitter writes typed records to one stream, murmur2-partitioned, with an
// idempotent producer, and returns once the broker has acknowledged them or
// the caller's context ends. Safe for concurrent use.
type Emitter[V any] struct {
	rt     *Runtime
	stream tables.Stream[V]
}

// NewEmitter returns an emitter for s over rt's shared producer.
func NewEmitter[V any](rt *Runtime, s tables.Stream[V]) *Emitter[V] {
	return &Emitter[V]{rt: rt, stream: s}
}

// Emit encodes v and writes it under key.
func (e *Emitter[V]) Emit(ctx context.Context, key string, v V, headers ...codecs.Header) (Position, error) {
	b, err := e.stream.Codec.Encode(v)
	if err != nil {
		return Position{}, fmt.Errorf("encode for %s: %w", e.stream.Name, err)
	}
	return e.rt.produce(ctx, e.stream.Name, key, b, headers)
}

// sender writes single records and waits for each one's acknowledgement
// without giving up the caller's context: a sarama SyncProducer blocks until
// the broker answers or its retries run out, whatever the caller's deadline.
// A record whose caller stopped waiting may still be written (its outcome is
// unknown to the caller). Safe for concurrent use.
type sender struct {
	p    sarama.AsyncProducer
	done chan struct{} // closed when every result has been delivered
}

// sent is one record's outcome.
type sent struct {
	partition int32
	offset    int64
	err       error
}

func newSender(brokers []string, c *sarama.Config) (*sender, error) {
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	p, err := sarama.NewAsyncProducer(brokers, c)
	if err != nil {
		return nil, err
	}
	s := &sender{p: p, done: make(chan struct{})}
	go s.deliver()
	return s, nil
}

// deliver hands each acknowledgement or error to the record's waiter (a
// buffered channel in its metadata, so a waiter that left blocks nothing).
func (s *sender) deliver() {
	defer close(s.done)
	successes, errs := s.p.Successes(), s.p.Errors()
	for successes != nil || errs != nil {
		select {
		case m, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			m.Metadata.(chan sent) <- sent{partition: m.Partition, offset: m.Offset}
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			e.Msg.Metadata.(chan sent) <- sent{err: e.Err}
		}
	}
}

// send writes msg and waits for its acknowledgement or for ctx to end.
func (s *sender) send(ctx context.Context, msg *sarama.ProducerMessage) (int32, int64, error) {
	result := make(chan sent, 1)
	msg.Metadata = result
	select {
	case s.p.Input() <- msg:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case r := <-result:
		return r.partition, r.offset, r.err
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

// close flushes what is buffered and waits for its outcomes.
func (s *sender) close() {
	s.p.AsyncClose()
	<-s.done
}

func (rt *Runtime) sender() (*sender, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.producer != nil {
		return rt.producer, nil
	}
	c := kafkaconf.Copy(rt.builders.Base, rt.cfg.ClientID+"-emitter")
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	s, err := newSender(rt.cfg.Brokers, c)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	rt.producer = s
	return s, nil
}

func (rt *Runtime) produce(ctx context.Context, topic, key string, value []byte, headers []codecs.Header) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	s, err := rt.sender()
	if err != nil {
		return Position{}, err
	}
	msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}
	if value != nil {
		msg.Value = sarama.ByteEncoder(value)
	}
	for _, h := range headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	part, off, err := s.send(ctx, msg)
	if err != nil {
		return Position{}, fmt.Errorf("produce to %s: %w", topic, err)
	}
	return Position{Topic: topic, Partition: part, Offset: off}, nil
}
