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
	// Each batch is a transaction (see send). A publisher's own id, so two
	// relays never fence each other; a crashed relay's open transaction is
	// aborted by the broker after Timeout, and until then holds back
	// read-committed consumers of its partitions.
	c.Producer.Idempotent, c.Net.MaxOpenRequests, c.Producer.RequiredAcks = true, 1, sarama.WaitForAll
	c.Producer.Transaction.ID = id + "-" + codecs.NewID()
	c.Producer.Transaction.Timeout = publishTxnTimeout
	c.Producer.Transaction.Retry.Max, c.Producer.Transaction.Retry.Backoff = 5, 100*time.Millisecond
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

// send writes one batch of records in a Kafka transaction and waits for it
// to commit: all of them count (it returns len(msgs)), or none does (0 and
// the error) and the transaction is aborted, so a consumer reading
// committed records (every streamfold group does) never sees a later record
// of an aggregate without an earlier one that failed — which a plain batch
// could show when one record fails and the next gets through. Kafka
// Connect's exactly-once source connectors publish the same way. The rows of
// an aborted batch are sent again, in order.
func (p *publisher) send(ctx context.Context, msgs []*sarama.ProducerMessage) (int, error) {
	if err := p.sender.SendTxn(ctx, msgs); err != nil {
		return 0, err
	}
	return len(msgs), nil
}

func (p *publisher) close() { p.sender.Close() }

// publishTxnTimeout is how long the broker lets a relay's transaction stay
// open: a batch commits in well under it, and it bounds how long a crashed
// relay holds back consumers.
const publishTxnTimeout = 10 * time.Second
