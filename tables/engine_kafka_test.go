package tables

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

const engineTestTopic = "t-table"

// engineTestKafka is an in-process Kafka-protocol cluster with the sarama
// clients the tests need.
type engineTestKafka struct {
	cluster  *kfake.Cluster
	addrs    []string
	cfg      *sarama.Config
	client   sarama.Client
	admin    sarama.ClusterAdmin
	producer sarama.SyncProducer
}

func engineTestCluster(t *testing.T) *engineTestKafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, engineTestTopic))
	require.NoError(t, err)
	t.Cleanup(c.Close)

	// goka defaults sarama to Kafka 2.0; kfake speaks current versions.
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Flush.Frequency = 0
	cfg.Producer.Flush.Bytes = 0

	k := &engineTestKafka{cluster: c, addrs: c.ListenAddrs(), cfg: cfg}
	k.client, err = sarama.NewClient(k.addrs, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.client.Close() })
	k.admin, err = sarama.NewClusterAdminFromClient(k.client)
	require.NoError(t, err)
	k.producer, err = sarama.NewSyncProducerFromClient(k.client)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.producer.Close() })

	compact := "compact"
	require.NoError(t, k.admin.AlterConfig(sarama.TopicResource, engineTestTopic,
		map[string]*string{"cleanup.policy": &compact}, false))
	return k
}

// produce writes values by key to the table; a nil value is a tombstone.
func (k *engineTestKafka) produce(t *testing.T, kvs map[string][]byte) {
	t.Helper()
	k.produceTo(t, engineTestTopic, kvs)
}

func (k *engineTestKafka) produceTo(t *testing.T, topic string, kvs map[string][]byte) {
	t.Helper()
	msgs := make([]*sarama.ProducerMessage, 0, len(kvs))
	for _, key := range slices.Sorted(maps.Keys(kvs)) {
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}
		if v := kvs[key]; v != nil {
			m.Value = sarama.ByteEncoder(v)
		}
		msgs = append(msgs, m)
	}
	require.NoError(t, k.producer.SendMessages(msgs))
}

// engineTestRounds writes rounds of updates of keys cust-000..cust-059 (so
// that most keys have several versions) and tombstones for every tenth key,
// and returns the table they leave.
func engineTestRounds(t *testing.T, k *engineTestKafka, rounds int) map[string]string {
	t.Helper()
	want := map[string]string{}
	colors := []string{"red", "green", "blue"}
	for round := range rounds {
		kvs := map[string][]byte{}
		for i := range 60 {
			key := fmt.Sprintf("cust-%03d", i)
			v := fmt.Sprintf("color=%s;round=%d", colors[(i+round)%3], round)
			kvs[key] = []byte(v)
			want[key] = v
		}
		k.produce(t, kvs)
	}
	tombs := map[string][]byte{}
	for i := 0; i < 60; i += 10 {
		key := fmt.Sprintf("cust-%03d", i)
		tombs[key] = nil
		delete(want, key)
	}
	k.produce(t, tombs)
	return want
}

// runView runs a goka view of the table on the engine until it is
// recovered, and returns a function stopping it.
func (k *engineTestKafka) runView(t *testing.T, e *Engine) (*goka.View, func()) {
	t.Helper()
	view, err := goka.NewView(k.addrs, goka.Table(engineTestTopic), new(codec.Bytes),
		goka.WithViewStorageBuilder(e.Builder()),
		goka.WithViewHasher(goka.DefaultHasher()),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(k.cfg, goka.NewTopicManagerConfig())),
		goka.WithViewLogger(log.New(io.Discard, "", 0)),
	)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	select {
	case <-view.WaitRunning():
	case err := <-done:
		cancel()
		t.Fatalf("view stopped before recovering: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("view did not recover")
	}
	// goka reports "connecting" for a moment when its catch-up starts, even
	// when the stores have nothing left to recover: wait for the condition.
	require.Eventually(t, view.Recovered, 20*time.Second, 5*time.Millisecond, "view did not recover")
	stop := func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("view did not stop")
		}
	}
	return view, stop
}

// engineTestState reads all data and the color index through the engine.
func engineTestState(t *testing.T, e *Engine) (map[string]string, map[string][]string) {
	t.Helper()
	stores := e.Stores(engineTestTopic)
	require.Len(t, stores, 4)
	data := map[string]string{}
	byColor := map[string][]string{}
	for i, s := range stores {
		require.Equal(t, int32(i), s.Partition())
		require.True(t, s.Recovered())
		kvs, err := s.Scan("", 0)
		require.NoError(t, err)
		for _, kv := range kvs {
			data[kv.Key] = string(kv.Value)
		}
		for _, c := range []string{"red", "green", "blue"} {
			keys, err := s.Lookup("color", c, "", 0)
			require.NoError(t, err)
			byColor[c] = append(byColor[c], keys...)
		}
		storeTestCheckIndexes(t, s)
	}
	for _, keys := range byColor {
		sort.Strings(keys)
	}
	return data, byColor
}

func engineTestExpectedColors(data map[string]string) map[string][]string {
	out := map[string][]string{"red": nil, "green": nil, "blue": nil}
	for k, v := range data {
		for _, c := range storeTestField([]byte(v), "color") {
			out[c] = append(out[c], k)
		}
	}
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out
}

func TestEngine_GivenCompactedChangelogInKafka_WhenGokaViewRestores_ThenDataAndIndexesMatchAndRestartsResume(t *testing.T) {
	k := engineTestCluster(t)
	var logs storeTestLog
	e := storeTestEngine(t, t.TempDir(),
		WithIndex(engineTestTopic, storeTestColor),
		WithWatermarks(SaramaWatermarks(k.client)),
		WithBatchSize(7),
		WithLogger(logs.logger()))

	// Given three rounds of updates and some tombstones.
	want := engineTestRounds(t, k, 3)
	k.cluster.Compact()

	// When a goka view restores the table into the engine.
	view, stop := k.runView(t, e)

	// Then the engine holds exactly the table, indexes included.
	data, byColor := engineTestState(t, e)
	assert.Equal(t, want, data)
	assert.Equal(t, engineTestExpectedColors(want), byColor)
	v, err := view.Get("cust-001")
	require.NoError(t, err)
	assert.Equal(t, []byte(want["cust-001"]), v)
	v, err = view.Get("cust-010")
	require.NoError(t, err)
	assert.Nil(t, v, "tombstoned")
	var restored int64
	for _, s := range e.Stores(engineTestTopic) {
		p := s.Progress()
		restored += p.Records
		assert.GreaterOrEqual(t, p.StartOffset, int64(0))
		assert.Equal(t, p.HighWatermark-1, p.Offset)
	}
	t.Logf("restored %d records", restored)
	assert.Positive(t, restored)
	assert.LessOrEqual(t, restored, int64(3*60+6), "compaction may have dropped overwritten records")
	assert.Contains(t, logs.String(), `msg="table restored"`)

	// When the table changes while the view runs, the view's stores follow,
	// one write per record.
	k.produce(t, map[string][]byte{"cust-001": []byte("color=blue;round=3"), "cust-002": nil})
	want["cust-001"] = "color=blue;round=3"
	delete(want, "cust-002")
	storeTestEventually(t, func() bool {
		v1, err1 := view.Get("cust-001")
		ok2, err2 := view.Has("cust-002")
		b, _ := v1.([]byte)
		return err1 == nil && err2 == nil && string(b) == want["cust-001"] && !ok2
	}, "view catches up")
	stop()
	assert.Empty(t, e.Stores(engineTestTopic), "the view closed its stores")

	// When the view restarts after more changes, it resumes from the stored
	// offsets and restores only the new records.
	k.produce(t, map[string][]byte{"cust-003": []byte("color=red;round=4")})
	want["cust-003"] = "color=red;round=4"
	_, stop = k.runView(t, e)
	data, byColor = engineTestState(t, e)
	assert.Equal(t, want, data)
	assert.Equal(t, engineTestExpectedColors(want), byColor)
	restored = 0
	for _, s := range e.Stores(engineTestTopic) {
		p := s.Progress()
		restored += p.Records
		assert.Positive(t, p.StartOffset, "partition %d resumed", p.Partition)
	}
	assert.LessOrEqual(t, restored, int64(1), "only the new record, at most")
	stop()
	assert.NotContains(t, logs.String(), "level=WARN")

	// When the changelog is recreated behind the local state (broker data
	// wiped), the stores rebuild from it instead of keeping stale state.
	require.NoError(t, k.admin.DeleteTopic(engineTestTopic))
	storeTestEventually(t, func() bool {
		err := k.admin.CreateTopic(engineTestTopic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
		return err == nil
	}, "topic recreated")
	require.NoError(t, k.client.RefreshMetadata(engineTestTopic))
	k.produce(t, map[string][]byte{"fresh": []byte("color=green")})
	_, stop = k.runView(t, e)
	data, byColor = engineTestState(t, e)
	assert.Equal(t, map[string]string{"fresh": "color=green"}, data)
	assert.Equal(t, engineTestExpectedColors(data), byColor)
	stop()
	out := logs.String()
	assert.Contains(t, out, "local state ahead of changelog; rebuilding from changelog")
	assert.True(t, strings.Count(out, "rebuilding from changelog") >= 3, "every partition that had state rebuilt")
}

// The processor's group table is "t-table", the topic the cluster seeds.
func TestEngine_GivenGokaProcessor_WhenItProcessesStopsAndRestarts_ThenStateAndOffsetsSurviveWithoutReplayingTwice(t *testing.T) {
	k := engineTestCluster(t)
	const input = "t-input"
	require.NoError(t, k.admin.CreateTopic(input, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false))
	e := storeTestEngine(t, t.TempDir(), WithWatermarks(SaramaWatermarks(k.client)))

	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("cart-%02d", i)
	}
	send := func() {
		kvs := map[string][]byte{}
		for _, key := range keys {
			kvs[key] = []byte("add")
		}
		k.produceTo(t, input, kvs)
	}
	counts := func() map[string]int64 {
		out := map[string]int64{}
		for _, s := range e.Stores(engineTestTopic) {
			kvs, err := s.Scan("", 0)
			require.NoError(t, err)
			for _, kv := range kvs {
				v, err := new(codec.Int64).Decode(kv.Value)
				require.NoError(t, err)
				out[kv.Key] = v.(int64)
			}
		}
		return out
	}
	allAt := func(n int64) func() bool {
		return func() bool {
			c := counts()
			if len(c) != len(keys) {
				return false
			}
			for _, v := range c {
				if v != n {
					return false
				}
			}
			return true
		}
	}

	run := func() func() { return runCountingProcessor(t, k, input, e) }

	send()
	stop := run()
	send()
	storeTestEventually(t, allAt(2), "processor applied both rounds")
	stop()
	require.Empty(t, e.Stores(engineTestTopic))

	// Every store kept the offset of its last changelog record.
	for p := range int32(4) {
		hwm, err := k.client.GetOffset(engineTestTopic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		st, err := e.Builder()(engineTestTopic, p)
		require.NoError(t, err)
		require.NoError(t, st.Open())
		off, err := st.GetOffset(-1)
		require.NoError(t, err)
		assert.Equal(t, hwm-1, off, "partition %d", p)
		require.NoError(t, st.Close())
	}

	// A restart restores nothing and counts on from where it was.
	stop = run()
	for _, s := range e.Stores(engineTestTopic) {
		assert.Equal(t, int64(0), s.Progress().Records, "partition %d restored records", s.Partition())
	}
	send()
	storeTestEventually(t, allAt(3), "processor applied the third round once")
	stop()
}

// runCountingProcessor runs a goka processor on engine e that counts the
// records of input per key in its group table ("t"), and returns its stop.
func runCountingProcessor(t *testing.T, k *engineTestKafka, input string, e *Engine) func() {
	t.Helper()
	cfg := *k.cfg
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	producerCfg := cfg
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication, tmc.Stream.Replication = 1, 1
	g := goka.DefineGroup("t",
		goka.Input(goka.Stream(input), new(codec.String), func(ctx goka.Context, _ interface{}) {
			n, _ := ctx.Value().(int64)
			ctx.SetValue(n + 1)
		}),
		goka.Persist(new(codec.Int64)),
	)
	p, err := goka.NewProcessor(k.addrs, g,
		goka.WithStorageBuilder(e.Builder()),
		goka.WithHasher(goka.DefaultHasher()),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(&cfg)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(&cfg)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(&producerCfg)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(&cfg, tmc)),
		goka.WithLogger(log.New(io.Discard, "", 0)),
	)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.NoError(t, p.WaitForReadyContext(ctx))
	return func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("processor did not stop")
		}
	}
}
