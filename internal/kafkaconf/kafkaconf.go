// Package kafkaconf is the framework's one sarama configuration and the goka
// builders made from it: every processor, view, producer and admin client of
// a runtime gets a copy of Sarama's answer, so that offsets, idempotence,
// isolation, partitioning and security are the same everywhere.
//
// The builders wrap every consumer group so that it rejoins after a rebalance
// at once (package rejoin) and commits offsets in order (package commits).
package kafkaconf

import (
	"fmt"
	"hash"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/streamfold/streamfold/internal/commits"
	"github.com/streamfold/streamfold/internal/rejoin"
	"github.com/streamfold/streamfold/tables"
)

// Version is the protocol version we speak; both real Kafka 3.x+ and the
// embedded broker accept it.
func Version() sarama.KafkaVersion { return sarama.V3_6_0_0 }

// Sarama is the one sarama configuration of the framework, for clients
// named clientID. A positive session is the consumer-group session timeout
// (sarama's default otherwise). Every client gets its own copy (Copy): goka's
// builders mutate what they are given.
func Sarama(clientID string, session time.Duration) *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = Version()
	c.ClientID = clientID
	// Event-sourced inputs start from the beginning; goka's default (newest)
	// silently skips history written before a group first starts. A committed
	// offset that fell out of the log resets to the earliest one too.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.ResetInvalidOffsets = true
	// A transactional producer's aborted records (and records of a
	// transaction still open) are never applied: every consumer of the
	// framework reads committed data only, as Kafka Streams does under
	// exactly-once.
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	// Idempotent producer: no duplicates from the producer's own retries.
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Compression = sarama.CompressionNone
	// Commits happen after emits are acknowledged; a short flush interval keeps
	// the table writes and replies of a request/reply path from idling 100 ms.
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Flush.Bytes = 256 * 1024
	c.Producer.Partitioner = Partitioner(func() hash.Hash32 { return tables.NewHasher() })
	c.Metadata.RefreshFrequency = 30 * time.Second
	// A join blocks until the rebalance completes, at most the rebalance
	// timeout, but sarama reads its answer with the plain read timeout: a
	// rebalance that waits longer for a slow member than that makes every
	// other member's join fail. Give up on the slow member first.
	c.Consumer.Group.Rebalance.Timeout = c.Net.ReadTimeout * 2 / 3
	if session > 0 {
		c.Consumer.Group.Session.Timeout = session
		c.Consumer.Group.Heartbeat.Interval = (session / 3).Truncate(time.Millisecond)
		// sarama sends heartbeats over the connection its fetches
		// long-poll on: a fetch may hold a heartbeat back for its whole
		// wait, which must stay well inside a short session.
		c.Consumer.MaxWaitTime = min(c.Consumer.MaxWaitTime, (session / 10).Truncate(time.Millisecond))
	}
	return c
}

// Copy is a copy of c for the client named clientID.
func Copy(c *sarama.Config, clientID string) *sarama.Config {
	cp := *c
	cp.ClientID = clientID
	return &cp
}

// Builders are what every goka processor and view is given: our sarama
// config (Base), murmur2 everywhere, topics created with the configured
// Replication (goka's topic manager would default to 2), goka's chatter
// logged to Log at debug level.
type Builders struct {
	Base        *sarama.Config
	Replication int
	Log         *slog.Logger
}

func (b Builders) topicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = b.Replication
	tmc.Stream.Replication = b.Replication
	tmc.Stream.Retention = -1
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	return tmc
}

func (b Builders) topicManager(brokers []string) (goka.TopicManager, error) {
	return goka.NewTopicManager(brokers, Copy(b.Base, b.Base.ClientID+"-topics"), b.topicManagerConfig())
}

func (b Builders) producer(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
	c := Copy(b.Base, clientID)
	c.Producer.Partitioner = Partitioner(hasher)
	return goka.NewProducer(brokers, c)
}

func (b Builders) consumerGroup(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
	cg, err := sarama.NewConsumerGroup(brokers, group, Copy(b.Base, clientID))
	if err != nil {
		return nil, err
	}
	return rejoin.Group(commits.InOrder(cg), group, b.Log), nil
}

func (b Builders) consumer(brokers []string, clientID string) (sarama.Consumer, error) {
	return sarama.NewConsumer(brokers, Copy(b.Base, clientID))
}

// ProcessorOptions are the options of every goka processor, storing its
// tables with storage.
func (b Builders) ProcessorOptions(storage goka.ProcessorOption) []goka.ProcessorOption {
	return []goka.ProcessorOption{
		storage,
		goka.WithHasher(func() hash.Hash32 { return tables.NewHasher() }),
		goka.WithTopicManagerBuilder(b.topicManager),
		goka.WithProducerBuilder(b.producer),
		goka.WithConsumerGroupBuilder(b.consumerGroup),
		goka.WithConsumerSaramaBuilder(b.consumer),
		goka.WithLogger(gokaLogger{b.Log}),
		goka.WithNilHandling(goka.NilProcess),
	}
}

// ViewOptions are ProcessorOptions' counterpart for a goka view of a table
// (a read replica): our consumer and topic manager, murmur2, the stores of
// storage. A replica reconnects by itself after a broker failure rather than
// stopping the instance.
func (b Builders) ViewOptions(storage storage.Builder) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewStorageBuilder(storage),
		goka.WithViewHasher(func() hash.Hash32 { return tables.NewHasher() }),
		goka.WithViewTopicManagerBuilder(b.topicManager),
		goka.WithViewConsumerSaramaBuilder(b.consumer),
		goka.WithViewLogger(gokaLogger{b.Log}),
		goka.WithViewAutoReconnect(),
	}
}

// gokaLogger sends goka's chatter to slog at debug level.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)   { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Println(v ...any) { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Printf(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "component", "goka")
}

// Partitioner hashes a record's key with hasher, like
// sarama.NewCustomHashPartitioner, but a record carrying the header
// tables.HeaderPartitionKey is partitioned by that header's value instead:
// a part of a table's value (a window, keyed by key and start) goes to the
// partition of its table key, like Kafka Streams' WindowedStreamPartitioner.
func Partitioner(hasher func() hash.Hash32) sarama.PartitionerConstructor {
	byKey := sarama.NewCustomHashPartitioner(hasher)
	return func(topic string) sarama.Partitioner {
		return headerPartitioner{Partitioner: byKey(topic), hasher: hasher}
	}
}

type headerPartitioner struct {
	sarama.Partitioner
	hasher func() hash.Hash32
}

func (p headerPartitioner) Partition(m *sarama.ProducerMessage, partitions int32) (int32, error) {
	for _, h := range m.Headers {
		if string(h.Key) == tables.HeaderPartitionKey {
			return p.Partitioner.Partition(&sarama.ProducerMessage{Topic: m.Topic, Key: sarama.ByteEncoder(h.Value)}, partitions)
		}
	}
	return p.Partitioner.Partition(m, partitions)
}
