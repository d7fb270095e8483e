package processors

import (
	"encoding/json"
	"testing"

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
	m.record("events", 41, "id-1")
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

func TestMeta_GivenAppliedRecords_ThenSeenByOffsetOrID(t *testing.T) {
	var m meta
	m.record("events", 10, "a")
	assert.True(t, m.seen("events", 10, "other"), "same offset re-consumed")
	assert.True(t, m.seen("events", 9, "other"), "older offset")
	assert.True(t, m.seen("events", 11, "a"), "same event id re-sent")
	assert.False(t, m.seen("events", 11, "b"))
	assert.False(t, m.seen("other-topic", 3, "b"), "offsets are per topic")
}

func TestMeta_GivenManyIDs_ThenRemembersOnlyTheNewest(t *testing.T) {
	var m meta
	for i := range rememberedIDs + 5 {
		m.record("events", int64(i), string(rune('a'+i)))
	}
	assert.Len(t, m.IDs, rememberedIDs)
	assert.Equal(t, string(rune('a'+rememberedIDs+4)), m.IDs[len(m.IDs)-1])
	assert.NotContains(t, m.IDs, "a")
}
