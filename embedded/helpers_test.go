package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/embedded"
)

// saramaVersion is the protocol version our clients speak to kfake.
var saramaVersion = sarama.V3_6_0_0

// waitFor bounds every poll: generous for a loaded 2-core machine, reached
// only when something is broken.
const waitFor = 20 * time.Second

func start(t *testing.T, cfg embedded.Config) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = saramaVersion
	cfg.ClientID = "embedded-test"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	return cfg
}

func newClient(t *testing.T, b *embedded.Broker) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(b.Addrs()[:1], saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func createTopic(t *testing.T, c sarama.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the admin would close the shared client.
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: configs}, false)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

type record struct {
	Key, Value string
	Headers    string
}

type coord struct {
	Partition int32
	Offset    int64
}

// produce writes each record with its own request, so each is its own batch.
func produce(t *testing.T, c sarama.Client, topic string, recs ...record) map[coord]record {
	t.Helper()
	p, err := sarama.NewSyncProducerFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	written := make(map[coord]record)
	for _, r := range recs {
		msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.Key)}
		if r.Value != "" {
			msg.Value = sarama.StringEncoder(r.Value)
		}
		if r.Headers != "" {
			msg.Headers = []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(r.Headers)}}
		}
		part, off, err := p.SendMessage(msg)
		if err != nil {
			t.Fatalf("produce %v: %v", r, err)
		}
		written[coord{part, off}] = r
	}
	return written
}

// readAll reads every partition of topic from its log start to its high
// watermark. A read that races with compaction moving the log start is
// started again.
func readAll(t *testing.T, c sarama.Client, topic string) map[coord]record {
	t.Helper()
	partitions, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := make(map[coord]record)
	deadline := time.Now().Add(waitFor)
	for _, p := range partitions {
		for {
			recs, err := readPartition(c, consumer, topic, p, deadline)
			if err == nil {
				maps.Copy(got, recs)
				break
			}
			if !errors.Is(err, sarama.ErrOffsetOutOfRange) || time.Now().After(deadline) {
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
		}
	}
	return got
}

func readPartition(c sarama.Client, consumer sarama.Consumer, topic string, p int32, deadline time.Time) (map[coord]record, error) {
	hwm, err := c.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, err
	}
	start, err := c.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	got := make(map[coord]record)
	if start == hwm {
		return got, nil
	}
	pc, err := consumer.ConsumePartition(topic, p, start)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	timeout := time.After(time.Until(deadline))
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return nil, fmt.Errorf("partition consumer stopped: %w", sarama.ErrOffsetOutOfRange)
			}
			r := record{Key: string(m.Key), Value: string(m.Value)}
			for _, h := range m.Headers {
				r.Headers += string(h.Value)
			}
			got[coord{m.Partition, m.Offset}] = r
			if m.Offset >= hwm-1 {
				return got, nil
			}
		case err := <-pc.Errors():
			return nil, err
		case <-timeout:
			return nil, fmt.Errorf("read %d records, high watermark %d: timed out", len(got), hwm)
		}
	}
}

func sameRecords(t *testing.T, got, want map[coord]record) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	keys := slices.SortedFunc(maps.Keys(want), func(a, b coord) int {
		return int(a.Partition-b.Partition)*1<<20 + int(a.Offset-b.Offset)
	})
	t.Errorf("got %d records, want %d", len(got), len(want))
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%v: got %+v, want %+v", k, got[k], want[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%v: unexpected %+v", k, v)
		}
	}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// consumeWithGroup consumes n records of topic as a member of group, marks
// and commits them, and leaves the group.
func consumeWithGroup(t *testing.T, b *embedded.Broker, group, topic string, n int) []record {
	t.Helper()
	cfg := saramaConfig()
	cg, err := sarama.NewConsumerGroup(b.Addrs()[:1], group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	h := &countingHandler{want: n, done: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			t.Fatal(err)
		}
	}
	if len(h.got) < n {
		t.Fatalf("group %s consumed %d of %d records", group, len(h.got), n)
	}
	return h.got
}

type countingHandler struct {
	want int
	done func()

	mu  sync.Mutex // claims of several partitions run concurrently
	got []record
}

func (*countingHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*countingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *countingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.got = append(h.got, record{Key: string(m.Key), Value: string(m.Value)})
		enough := len(h.got) == h.want
		h.mu.Unlock()
		if enough {
			s.Commit()
			h.done()
			return nil
		}
	}
	return nil
}

func groupOffsets(t *testing.T, c sarama.Client, group, topic string) map[int32]int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	offs := make(map[int32]int64)
	for p, block := range resp.Blocks[topic] {
		if block.Err != sarama.ErrNoError {
			t.Fatal(block.Err)
		}
		offs[p] = block.Offset
	}
	return offs
}

func records(prefix string, n int) []record {
	var rs []record
	for i := range n {
		rs = append(rs, record{Key: fmt.Sprintf("%s-key-%d", prefix, i), Value: fmt.Sprintf("%s-value-%d", prefix, i), Headers: fmt.Sprint(i)})
	}
	return rs
}
