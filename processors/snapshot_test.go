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

	b, err := encodeSnapshot(codecs.JSON[map[string]string]{}, map[string]string{"state": "closed"}, meta{IDs: []string{"x"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"t"}, idx[0].Terms("k", b))
	assert.JSONEq(t, `{"state":"closed"}`, seen)
	assert.Nil(t, idx[0].Terms("k", b[:len(b)-1]), "a broken snapshot has no terms")
}

func TestSnapshot_GivenBothForms_ThenTheBookkeepingAndStateReadTheSame(t *testing.T) {
	c := codecs.JSON[map[string]string]{}
	m := meta{Offsets: map[string]int64{"events": 9}, IDs: []string{"a"}, At: 5}
	b, err := encodeSnapshot(c, map[string]string{"id": "k"}, m)
	require.NoError(t, err)
	for name, value := range map[string][]byte{
		"binary": b,
		"json":   []byte(`{"_meta":{"offsets":{"events":9},"ids":["a"],"at":5},"id":"k"}`),
	} {
		s, got, err := decodeSnapshot(c, value)
		require.NoError(t, err, name)
		assert.Equal(t, map[string]string{"id": "k"}, *s, name)
		assert.Equal(t, m, got, name)
	}
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
			var m aggMeta
			require.NoError(t, m.remember(cmd, "commands", 41, rep))
			b, err := encodeWithMeta(codecs.JSON[tab]{}, tab{}, m)
			require.NoError(t, err)
			_, back, err := decodeWithMeta[tab, aggMeta](codecs.JSON[tab]{}, b)
			require.NoError(t, err)
			rec, ok := back.command(cmd)
			require.True(t, ok)
			got, err := rememberedReply(rec, key, source)
			require.NoError(t, err)
			assert.Equal(t, rep, got)
		})
	}
}

func TestCommandRecord_GivenTheWholeReplyOfEarlierSnapshots_ThenItIsReadAsItWas(t *testing.T) {
	rep := Reply{CommandID: "c", AggregateID: "k", Status: ReplyConflict, Version: 3, Reason: "expected version 1"}
	whole, err := json.Marshal(rep)
	require.NoError(t, err)
	got, err := rememberedReply(commandRecord{ID: "c", Reply: whole}, "k", "urn:test")
	require.NoError(t, err)
	assert.Equal(t, rep, got)
}

func TestStateCodec_GivenGroupTableValues_ThenTheStateWithoutBookkeeping(t *testing.T) {
	c := StateCodec[account](codecs.JSON[account]{})
	framed, err := encodeSnapshot(codecs.JSON[account]{}, account{ID: "a", Balance: 2}, meta{IDs: []string{"e"}})
	require.NoError(t, err)
	for name, value := range map[string][]byte{
		"binary envelope": framed,
		"json envelope":   []byte(`{"_meta":{"ids":["e"]},"id":"a","balance":2}`),
		"bare state":      []byte(`{"id":"a","balance":2}`),
	} {
		got, err := c.Decode(value)
		require.NoError(t, err, name)
		assert.Equal(t, account{ID: "a", Balance: 2}, got, name)
	}
	_, err = c.Decode(framed[:len(framed)-1])
	assert.Error(t, err, "a cut frame")

	b, err := c.Encode(account{ID: "b"})
	require.NoError(t, err)
	s, _, err := decodeSnapshot(codecs.JSON[account]{}, b)
	require.NoError(t, err)
	assert.Equal(t, account{ID: "b"}, *s, "the framework reads the bare state it writes")
}
