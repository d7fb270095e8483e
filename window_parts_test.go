package streamfold_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// Windows kept one entry per (key, window start): in the stores beside the
// key's value, in Kafka in <group>-windows.

// padded is an aggregate whose windows are large: 2,000 bytes each.
type padded struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

// paddedGroup sums numbers per minute into padded windows kept a day,
// counting the calls of Add.
func paddedGroup(adds *atomic.Int64) (*processors.Group, tables.Table[processors.Windowed[padded]]) {
	policy := processors.DefaultPolicy()
	policy.TimerInterval = 20 * time.Millisecond
	g := processors.NewGroup("windows", processors.WithPolicy(policy))
	table := processors.AggregateWindows(g, processors.WindowedAggregation[codecs.Event, padded]{
		Input: numbers, Windows: processors.Tumbling(time.Minute).Retain(24 * time.Hour),
		Add: func(key string, agg padded, ev codecs.Event) (padded, error) {
			adds.Add(1)
			n, err := sumOf(key, agg.N, ev)
			return padded{N: n, Pad: strings.Repeat("x", 2000)}, err
		},
	})
	return g, table
}

// paddedWindows reads key's windows from rt's local store as start → n.
func paddedWindows(t *testing.T, rt *streamfold.Runtime, table tables.Table[processors.Windowed[padded]], key string) map[string]int {
	t.Helper()
	w, err := views.New(rt, table).Get(context.Background(), key)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, win := range w.Windows {
		out[win.Start.UTC().Format("15:04")] = win.Value.N
	}
	return out
}

// windowRecords are the records of <group>-windows under key.
func windowRecords(recs []*kgo.Record, key string) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range recs {
		if bytes.HasPrefix(r.Key, []byte(key+"\x00")) {
			out = append(out, r)
		}
	}
	return out
}

func TestWindowParts_GivenAKeyWithManyWindows_ThenItsChangelogValueHoldsTheListNotTheWindowsAndEachWindowIsARecordTombstonedWhenPurged(t *testing.T) {
	broker := startBroker(t)
	var adds atomic.Int64
	g, table := paddedGroup(&adds)
	rt, _ := startOn(t, broker, g, t.TempDir())

	const n = 40
	for i := range n {
		produceAll(t, broker.Addrs(), numberAt(t, "k", 1, t0.Add(time.Duration(i)*time.Minute+10*time.Second)))
	}
	require.Eventually(t, func() bool { return len(paddedWindows(t, rt, table, "k")) == n }, wait, 10*time.Millisecond)

	var sizes []int
	for _, r := range changelog(t, broker.Addrs(), "windows-table") {
		if string(r.Key) == "k" {
			sizes = append(sizes, len(r.Value))
		}
	}
	require.Len(t, sizes, n)
	// Each window holds over 2,000 bytes; the value grows by its list entry
	// (and by the remembered event ids, up to 32) only.
	assert.Less(t, sizes[n-1], n*2000/10, "the 40th value is a fraction of its windows: %v", sizes)
	assert.Less(t, (sizes[n-1]-sizes[9])/(n-10), 100, "bytes a window adds to the value: %v", sizes)

	// Each window is sent once a later step of k leaves it; the last one
	// is in k's value.
	recs := windowRecords(consumeUntil(t, broker.Addrs(), g.WindowsTopic(), func(recs []*kgo.Record) bool {
		return len(windowRecords(recs, "k")) >= n-1
	}), "k")
	starts := map[string]bool{}
	for _, r := range recs {
		starts[string(r.Key)] = true
		assert.Equal(t, tables.PartitionFor("k", 2), r.Partition, "a window is in its key's partition")
		assert.Greater(t, len(r.Value), 2000)
	}
	assert.Len(t, starts, n-1, "one record per (key, start)")
	assert.Len(t, recs, n-1)

	// When stream time passes the windows' retention, k's timer purges them:
	// a tombstone for each window, and for k in the table.
	produceAll(t, broker.Addrs(), numberAt(t, samePartition("k", 2), 1, t0.Add(26*time.Hour)))
	recs = windowRecords(consumeUntil(t, broker.Addrs(), g.WindowsTopic(), func(recs []*kgo.Record) bool {
		return len(windowRecords(recs, "k")) >= n-1+n
	}), "k")
	last := map[string][]byte{}
	for _, r := range recs {
		last[string(r.Key)] = r.Value
	}
	require.Len(t, last, n)
	for k, v := range last {
		assert.Nil(t, v, "%q: tombstoned", k)
	}
	require.Eventually(t, func() bool { return paddedWindows(t, rt, table, "k") == nil }, wait, 10*time.Millisecond)
	s, ok := rt.Store("windows-table", tables.PartitionFor("k", 2))
	require.True(t, ok)
	parts, err := s.PartsOf("k")
	require.NoError(t, err)
	assert.Empty(t, parts, "k's windows left the store with its value")
}

func TestWindowParts_GivenACompactedChangelog_WhenTheStateDirectoryIsWiped_ThenTheWindowsComeBackFromTheTwoChangelogsWithoutRunningAdd(t *testing.T) {
	broker := startBroker(t)
	var adds atomic.Int64
	g, table := paddedGroup(&adds)
	rt, stop := startOn(t, broker, g, t.TempDir())
	produceAll(t, broker.Addrs(),
		numberAt(t, "k", 1, at(t, "10s")), numberAt(t, "k", 2, at(t, "20s")),
		numberAt(t, "k", 4, at(t, "1m10s")),
		numberAt(t, "k", 8, at(t, "2m10s")), numberAt(t, "k", 16, at(t, "2m20s")))
	want := map[string]int{"12:00": 3, "12:01": 4, "12:02": 24}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, paddedWindows(t, rt, table, "k")) }, wait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(changelog(t, broker.Addrs(), "windows-table")) == 5 }, wait, 10*time.Millisecond)
	// A later batch of k's partition: compaction keeps k's last value only.
	other := samePartition("k", 2)
	produceAll(t, broker.Addrs(), numberAt(t, other, 1, at(t, "2m30s")))
	require.Eventually(t, func() bool { return len(changelog(t, broker.Addrs(), "windows-table")) == 6 }, wait, 10*time.Millisecond)
	stop()
	broker.Compact()
	var ofK int
	for _, r := range compacted(t, broker.Addrs(), "windows-table") {
		if string(r.Key) == "k" {
			ofK++
		}
	}
	require.Equal(t, 1, ofK, "the changelog holds k's last value, which changed one window")
	before := adds.Load()

	// When the group starts on an empty state directory.
	g2, table2 := paddedGroup(&adds)
	rt2, _ := startOn(t, broker, g2, t.TempDir())

	assert.Equal(t, want, paddedWindows(t, rt2, table2, "k"), "every window of k, from <group>-windows and the changelog")
	assert.Equal(t, before, adds.Load(), "a restore runs no Add")
}

func TestWindowParts_GivenAReadReplica_WhileTheGroupRuns_ThenAViewOfItSeesEveryWindowOfAKey(t *testing.T) {
	broker := startBroker(t)
	var adds atomic.Int64
	g, _ := paddedGroup(&adds)
	startOn(t, broker, g, t.TempDir())
	produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "10s")), numberAt(t, "k", 2, at(t, "1m10s")))

	// An instance that runs no group and keeps a replica of the table.
	g2, table := paddedGroup(&adds)
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g2).WrittenBy(numbers, "test").ReadBy(table, "queries")
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1, Replicas: true, Groups: []string{}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done); assert.NoError(t, rt.Close()) })

	// Windows restored when the replica opened, and those it follows live.
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(map[string]int{"12:00": 1, "12:01": 2}, paddedWindows(t, rt, table, "k"))
	}, wait, 10*time.Millisecond)
	produceAll(t, broker.Addrs(), numberAt(t, "k", 4, at(t, "1m20s")), numberAt(t, "k", 8, at(t, "2m10s")))
	var got map[string]int
	require.Eventually(t, func() bool {
		got = paddedWindows(t, rt, table, "k")
		return assert.ObjectsAreEqual(map[string]int{"12:00": 1, "12:01": 6, "12:02": 8}, got)
	}, wait, 10*time.Millisecond, "replica: %v", got)
}

func TestWindowParts_GivenRecordsReadAgainAfterACrash_ThenEveryWindowOfTheKeyIsSentAgainAndNoneChanges(t *testing.T) {
	broker := startBroker(t)
	w := processors.Tumbling(time.Minute).Retain(time.Hour)
	dir := t.TempDir()
	rt, stop := startOn(t, broker, windowGroup(w, false), dir)
	produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "10s")), numberAt(t, "k", 2, at(t, "1m10s")), numberAt(t, "k", 4, at(t, "1m20s")))
	require.Eventually(t, func() bool { ws := windowsOf(t, rt, "k"); return len(ws) == 2 && ws[1].Value == 6 }, wait, 10*time.Millisecond)
	// The second step left 12:00, which is sent; 12:01 is in k's value.
	first := windowRecords(consumeUntil(t, broker.Addrs(), "windows-windows", func(recs []*kgo.Record) bool {
		return len(windowRecords(recs, "k")) >= 1
	}), "k")
	require.Len(t, first, 1)
	stop()

	// As if the instance had crashed before committing: the group's offsets
	// go back to the start, and the state directory is kept.
	// (Kafka 3.6's protocol: the commit names its topic, not its id.)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.MaxVersions(kversion.V3_6_0()))
	require.NoError(t, err)
	defer cl.Close()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "windows", -1
	topic := kmsg.NewOffsetCommitRequestTopic()
	topic.Topic = numbers.Name
	for p := range int32(2) {
		part := kmsg.NewOffsetCommitRequestTopicPartition()
		part.Partition, part.Offset, part.LeaderEpoch = p, 0, -1
		topic.Partitions = append(topic.Partitions, part)
	}
	req.Topics = append(req.Topics, topic)
	resp, err := req.RequestWith(context.Background(), cl)
	require.NoError(t, err)
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			require.NoError(t, kerr.ErrorForCode(p.ErrorCode))
		}
	}

	rt2, _ := startOn(t, broker, windowGroup(w, false), dir)
	// Each of the three records read again sends k's two windows again.
	again := windowRecords(consumeUntil(t, broker.Addrs(), "windows-windows", func(recs []*kgo.Record) bool {
		return len(windowRecords(recs, "k")) >= 1+3*2
	}), "k")
	last := map[string]string{}
	for _, r := range again {
		key, sub, ok := tables.SplitPartRecordKey(r.Key)
		require.True(t, ok)
		last[key+"/"+hex.EncodeToString(sub)] = string(r.Value)
	}
	assert.Equal(t, map[string]string{"k/" + startHex(at(t, "0s")): "1", "k/" + startHex(at(t, "1m")): "6"}, last,
		"the windows' last values, sent again as they are")
	ws := windowsOf(t, rt2, "k")
	require.Len(t, ws, 2)
	assert.Equal(t, []int{1, 6}, []int{ws[0].Value, ws[1].Value}, "nothing added twice")
	assert.Equal(t, int64(3), rt2.Stats()["windows"].Duplicates)
}

// startHex is the sub of the window starting at t, in hex.
func startHex(t time.Time) string {
	return hex.EncodeToString(binary.BigEndian.AppendUint64(nil, uint64(t.UnixMilli())^(1<<63)))
}

// compacted reads what compaction left of topic: every record up to the
// high watermark of each partition (whose last record compaction keeps).
func compacted(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := highWatermarks(cl, topic)
	require.NoError(t, err)
	return consumeUntil(t, brokers, topic, func(recs []*kgo.Record) bool {
		seen := map[int32]int64{}
		for _, r := range recs {
			seen[r.Partition] = max(seen[r.Partition], r.Offset+1)
		}
		for p, end := range ends {
			if end > 0 && seen[p] < end {
				return false
			}
		}
		return true
	})
}

// highWatermarks lists the high watermark of each partition of topic.
func highWatermarks(cl *kgo.Client, topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for p := range int32(2) {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	req.Topics = append(req.Topics, lt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, err
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}
