package streamfold

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/producer"
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

// Emit encodes v and writes it under key. With Config.TracerProvider set,
// it sends the record in a producer span, a child of ctx's, whose trace
// context the record carries (HeaderTraceParent).
func (e *Emitter[V]) Emit(ctx context.Context, key string, v V, headers ...codecs.Header) (Position, error) {
	b, err := e.stream.Codec.Encode(v)
	if err != nil {
		return Position{}, fmt.Errorf("encode for %s: %w", e.stream.Name, err)
	}
	if e.rt.tracer == nil {
		return e.rt.produce(ctx, e.stream.Name, key, b, headers)
	}
	headers, end := e.rt.traceSend(ctx, e.stream.Name, headers)
	pos, err := e.rt.produce(ctx, e.stream.Name, key, b, headers)
	end(pos, err)
	return pos, err
}

func (rt *Runtime) sender() (*producer.Sender, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.producer != nil {
		return rt.producer, nil
	}
	c := kafkaconf.Copy(rt.builders.Base, rt.cfg.ClientID+"-emitter")
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	s, err := producer.New(rt.cfg.Brokers, c)
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
	part, off, err := s.Send(ctx, msg)
	if err != nil {
		return Position{}, fmt.Errorf("produce to %s: %w", topic, err)
	}
	return Position{Topic: topic, Partition: part, Offset: off}, nil
}
