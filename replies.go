package streamfold

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/tables"
)

// ErrNoReply: no reply arrived before the caller's deadline.
var ErrNoReply = errors.New("no reply in time")

// Replies correlates the records of a reply stream, keyed by correlation id
// (e.g. a command id), with callers waiting for them: a request/reply path over
// Kafka. It reads every partition from the end as of its creation, so a caller
// must Expect an id before sending the request that will be answered. Safe for
// concurrent use.
type Replies[R any] struct {
	stream   tables.Stream[R]
	consumer sarama.Consumer
	parts    []sarama.PartitionConsumer
	wg       sync.WaitGroup

	mu      sync.Mutex
	waiters map[string][]chan R
	closed  bool
}

// NewReplies starts reading s from its end.
func NewReplies[R any](rt *Runtime, s tables.Stream[R]) (*Replies[R], error) {
	c := kafkaconf.Copy(rt.builders.Base, rt.cfg.ClientID+"-replies")
	c.Consumer.Return.Errors = false
	// Close waits for the fetch in flight, which a broker answers within
	// Consumer.MaxWaitTime (500 ms); one that does not answer (seen with the
	// embedded broker) would hold Close for the whole default read timeout.
	c.Net.ReadTimeout = 10 * time.Second
	consumer, err := sarama.NewConsumer(rt.cfg.Brokers, c)
	if err != nil {
		return nil, fmt.Errorf("replies %s: %w", s.Name, err)
	}
	r := &Replies[R]{stream: s, consumer: consumer, waiters: map[string][]chan R{}}
	parts, err := consumer.Partitions(s.Name)
	if err != nil {
		consumer.Close()
		return nil, fmt.Errorf("replies %s: %w", s.Name, err)
	}
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(s.Name, p, sarama.OffsetNewest)
		if err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("replies %s/%d: %w", s.Name, p, err)
		}
		r.parts = append(r.parts, pc)
		r.wg.Add(1)
		go r.read(pc)
	}
	return r, nil
}

func (r *Replies[R]) read(pc sarama.PartitionConsumer) {
	defer r.wg.Done()
	for msg := range pc.Messages() {
		if msg.Value == nil {
			continue
		}
		v, err := r.stream.Codec.Decode(msg.Value)
		if err != nil {
			continue // not ours to judge; the waiter times out
		}
		r.mu.Lock()
		ws := r.waiters[string(msg.Key)]
		delete(r.waiters, string(msg.Key))
		r.mu.Unlock()
		for _, w := range ws {
			w <- v
		}
	}
}

// Expect registers interest in the reply with id. Call wait after sending the
// request; call cancel if the request is never sent.
func (r *Replies[R]) Expect(id string) (wait func(context.Context) (R, error), cancel func()) {
	ch := make(chan R, 1)
	r.mu.Lock()
	if !r.closed {
		r.waiters[id] = append(r.waiters[id], ch)
	}
	r.mu.Unlock()
	cancel = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		ws := r.waiters[id]
		for i, w := range ws {
			if w == ch {
				r.waiters[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(r.waiters[id]) == 0 {
			delete(r.waiters, id)
		}
	}
	wait = func(ctx context.Context) (R, error) {
		defer cancel()
		select {
		case v := <-ch:
			return v, nil
		case <-ctx.Done():
			var zero R
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return zero, fmt.Errorf("%w: %w", ErrNoReply, ctx.Err())
			}
			return zero, ctx.Err()
		}
	}
	return wait, cancel
}

// Close stops reading.
func (r *Replies[R]) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, pc := range r.parts {
		pc.AsyncClose()
	}
	r.wg.Wait()
	return r.consumer.Close()
}
