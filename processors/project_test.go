package processors

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
)

type account struct {
	ID      string `json:"id"`
	Balance int    `json:"balance"`
}

func TestSnapshot_GivenStateAndMeta_ThenRoundTripsAndTheStateIsTheCodecsBytes(t *testing.T) {
	c := codecs.JSON[account]{}
	var m meta
	m.record("events", 41)
	m.applied("id-1", time.UnixMilli(1764590400000))
	b, err := encodeSnapshot(c, account{ID: "a", Balance: 3}, m)
	require.NoError(t, err)

	s, got, err := decodeSnapshot(c, b)
	require.NoError(t, err)
	assert.Equal(t, account{ID: "a", Balance: 3}, *s)
	assert.Equal(t, m, got)

	// The state is stored as the codec wrote it: what a view serves.
	want, err := c.Encode(account{ID: "a", Balance: 3})
	require.NoError(t, err)
	state, err := stateOf(b)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(state))
}

func TestSnapshot_GivenEmptyObjectState_ThenItsStateIsTheEmptyObject(t *testing.T) {
	type empty struct{}
	b, err := encodeSnapshot(codecs.JSON[empty]{}, empty{}, meta{})
	require.NoError(t, err)
	state, err := stateOf(b)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(state))
	s, _, err := decodeSnapshot(codecs.JSON[empty]{}, b)
	require.NoError(t, err)
	assert.NotNil(t, s)
}

func TestSnapshot_GivenNonObjectCodec_ThenError(t *testing.T) {
	_, err := encodeSnapshot(codecs.JSON[int]{}, 3, meta{})
	assert.ErrorIs(t, err, errNotObject)
}

func TestMeta_GivenAppliedRecords_ThenReadAgainByOffsetPerTopic(t *testing.T) {
	var m meta
	m.record("events", 10)
	assert.True(t, m.appliedOffset("events", 10), "same offset re-consumed")
	assert.True(t, m.appliedOffset("events", 9), "older offset")
	assert.False(t, m.appliedOffset("events", 11))
	assert.False(t, m.appliedOffset("other-topic", 3), "offsets are per topic")
}

func TestAppliedIDs_GivenSnapshots_ThenTheStoreGetsTheIDsOfTheWriteAndItsTime(t *testing.T) {
	c := codecs.JSON[account]{}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var m meta
	m.record("events", 3)
	m.applied("id-3", at)
	m.Parked = []parkedRecord{{Topic: "events", Offset: 2, Value: []byte(`{"id":"x"}`), ID: "id-2"}}
	b, err := encodeSnapshot(c, account{ID: "a"}, m)
	require.NoError(t, err)
	ids, got := appliedIDs("a", b)
	assert.Equal(t, []string{"id-3"}, ids, "parked records are not applied")
	assert.True(t, at.Equal(got))

	// A snapshot of before (the last four ids, no time) still reads.
	ids, got = appliedIDs("a", []byte(`{"_meta":{"offsets":{"events":9},"ids":["a","b","c","d"]},"id":"a"}`))
	assert.Equal(t, []string{"a", "b", "c", "d"}, ids)
	assert.True(t, got.IsZero())
	ids, _ = appliedIDs("a", []byte(`{"id":"a"}`))
	assert.Empty(t, ids)
}

func TestSubjectIsKey_GivenSubjects_ThenMissingTakesTheKeyAndOtherIsAKeyMismatch(t *testing.T) {
	ev := codecs.Event{ID: "e1"}
	require.NoError(t, subjectIsKey(&ev, "k"))
	assert.Equal(t, "k", ev.Subject)
	require.NoError(t, subjectIsKey(&ev, "k"))
	ev.Subject = "other"
	err := subjectIsKey(&ev, "k")
	assert.Equal(t, ClassKeyMismatch, classify(err))
}
