package deadletters

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/processors"
)

// RedriveState is what became of a re-driven dead letter (see
// processors.RedriveState); statuses are processors.Redrive*.
type RedriveState = processors.RedriveState

// states reads group's <group>-dlq-state up to its end offsets: the last
// RedriveState per original coordinates. A group without the topic (one
// that ran before re-drives were recorded, or never ran here) has none.
func (c *Client) states(ctx context.Context, group string) (map[string]RedriveState, error) {
	out := map[string]RedriveState{}
	table := processors.RedriveStates(group)
	parts, err := c.partitions(table.Name)
	if errors.Is(err, ErrNoTopic) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	ends, err := c.bounds(table.Name, parts)
	if err != nil {
		return nil, err
	}
	spans := make([]span, 0, len(parts))
	for _, p := range parts {
		spans = append(spans, span{p, ends[p].oldest, ends[p].newest})
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	var bad error
	err = read(ctx, consumer, table.Name, spans, func(m *sarama.ConsumerMessage) bool {
		key := string(m.Key)
		if m.Value == nil {
			delete(out, key)
			return true
		}
		s, derr := table.Codec.Decode(m.Value)
		if derr != nil {
			// One bad record must not hide every other state; say so in the log.
			bad = fmt.Errorf("%s/%d/%d: %w", m.Topic, m.Partition, m.Offset, derr)
			return true
		}
		out[key] = s
		return true
	})
	if bad != nil {
		c.log.Warn("undecodable re-drive state", "group", group, "err", bad)
	}
	return out, err
}

// withStates attaches each dead letter's re-drive state.
func withStates(ds []DeadLetter, states map[string]RedriveState) {
	for i := range ds {
		if s, ok := states[ds[i].Original()]; ok {
			ds[i].Redrive = &s
		}
	}
}

// stateMessage is the record that sets one state.
func stateMessage(group, key string, s *RedriveState) (*sarama.ProducerMessage, error) {
	table := processors.RedriveStates(group)
	b, err := table.Codec.Encode(*s)
	if err != nil {
		return nil, fmt.Errorf("encode re-drive state: %w", err)
	}
	return &sarama.ProducerMessage{Topic: table.Name, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)}, nil
}
