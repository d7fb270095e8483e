package tables

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/internal/testclock"
)

// seenTestConfig reads the ids of values written as EncodeSeenRecord does.
func seenTestConfig(clock *testclock.Clock, topic string) Seen {
	return Seen{
		IDs: func(_ string, v []byte) ([]string, time.Time) {
			var r seenRecord
			if json.Unmarshal(v, &r) != nil {
				return nil, time.Time{}
			}
			return r.IDs, time.UnixMilli(r.At)
		},
		Horizon: time.Hour,
		Topic:   topic,
		Now:     clock.Now,
	}
}

// seenTestLog is a fake Kafka of topics of records, with their watermarks.
type seenTestLog struct {
	mu     sync.Mutex
	topics map[string][]Record
	reads  map[string]int
}

func (l *seenTestLog) append(topic, key string, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.topics[topic] = append(l.topics[topic], Record{Key: []byte(key), Value: value, Offset: int64(len(l.topics[topic]))})
}

func (l *seenTestLog) options() []EngineOption {
	return []EngineOption{
		WithWatermarks(WatermarksFunc(func(topic string, _ int32) (int64, int64, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return 0, int64(len(l.topics[topic])), nil
		})),
		WithRestorer(RestorerFunc(func(_ context.Context, topic string, _ int32, from, to int64, apply func([]Record) error) error {
			l.mu.Lock()
			l.reads[topic]++
			recs := append([]Record(nil), l.topics[topic][from:to]...)
			l.mu.Unlock()
			return apply(recs)
		})),
	}
}

func seenTestSeen(t *testing.T, s *Store, key, id string) bool {
	t.Helper()
	ok, err := s.Seen(key, id)
	require.NoError(t, err)
	return ok
}

func TestSeen_GivenWrittenIDs_WhenKeyDeletedAndTimePasses_ThenSeenUntilTheHorizonThenExpired(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	e := storeTestEngine(t, t.TempDir(), WithSeen("t", seenTestConfig(clock, "")))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	// Given a value that applied two ids, then one that applied a third.
	require.NoError(t, s.Set("a", EncodeSeenRecord([]string{"id-1", "id-2"}, clock.Now())))
	clock.Advance(30 * time.Minute)
	require.NoError(t, s.Set("a", EncodeSeenRecord([]string{"id-3"}, clock.Now())))
	// When the key is deleted.
	require.NoError(t, s.Delete("a"))

	// Then every id is still seen, under its key only.
	for _, id := range []string{"id-1", "id-2", "id-3"} {
		assert.True(t, seenTestSeen(t, s, "a", id), id)
	}
	assert.False(t, seenTestSeen(t, s, "b", "id-1"), "ids are per key")
	assert.False(t, seenTestSeen(t, s, "a", "id-4"))
	// And ids of a write that deleted its key are remembered apart.
	require.NoError(t, s.Remember("b", []string{"id-b"}, clock.Now()))
	assert.True(t, seenTestSeen(t, s, "b", "id-b"))

	// When the first two pass the horizon.
	clock.Advance(45 * time.Minute)
	assert.False(t, seenTestSeen(t, s, "a", "id-1"), "expired by age")
	assert.True(t, seenTestSeen(t, s, "a", "id-3"))
	// Then the writer's expiry deletes them and keeps the third.
	require.NoError(t, s.ExpireSeen())
	n, err := s.SeenCount()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.True(t, seenTestSeen(t, s, "a", "id-3"))
}

func TestSeen_GivenRestoreBatchesOverwritingAKey_ThenEveryWriteKeepsItsIDs(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	e := storeTestEngine(t, t.TempDir(), WithSeen("t", seenTestConfig(clock, "")), WithBatchSize(2))
	s := storeTestOpen(t, e, "t", 0)

	// Given a restore (goka's recovery) writing one key five times.
	for i, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		require.NoError(t, s.Set("k", EncodeSeenRecord([]string{id}, clock.Now())))
		require.NoError(t, s.SetOffset(int64(i)))
		// Then staged ids are seen before they are committed.
		assert.True(t, seenTestSeen(t, s, "k", id))
	}
	// And an expired id is not stored at all.
	require.NoError(t, s.Set("k", EncodeSeenRecord([]string{"old"}, clock.Now().Add(-2*time.Hour))))
	require.NoError(t, s.MarkRecovered())

	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		assert.True(t, seenTestSeen(t, s, "k", id), id)
	}
	assert.False(t, seenTestSeen(t, s, "k", "old"))
	n, err := s.SeenCount()
	require.NoError(t, err)
	assert.Equal(t, 5, n)
}

func TestSeen_GivenWipedStore_WhenReopened_ThenIDsComeBackFromTheIDsTopicOnceAndExpiredOnesAreSkipped(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	log := &seenTestLog{topics: map[string][]Record{}, reads: map[string]int{}}
	// Given a changelog holding only the latest value of a key (compacted)
	// and the ids topic holding every id, one of them past the horizon.
	log.append("t", "a", EncodeSeenRecord([]string{"id-9"}, clock.Now()))
	log.append("t-seen", "a", EncodeSeenRecord([]string{"id-0"}, clock.Now().Add(-2*time.Hour)))
	for _, id := range []string{"id-1", "id-2", "id-9"} {
		log.append("t-seen", "a", EncodeSeenRecord([]string{id}, clock.Now().Add(-time.Minute)))
	}
	opts := append(log.options(), WithSeen("t", seenTestConfig(clock, "t-seen")))
	dir := t.TempDir()

	// When a store opens empty.
	e := storeTestEngine(t, dir, opts...)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	// Then it holds the ids of both, without the expired one.
	for _, id := range []string{"id-1", "id-2", "id-9"} {
		assert.True(t, seenTestSeen(t, s, "a", id), id)
	}
	assert.False(t, seenTestSeen(t, s, "a", "id-0"))
	n, err := s.SeenCount()
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, 1, log.reads["t-seen"])
	require.NoError(t, e.Close())

	// When the intact store opens again, it does not read the ids topic.
	e = storeTestEngine(t, dir, opts...)
	s = storeTestOpen(t, e, "t", 0)
	assert.True(t, seenTestSeen(t, s, "a", "id-1"))
	assert.Equal(t, 1, log.reads["t-seen"])
}

func TestSeen_GivenIDsTopicWithoutRestorer_ThenNewEngineFails(t *testing.T) {
	clock := testclock.New(time.Now())
	_, err := NewEngine(t.TempDir(), WithSeen("t", seenTestConfig(clock, "t-seen")))
	assert.ErrorContains(t, err, "needs a restorer")
	_, err = NewEngine(t.TempDir(), WithSeen("t", Seen{IDs: seenTestConfig(clock, "").IDs}))
	assert.ErrorContains(t, err, "horizon")
}

// Given ids plain and not (quotes, escapes, HTML characters, control
// characters, non-ASCII, invalid UTF-8), when EncodeSeenRecord encodes them,
// then the bytes are encoding/json's, which is what the ids topic held
// before the hand-written encoding.
func TestEncodeSeenRecordIsEncodingJSONs(t *testing.T) {
	at := time.UnixMilli(1_764_633_600_123)
	cases := [][]string{
		nil,
		{},
		{""},
		{"0b6c1f2e-9f59-4c3e-8f5e-3d1f2a4b5c6d"},
		{"a", "b c", "~!@#$%^*()_+{}|:?"},
		{`quo"te`}, {`back\slash`}, {"<tag>"}, {"a&b"},
		{"tab\t", "nul\x00", "del\x7f"},
		{"café", "\u2028"}, {"bad\xffutf8"},
		{"plain", "then <not>"},
	}
	for _, ids := range cases {
		for _, when := range []time.Time{at, time.UnixMilli(-5), time.UnixMilli(0)} {
			want, err := json.Marshal(seenRecord{At: when.UnixMilli(), IDs: ids})
			require.NoError(t, err)
			assert.Equal(t, string(want), string(EncodeSeenRecord(ids, when)), "ids %q at %d", ids, when.UnixMilli())
		}
	}
}
