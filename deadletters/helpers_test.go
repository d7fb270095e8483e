package deadletters_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/deadletters"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
)

// wait bounds every call and poll: generous for -race on two cores, reached
// only when something is broken.
const wait = 30 * time.Second

// kafka is an embedded broker with a group's dead-letter topic and the
// original topic its dead letters came from.
type kafka struct {
	t       *testing.T
	brokers []string
	admin   sarama.ClusterAdmin
	cl      *kgo.Client // manual partitioning: dead letters go where the test says
}

const (
	group       = "orders"
	dlqTopic    = "orders-dlq"
	stateTopic  = "orders-dlq-state"
	origTopic   = "order-events"
	origParts   = 4
	dlqParts    = 3
	firstFailed = "2025-03-01T10:00:00.5Z"
)

func startKafka(t *testing.T) *kafka {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: 2})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(b.Addrs(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	k := &kafka{t: t, brokers: b.Addrs(), admin: admin}
	k.createTopic(dlqTopic, dlqParts)
	k.createTopic(origTopic, origParts)
	k.createTopic(stateTopic, 1)
	k.cl, err = kgo.NewClient(kgo.SeedBrokers(k.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(k.cl.Close)
	return k
}

func (k *kafka) createTopic(name string, partitions int32) {
	k.t.Helper()
	require.NoError(k.t, k.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false))
}

func (k *kafka) client() *deadletters.Client {
	k.t.Helper()
	c, err := deadletters.New(k.brokers, deadletters.WithKafkaVersion(sarama.V3_6_0_0))
	require.NoError(k.t, err)
	k.t.Cleanup(func() { c.Close() })
	return c
}

func (k *kafka) produce(recs ...*kgo.Record) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(k.t, k.cl.ProduceSync(ctx, recs...).FirstErr())
}

// dead is a dead letter as processors writes it: the record as it arrived,
// its own headers kept, the diagnostic headers added.
type dead struct {
	partition   int32 // in orders-dlq
	key         string
	value       []byte
	origPart    int32
	origOffset  int64
	class       string
	message     string
	attempts    int
	origTopic   string // default origTopic; "-" for no header
	origHeaders []kgo.RecordHeader
}

func (d dead) record() *kgo.Record {
	topic := d.origTopic
	if topic == "" {
		topic = origTopic
	}
	if d.attempts == 0 {
		d.attempts = 1
	}
	h := append([]kgo.RecordHeader(nil), d.origHeaders...)
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	if topic != "-" {
		add(processors.HeaderOriginalTopic, topic)
	}
	add(processors.HeaderOriginalPartition, strconv.Itoa(int(d.origPart)))
	add(processors.HeaderOriginalOffset, strconv.FormatInt(d.origOffset, 10))
	add(processors.HeaderOriginalTimestamp, "2025-03-01T09:59:59.25Z")
	add(processors.HeaderOriginalGroup, group)
	add(processors.HeaderOriginalKey, d.key)
	add(processors.HeaderExceptionClass, d.class)
	add(processors.HeaderExceptionMessage, d.message)
	add(processors.HeaderAttempts, strconv.Itoa(d.attempts))
	add(processors.HeaderFirstFailure, firstFailed)
	return &kgo.Record{Topic: dlqTopic, Partition: d.partition, Key: []byte(d.key), Value: d.value, Headers: h}
}

func (k *kafka) deadLetters(ds ...dead) {
	k.t.Helper()
	recs := make([]*kgo.Record, len(ds))
	for i, d := range ds {
		recs[i] = d.record()
	}
	k.produce(recs...)
}

// endOffset is the end offset of one partition.
func (k *kafka) endOffset(topic string, partition int32) int64 {
	k.t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	c, err := sarama.NewClient(k.brokers, cfg)
	require.NoError(k.t, err)
	defer c.Close()
	off, err := c.GetOffset(topic, partition, sarama.OffsetNewest)
	require.NoError(k.t, err)
	return off
}

// recordAt reads one record of topic at partition and offset.
func (k *kafka) recordAt(topic string, partition int32, offset int64) *kgo.Record {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	require.NoError(k.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		require.NoError(k.t, ctx.Err(), "no record at %s/%d/%d", topic, partition, offset)
		for _, r := range fs.Records() {
			if r.Offset == offset {
				return r
			}
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}
