package processors

import (
	"testing"
	"time"

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
