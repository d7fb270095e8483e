// Package producer writes single records and waits for each one's
// acknowledgement or the caller's context, whichever comes first: a sarama
// SyncProducer blocks until the broker answers or its retries run out,
// whatever the caller's deadline. Emitters and the runtime's own records
// (bootstrap targets, sweep requests) share one.
package producer

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"
)

// Sender writes single records and waits for each one's acknowledgement
// without giving up the caller's context. A record whose caller stopped
// waiting may still be written (its outcome is unknown to the caller). Safe
// for concurrent use.
type Sender struct {
	p    sarama.AsyncProducer
	done chan struct{} // closed when every result has been delivered
}

// sent is one record's outcome.
type sent struct {
	partition int32
	offset    int64
	err       error
}

// New starts a Sender over an async producer configured by c.
func New(brokers []string, c *sarama.Config) (*Sender, error) {
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	p, err := sarama.NewAsyncProducer(brokers, c)
	if err != nil {
		return nil, err
	}
	s := &Sender{p: p, done: make(chan struct{})}
	go s.deliver()
	return s, nil
}

// deliver hands each acknowledgement or error to the record's waiter (a
// buffered channel in its metadata, so a waiter that left blocks nothing).
func (s *Sender) deliver() {
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

// Send writes msg and waits for its acknowledgement or for ctx to end.
func (s *Sender) Send(ctx context.Context, msg *sarama.ProducerMessage) (int32, int64, error) {
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

// SendAll writes msgs in their order and waits for every outcome or for ctx
// to end. It returns how many of msgs, counted from the first, were
// acknowledged, and the first error (nil when all were).
func (s *Sender) SendAll(ctx context.Context, msgs []*sarama.ProducerMessage) (int, error) {
	results := make([]chan sent, len(msgs))
	for i, msg := range msgs {
		results[i] = make(chan sent, 1)
		msg.Metadata = results[i]
		select {
		case s.p.Input() <- msg:
		case <-ctx.Done():
			// what was handed over may still be written; its outcome is unknown
			return 0, fmt.Errorf("outcome unknown: %w", ctx.Err())
		}
	}
	acked := 0
	var first error
	for _, r := range results {
		select {
		case res := <-r:
			if res.err != nil && first == nil {
				first = res.err
			}
			if first == nil {
				acked++
			}
		case <-ctx.Done():
			return acked, fmt.Errorf("outcome unknown: %w", ctx.Err())
		}
	}
	return acked, first
}

// SendTxn writes msgs in one Kafka transaction (the Sender must be made
// with a transactional config: Producer.Transaction.ID set): either every
// record is committed, or the transaction is aborted and consumers that read
// committed records see none of them — never a later record without an
// earlier one. It gives up when ctx ends, also while the transaction is
// being committed or aborted (the outcome is then unknown, and an open
// transaction is aborted by the broker after its timeout). After an error
// the Sender's transactional state may be unusable: close it and make a new
// one.
func (s *Sender) SendTxn(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if err := s.p.BeginTxn(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if _, err := s.SendAll(ctx, msgs); err != nil {
		if aerr := s.endTxn(ctx, s.p.AbortTxn); aerr != nil {
			return fmt.Errorf("%w (abort: %v)", err, aerr)
		}
		return err
	}
	if err := s.endTxn(ctx, s.p.CommitTxn); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// endTxn commits or aborts, or gives up when ctx ends first (sarama retries
// EndTxn on its own schedule, not the caller's).
func (s *Sender) endTxn(ctx context.Context, end func() error) error {
	done := make(chan error, 1)
	go func() { done <- end() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

// Close flushes what is buffered and waits for its outcomes.
func (s *Sender) Close() {
	s.p.AsyncClose()
	<-s.done
}
