package processors

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

type fkOrder struct {
	Customer string `json:"customer"`
	Qty      int    `json:"qty"`
}

type fkCustomer struct {
	Name string `json:"name"`
}

type fkJoined struct {
	Qty  int    `json:"qty"`
	Name string `json:"name"`
}

var (
	fkOrders    = tables.NewTable[fkOrder]("orders", codecs.JSON[fkOrder]{})
	fkCustomers = tables.NewTable[fkCustomer]("customers", codecs.JSON[fkCustomer]{})
)

// fkRun runs a foreign-key join of fkOrders to fkCustomers on a tester.
func fkRun(t *testing.T, opts ...JoinOption) (*tester.Tester, *Group, tables.Table[fkJoined]) {
	g := NewGroup("enriched")
	out := JoinForeign(g, fkOrders, fkCustomers,
		func(_ string, o fkOrder) (string, error) {
			if o.Qty < 0 {
				return "", errors.New("negative quantity")
			}
			return o.Customer, nil
		},
		func(_ string, o fkOrder, c *fkCustomer) (fkJoined, error) {
			j := fkJoined{Qty: o.Qty}
			if c != nil {
				j.Name = c.Name
			}
			return j, nil
		}, opts...)
	require.Len(t, g.needs, 1)
	return run(t, []*Group{g, g.needs[0]}), g, out
}

func consumeJSON(t *testing.T, gkt *tester.Tester, topic, key string, v any) {
	t.Helper()
	if v == nil {
		gkt.Consume(topic, key, nil)
		return
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	gkt.Consume(topic, key, b)
}

// joined reads the joined row of key; false when there is none (also a row
// kept as bookkeeping only).
func joined(t *testing.T, gkt *tester.Tester, out tables.Table[fkJoined], key string) (fkJoined, bool) {
	t.Helper()
	raw, _ := gkt.TableValue(goka.Table(out.Name), key).([]byte)
	v, err := tableValue(out, key, raw)
	require.NoError(t, err)
	if v == nil {
		return fkJoined{}, false
	}
	return *v, true
}

func TestJoinForeign_GivenAnOrderThatMovedCustomer_WhenItsOldCustomerAnswersLate_ThenTheAnswerIsDroppedAndCounted(t *testing.T) {
	gkt, g, out := fkRun(t)
	consumeJSON(t, gkt, fkCustomers.Name, "c1", fkCustomer{Name: "Ann"})
	consumeJSON(t, gkt, fkCustomers.Name, "c2", fkCustomer{Name: "Bob"})
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: 1})
	got, ok := joined(t, gkt, out, "o1")
	require.True(t, ok)
	assert.Equal(t, fkJoined{Qty: 1, Name: "Ann"}, got)
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c2", Qty: 1})
	got, _ = joined(t, gkt, out, "o1")
	assert.Equal(t, fkJoined{Qty: 1, Name: "Bob"}, got)

	// When c1's answer from before the move arrives late.
	consumeJSON(t, gkt, g.name+"-responses", "o1", fkResponse{FK: "c1", Right: []byte(`{"name":"Stale"}`), HasRight: true})

	// Then it is dropped.
	got, _ = joined(t, gkt, out, "o1")
	assert.Equal(t, fkJoined{Qty: 1, Name: "Bob"}, got)
	assert.Equal(t, int64(1), g.stats.snapshot().Counters[CounterJoinStaleResponse])
}

func TestJoinForeign_GivenAnOrderWhoseCustomerIsPending_WhenTheOrderChangesAgain_ThenItKeepsItsLastRowUntilTheCustomerAnswers(t *testing.T) {
	gkt, g, out := fkRun(t, LeftJoin())
	consumeJSON(t, gkt, fkCustomers.Name, "c1", fkCustomer{Name: "Ann"})
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: 1})

	// An order moved to c2, whose answer has not come (the tester delivers
	// it at once, so the subscription is taken back out of the row here).
	raw, _ := gkt.TableValue(goka.Table(out.Name), "o1").([]byte)
	var row fkRow
	state, err := envelope.Decode(raw, &row)
	require.NoError(t, err)
	row.FK, row.Pending, row.Right, row.HasRight = "c2", true, nil, false
	pending, err := envelope.Join(row, state)
	require.NoError(t, err)
	gkt.SetTableValue(goka.Table(out.Name), "o1", pending)

	// When its quantity changes, it still shows the last joined row.
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c2", Qty: 5})
	got, ok := joined(t, gkt, out, "o1")
	require.True(t, ok)
	assert.Equal(t, fkJoined{Qty: 1, Name: "Ann"}, got)

	// Then c2's answer (no such customer: a left join) joins the new order.
	consumeJSON(t, gkt, g.name+"-responses", "o1", fkResponse{FK: "c2"})
	got, ok = joined(t, gkt, out, "o1")
	require.True(t, ok)
	assert.Equal(t, fkJoined{Qty: 5}, got)
}

func TestJoinForeign_GivenAForeignKeyThatFails_ThenTheLeftRecordIsDeadLettered(t *testing.T) {
	gkt, g, out := fkRun(t)
	dlq := gkt.NewQueueTracker(g.DLQTopic())
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: -1})
	key, _, ok := dlq.NextRaw()
	require.True(t, ok)
	assert.Equal(t, "o1", key)
	_, ok = joined(t, gkt, out, "o1")
	assert.False(t, ok)
}

func TestJoinForeign_GivenTheLastOrderOfACustomerDeleted_ThenTheCustomerKeepsItsValueAndNoSubscriber(t *testing.T) {
	gkt, g, _ := fkRun(t)
	consumeJSON(t, gkt, fkCustomers.Name, "c1", fkCustomer{Name: "Ann"})
	consumeJSON(t, gkt, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: 1})
	consumeJSON(t, gkt, fkOrders.Name, "o2", fkOrder{Customer: "c9", Qty: 1})
	rightOf := func(key string) (fkRight, bool) {
		raw, _ := gkt.TableValue(goka.Table(g.needs[0].TableTopic()), key).([]byte)
		if raw == nil {
			return fkRight{}, false
		}
		var st fkRight
		require.NoError(t, json.Unmarshal(raw, &st))
		return st, true
	}
	st, _ := rightOf("c1")
	assert.Equal(t, []string{"o1"}, st.Subscribers)
	st, _ = rightOf("c9")
	assert.Equal(t, []string{"o2"}, st.Subscribers)

	consumeJSON(t, gkt, fkOrders.Name, "o1", nil)
	consumeJSON(t, gkt, fkOrders.Name, "o2", nil)
	st, ok := rightOf("c1")
	require.True(t, ok)
	assert.Empty(t, st.Subscribers)
	assert.JSONEq(t, `{"name":"Ann"}`, string(st.Right))
	_, ok = rightOf("c9")
	assert.False(t, ok, "a right key with neither value nor subscribers is not kept")
}

func TestJoinTable_GivenAMissingRightSide_ThenInnerCountsItAndLeftJoinsNil(t *testing.T) {
	clicks := tables.NewStream[codecs.Event]("clicks", codecs.CloudEvents{})
	out := tables.NewStream[fkJoined]("joined", codecs.JSON[fkJoined]{})
	join := func(_ string, _ codecs.Event, c *fkCustomer) (fkJoined, error) {
		j := fkJoined{Qty: 1}
		if c != nil {
			j.Name = c.Name
		}
		return j, nil
	}
	inner, left := NewGroup("inner"), NewGroup("left")
	JoinTable(inner, clicks, fkCustomers, join, out)
	JoinTable(left, clicks, fkCustomers, join, out, LeftJoin())
	gkt := run(t, []*Group{inner, left})
	q := gkt.NewQueueTracker(out.Name)
	gkt.SetTableValue(goka.Table(fkCustomers.Name), "c1", []byte(`{"name":"Ann"}`))
	for _, key := range []string{"c1", "c2"} {
		ev, err := codecs.NewEvent("urn:test", "Clicked", key, nil)
		require.NoError(t, err)
		b, err := codecs.CloudEvents{}.Encode(ev)
		require.NoError(t, err)
		gkt.Consume(clicks.Name, key, b)
	}
	got := map[string][]fkJoined{}
	for {
		key, b, ok := q.NextRaw()
		if !ok {
			break
		}
		var j fkJoined
		require.NoError(t, json.Unmarshal(b, &j))
		got[key] = append(got[key], j)
	}
	assert.Equal(t, map[string][]fkJoined{
		"c1": {{Qty: 1, Name: "Ann"}, {Qty: 1, Name: "Ann"}}, // inner and left
		"c2": {{Qty: 1}},                                     // left only
	}, got)
	assert.Equal(t, int64(1), inner.stats.snapshot().Counters[CounterJoinUnmatched])
	assert.Zero(t, left.stats.snapshot().Counters[CounterJoinUnmatched])
}

func TestJoinForeign_GivenAnOrderReadAgainAfterACrashThatLostItsSubscription_ThenTheSubscriptionIsSentAgain(t *testing.T) {
	// Given o1 of c1 joined, its row stored at the orders offset 0.
	first, _, out := fkRun(t)
	consumeJSON(t, first, fkCustomers.Name, "c1", fkCustomer{Name: "Ann"})
	consumeJSON(t, first, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: 1})
	row, _ := first.TableValue(goka.Table(out.Name), "o1").([]byte)
	require.NotNil(t, row)

	// When a crash lost the subscription (c1 knows no orders) and the order
	// record is read again at the same offset.
	again, g, out := fkRun(t)
	again.SetTableValue(goka.Table(out.Name), "o1", row)
	consumeJSON(t, again, fkCustomers.Name, "c1", fkCustomer{Name: "Anna"})
	consumeJSON(t, again, fkOrders.Name, "o1", fkOrder{Customer: "c1", Qty: 1}) // offset 0 again

	// Then the subscription is sent again, and a rename reaches the row.
	raw, _ := again.TableValue(goka.Table(g.needs[0].TableTopic()), "c1").([]byte)
	var st fkRight
	require.NoError(t, json.Unmarshal(raw, &st))
	assert.Equal(t, []string{"o1"}, st.Subscribers)
	assert.Equal(t, int64(1), g.stats.snapshot().Duplicates)
	consumeJSON(t, again, fkCustomers.Name, "c1", fkCustomer{Name: "Annie"})
	got, ok := joined(t, again, out, "o1")
	require.True(t, ok)
	assert.Equal(t, fkJoined{Qty: 1, Name: "Annie"}, got)
}

func TestJoinTable_GivenABootstrapGroupCatchingUp_ThenItsOutputsOfTheHistoryAreHeldBackAndLaterOnesSent(t *testing.T) {
	clicks := tables.NewStream[codecs.Event]("clicks", codecs.CloudEvents{})
	out := tables.NewStream[fkJoined]("joined", codecs.JSON[fkJoined]{})
	g := NewGroup("late-joiner", WithBootstrap())
	JoinTable(g, clicks, fkCustomers, func(_ string, _ codecs.Event, c *fkCustomer) (fkJoined, error) {
		return fkJoined{Name: c.Name}, nil
	}, out)
	// The history: two clicks (offsets 0 and 1) before the group's first start.
	gkt := run(t, []*Group{g}, withCatchUp(map[string]map[int32]int64{clicks.Name: {0: 2}}))
	q := gkt.NewQueueTracker(out.Name)
	gkt.SetTableValue(goka.Table(fkCustomers.Name), "c1", []byte(`{"name":"Ann"}`))
	for range 3 {
		ev, err := codecs.NewEvent("urn:test", "Clicked", "c1", nil)
		require.NoError(t, err)
		b, err := codecs.CloudEvents{}.Encode(ev)
		require.NoError(t, err)
		gkt.Consume(clicks.Name, "c1", b)
	}
	var sent int
	for {
		if _, _, ok := q.NextRaw(); !ok {
			break
		}
		sent++
	}
	assert.Equal(t, 1, sent, "only the click after the history")
	assert.Equal(t, int64(2), g.stats.snapshot().Suppressed)
}
