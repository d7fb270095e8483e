package processors

import (
	"encoding/json"
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

func TestSnapshot_GivenStateAndMeta_ThenRoundTripsAndReadersIgnoreMeta(t *testing.T) {
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

	// A reader that knows nothing of the framework decodes the plain state.
	var plain account
	require.NoError(t, json.Unmarshal(b, &plain))
	assert.Equal(t, account{ID: "a", Balance: 3}, plain)
}

func TestSnapshot_GivenEmptyObjectState_ThenStillValidJSON(t *testing.T) {
	type empty struct{}
	b, err := encodeSnapshot(codecs.JSON[empty]{}, empty{}, meta{})
	require.NoError(t, err)
	assert.True(t, json.Valid(b), string(b))
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
