package producer_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/producer"
)

func TestSendTxn_GivenACommittedAndAnAbortedBatch_ThenReadCommittedSeesOnlyTheCommitted(t *testing.T) {
	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	admin, err := sarama.NewClusterAdmin(b.Addrs(), kafkaconf.Sarama("admin", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("t", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	c := kafkaconf.Sarama("txn-test", 0)
	c.Producer.Transaction.ID = "txn-test-1"
	s, err := producer.New(b.Addrs(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := func(from, n int, topic string) []*sarama.ProducerMessage {
		var out []*sarama.ProducerMessage
		for i := from; i < from+n; i++ {
			out = append(out, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(strconv.Itoa(i))})
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.SendTxn(ctx, msgs(0, 3, "t")); err != nil {
		t.Fatalf("committed batch: %v", err)
	}
	if err := s.SendTxn(ctx, append(msgs(3, 2, "t"), msgs(5, 1, "no-such-topic")...)); err == nil {
		t.Fatal("a batch with a record for a missing topic committed")
	}
	if err := s.SendTxn(ctx, msgs(6, 2, "t")); err != nil {
		t.Fatalf("a batch after an aborted one: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("t"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < 5 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if want := []string{"0", "1", "2", "6", "7"}; !slices.Equal(got, want) {
		t.Errorf("read committed: %v, want %v (the aborted batch's records never)", got, want)
	}
}
