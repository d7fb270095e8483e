package embedded_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/embedded"
)

func TestGivenListenAddressWhenClientsAskForMetadataThenTheSameAddressIsAdvertised(t *testing.T) {
	for _, tc := range []struct {
		name, listen, advertised string
		brokers                  int
		wantHost                 string
	}{
		{name: "loopback", listen: "127.0.0.1:0", wantHost: "127.0.0.1"},
		{name: "host name", listen: "localhost:0", wantHost: "localhost"},
		{name: "all interfaces", listen: "0.0.0.0:0", wantHost: "127.0.0.1"},
		{name: "advertised host", listen: "127.0.0.1:0", advertised: "localhost", wantHost: "localhost"},
		{name: "three brokers", listen: "127.0.0.1:0", brokers: 3, wantHost: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := start(t, embedded.Config{Listen: tc.listen, AdvertisedHost: tc.advertised, Brokers: tc.brokers})
			addrs := b.Addrs()
			if want := max(tc.brokers, 1); len(addrs) != want {
				t.Fatalf("Addrs() = %v, want %d brokers", addrs, want)
			}
			for _, a := range addrs {
				host, port, err := net.SplitHostPort(a)
				if err != nil || host != tc.wantHost || port == "0" {
					t.Errorf("address %q: want host %s and a real port", a, tc.wantHost)
				}
			}
			c := newClient(t, b)
			var advertised []string
			for _, br := range c.Brokers() {
				advertised = append(advertised, br.Addr())
			}
			if !sameSet(advertised, addrs) {
				t.Errorf("metadata advertises %v, Addrs() = %v", advertised, addrs)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]bool)
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

func TestGivenBadConfigWhenStartingThenError(t *testing.T) {
	taken := start(t, embedded.Config{Listen: "127.0.0.1:0"}).Addrs()[0]
	for _, cfg := range []embedded.Config{
		{Listen: taken},
		{Listen: "127.0.0.1:0", Brokers: 3, Dir: "/dev/null"},
		{Listen: "no-port"},
		{Listen: "127.0.0.1:99999"},
		{Listen: "127.0.0.1:0", Brokers: -1},
		{Listen: "127.0.0.1:0", Partitions: -1},
		{Listen: "127.0.0.1:0", CompactionInterval: -1},
	} {
		if b, err := embedded.Start(cfg); err == nil {
			b.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}

func TestGivenAnUnknownTopicWhenProducingThenItIsNotAutoCreated(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0"})
	cfg := saramaConfig()
	cfg.Producer.Retry.Max = 1
	cfg.Metadata.Retry.Max = 1
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "nobody-created-me", Value: sarama.StringEncoder("x")}); err == nil {
		t.Fatal("produce to an uncreated topic succeeded")
	}
}

func TestGivenATopicCreatedWithoutPartitionsThenItGetsTheDefault(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "defaulted", -1, nil)
	if ps, err := c.Partitions("defaulted"); err != nil || len(ps) != embedded.DefaultPartitions {
		t.Fatalf("partitions %v, %v; want %d", ps, err, embedded.DefaultPartitions)
	}
}

func TestGivenProducedRecordsWhenTheBrokerRestartsThenTheyAreReadBackIntact(t *testing.T) {
	dir := t.TempDir()
	b := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "orders", 3, nil)
	written := produce(t, c, "orders", records("order", 30)...)
	sameRecords(t, readAll(t, c, "orders"), written)
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b2 := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c2 := newClient(t, b2)
	sameRecords(t, readAll(t, c2, "orders"), written)

	// The log continues where it stopped.
	next := make(map[int32]int64)
	for k := range written {
		next[k.Partition] = max(next[k.Partition], k.Offset+1)
	}
	more := produce(t, c2, "orders", records("late", 5)...)
	for k := range more {
		if k.Offset < next[k.Partition] {
			t.Errorf("new record at %v reuses an old offset", k)
		}
		written[k] = more[k]
	}
	sameRecords(t, readAll(t, c2, "orders"), written)
}

func TestGivenACommittedGroupOffsetWhenTheBrokerRestartsThenTheGroupResumesFromIt(t *testing.T) {
	dir := t.TempDir()
	b := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "payments", 2, nil)
	produce(t, c, "payments", records("first", 10)...)
	consumeWithGroup(t, b, "billing", "payments", 10)
	before := groupOffsets(t, c, "billing", "payments")
	if before[0]+before[1] != 10 {
		t.Fatalf("committed offsets %v do not cover the 10 records", before)
	}
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c2 := newClient(t, b2)
	if after := groupOffsets(t, c2, "billing", "payments"); after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("offsets after restart %v, before %v", after, before)
	}
	produce(t, c2, "payments", record{Key: "second", Value: "only this one is new"})
	got := consumeWithGroup(t, b2, "billing", "payments", 1)
	if got[0].Value != "only this one is new" {
		t.Fatalf("group resumed at %+v, not after its committed offset", got[0])
	}
}

func TestGivenThreeBrokersWhenRestartedThenEveryPartitionIsServedAgain(t *testing.T) {
	dir := t.TempDir()
	cfg := embedded.Config{Dir: dir, Listen: "127.0.0.1:0", Brokers: 3}
	b := start(t, cfg)
	c := newClient(t, b)
	createTopic(t, c, "spread", 6, nil)
	written := produce(t, c, "spread", records("spread", 24)...)
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, cfg)
	sameRecords(t, readAll(t, newClient(t, b2), "spread"), written)
}

func TestGivenOneBrokerWhenCreatingATopicWithReplicationTwoThenItIsRefused(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0"})
	admin, err := sarama.NewClusterAdmin(b.Addrs(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	err = admin.CreateTopic("replicated", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 2}, false)
	if !errors.Is(err, sarama.ErrInvalidReplicationFactor) {
		t.Fatalf("got %v, want ErrInvalidReplicationFactor", err)
	}
}

func TestGivenALogLargerThanLargeLogWhenTheBrokerRestartsThenItWarns(t *testing.T) {
	dir := t.TempDir()
	b := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "orders", 1, nil)
	produce(t, c, "orders", records("order", 30)...)
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	var small, large bytes.Buffer
	b2 := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0", LargeLog: 1 << 40, Logger: slog.New(slog.NewTextHandler(&small, nil))})
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(small.String(), "log is large") {
		t.Errorf("warned about a log below LargeLog: %s", small.String())
	}
	start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0", LargeLog: 1, Logger: slog.New(slog.NewTextHandler(&large, nil))})
	if !strings.Contains(large.String(), "log is large") {
		t.Errorf("no warning for a log above LargeLog; logged: %q", large.String())
	}
}
