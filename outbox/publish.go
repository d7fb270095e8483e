package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/producer"
)

// Kafka is where a relay publishes outbox rows.
type Kafka struct {
	// Brokers are the bootstrap brokers.
	Brokers []string
	// Config is the sarama configuration; nil means the framework's own
	// (idempotent producer, acks from all in-sync replicas, murmur2 keys like
	// Kafka's Java client). Its producer settings are used as given.
	Config *sarama.Config
	// Topic names the topic for a row's aggregate type; nil means the
	// aggregate type is the topic's name.
	Topic func(aggregateType string) string
	// ClientID names the relay's producer; "outbox-relay" when empty.
	ClientID string
}

// publisher sends rows to Kafka as structured CloudEvents keyed by their
// aggregate id and waits for the broker's acknowledgements.
type publisher struct {
	sender *producer.Sender
	topic  func(string) string
}

func newPublisher(k Kafka) (*publisher, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("outbox: no Kafka brokers")
	}
	id := k.ClientID
	if id == "" {
		id = "outbox-relay"
	}
	var c *sarama.Config
	if k.Config != nil {
		c = kafkaconf.Copy(k.Config, id)
	} else {
		c = kafkaconf.Sarama(id, 0)
		c.Producer.Flush.Frequency = time.Millisecond // a relay sends batches: no need to wait long
	}
	s, err := producer.New(k.Brokers, c)
	if err != nil {
		return nil, fmt.Errorf("outbox: producer: %w", err)
	}
	topic := k.Topic
	if topic == nil {
		topic = func(t string) string { return t }
	}
	return &publisher{sender: s, topic: topic}, nil
}

// message is row as the record a relay writes: the structured CloudEvent
// (the row's id is the event's id, the idempotency key downstream), keyed by
// the aggregate id so one aggregate's events share a partition and keep
// their order.
func (p *publisher) message(r Row) (*sarama.ProducerMessage, error) {
	e, err := r.Event()
	if err != nil {
		return nil, err
	}
	b, err := codecs.CloudEvents{}.Encode(e)
	if err != nil {
		return nil, fmt.Errorf("outbox: row %s: %w", r.ID, err)
	}
	return &sarama.ProducerMessage{
		Topic:   p.topic(r.AggregateType),
		Key:     sarama.StringEncoder(r.AggregateID),
		Value:   sarama.ByteEncoder(b),
		Headers: []sarama.RecordHeader{{Key: []byte(codecs.ContentTypeHeader), Value: []byte(codecs.ContentTypeStructured)}},
	}, nil
}

// publish writes rows in order and waits for the broker. It returns how
// many rows, from the first, are acknowledged — only those may be marked
// as relayed — and the first error.
func (p *publisher) publish(ctx context.Context, rows []Row) (int, error) {
	msgs := make([]*sarama.ProducerMessage, len(rows))
	for i, r := range rows {
		m, err := p.message(r)
		if err != nil {
			return 0, err
		}
		msgs[i] = m
	}
	n, err := p.sender.SendAll(ctx, msgs)
	if err != nil {
		return n, fmt.Errorf("outbox: publish: %w", err)
	}
	return n, nil
}

func (p *publisher) close() { p.sender.Close() }
