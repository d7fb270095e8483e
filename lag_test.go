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

func TestLag_GivenRecordsBeforeTheGroupRuns_ThenTheyAreItsLagUntilItCommitsThem_AndEveryGroupsStateGoesFromDeadToStable(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) { return add(s, ev) })
	// and a group without a table, which no query routes to
	rekey := processors.NewGroup("rekey")
	processors.Repartition(rekey, numbers, func(key string, _ codecs.Event) (string, error) { return key, nil }, "same")
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g, rekey).WrittenBy(numbers, "test")
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, rt.Close()) })

	// Given five records the group has not read, as it has not run yet.
	produceAll(t, broker.Addrs(), numberRecord(t, "a", 1), numberRecord(t, "b", 2), numberRecord(t, "c", 3), numberRecord(t, "d", 4), numberRecord(t, "e", 5))
	lags, err := rt.Lag(context.Background())
	require.NoError(t, err)
	byTopic := map[string]int64{}
	rekeyLag := int64(0)
	for _, l := range lags {
		assert.Equal(t, int64(-1), l.Committed, "%s/%d has no commit yet", l.Topic, l.Partition)
		if l.Group == "counter" {
			byTopic[l.Topic] += l.Lag
		} else {
			rekeyLag += l.Lag
		}
	}
	assert.Equal(t, int64(5), byTopic[numbers.Name], "every record of the input is lag: %+v", lags)
	assert.Len(t, lags, 2*(5+4), "two partitions of each topic a group consumes: counter's input, loop and three retry topics; rekey's input and three retry topics")
	assert.Equal(t, int64(5), rekeyLag, "the same five records are rekey's lag")
	assert.Contains(t, byTopic, "counter-loop", "the loop topic is consumed too")

	// The coordinator knows neither group yet: their state is Dead, not an error.
	require.NoError(t, rt.RefreshMembership(context.Background()))
	assert.Equal(t, []streamfold.GroupState{
		{Group: "counter", State: "Dead", Owners: map[int32]streamfold.Member{}},
		{Group: "rekey", State: "Dead", Owners: map[int32]streamfold.Member{}},
	}, rt.Membership())

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
	require.NoError(t, rt.RefreshMembership(context.Background()))
	for _, gs := range rt.Membership() {
		assert.Equal(t, "Stable", gs.State, gs.Group)
		assert.Len(t, gs.Owners, 2, gs.Group)
	}
}
