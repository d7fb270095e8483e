// Package commits commits a consumer group's offsets in order: a partition's
// offset moves only as far as every record delivered before it has
// completed.
//
// goka marks each record's offset once the record's emits are acknowledged,
// and they are acknowledged in any order: a record whose emits (say, its
// events) were still in flight when a later one completed would be committed
// past, and lost if the process died then.
package commits

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
)

// InOrder wraps cg so that every Consume call commits in order.
func InOrder(cg sarama.ConsumerGroup) sarama.ConsumerGroup { return group{cg} }

type group struct{ sarama.ConsumerGroup }

func (g group) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &inOrder{h: h})
}

// inOrder is the handler of one Consume call; sarama calls its methods from
// several goroutines.
type inOrder struct {
	h sarama.ConsumerGroupHandler

	mu       sync.Mutex
	sessions map[sarama.ConsumerGroupSession]*orderedSession
}

func (o *inOrder) session(s sarama.ConsumerGroupSession) *orderedSession {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sessions == nil {
		o.sessions = map[sarama.ConsumerGroupSession]*orderedSession{}
	}
	os, ok := o.sessions[s]
	if !ok {
		os = &orderedSession{ConsumerGroupSession: s, parts: map[topicPartition]*inFlight{}}
		o.sessions[s] = os
	}
	return os
}

func (o *inOrder) Setup(s sarama.ConsumerGroupSession) error { return o.h.Setup(o.session(s)) }

func (o *inOrder) Cleanup(s sarama.ConsumerGroupSession) error {
	err := o.h.Cleanup(o.session(s))
	o.mu.Lock()
	delete(o.sessions, s)
	o.mu.Unlock()
	return err
}

func (o *inOrder) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	os := o.session(s)
	out := make(chan *sarama.ConsumerMessage)
	go func() {
		defer close(out)
		msgs := c.Messages()
		for msg := range msgs {
			os.deliver(msg)
			select {
			case out <- msg:
				continue
			case <-s.Context().Done():
			}
			break
		}
		for range msgs { // sarama closes the channel once the session ends
		}
	}()
	return o.h.ConsumeClaim(os, orderedClaim{ConsumerGroupClaim: c, msgs: out})
}

type orderedClaim struct {
	sarama.ConsumerGroupClaim
	msgs chan *sarama.ConsumerMessage
}

func (c orderedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

type topicPartition struct {
	topic     string
	partition int32
}

// inFlight are the offsets of a partition delivered and not committed yet,
// in delivery order, and those of them that completed.
type inFlight struct {
	delivered []int64
	done      map[int64]bool
}

type orderedSession struct {
	sarama.ConsumerGroupSession

	mu    sync.Mutex
	parts map[topicPartition]*inFlight
}

func (s *orderedSession) deliver(msg *sarama.ConsumerMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{msg.Topic, msg.Partition}
	f, ok := s.parts[tp]
	if !ok {
		f = &inFlight{done: map[int64]bool{}}
		s.parts[tp] = f
	}
	f.delivered = append(f.delivered, msg.Offset)
}

// MarkOffset records that the record before next completed, and marks the
// partition as far as the records delivered so far have all completed.
func (s *orderedSession) MarkOffset(topic string, partition int32, next int64, metadata string) {
	s.mu.Lock()
	f, ok := s.parts[topicPartition{topic, partition}]
	if !ok {
		s.mu.Unlock()
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
		return
	}
	f.done[next-1] = true
	last := int64(-1)
	for len(f.delivered) > 0 && f.done[f.delivered[0]] {
		last = f.delivered[0]
		delete(f.done, last)
		f.delivered = f.delivered[1:]
	}
	s.mu.Unlock()
	if last >= 0 {
		s.ConsumerGroupSession.MarkOffset(topic, partition, last+1, metadata)
	}
}

func (s *orderedSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}
