package processors

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// A balance that events set, add to or erase; "fail" fails.
type balance struct {
	Amount int `json:"amount"`
}

func applyBalance(s *balance, ev codecs.Event) (*balance, error) {
	switch ev.Type {
	case "set":
		var n int
		if err := ev.DataAs(&n); err != nil {
			return nil, err
		}
		return &balance{Amount: n}, nil
	case "erase":
		return nil, nil
	case "fail":
		return nil, Permanent(errors.New("bad event"))
	}
	return nil, Permanent(errors.New("unknown event"))
}

// redriveRig is a projection group run by goka's tester: partition 0 of
// every topic, offsets counted from 0 per topic.
type redriveRig struct {
	t      *testing.T
	gkt    *tester.Tester
	table  tables.Table[balance]
	events string
	dlq    *tester.QueueTracker
	states *tester.QueueTracker
}

func startRedriveRig(t *testing.T) *redriveRig {
	gkt := tester.New(t)
	g := NewGroup("balances", WithPolicy(Policy{}))
	events := tables.NewStream[codecs.Event]("balance-events", codecs.CloudEvents{})
	table := Project(g, events, applyBalance)
	graph, err := g.graph()
	require.NoError(t, err)
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt), goka.WithNilHandling(goka.NilProcess)) // as the runtime does
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &redriveRig{t: t, gkt: gkt, table: table, events: events.Name,
		dlq: gkt.NewQueueTracker(g.DLQTopic()), states: gkt.NewQueueTracker(RedriveStates("balances").Name)}
}

func (r *redriveRig) event(typ string, data any) []byte {
	ev, err := codecs.NewEvent("urn:test", typ, "acct", data)
	require.NoError(r.t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(r.t, err)
	return b
}

// send consumes value (nil: a tombstone) for key acct at the next offset.
func (r *redriveRig) send(value []byte, h goka.Headers) {
	var msg any
	if value != nil {
		msg = value
	}
	r.gkt.Consume(r.events, "acct", msg, tester.WithHeaders(h))
}

// redriveHeadersOf is the header set a re-driver puts on a dead letter of offset.
func redriveHeadersOf(offset int64, force bool) goka.Headers {
	h := goka.Headers{HeaderRedriveOf: []byte(Coordinates("balance-events", 0, offset)), HeaderAttempts: []byte("2")}
	if force {
		h[HeaderRedriveForce] = []byte("true")
	}
	return h
}

func (r *redriveRig) amount() (int, bool) {
	v := r.gkt.TableValue(goka.Table(r.table.Name), "acct")
	if v == nil {
		return 0, false
	}
	s, _, err := decodeSnapshot(r.table.Codec, v.([]byte))
	require.NoError(r.t, err)
	if s == nil {
		return 0, false
	}
	return s.Amount, true
}

// lastState is the latest re-drive state written, and how many were.
func (r *redriveRig) lastState() (key string, s RedriveState, n int) {
	for {
		k, v, ok := r.states.NextRaw()
		if !ok {
			return key, s, n
		}
		key, n = k, n+1
		require.NoError(r.t, json.Unmarshal(v, &s))
	}
}

func (r *redriveRig) deadLetters() int {
	n := 0
	for {
		if _, _, ok := r.dlq.NextRaw(); !ok {
			return n
		}
		n++
	}
}

func TestRedrive_GivenAKeyWrittenAfterTheOriginalOffset_ThenTheReDriveIsRefusedUnlessForced(t *testing.T) {
	r := startRedriveRig(t)
	// Given a set at offset 0, a dead letter at 1, and two newer sets.
	r.send(r.event("set", 1), nil)
	r.send(r.event("fail", nil), nil)
	r.send(r.event("set", 3), nil)
	r.send(r.event("set", 4), nil)
	require.Equal(t, 1, r.deadLetters())

	// When the record of offset 1 is re-driven (as fixed).
	stale := r.event("set", 100)
	r.send(stale, redriveHeadersOf(1, false))

	// Then it is refused: the newer state stays, and the state says why.
	amount, _ := r.amount()
	assert.Equal(t, 4, amount)
	key, s, n := r.lastState()
	require.Equal(t, 1, n)
	assert.Equal(t, "balance-events/0/1", key)
	assert.Equal(t, RedriveStale, s.Status)
	assert.Contains(t, s.Reason, "balance-events/0/3")
	require.NotNil(t, s.AppliedOffset)
	assert.Equal(t, int64(3), *s.AppliedOffset)
	assert.Equal(t, 2, s.Attempts)
	assert.Equal(t, "balance-events/0/4", s.To)

	// When it is forced, it applies over the newer writes.
	r.send(stale, redriveHeadersOf(1, true))
	amount, _ = r.amount()
	assert.Equal(t, 100, amount)
	_, s, _ = r.lastState()
	assert.Equal(t, RedriveApplied, s.Status)
	assert.True(t, s.Forced)
	assert.Zero(t, r.deadLetters())
}

func TestRedrive_GivenATombstoneOrDeletionOlderThanANewerWrite_ThenNeverReDrivenEvenForced(t *testing.T) {
	r := startRedriveRig(t)
	r.send(r.event("set", 1), nil) // 0
	r.send(r.event("set", 2), nil) // 1: the key registered again after the deletions below "at" 0

	for name, value := range map[string][]byte{"tombstone": nil, "deletion": r.event("erase", nil)} {
		for _, force := range []bool{false, true} {
			r.send(value, redriveHeadersOf(0, force))
			amount, ok := r.amount()
			assert.True(t, ok, "%s forced=%v erased the key", name, force)
			assert.Equal(t, 2, amount)
			_, s, n := r.lastState()
			require.Equal(t, 1, n)
			assert.Equal(t, RedriveStale, s.Status, "%s forced=%v", name, force)
			assert.Contains(t, s.Reason, "after the original offset 0")
			if force || value == nil {
				assert.Contains(t, s.Reason, "never re-driven over a newer write")
			}
		}
	}

	// A deletion that is not older than every write goes through.
	r.send(nil, redriveHeadersOf(7, false))
	_, ok := r.amount()
	assert.False(t, ok)
	_, s, _ := r.lastState()
	assert.Equal(t, RedriveApplied, s.Status)
}

func TestRedrive_GivenAReDrivenRecordThatFailsAgain_ThenItsStateIsUpdatedAndNoSecondDeadLetter(t *testing.T) {
	r := startRedriveRig(t)
	r.send(r.event("fail", nil), nil)
	require.Equal(t, 1, r.deadLetters(), "a first failure is a dead letter")

	h := redriveHeadersOf(0, false)
	h[HeaderRedrivenFrom] = []byte("balances-dlq/0/0")
	h[HeaderAttempts] = []byte("3")
	r.send(r.event("fail", nil), h)

	assert.Zero(t, r.deadLetters())
	key, s, n := r.lastState()
	require.Equal(t, 1, n)
	assert.Equal(t, "balance-events/0/0", key)
	assert.Equal(t, RedriveFailedAgain, s.Status)
	assert.Equal(t, 3, s.Attempts)
	assert.Equal(t, ClassPermanent, s.Class)
	assert.Contains(t, s.Reason, "bad event")
	assert.Equal(t, "balances-dlq/0/0", s.From)
}

func TestRedrive_GivenAReDriveForAnotherGroup_ThenSkippedHere(t *testing.T) {
	r := startRedriveRig(t)
	r.send(r.event("set", 1), nil)
	h := redriveHeadersOf(0, true)
	h[HeaderRedriveGroup] = []byte("someone-else")
	r.send(r.event("set", 9), h)

	amount, _ := r.amount()
	assert.Equal(t, 1, amount)
	_, _, n := r.lastState()
	assert.Zero(t, n, "no state for another group's re-drive")
	assert.Zero(t, r.deadLetters())

	h[HeaderRedriveGroup] = []byte("balances")
	r.send(r.event("set", 9), h)
	amount, _ = r.amount()
	assert.Equal(t, 9, amount)
}

func TestCoordinates_GivenWhatCoordinatesWrote_ThenParseReadsItBackAndRejectsTheRest(t *testing.T) {
	topic, p, o, err := ParseCoordinates(Coordinates("a.b-c", 3, 42))
	require.NoError(t, err)
	assert.Equal(t, "a.b-c", topic)
	assert.Equal(t, int32(3), p)
	assert.Equal(t, int64(42), o)
	for _, bad := range []string{"", "t/1", "/1/2", "t/x/2", "t/1/-2", "t/-1/2"} {
		_, _, _, err := ParseCoordinates(bad)
		assert.Error(t, err, bad)
	}
}
