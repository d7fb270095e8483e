package processors

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/tables"
)

// A ledger folds "credit" events into a total. Other event types fail the
// way their name says, failing times (from the event's data) before they
// succeed as a credit of 1; "child" needs a "credit" first (its parent).
type ledger struct {
	Total int `json:"total"`
}

type ledgerRig struct {
	t     *testing.T
	gkt   *tester.Tester
	g     *Group
	table tables.Table[ledger]
	in    string
	dlq   *tester.QueueTracker

	mu    sync.Mutex
	tries map[string]int // apply calls per event id
}

func startLedger(t *testing.T, p Policy, opts ...runOption) *ledgerRig {
	g := NewGroup("ledger", WithPolicy(p))
	r := &ledgerRig{t: t, g: g, table: tables.NewTable[ledger](g.TableTopic(), codecs.JSON[ledger]{}),
		in: "ledger-events", tries: map[string]int{}}
	project(g, r.table, tables.NewStream[codecs.Event](r.in, codecs.CloudEvents{}), r.apply)
	r.gkt = run(t, []*Group{g}, opts...)
	r.dlq = r.gkt.NewQueueTracker(g.DLQTopic())
	return r
}

func (r *ledgerRig) apply(s *ledger, ev codecs.Event) (*ledger, error) {
	r.mu.Lock()
	r.tries[ev.ID]++
	try := r.tries[ev.ID]
	r.mu.Unlock()
	next := ledger{}
	if s != nil {
		next = *s
	}
	if ev.Type == "credit" {
		var n int
		if err := ev.DataAs(&n); err != nil {
			return nil, err
		}
		next.Total += n
		return &next, nil
	}
	var failing int
	_ = ev.DataAs(&failing)
	if try <= failing {
		err := fmt.Errorf("try %d of %s", try, ev.ID)
		switch ev.Type {
		case "transient":
			return nil, Transient(err)
		case "later":
			return nil, RetryLater(err)
		case "permanent":
			return nil, Permanent(err)
		case "plain":
			return nil, err
		case "panic":
			panic(err)
		}
	}
	if ev.Type == "child" && s == nil {
		return nil, MissingDependency("parent", ev.Subject)
	}
	if ev.Type == "orphan" {
		return nil, MissingDependency("parent", "elsewhere")
	}
	next.Total++
	return &next, nil
}

func (r *ledgerRig) triesOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries[id]
}

// send consumes an event with id about key at the next offset.
func (r *ledgerRig) send(key, id, typ string, data any) {
	ev, err := codecs.NewEvent("urn:test", typ, key, data)
	require.NoError(r.t, err)
	ev.ID = id
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(r.t, err)
	r.gkt.Consume(r.in, key, b)
}

func (r *ledgerRig) total(key string) (int, bool) {
	raw, _ := r.gkt.TableValue(goka.Table(r.table.Name), key).([]byte)
	if raw == nil {
		return 0, false
	}
	s, _, err := decodeSnapshot(r.table.Codec, raw)
	require.NoError(r.t, err)
	if s == nil {
		return 0, false
	}
	return s.Total, true
}

type deadLetter struct {
	key     string
	value   []byte
	headers goka.Headers
}

func (d deadLetter) h(name string) string { return string(d.headers[name]) }

func (r *ledgerRig) deadLetters() []deadLetter {
	var ds []deadLetter
	for {
		h, k, v, ok := r.dlq.NextRawWithHeaders()
		if !ok {
			return ds
		}
		ds = append(ds, deadLetter{k, v, h})
	}
}

func (r *ledgerRig) onlyDeadLetter() deadLetter {
	ds := r.deadLetters()
	require.Len(r.t, ds, 1)
	return ds[0]
}

// fast: retries in place without a noticeable wait, no retry topics, no parking.
var fast = Policy{TransientAttempts: 3, TransientBackoff: time.Microsecond}

func TestClassify_GivenEachKindOfError_ThenItsClassAlsoWhenWrapped(t *testing.T) {
	cause := errors.New("cause")
	for want, err := range map[string]error{
		ClassTransient:         Transient(cause),
		ClassRetry:             RetryLater(cause),
		ClassPermanent:         Permanent(cause),
		ClassMissingDependency: MissingDependency("customer", "c1"),
		ClassDecode:            &codecs.DecodeError{Codec: "json", Err: cause},
		ClassHandler:           cause,
		ClassPanic:             safely(func() error { panic("boom") }),
	} {
		t.Run(want, func(t *testing.T) {
			assert.Equal(t, want, classify(err))
			assert.Equal(t, want, classify(fmt.Errorf("handling: %w", err)), "through %%w")
		})
	}
	for _, err := range []error{Transient(cause), RetryLater(cause), Permanent(cause)} {
		assert.ErrorIs(t, err, cause, "the class keeps its cause")
	}
	md, ok := errors.AsType[*MissingDependencyError](fmt.Errorf("x: %w", MissingDependency("customer", "c1")))
	require.True(t, ok)
	assert.Equal(t, MissingDependencyError{Kind: "customer", Key: "c1"}, *md)
	assert.Equal(t, `missing customer "c1"`, md.Error())
	assert.ErrorContains(t, safely(func() error { panic("boom") }), "handler panicked: boom")
}

func TestFailure_GivenATransientFailureThatPasses_ThenRetriedInPlaceAndApplied(t *testing.T) {
	r := startLedger(t, fast)
	r.send("a", "e1", "transient", 2)

	total, _ := r.total("a")
	assert.Equal(t, 1, total)
	assert.Equal(t, 3, r.triesOf("e1"))
	assert.Equal(t, int64(2), r.g.stats.snapshot().Counters["retried-in-place"])
	assert.Empty(t, r.deadLetters())
}

func TestFailure_GivenATransientFailureThatLastsWithoutRetryTopics_ThenDeadLetteredAsRetriesExhausted(t *testing.T) {
	r := startLedger(t, fast)
	r.send("a", "e0", "credit", 5)
	r.send("a", "e1", "transient", 100)

	assert.Equal(t, 1+fast.TransientAttempts, r.triesOf("e1"))
	d := r.onlyDeadLetter()
	assert.Equal(t, ClassRetriesExhausted, d.h(HeaderExceptionClass))
	assert.Contains(t, d.h(HeaderExceptionMessage), "try 4 of e1")
	total, _ := r.total("a")
	assert.Equal(t, 5, total, "the partition flowed on; state is untouched")
}

func TestFailure_GivenRetryLater_ThenTheRecordGoesThroughEachRetryTopicThenToTheDeadLettersWithItsFirstCoordinates(t *testing.T) {
	p := Policy{RetryDelays: []time.Duration{time.Millisecond, time.Millisecond}}
	r := startLedger(t, p)
	retry1 := r.gkt.NewQueueTracker(r.g.retryTopic(1).Name)
	retry2 := r.gkt.NewQueueTracker(r.g.retryTopic(2).Name)
	r.send("a", "e0", "credit", 5)  // offset 0
	r.send("a", "e1", "later", 100) // offset 1

	assert.Equal(t, 3, r.triesOf("e1"), "the original and one try per retry topic")
	for n, q := range []*tester.QueueTracker{retry1, retry2} {
		h, key, v, ok := q.NextRawWithHeaders()
		require.True(t, ok, "retry-%d", n+1)
		assert.Equal(t, "a", key)
		assert.Contains(t, string(v), `"id":"e1"`, "the record as it arrived")
		assert.Equal(t, "ledger-events", string(h[HeaderRetryOrigin]))
		assert.Equal(t, "1", string(h[HeaderOriginalOffset]))
		assert.Equal(t, strconv.Itoa(n+2), string(h[HeaderAttempts]))
		due, err := strconv.ParseInt(string(h[HeaderRetryDue]), 10, 64)
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), time.UnixMilli(due), time.Minute)
	}
	d := r.onlyDeadLetter()
	assert.Equal(t, "a", d.key)
	assert.Contains(t, string(d.value), `"id":"e1"`)
	assert.Equal(t, ClassRetriesExhausted, d.h(HeaderExceptionClass))
	assert.Equal(t, "ledger-events", d.h(HeaderOriginalTopic), "not the retry topic")
	assert.Equal(t, "0", d.h(HeaderOriginalPartition))
	assert.Equal(t, "1", d.h(HeaderOriginalOffset))
	assert.Equal(t, "ledger", d.h(HeaderOriginalGroup))
	assert.Equal(t, "a", d.h(HeaderOriginalKey))
	assert.Equal(t, "3", d.h(HeaderAttempts))
	assert.NotEmpty(t, d.h(HeaderFirstFailure))
	assert.NotContains(t, d.headers, HeaderRetryOrigin)
	assert.NotContains(t, d.headers, HeaderRetryDue)
	snap := r.g.stats.snapshot()
	assert.Equal(t, int64(2), snap.Counters["retried-later"])
	assert.Equal(t, int64(1), snap.DeadLetters[ClassRetriesExhausted])
	// Each count is where it happened: the topic and partition the record
	// was read from.
	assert.Equal(t, []PartitionSnapshot{
		{Topic: "ledger-events", Partition: 0, Processed: 2, Applied: 1, Counters: map[string]int64{"retried-later": 1}},
		{Topic: r.g.retryTopic(1).Name, Partition: 0, Processed: 1, Counters: map[string]int64{"retried-later": 1}},
		{Topic: r.g.retryTopic(2).Name, Partition: 0, Processed: 1, DeadLetters: map[string]int64{ClassRetriesExhausted: 1}},
	}, snap.Partitions)
}

func TestFailure_GivenRetryLaterThatPassesInARetryTopic_ThenAppliedThereAndNoDeadLetter(t *testing.T) {
	r := startLedger(t, Policy{RetryDelays: []time.Duration{time.Millisecond, time.Millisecond}})
	r.send("a", "e1", "later", 1)

	assert.Equal(t, 2, r.triesOf("e1"))
	total, _ := r.total("a")
	assert.Equal(t, 1, total)
	assert.Empty(t, r.deadLetters())
}

func TestFailure_GivenAPermanentOrHandlerFailureOrAPanic_ThenDeadLetteredAtOnceWithItsClassAndCoordinates(t *testing.T) {
	for typ, class := range map[string]string{"permanent": ClassPermanent, "plain": ClassHandler, "panic": ClassPanic} {
		t.Run(typ, func(t *testing.T) {
			// Retries in place and retry topics are there, and not used.
			r := startLedger(t, Policy{TransientAttempts: 3, TransientBackoff: time.Microsecond, RetryDelays: []time.Duration{time.Millisecond}})
			r.send("a", "e0", "credit", 5)
			r.send("a", "e1", typ, 1)
			r.send("a", "e2", "credit", 1)

			assert.Equal(t, 1, r.triesOf("e1"))
			d := r.onlyDeadLetter()
			assert.Equal(t, class, d.h(HeaderExceptionClass))
			assert.Contains(t, d.h(HeaderExceptionMessage), "try 1 of e1")
			assert.Equal(t, "ledger-events", d.h(HeaderOriginalTopic))
			assert.Equal(t, "0", d.h(HeaderOriginalPartition))
			assert.Equal(t, "1", d.h(HeaderOriginalOffset))
			assert.Equal(t, "1", d.h(HeaderAttempts))
			assert.Equal(t, "ledger", d.h(HeaderOriginalGroup))
			_, err := time.Parse(time.RFC3339Nano, d.h(HeaderOriginalTimestamp))
			assert.NoError(t, err)
			total, _ := r.total("a")
			assert.Equal(t, 6, total, "the next record is applied")
		})
	}
}

func TestFailure_GivenUndecodableRecords_ThenDeadLetteredAsDecodeAndKeptAsTheyArrived(t *testing.T) {
	r := startLedger(t, fast)
	r.gkt.Consume(r.in, "a", []byte(`{"not":"a cloudevent"`))
	d := r.onlyDeadLetter()
	assert.Equal(t, ClassDecode, d.h(HeaderExceptionClass))
	assert.Equal(t, `{"not":"a cloudevent"`, string(d.value))
}

func TestFailure_GivenARecordWithoutAKey_ThenDeadLetteredAsMissingKey(t *testing.T) {
	r := startLedger(t, fast)
	r.send("", "e1", "credit", 1)
	assert.Equal(t, ClassMissingKey, r.onlyDeadLetter().h(HeaderExceptionClass))
	assert.Zero(t, r.triesOf("e1"))
}

func TestFailure_GivenAKeyOnTheWrongPartition_ThenDeadLetteredAsWrongPartition(t *testing.T) {
	const n = 8
	var here, elsewhere string
	for i := 0; here == "" || elsewhere == ""; i++ {
		k := "k" + strconv.Itoa(i)
		if tables.PartitionFor(k, n) == 0 {
			here = k
		} else {
			elsewhere = k
		}
	}
	r := startLedger(t, fast, withPartitions(map[string]int{"ledger-events": n}))
	r.send(elsewhere, "e1", "credit", 1) // the tester has partition 0 only
	r.send(here, "e2", "credit", 1)

	d := r.onlyDeadLetter()
	assert.Equal(t, ClassWrongPartition, d.h(HeaderExceptionClass))
	assert.Equal(t, elsewhere, d.key)
	_, ok := r.total(elsewhere)
	assert.False(t, ok, "never stored where no lookup finds it")
	total, _ := r.total(here)
	assert.Equal(t, 1, total)
}

func TestFailure_GivenAMissingParent_ThenParkedAndReleasedInOrderOnceItArrives(t *testing.T) {
	r := startLedger(t, Policy{MaxWait: time.Hour})
	r.send("a", "e1", "child", 0)
	r.send("a", "e2", "child", 0)

	_, ok := r.total("a")
	assert.False(t, ok, "parked records are not state")
	assert.Equal(t, int64(2), r.g.stats.snapshot().Counters["parked"])
	assert.Empty(t, r.deadLetters())

	// A re-send of a parked event is caught among the parked.
	r.send("a", "e1", "child", 0)
	assert.Equal(t, 1, r.triesOf("e1"))

	r.send("a", "p", "credit", 10)
	total, ok := r.total("a")
	require.True(t, ok)
	assert.Equal(t, 12, total)
	assert.Equal(t, 2, r.triesOf("e1"), "re-driven once")
	assert.Equal(t, int64(2), r.g.stats.snapshot().Counters["released"])
	assert.Empty(t, r.deadLetters())
}

func TestFailure_GivenAParkedRecordPastMaxWait_ThenASweepDeadLettersItWithItsOwnCoordinates(t *testing.T) {
	r := startLedger(t, Policy{MaxWait: time.Nanosecond})
	r.send("a", "e0", "credit", 0) // offset 0: another record first
	r.gkt.Consume(r.in, "b", nil)  // offset 1
	r.send("b", "e1", "child", 0)  // offset 2, parked under b
	require.Empty(t, r.deadLetters())

	// The runtime's sweeper asks through the group's loop topic.
	r.gkt.Consume(r.g.loopTopic(), "b", nil, tester.WithHeaders(goka.Headers{groups.HeaderControl: []byte("sweep")}))

	d := r.onlyDeadLetter()
	assert.Equal(t, ClassMissingDependency, d.h(HeaderExceptionClass))
	assert.Contains(t, d.h(HeaderExceptionMessage), `parent "b" did not arrive within 1ns`)
	assert.Equal(t, "ledger-events", d.h(HeaderOriginalTopic))
	assert.Equal(t, "2", d.h(HeaderOriginalOffset))
	assert.Equal(t, "b", d.key)
	assert.Contains(t, string(d.value), `"id":"e1"`)
	assert.Nil(t, r.gkt.TableValue(goka.Table(r.table.Name), "b"), "nothing is left of a key that only held the parked record")
}

func TestFailure_GivenAMissingParentUnderAnotherKeyOrNoParking_ThenDeadLetteredAsMissingDependency(t *testing.T) {
	r := startLedger(t, Policy{MaxWait: time.Hour})
	r.send("a", "e1", "orphan", 0)
	assert.Equal(t, ClassMissingDependency, r.onlyDeadLetter().h(HeaderExceptionClass), "parked only under its own key")

	r = startLedger(t, fast)
	r.send("a", "e1", "child", 0)
	assert.Equal(t, ClassMissingDependency, r.onlyDeadLetter().h(HeaderExceptionClass), "MaxWait 0: no parking")
}

func TestPolicy_GivenDefaults_ThenRetryTopicsAndTheirEdges(t *testing.T) {
	g := NewGroup("g")
	assert.Equal(t, DefaultPolicy(), g.policy)
	assert.Equal(t, "g-retry-2", g.retryTopic(2).Name)
	var retries []string
	for _, e := range g.edges() {
		if e.Role == groups.RoleRetry {
			retries = append(retries, e.Spec.Name)
		}
	}
	assert.Equal(t, []string{"g-retry-1", "g-retry-2", "g-retry-3"}, retries)
}

// A parent the group cannot park for (here another key's) may be in a
// lookup table that follows its writer a moment behind: the record goes
// through the retry topics, and only then to the dead letters, still as
// missing-dependency.
func TestFailure_GivenAMissingParentItCannotParkForAndRetryTopics_ThenRetriedThereBeforeTheDeadLetters(t *testing.T) {
	r := startLedger(t, Policy{MaxWait: time.Hour, RetryDelays: []time.Duration{time.Millisecond, time.Millisecond}})
	r.send("a", "e1", "orphan", 0)

	assert.Equal(t, 3, r.triesOf("e1"), "the first try and one in each retry topic")
	d := r.onlyDeadLetter()
	assert.Equal(t, ClassMissingDependency, d.h(HeaderExceptionClass))
	assert.Equal(t, "ledger-events", d.h(HeaderOriginalTopic), "the coordinates where it first arrived")
}
