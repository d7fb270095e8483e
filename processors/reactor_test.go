package processors

import (
	"sync"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// A notifier: per order it counts the events seen and mails a note for each
// (an emit to order-notes); "forward" also sends a note through the loopback
// to the order named in its data; "forget" drops the order's state.
type notes struct {
	Seen      int `json:"seen"`
	Forwarded int `json:"forwarded"`
}

type forward struct {
	From string `json:"from"`
}

// reaction is what one React call saw.
type reaction struct {
	Key, Input string
	Live       bool
	EffectID   string
}

type notifyRig struct {
	t     *testing.T
	gkt   *tester.Tester
	g     *Group
	table tables.Table[notes]
	in    tables.Stream[codecs.Event]
	out   *tester.QueueTracker
	loop  *tester.QueueTracker
	dlq   *tester.QueueTracker

	mu   sync.Mutex
	seen []reaction
}

func startNotifier(t *testing.T, opts []GroupOption, run1 ...runOption) *notifyRig {
	g := NewGroup("notifier", append([]GroupOption{WithPolicy(Policy{})}, opts...)...)
	r := &notifyRig{t: t, g: g,
		table: tables.NewTable[notes](g.TableTopic(), codecs.JSON[notes]{}),
		in:    tables.NewStream[codecs.Event]("order-events", codecs.CloudEvents{}),
	}
	out := tables.NewStream[codecs.Event]("order-notes", codecs.CloudEvents{})
	loop := LoopStream(g, codecs.JSON[forward]{})
	Output(g, out)
	addReactor(g, Reactor[notes, codecs.Event]{Table: r.table, Input: r.in, React: func(rc *ReactContext, s *notes, ev codecs.Event) (*notes, error) {
		r.saw(rc, ev.Type)
		if ev.Type == "forget" {
			return nil, nil
		}
		next := notes{}
		if s != nil {
			next = *s
		}
		next.Seen++
		if _, err := rc.Emit(out, rc.Key(), "noted", "urn:notifier", map[string]string{"effect": rc.EffectID("email")}); err != nil {
			return nil, err
		}
		if ev.Type == "forward" {
			var to string
			if err := ev.DataAs(&to); err != nil {
				return nil, Permanent(err)
			}
			if err := Loopback(rc, loop, to, forward{From: rc.Key()}); err != nil {
				return nil, err
			}
		}
		return &next, nil
	}})
	addReactor(g, Reactor[notes, forward]{Table: r.table, Input: loop, Loop: true, React: func(rc *ReactContext, s *notes, f forward) (*notes, error) {
		r.saw(rc, "loop from "+f.From)
		next := notes{}
		if s != nil {
			next = *s
		}
		next.Forwarded++
		_, err := rc.Emit(out, rc.Key(), "forwarded", "urn:notifier", f)
		return &next, err
	}})
	r.gkt = run(t, []*Group{g}, run1...)
	r.out = r.gkt.NewQueueTracker(out.Name)
	r.loop = r.gkt.NewQueueTracker(loop.Name)
	r.dlq = r.gkt.NewQueueTracker(g.DLQTopic())
	return r
}

func (r *notifyRig) saw(rc *ReactContext, input string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, reaction{Key: rc.Key(), Input: input, Live: rc.Live(), EffectID: rc.EffectID("email")})
}

// reactions are the React calls since the last call.
func (r *notifyRig) reactions() []reaction {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// send consumes an event with id about key at the next offset of order-events.
func (r *notifyRig) send(key, id, typ string, data any, h goka.Headers) []byte {
	ev, err := codecs.NewEvent("urn:orders", typ, key, data)
	require.NoError(r.t, err)
	ev.ID = id
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(r.t, err)
	r.gkt.Consume(r.in.Name, key, b, tester.WithHeaders(h))
	return b
}

func (r *notifyRig) state(key string) *notes {
	raw, _ := r.gkt.TableValue(goka.Table(r.table.Name), key).([]byte)
	if raw == nil {
		return nil
	}
	s, _, err := decodeWithMeta[notes, reactMeta](r.table.Codec, raw)
	require.NoError(r.t, err)
	return s
}

// emitted are the records sent to order-notes since the last call.
func (r *notifyRig) emitted() (evs []codecs.Event, raw [][]byte) {
	_, evs, raw = drainEvents(r.t, r.out)
	return evs, raw
}

func TestAddReactor_GivenAnInput_ThenItsEffectIDIsStableAcrossReRunsAndDistinctPerInputAndName(t *testing.T) {
	// The same input in two fresh instances (a re-run after a lost disk).
	var ids []string
	var emitted [][]codecs.Event
	for range 2 {
		r := startNotifier(t, nil)
		r.send("o1", "ev-1", "placed", nil, nil)
		reacts := r.reactions()
		require.Len(t, reacts, 1)
		ids = append(ids, reacts[0].EffectID)
		evs, _ := r.emitted()
		require.Len(t, evs, 1)
		emitted = append(emitted, evs)
	}
	assert.Equal(t, ids[0], ids[1])
	assert.Equal(t, emitted[0][0].ID, emitted[1][0].ID, "emitted events carry ids derived from the input")
	assert.Equal(t, `{"effect":"`+ids[0]+`"}`, string(emitted[0][0].Data))

	rc := &ReactContext{inputID: "ev-1"}
	assert.Equal(t, ids[0], rc.EffectID("email"))
	assert.NotEqual(t, rc.EffectID("email"), rc.EffectID("sms"), "another effect of the input")
	assert.NotEqual(t, rc.EffectID("email"), (&ReactContext{inputID: "ev-2"}).EffectID("email"), "another input")
}

func TestAddReactor_GivenTheSameRecordReadAgainAfterACrash_ThenWhatWasRecordedIsSentAgainWithoutReacting(t *testing.T) {
	first := startNotifier(t, nil)
	value := first.send("o1", "ev-1", "placed", nil, nil)
	_, raw := first.emitted()
	require.Len(t, raw, 1)
	snapshot, _ := first.gkt.TableValue(goka.Table(first.table.Name), "o1").([]byte)
	require.NotNil(t, snapshot)

	again := startNotifier(t, nil)
	again.gkt.SetTableValue(goka.Table(again.table.Name), "o1", snapshot)
	again.gkt.Consume(again.in.Name, "o1", value) // offset 0 again

	assert.Empty(t, again.reactions(), "not handled twice")
	_, raw2 := again.emitted()
	assert.Equal(t, raw, raw2, "the same bytes, so the same ids")
	assert.Equal(t, &notes{Seen: 1}, again.state("o1"))
}

func TestAddReactor_GivenAnInputIDSeenBeforeAtAnotherOffset_ThenNothingHappens(t *testing.T) {
	r := startNotifier(t, nil)
	r.send("o1", "ev-1", "placed", nil, nil)
	r.emitted()
	r.reactions()

	r.send("o1", "ev-1", "placed", nil, nil) // a producer's retry

	assert.Empty(t, r.reactions())
	evs, _ := r.emitted()
	assert.Empty(t, evs)
	assert.Equal(t, &notes{Seen: 1}, r.state("o1"))
	assert.Equal(t, int64(1), r.g.stats.snapshot().Duplicates)
}

func TestAddReactor_GivenBootstrapTargets_ThenEffectsAreSuppressedWhileCatchingUpAndSentOnceLive(t *testing.T) {
	// Two records existed at the group's first start.
	r := startNotifier(t, []GroupOption{WithBootstrap()}, withCatchUp(map[string]map[int32]int64{"order-events": {0: 2}}))
	r.send("o1", "ev-1", "placed", nil, nil)
	r.send("o1", "ev-2", "paid", nil, nil)

	reacts := r.reactions()
	require.Len(t, reacts, 2)
	assert.False(t, reacts[0].Live)
	assert.False(t, reacts[1].Live)
	evs, _ := r.emitted()
	assert.Empty(t, evs, "no effects while catching up")
	assert.Equal(t, &notes{Seen: 2}, r.state("o1"), "state is built all the same")
	assert.Equal(t, int64(2), r.g.stats.snapshot().Suppressed)

	r.send("o1", "ev-3", "shipped", nil, nil)
	reacts = r.reactions()
	require.Len(t, reacts, 1)
	assert.True(t, reacts[0].Live)
	evs, _ = r.emitted()
	require.Len(t, evs, 1)
	assert.Equal(t, &notes{Seen: 3}, r.state("o1"))
}

func TestAddReactor_GivenNothingToCatchUpOrNoBootstrap_ThenLiveFromTheStart(t *testing.T) {
	r := startNotifier(t, []GroupOption{WithBootstrap()}, withCatchUp(map[string]map[int32]int64{"order-events": {0: 0}}))
	r.send("o1", "ev-1", "placed", nil, nil)
	reacts := r.reactions()
	require.Len(t, reacts, 1)
	assert.True(t, reacts[0].Live)

	assert.ErrorIs(t, NewGroup("plain").setCatchUp(nil), errNotBootstrapped)
}

func TestAddReactor_GivenALoopback_ThenTheLoopInputSeesItUnderTheOtherKeyWithThatKeysState(t *testing.T) {
	r := startNotifier(t, nil)
	r.send("o2", "ev-0", "placed", nil, nil)
	r.reactions()
	r.emitted()

	r.send("o1", "ev-1", "forward", "o2", nil)

	assert.Equal(t, []reaction{
		{Key: "o1", Input: "forward", Live: true, EffectID: eventID("ev-1", "email", 0)},
		{Key: "o2", Input: "loop from o1", Live: true, EffectID: eventID("notifier-loop/0/0", "email", 0)},
	}, r.reactions())
	assert.Equal(t, &notes{Seen: 1}, r.state("o1"))
	assert.Equal(t, &notes{Seen: 1, Forwarded: 1}, r.state("o2"))
	evs, _ := r.emitted()
	assert.Equal(t, []string{"noted", "forwarded"}, types(evs))
}

func TestAddReactor_GivenALoopbackWhileCatchingUp_ThenItIsSentMarkedAndItsEffectsAreSuppressedToo(t *testing.T) {
	r := startNotifier(t, []GroupOption{WithBootstrap()}, withCatchUp(map[string]map[int32]int64{"order-events": {0: 1}}))
	r.send("o1", "ev-1", "forward", "o2", nil)

	h, key, _, ok := r.loop.NextRawWithHeaders()
	require.True(t, ok, "loopbacks build state: they are sent while catching up")
	assert.Equal(t, "o2", key)
	assert.Equal(t, "1", string(h[HeaderCatchUp]))
	reacts := r.reactions()
	require.Len(t, reacts, 2)
	assert.False(t, reacts[1].Live, "the loop input has no target of its own: the mark says so")
	evs, _ := r.emitted()
	assert.Empty(t, evs)
	assert.Equal(t, &notes{Forwarded: 1}, r.state("o2"))
	assert.Equal(t, int64(2), r.g.stats.snapshot().Suppressed)

	// Once live, a loopback carries no mark.
	r.send("o1", "ev-2", "forward", "o2", nil)
	h, _, _, ok = r.loop.NextRawWithHeaders()
	require.True(t, ok)
	assert.NotContains(t, h, HeaderCatchUp)
	evs, _ = r.emitted()
	assert.Equal(t, []string{"noted", "forwarded"}, types(evs))
}

func TestAddReactor_GivenANilState_ThenTheKeyIsDeletedAndTheEffectsSent(t *testing.T) {
	r := startNotifier(t, nil)
	r.send("o1", "ev-1", "placed", nil, nil)
	require.NotNil(t, r.state("o1"))
	r.send("o1", "ev-2", "forget", nil, nil)
	assert.Nil(t, r.state("o1"))
}

func TestAddReactor_GivenAnEventWhoseSubjectIsNotItsKey_ThenDeadLetteredAsKeyMismatch(t *testing.T) {
	r := startNotifier(t, nil)
	ev, err := codecs.NewEvent("urn:orders", "placed", "o9", nil)
	require.NoError(t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	r.gkt.Consume(r.in.Name, "o1", b)

	assert.Empty(t, r.reactions())
	h, _, _, ok := r.dlq.NextRawWithHeaders()
	require.True(t, ok)
	assert.Equal(t, ClassKeyMismatch, string(h[HeaderExceptionClass]))
}

func TestAddReactor_GivenAReactError_ThenNoStateNoEffectsAndADeadLetter(t *testing.T) {
	r := startNotifier(t, nil)
	r.send("o1", "ev-1", "forward", 42, nil) // data is not a key: Permanent

	assert.Nil(t, r.state("o1"))
	evs, _ := r.emitted()
	assert.Empty(t, evs, "effects of a failed reaction are not sent")
	h, _, _, ok := r.dlq.NextRawWithHeaders()
	require.True(t, ok)
	assert.Equal(t, ClassPermanent, string(h[HeaderExceptionClass]))
}
