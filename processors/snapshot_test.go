package processors

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

func TestStateIndexes_GivenASnapshot_ThenTermsSeeTheStateOnly(t *testing.T) {
	var seen string
	idx := stateIndexes([]tables.Index{{Name: "i", Terms: func(_ string, v []byte) []string {
		seen = string(v)
		return []string{"t"}
	}}})
	require.Len(t, idx, 1)
	assert.Equal(t, []string{"t"}, idx[0].Terms("k", []byte(`{"_meta":{"ids":["x"]},"state":"open"}`)))
	assert.JSONEq(t, `{"state":"open"}`, seen)
	assert.Nil(t, idx[0].Terms("k", []byte(`{"_meta":{"ids":[`)), "a broken snapshot has no terms")
}

func TestCommandRecord_GivenAReplyWithEvents_ThenTheCompactRecordGivesItBackExactly(t *testing.T) {
	const key, cmd, source = "cart-1", "cmd-7", "urn:test"
	var evs []codecs.Event
	for i, typ := range []string{"CartCreated", "ItemAdded"} {
		ev, err := codecs.NewEvent(source, typ, key, map[string]any{"productId": "p1", "quantity": 2})
		require.NoError(t, err)
		ev.ID = eventID(key, cmd, i)
		ev.Time = time.Date(2026, 11, 26, 0, 1, 2, 345678901, time.UTC)
		evs = append(evs, ev)
	}
	for name, rep := range map[string]Reply{
		"accepted": {CommandID: cmd, AggregateID: key, Status: ReplyAccepted, Version: 2, Events: evs},
		"rejected": {CommandID: cmd, AggregateID: key, Status: ReplyRejected, Version: 2, Reason: "no"},
	} {
		t.Run(name, func(t *testing.T) {
			rec, err := newCommandRecord(cmd, "commands", 41, rep)
			require.NoError(t, err)
			b, err := json.Marshal(rec)
			require.NoError(t, err)
			var back commandRecord
			require.NoError(t, json.Unmarshal(b, &back))
			got, err := back.reply(key, source)
			require.NoError(t, err)
			assert.Equal(t, rep, got)
		})
	}
}

func TestCommandRecord_GivenTheWholeReplyOfEarlierSnapshots_ThenItIsReadAsItWas(t *testing.T) {
	rep := Reply{CommandID: "c", AggregateID: "k", Status: ReplyConflict, Version: 3, Reason: "expected version 1"}
	whole, err := json.Marshal(rep)
	require.NoError(t, err)
	got, err := commandRecord{ID: "c", Reply: whole}.reply("k", "urn:test")
	require.NoError(t, err)
	assert.Equal(t, rep, got)
}
