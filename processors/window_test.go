package processors

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

func TestAggregateWindows_GivenABootstrapGroupCatchingUp_ThenTheHistorysResultsAreHeldBackAndTheStateBuilt(t *testing.T) {
	in := tables.NewStream[codecs.Event]("readings", codecs.CloudEvents{})
	results := tables.NewStream[WindowResult[int]]("sums", codecs.JSON[WindowResult[int]]{})
	g := NewGroup("late-summer", WithBootstrap())
	AggregateWindows(g, WindowedAggregation[codecs.Event, int]{
		Input: in, Windows: Tumbling(time.Hour), Results: results,
		Add: func(_ string, sum int, _ codecs.Event) (int, error) { return sum + 1, nil },
	})
	gkt := run(t, []*Group{g}, withCatchUp(map[string]map[int32]int64{in.Name: {0: 2}}))
	q := gkt.NewQueueTracker(results.Name)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		ev, err := codecs.NewEvent("urn:test", "Read", "k", nil)
		require.NoError(t, err)
		ev.Time = at.Add(time.Duration(i) * time.Minute)
		b, err := codecs.CloudEvents{}.Encode(ev)
		require.NoError(t, err)
		gkt.Consume(in.Name, "k", b)
	}
	var sent []WindowResult[int]
	for {
		_, b, ok := q.NextRaw()
		if !ok {
			break
		}
		r, err := results.Codec.Decode(b)
		require.NoError(t, err)
		sent = append(sent, r)
	}
	require.Len(t, sent, 1, "only the reading after the history")
	assert.Equal(t, 3, sent[0].Value, "the state was built from the history")
	assert.Equal(t, int64(2), g.stats.snapshot().Suppressed)
}

func TestAggregateWindows_GivenAValueOfTheEarlierLayout_WhenItsKeyGetsARecord_ThenItsWindowsGoOnAndAllAreSentAsParts(t *testing.T) {
	in := tables.NewStream[codecs.Event]("readings", codecs.CloudEvents{})
	results := tables.NewStream[WindowResult[int]]("sums", codecs.JSON[WindowResult[int]]{})
	g := NewGroup("summer")
	AggregateWindows(g, WindowedAggregation[codecs.Event, int]{
		Input: in, Windows: Tumbling(time.Minute).Retain(time.Hour), Results: results,
		Add: func(_ string, sum int, _ codecs.Event) (int, error) { return sum + 1, nil },
	})
	gkt := run(t, []*Group{g})
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	// Given k's value as the earlier layout wrote it: every window inside.
	old, err := encodeWithMeta(codecs.JSON[Windowed[int]]{}, Windowed[int]{Key: "k", Windows: []Window[int]{
		{Start: at, End: at.Add(time.Minute), Value: 5},
		{Start: at.Add(time.Minute), End: at.Add(2 * time.Minute), Value: 7},
	}}, windowMeta{timeMeta: timeMeta{StreamTime: at.Add(time.Minute).UnixMilli()}})
	require.NoError(t, err)
	gkt.SetTableValue(goka.GroupTable(goka.Group("summer")), "k", old)
	parts := gkt.NewQueueTracker(g.WindowsTopic())
	sums := gkt.NewQueueTracker(results.Name)

	ev, err := codecs.NewEvent("urn:test", "Read", "k", nil)
	require.NoError(t, err)
	ev.Time = at.Add(90 * time.Second)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	gkt.Consume(in.Name, "k", b)

	_, rb, ok := sums.NextRaw()
	require.True(t, ok)
	res, err := results.Codec.Decode(rb)
	require.NoError(t, err)
	assert.Equal(t, 8, res.Value, "the window went on from the old value")
	got := map[string]string{}
	for {
		k, v, ok := parts.NextRaw()
		if !ok {
			break
		}
		key, sub, ok := tables.SplitPartRecordKey([]byte(k))
		require.True(t, ok)
		start, ok := windowStart(sub)
		require.True(t, ok)
		got[key+"@"+time.UnixMilli(start).UTC().Format("15:04")] = string(v)
	}
	assert.Equal(t, map[string]string{"k@12:00": "5", "k@12:01": "8"}, got, "the untouched window too: no part record held it")
}
