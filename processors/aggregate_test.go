package processors

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// A tab: a list of items that is opened by its first item and closed for
// good. Commands: add {item}, close; "fail" fails as the decider's error.
type tab struct {
	Items   []string `json:"items"`
	Closed  bool     `json:"closed"`
	Version int64    `json:"version"`
}

func (t *tab) SetVersion(v int64) { t.Version = v }

type tabCmd struct {
	Item string `json:"item,omitempty"`
}

func decideTab(_ *DecideContext, s *tab, cmd Command[tabCmd]) ([]NewEvent, error) {
	switch cmd.Type {
	case "add":
		if cmd.Data.Item == "" {
			return nil, Reject("add needs an item")
		}
		if s != nil && s.Closed {
			return nil, Reject("tab is closed")
		}
		var evs []NewEvent
		if s == nil {
			evs = append(evs, NewEvent{Type: "opened"})
		}
		return append(evs, NewEvent{Type: "added", Data: cmd.Data}), nil
	case "close":
		if s == nil {
			return nil, Reject("no tab to close")
		}
		return []NewEvent{{Type: "closed"}}, nil
	case "fail":
		return nil, errors.New("decider broke")
	}
	return nil, Reject("unknown command %s", cmd.Type)
}

func evolveTab(s *tab, ev codecs.Event) (*tab, error) {
	switch ev.Type {
	case "opened":
		return &tab{Items: []string{}}, nil
	case "added":
		var d tabCmd
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := *s
		next.Items = append(append([]string(nil), s.Items...), d.Item)
		return &next, nil
	case "closed":
		next := *s
		next.Closed = true
		return &next, nil
	}
	return nil, Permanent(errors.New("unknown event " + ev.Type))
}

var tabTime = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// tabRig runs the tabs aggregate (group "tabs" and its relay) on goka's tester.
type tabRig struct {
	t         *testing.T
	gkt       *tester.Tester
	g         *Group
	agg       Aggregate[tab, tabCmd]
	decisions *atomic.Int64 // calls of the decider
	events    *tester.QueueTracker
	replies   *tester.QueueTracker
	dlq       *tester.QueueTracker
	changelog *tester.QueueTracker
}

func startTabs(t *testing.T, opts ...GroupOption) *tabRig {
	g := NewGroup("tabs", append([]GroupOption{WithPolicy(Policy{})}, opts...)...)
	decisions := new(atomic.Int64)
	a := Aggregate[tab, tabCmd]{
		Commands: tables.NewStream[Command[tabCmd]]("tab-commands", codecs.JSON[Command[tabCmd]]{}),
		Events:   tables.NewStream[codecs.Event]("tab-events", codecs.CloudEvents{}),
		Replies:  tables.NewStream[Reply]("tab-replies", codecs.JSON[Reply]{}),
		Table:    tables.NewTable[tab](g.TableTopic(), codecs.JSON[tab]{}),
		Decide: func(dc *DecideContext, s *tab, cmd Command[tabCmd]) ([]NewEvent, error) {
			decisions.Add(1)
			return decideTab(dc, s, cmd)
		},
		Evolve: evolveTab,
		Final:  func(s *tab) bool { return s.Closed },
		Source: "urn:tabs",
		Clock:  func() time.Time { return tabTime },
	}
	gkt := run(t, handleCommands(g, a))
	return &tabRig{t: t, gkt: gkt, g: g, agg: a, decisions: decisions,
		events: gkt.NewQueueTracker(a.Events.Name), replies: gkt.NewQueueTracker(a.Replies.Name), dlq: gkt.NewQueueTracker(g.DLQTopic()),
		changelog: gkt.NewQueueTracker(a.Table.Name)}
}

// command sends a command to tab key at the next offset of tab-commands.
func (r *tabRig) command(key, id, typ string, expected *int64, data tabCmd) {
	b, err := json.Marshal(Command[tabCmd]{ID: id, Type: typ, ExpectedVersion: expected, Data: data})
	require.NoError(r.t, err)
	r.gkt.Consume(r.agg.Commands.Name, key, b)
}

func (r *tabRig) snapshot(key string) []byte {
	v, _ := r.gkt.TableValue(goka.Table(r.agg.Table.Name), key).([]byte)
	return v
}

func (r *tabRig) state(key string) *tab {
	raw := r.snapshot(key)
	if raw == nil {
		return nil
	}
	s, _, err := decodeWithMeta[tab, aggMeta](r.agg.Table.Codec, raw)
	require.NoError(r.t, err)
	return s
}

// newEvents are the events appended since the last call, with their bytes.
func (r *tabRig) newEvents() (evs []codecs.Event, raw [][]byte) {
	keys, evs, raw := drainEvents(r.t, r.events)
	for i, ev := range evs {
		assert.Equal(r.t, ev.Subject, keys[i], "events are keyed by their aggregate")
	}
	return evs, raw
}

// newReplies are the replies sent since the last call.
func (r *tabRig) newReplies() []Reply {
	var reps []Reply
	for {
		key, b, ok := r.replies.NextRaw()
		if !ok {
			return reps
		}
		var rep Reply
		require.NoError(r.t, json.Unmarshal(b, &rep))
		assert.Equal(r.t, rep.CommandID, key, "replies are keyed by command id")
		reps = append(reps, rep)
	}
}

func (r *tabRig) onlyReply() Reply {
	reps := r.newReplies()
	require.Len(r.t, reps, 1)
	return reps[0]
}

func version(n int64) *int64 { return &n }

func types(evs []codecs.Event) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, ev.Type)
	}
	return ts
}

func TestHandleCommands_GivenANewAggregate_ThenItsEventsAreAppendedAndTheReplyAccepts(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})

	evs, _ := r.newEvents()
	assert.Equal(t, []string{"opened", "added"}, types(evs))
	for i, ev := range evs {
		assert.Equal(t, eventID("t1", "c1", i), ev.ID)
		assert.Equal(t, "urn:tabs", ev.Source)
		assert.Equal(t, "t1", ev.Subject)
		assert.True(t, tabTime.Equal(ev.Time), "the aggregate's clock stamps its events")
	}
	rep := r.onlyReply()
	assert.Equal(t, ReplyAccepted, rep.Status)
	assert.Equal(t, "t1", rep.AggregateID)
	assert.Equal(t, int64(2), rep.Version)
	assert.Equal(t, evs, rep.Events, "the reply carries the events as appended")
	assert.False(t, rep.Duplicate)
	assert.Equal(t, &tab{Items: []string{"tea"}, Version: 2}, r.state("t1"), "Versioned states get the version")
}

func TestHandleCommands_GivenAnExpectedVersionThatDoesNotMatch_ThenConflictAndNothingAppended(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})
	r.newEvents()
	r.newReplies()

	r.command("t1", "c2", "add", version(1), tabCmd{Item: "cake"})

	evs, _ := r.newEvents()
	assert.Empty(t, evs)
	rep := r.onlyReply()
	assert.Equal(t, ReplyConflict, rep.Status)
	assert.Equal(t, int64(2), rep.Version, "the conflict names the current version")
	assert.Contains(t, rep.Reason, "expected version 1, current version 2")
	assert.Equal(t, []string{"tea"}, r.state("t1").Items)

	// Given the version it has, the same change goes through.
	r.command("t1", "c3", "add", version(2), tabCmd{Item: "cake"})
	evs, _ = r.newEvents()
	assert.Equal(t, []string{"added"}, types(evs))
	assert.Equal(t, ReplyAccepted, r.onlyReply().Status)
}

func TestHandleCommands_GivenAConflictOnANewAggregate_ThenTheReplyIsSentAndNoStateIsCreated(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", version(3), tabCmd{Item: "tea"})
	rep := r.onlyReply()
	assert.Equal(t, ReplyConflict, rep.Status)
	assert.Zero(t, rep.Version)
	evs, _ := r.newEvents()
	assert.Empty(t, evs)
	assert.Nil(t, r.snapshot("t1"))
	assert.Zero(t, r.decisions.Load(), "a conflict is not decided")
}

func TestHandleCommands_GivenTheSameCommandIDAgain_ThenTheOriginalReplyAsDuplicateAndNoNewEvents(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})
	first := r.onlyReply()
	r.newEvents()

	// A client's retry: the same command id, a new record.
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})

	evs, _ := r.newEvents()
	assert.Empty(t, evs, "a repeat appends nothing")
	again := r.onlyReply()
	assert.True(t, again.Duplicate)
	again.Duplicate = false
	assert.Equal(t, first, again, "the original reply, events and ids included")
	assert.Equal(t, []string{"tea"}, r.state("t1").Items)
	assert.Equal(t, int64(1), r.decisions.Load(), "decided once")
	assert.Equal(t, int64(1), r.g.stats.snapshot().Duplicates)

	// A rejected command is remembered too (once the aggregate exists).
	r.command("t1", "c2", "add", nil, tabCmd{})
	rejected := r.onlyReply()
	require.Equal(t, ReplyRejected, rejected.Status)
	r.command("t1", "c2", "add", nil, tabCmd{Item: "now valid"})
	again = r.onlyReply()
	assert.True(t, again.Duplicate)
	assert.Equal(t, ReplyRejected, again.Status, "the original answer, though the retry would pass now")
	assert.Equal(t, rejected.Reason, again.Reason)
}

func TestHandleCommands_GivenARejection_ThenARejectedReplyAndNoEvents(t *testing.T) {
	r := startTabs(t)
	// On an aggregate that does not exist: answered at once.
	r.command("t1", "c1", "close", nil, tabCmd{})
	rep := r.onlyReply()
	assert.Equal(t, ReplyRejected, rep.Status)
	assert.Equal(t, "no tab to close", rep.Reason)
	assert.Nil(t, r.snapshot("t1"))

	// On one that exists: recorded in the snapshot and relayed.
	r.command("t1", "c2", "add", nil, tabCmd{Item: "tea"})
	r.newReplies()
	r.newEvents()
	r.command("t1", "c3", "add", nil, tabCmd{})
	rep = r.onlyReply()
	assert.Equal(t, ReplyRejected, rep.Status)
	assert.Equal(t, "add needs an item", rep.Reason)
	assert.Equal(t, int64(2), rep.Version)
	evs, _ := r.newEvents()
	assert.Empty(t, evs)
	assert.Equal(t, &tab{Items: []string{"tea"}, Version: 2}, r.state("t1"))
	assert.Zero(t, r.dlq.Hwm(), "a rejection is an answer, not a failure")
}

func TestHandleCommands_GivenAFinalState_ThenTheEventsAreAppendedAndTheKeyIsDeleted(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})
	r.newEvents()
	r.newReplies()

	r.command("t1", "c2", "close", nil, tabCmd{})

	evs, _ := r.newEvents()
	assert.Equal(t, []string{"closed"}, types(evs), "the final decision's events leave before the tombstone")
	rep := r.onlyReply()
	assert.Equal(t, ReplyAccepted, rep.Status)
	assert.Equal(t, int64(3), rep.Version)
	assert.Nil(t, r.snapshot("t1"), "the table key is deleted")
	assert.Equal(t, int64(1), r.g.stats.snapshot().Deleted)

	// The changelog's last record for the key is the tombstone.
	var last []byte
	n := 0
	for {
		_, v, ok := r.changelog.NextRaw()
		if !ok {
			break
		}
		last, n = v, n+1
	}
	require.Equal(t, 3, n, "snapshot, final snapshot, tombstone")
	assert.Nil(t, last)
}

func TestHandleCommands_GivenTheSameCommandRecordReadAgainAfterACrash_ThenTheSameEventsWithTheSameIDsAreSentAgain(t *testing.T) {
	// Given a command handled once: its snapshot and its events.
	first := startTabs(t)
	first.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})
	evs, raw := first.newEvents()
	require.Len(t, evs, 2)
	snapshot := first.snapshot("t1")
	require.NotNil(t, snapshot)

	// When a fresh instance holds that snapshot and reads the same record
	// again (the offset was not committed before the crash).
	again := startTabs(t)
	again.gkt.SetTableValue(goka.Table(again.agg.Table.Name), "t1", snapshot)
	again.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})

	// Then it is not decided again, and the relay sends the same bytes.
	assert.Zero(t, again.decisions.Load())
	evs2, raw2 := again.newEvents()
	assert.Equal(t, raw, raw2, "same events, same ids, same times")
	assert.Equal(t, ReplyAccepted, again.onlyReply().Status)
	assert.Equal(t, &tab{Items: []string{"tea"}, Version: 2}, again.state("t1"))

	// Event ids come from aggregate, command and position only.
	assert.Equal(t, eventID("t1", "c1", 1), evs2[1].ID)
	assert.NotEqual(t, eventID("t1", "c1", 0), eventID("t1", "c1", 1))
	assert.NotEqual(t, eventID("t1", "c1", 0), eventID("t2", "c1", 0), "another aggregate")
	assert.NotEqual(t, eventID("t1", "c1", 0), eventID("t1", "c2", 0), "another command")
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, eventID("t1", "c1", 0))
}

func TestHandleCommands_GivenARecordAtOrBelowTheLastDecidedOffset_ThenItIsNotDecidedAgain(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"}) // offset 0
	r.newReplies()
	r.newEvents()

	// A snapshot that already decided up to offset 5 (later commands whose
	// ids it no longer remembers) reads offset 1 again after a crash.
	raw := r.snapshot("t1")
	s, m, err := decodeWithMeta[tab, aggMeta](r.agg.Table.Codec, raw)
	require.NoError(t, err)
	m.Commands = nil
	m.Offset = version(5)
	b, err := encodeWithMeta(r.agg.Table.Codec, *s, m)
	require.NoError(t, err)
	r.gkt.SetTableValue(goka.Table(r.agg.Table.Name), "t1", b)

	r.command("t1", "c-forgotten", "add", nil, tabCmd{Item: "cake"}) // offset 1

	assert.Equal(t, int64(1), r.decisions.Load())
	assert.Empty(t, r.newReplies(), "its answer went out when it was decided")
	assert.Equal(t, []string{"tea"}, r.state("t1").Items)
}

func TestHandleCommands_GivenMalformedCommands_ThenDeadLetteredAsDecodeAndTheNextOneIsHandled(t *testing.T) {
	r := startTabs(t)
	r.gkt.Consume(r.agg.Commands.Name, "t1", []byte(`{not json`))
	r.gkt.Consume(r.agg.Commands.Name, "t1", []byte(`{"type":"add","data":{"item":"x"}}`)) // no commandId
	r.gkt.Consume(r.agg.Commands.Name, "t1", nil)
	for range 3 {
		h, key, _, ok := r.dlq.NextRawWithHeaders()
		require.True(t, ok)
		assert.Equal(t, "t1", key)
		assert.Equal(t, ClassDecode, string(h[HeaderExceptionClass]))
	}
	assert.Empty(t, r.newReplies(), "a command without an id cannot be answered")

	r.command("t1", "c1", "add", nil, tabCmd{Item: "tea"})
	assert.Equal(t, ReplyAccepted, r.onlyReply().Status)
}

func TestHandleCommands_GivenADeciderError_ThenAFailedReplyAndADeadLetter(t *testing.T) {
	r := startTabs(t)
	r.command("t1", "c1", "fail", nil, tabCmd{})

	rep := r.onlyReply()
	assert.Equal(t, ReplyFailed, rep.Status)
	assert.Contains(t, rep.Reason, "decider broke")
	h, _, _, ok := r.dlq.NextRawWithHeaders()
	require.True(t, ok)
	assert.Equal(t, ClassHandler, string(h[HeaderExceptionClass]))
	assert.Equal(t, "tab-commands", string(h[HeaderOriginalTopic]))
	assert.Nil(t, r.snapshot("t1"))
}

func TestLookupValue_GivenAGroupTablesSnapshots_ThenTheStateAndNoneForBookkeepingOnly(t *testing.T) {
	type price struct {
		Cents int `json:"cents"`
	}
	prices := tables.NewTable[price]("prices-table", codecs.JSON[price]{})
	g := NewGroup("tabs", WithPolicy(Policy{}))
	Lookup(g, prices)
	got := map[string]*price{}
	a := Aggregate[tab, tabCmd]{
		Commands: tables.NewStream[Command[tabCmd]]("tab-commands", codecs.JSON[Command[tabCmd]]{}),
		Events:   tables.NewStream[codecs.Event]("tab-events", codecs.CloudEvents{}),
		Replies:  tables.NewStream[Reply]("tab-replies", codecs.JSON[Reply]{}),
		Decide: func(dc *DecideContext, _ *tab, cmd Command[tabCmd]) ([]NewEvent, error) {
			p, err := LookupValue(dc, prices, cmd.Data.Item)
			if err != nil {
				return nil, err
			}
			got[cmd.Data.Item] = p
			return nil, Reject("only looking")
		},
		Evolve: evolveTab,
		Source: "urn:tabs",
	}
	gkt := run(t, handleCommands(g, a))

	framed, err := encodeSnapshot(prices.Codec, price{Cents: 250}, meta{IDs: []string{"e"}})
	require.NoError(t, err)
	parkedOnly, err := encodeSnapshot(prices.Codec, price{}, meta{Absent: true, Parked: []parkedRecord{{Topic: "t", Kind: "product"}}})
	require.NoError(t, err)
	for key, value := range map[string][]byte{
		"framed":      framed,
		"json-form":   []byte(`{"_meta":{"ids":["e"]},"cents":120}`),
		"bare":        []byte(`{"cents":90}`),
		"parked-only": parkedOnly,
	} {
		gkt.SetTableValue(goka.Table(prices.Name), key, value)
	}
	for i, item := range []string{"framed", "json-form", "bare", "parked-only", "missing"} {
		b, err := json.Marshal(Command[tabCmd]{ID: fmt.Sprint("c", i), Type: "look", Data: tabCmd{Item: item}})
		require.NoError(t, err)
		gkt.Consume(a.Commands.Name, "t1", b)
	}
	assert.Equal(t, map[string]*price{"framed": {250}, "json-form": {120}, "bare": {90}, "parked-only": nil, "missing": nil}, got)
}
