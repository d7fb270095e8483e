package streamfold_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
)

func TestLag_GivenRecordsBeforeTheGroupRuns_ThenTheyAreItsLagUntilItCommitsThem(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) { return add(s, ev) })
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test")
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, rt.Close()) })

	// Given five records the group has not read, as it has not run yet.
	produceAll(t, broker.Addrs(), numberRecord(t, "a", 1), numberRecord(t, "b", 2), numberRecord(t, "c", 3), numberRecord(t, "d", 4), numberRecord(t, "e", 5))
	lags, err := rt.Lag(context.Background())
	require.NoError(t, err)
	byTopic := map[string]int64{}
	for _, l := range lags {
		assert.Equal(t, "counter", l.Group)
		assert.Equal(t, int64(-1), l.Committed, "%s/%d has no commit yet", l.Topic, l.Partition)
		byTopic[l.Topic] += l.Lag
	}
	assert.Equal(t, int64(5), byTopic[numbers.Name], "every record of the input is lag: %+v", lags)
	assert.Len(t, lags, 2*len(byTopic), "two partitions of each consumed topic")
	assert.Contains(t, byTopic, "counter-loop", "the loop topic is consumed too")

	// When the group runs and commits what it read, then its lag is none.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	require.Eventually(t, func() bool {
		lags, err := rt.Lag(context.Background())
		require.NoError(t, err)
		var sum int64
		for _, l := range lags {
			if l.Topic == numbers.Name && l.Committed < 0 {
				return false
			}
			sum += l.Lag
		}
		return sum == 0
	}, wait, 50*time.Millisecond)
}
