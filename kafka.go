package streamfold

import (
	"fmt"
	"hash"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/tables"
)

// KafkaVersion is the protocol version we speak; both real Kafka 3.x+ and the
// embedded broker accept it.
var KafkaVersion = sarama.V3_6_0_0

// saramaConfig is the one sarama configuration of the framework. Every client
// gets its own copy (goka's builders mutate what they are given).
func saramaConfig(clientID string) *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = KafkaVersion
	c.ClientID = clientID
	// Event-sourced inputs start from the beginning; goka's default (newest)
	// silently skips history written before a group first starts. A committed
	// offset that fell out of the log resets to the earliest one too.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.ResetInvalidOffsets = true
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
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(func() hash.Hash32 { return tables.NewHasher() })
	c.Metadata.RefreshFrequency = 30 * time.Second
	return c
}

func copyConfig(c *sarama.Config, clientID string) *sarama.Config {
	cp := *c
	cp.ClientID = clientID
	return &cp
}

// gokaOptions are the builders every goka processor and view is given: our
// sarama config, murmur2 everywhere, topics created by us with the configured
// replication (goka's topic manager would default to 2).
type gokaBuilders struct {
	base        *sarama.Config
	replication int
	log         *slog.Logger
}

func (b gokaBuilders) topicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = b.replication
	tmc.Stream.Replication = b.replication
	tmc.Stream.Retention = -1
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	return tmc
}

func (b gokaBuilders) topicManager(brokers []string) (goka.TopicManager, error) {
	return goka.NewTopicManager(brokers, copyConfig(b.base, b.base.ClientID+"-topics"), b.topicManagerConfig())
}

func (b gokaBuilders) producer(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
	c := copyConfig(b.base, clientID)
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(hasher)
	return goka.NewProducer(brokers, c)
}

func (b gokaBuilders) consumerGroup(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
	return sarama.NewConsumerGroup(brokers, group, copyConfig(b.base, clientID))
}

func (b gokaBuilders) consumer(brokers []string, clientID string) (sarama.Consumer, error) {
	return sarama.NewConsumer(brokers, copyConfig(b.base, clientID))
}

func (b gokaBuilders) processorOptions(storage goka.ProcessorOption) []goka.ProcessorOption {
	return []goka.ProcessorOption{
		storage,
		goka.WithHasher(func() hash.Hash32 { return tables.NewHasher() }),
		goka.WithTopicManagerBuilder(b.topicManager),
		goka.WithProducerBuilder(b.producer),
		goka.WithConsumerGroupBuilder(b.consumerGroup),
		goka.WithConsumerSaramaBuilder(b.consumer),
		goka.WithLogger(gokaLogger{b.log}),
		goka.WithNilHandling(goka.NilProcess),
	}
}

// gokaLogger sends goka's chatter to slog at debug level.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)   { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Println(v ...any) { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Printf(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "component", "goka")
}
