package streamfold_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// startJoins opens topo on broker with its state in dir and runs it; stop
// ends the run and closes the runtime (also at the end of the test).
func startJoins(t *testing.T, broker *embedded.Broker, topo *streamfold.Topology, dir string) (rt *streamfold.Runtime, stop func()) {
	t.Helper()
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: dir, Replication: 1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, rt.Close())
	}
	t.Cleanup(stop)
	require.Eventually(t, rt.Recovered, wait, 10*time.Millisecond)
	return rt, stop
}

func startBroker(t *testing.T) *embedded.Broker {
	t.Helper()
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	return broker
}

// eventRecord is a CloudEvent of type typ about key, with data, for topic.
func eventRecord(t *testing.T, topic, key, typ string, data any) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", typ, key, data)
	require.NoError(t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

// consumeN reads n records of topic from its start.
func consumeN(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeUntil(t, brokers, topic, func(recs []*kgo.Record) bool { return len(recs) >= n })
}

// consumeUntil reads topic from the start until until says the records
// read so far are what it waits for, and returns them.
func consumeUntil(t *testing.T, brokers []string, topic string, until func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var recs []*kgo.Record
	for !until(recs) {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "%s: %d records so far, not what the test waits for", topic, len(recs))
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// awaitStored waits until the store group holds of topic has key: what a
// join's handlers read.
func awaitStored(t *testing.T, rt *streamfold.Runtime, group, topic, key string) {
	t.Helper()
	p := tables.PartitionFor(key, rt.PartitionsOf(topic))
	require.Eventually(t, func() bool {
		s, ok := rt.GroupStore(group, topic, p)
		if !ok {
			return false
		}
		b, err := s.Get(key)
		return err == nil && b != nil
	}, wait, 10*time.Millisecond)
}

type profile struct {
	Name string `json:"name"`
}

type enrichedClick struct {
	Page string `json:"page"`
	Name string `json:"name"`
}

func TestJoinTable_GivenAClickWithAndOneWithoutItsProfile_WhenJoinedInnerAndLeft_ThenInnerDropsAndCountsTheUnmatchedAndLeftJoinsItWithNil(t *testing.T) {
	profiles := tables.NewTable[profile]("profiles", codecs.JSON[profile]{})
	clicks := tables.NewStream[codecs.Event]("user-clicks", codecs.CloudEvents{})
	innerOut := tables.NewStream[codecs.Event]("clicks-inner", codecs.CloudEvents{})
	leftOut := tables.NewStream[codecs.Event]("clicks-left", codecs.CloudEvents{})
	join := func(_ string, click codecs.Event, p *profile) (codecs.Event, error) {
		e := enrichedClick{Page: click.Type}
		if p != nil {
			e.Name = p.Name
		}
		return codecs.NewEvent("urn:join", "EnrichedClick", "", e)
	}
	inner := processors.NewGroup("enrich-inner")
	processors.JoinTable(inner, clicks, profiles, join, innerOut, processors.CoPartitioned())
	left := processors.NewGroup("enrich-left")
	processors.JoinTable(left, clicks, profiles, join, leftOut, processors.LeftJoin())
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(inner, left).
		WrittenBy(profiles, "test").WrittenBy(clicks, "test")
	broker := startBroker(t)
	rt, _ := startJoins(t, broker, topo, t.TempDir())

	// Given ann's profile (a plain table: no framework bookkeeping), and no bob's.
	annProfile, err := json.Marshal(profile{Name: "Ann"})
	require.NoError(t, err)
	produceAll(t, broker.Addrs(), &kgo.Record{Topic: profiles.Name, Key: []byte("ann"), Value: annProfile})
	awaitStored(t, rt, "enrich-inner", profiles.Name, "ann")
	awaitStored(t, rt, "enrich-left", profiles.Name, "ann")

	// When ann and bob click.
	annClick := eventRecord(t, clicks.Name, "ann", "Home", nil)
	produceAll(t, broker.Addrs(), annClick, eventRecord(t, clicks.Name, "bob", "Cart", nil))

	// Then the left join emits both, bob's with no name; the inner one ann's only.
	byKey := func(recs []*kgo.Record) map[string]codecs.Event {
		m := map[string]codecs.Event{}
		for _, r := range recs {
			ev, err := codecs.CloudEvents{}.Decode(r.Value)
			require.NoError(t, err)
			m[string(r.Key)] = ev
		}
		return m
	}
	lefts := byKey(consumeN(t, broker.Addrs(), leftOut.Name, 2))
	var annLeft, bobLeft enrichedClick
	require.NoError(t, lefts["ann"].DataAs(&annLeft))
	require.NoError(t, lefts["bob"].DataAs(&bobLeft))
	assert.Equal(t, enrichedClick{Page: "Home", Name: "Ann"}, annLeft)
	assert.Equal(t, enrichedClick{Page: "Cart"}, bobLeft)
	assert.Equal(t, "bob", lefts["bob"].Subject, "the subject defaults to the key")
	require.Eventually(t, func() bool {
		return rt.Stats()["enrich-inner"].Counters[processors.CounterJoinUnmatched] == 1
	}, wait, 10*time.Millisecond)
	inners := consumeN(t, broker.Addrs(), innerOut.Name, 1)
	require.Len(t, inners, 1)
	assert.Equal(t, "ann", string(inners[0].Key))
	assert.Zero(t, rt.Stats()["enrich-left"].Counters[processors.CounterJoinUnmatched])

	// And ann's click delivered again joins into an event with the same id.
	produceAll(t, broker.Addrs(), &kgo.Record{Topic: annClick.Topic, Key: annClick.Key, Value: annClick.Value})
	again := consumeN(t, broker.Addrs(), leftOut.Name, 3)
	var ids []string
	for _, r := range again {
		if string(r.Key) == "ann" {
			ev, err := codecs.CloudEvents{}.Decode(r.Value)
			require.NoError(t, err)
			ids = append(ids, ev.ID)
		}
	}
	require.Len(t, ids, 2)
	assert.Equal(t, ids[0], ids[1], "a re-delivered input joins into the same event id")
}

type line struct {
	Product string `json:"product"`
	Qty     int    `json:"qty"`
}

func TestRepartition_GivenOrderLinesKeyedByOrder_WhenReKeyedByProduct_ThenALaterGroupFoldsThemPerProductAndRefusedOnesAreDeadLettered(t *testing.T) {
	lines := tables.NewStream[codecs.Event]("order-lines", codecs.CloudEvents{})
	rekey := processors.NewGroup("lines")
	byProduct := processors.Repartition(rekey, lines, func(_ string, ev codecs.Event) (string, error) {
		var l line
		if err := ev.DataAs(&l); err != nil {
			return "", err
		}
		if l.Product == "" {
			return "", errors.New("line without product")
		}
		return l.Product, nil
	}, "by-product")
	assert.Equal(t, "lines-by-product-repartition", byProduct.Name)
	totals := processors.NewGroup("product-totals")
	type total struct {
		Qty int `json:"qty"`
	}
	totalsTable := processors.Project(totals, byProduct, func(s *total, ev codecs.Event) (*total, error) {
		var l line
		if err := ev.DataAs(&l); err != nil {
			return nil, err
		}
		if s == nil {
			s = &total{}
		}
		s.Qty += l.Qty
		return s, nil
	})
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(rekey, totals).WrittenBy(lines, "test")
	broker := startBroker(t)
	rt, _ := startJoins(t, broker, topo, t.TempDir())

	// Given lines of two orders, one with a header of its own, and one without a product.
	first := eventRecord(t, lines.Name, "o1", "LineAdded", line{Product: "apple", Qty: 2})
	first.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}
	produceAll(t, broker.Addrs(), first,
		eventRecord(t, lines.Name, "o2", "LineAdded", line{Product: "apple", Qty: 3}),
		eventRecord(t, lines.Name, "o2", "LineAdded", line{Product: "pear", Qty: 1}),
		eventRecord(t, lines.Name, "o3", "LineAdded", line{Qty: 9}))

	// Then the later group folds them per product (their subjects name the orders).
	view := views.New(rt, totalsTable)
	require.Eventually(t, func() bool {
		a, errA := view.Get(context.Background(), "apple")
		p, errP := view.Get(context.Background(), "pear")
		return errA == nil && errP == nil && a.Qty == 5 && p.Qty == 1
	}, wait, 10*time.Millisecond)

	// And each re-keyed record keeps its id and headers and names its old key.
	recs := consumeN(t, broker.Addrs(), byProduct.Name, 3)
	firstEv, err := codecs.CloudEvents{}.Decode(first.Value)
	require.NoError(t, err)
	var found bool
	for _, r := range recs {
		ev, err := codecs.CloudEvents{}.Decode(r.Value)
		require.NoError(t, err)
		if ev.ID == firstEv.ID {
			found = true
			assert.Equal(t, "apple", string(r.Key))
			assert.Equal(t, "t-1", header(r, "trace"))
			assert.Equal(t, "o1", header(r, processors.HeaderRepartitionedFrom))
		}
	}
	assert.True(t, found)

	// And the line without a product is counted and dead-lettered with its coordinates.
	dead := dlqRecords(t, broker.Addrs(), "lines", 1)
	assert.Equal(t, "o3", string(dead[0].Key))
	assert.Equal(t, lines.Name, header(dead[0], processors.HeaderOriginalTopic))
	assert.Contains(t, header(dead[0], processors.HeaderExceptionMessage), "line without product")
	assert.Equal(t, int64(1), rt.Stats()["lines"].Counters[processors.CounterRepartitionRefused])
}

type customerState struct {
	Name string `json:"name"`
}

type orderState struct {
	Customer string `json:"customer"`
	Item     string `json:"item"`
}

// orderView is the foreign-key join's row: an order with its customer.
type orderView struct {
	Item     string `json:"item"`
	Customer string `json:"customer"`
	Name     string `json:"name"`
	Known    bool   `json:"known"`
}

// setOrDelete folds an event carrying the whole state (type Set) or
// deleting it (type Deleted).
func setOrDelete[S any](_ *S, ev codecs.Event) (*S, error) {
	if ev.Type == "Deleted" {
		return nil, nil
	}
	var s S
	if err := ev.DataAs(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	customerEvents = tables.NewStream[codecs.Event]("customer-events", codecs.CloudEvents{})
	orderEvents    = tables.NewStream[codecs.Event]("order-events", codecs.CloudEvents{})
)

// fkTopology folds customers and orders into tables and joins them on the
// order's customer, inner and left.
func fkTopology() (topo *streamfold.Topology, inner, left tables.Table[orderView]) {
	customers := processors.NewGroup("customers")
	customersTable := processors.Project(customers, customerEvents, setOrDelete[customerState])
	orders := processors.NewGroup("orders")
	ordersTable := processors.Project(orders, orderEvents, setOrDelete[orderState])
	customerOf := func(_ string, o orderState) (string, error) { return o.Customer, nil }
	join := func(_ string, o orderState, c *customerState) (orderView, error) {
		v := orderView{Item: o.Item, Customer: o.Customer}
		if c != nil {
			v.Name, v.Known = c.Name, true
		}
		return v, nil
	}
	innerG := processors.NewGroup("order-customers")
	inner = processors.JoinForeign(innerG, ordersTable, customersTable, customerOf, join)
	leftG := processors.NewGroup("order-customers-left")
	left = processors.JoinForeign(leftG, ordersTable, customersTable, customerOf, join, processors.LeftJoin())
	topo = streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(customers, orders, innerG, leftG).
		WrittenBy(customerEvents, "test").WrittenBy(orderEvents, "test")
	return topo, inner, left
}

func TestJoinForeign_GivenOrdersJoinedToTheirCustomers_WhenCustomersAreRenamedAndDeletedAndOrdersMoveAndTheServiceRestarts_ThenEveryRowFollows(t *testing.T) {
	topo, innerT, leftT := fkTopology()
	broker := startBroker(t)
	rt, stop := startJoins(t, broker, topo, t.TempDir())
	ctx := context.Background()
	customer := func(id, name string) *kgo.Record {
		return eventRecord(t, customerEvents.Name, id, "Set", customerState{Name: name})
	}
	order := func(id, customer string) *kgo.Record {
		return eventRecord(t, orderEvents.Name, id, "Set", orderState{Customer: customer, Item: "item-" + id})
	}
	deleted := func(topic, id string) *kgo.Record { return eventRecord(t, topic, id, "Deleted", nil) }
	// await waits until key reads want in the table (nil: no row).
	await := func(rt *streamfold.Runtime, table tables.Table[orderView], key string, want *orderView) {
		t.Helper()
		view := views.New(rt, table)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := view.Get(ctx, key)
			if want == nil {
				assert.ErrorIs(c, err, views.ErrNotFound, "%s/%s: got %+v", table.Name, key, got)
				return
			}
			if assert.NoError(c, err, "%s/%s", table.Name, key) {
				assert.Equal(c, *want, got, "%s/%s", table.Name, key)
			}
		}, wait, 10*time.Millisecond)
	}
	row := func(item, customer, name string) *orderView {
		return &orderView{Item: "item-" + item, Customer: customer, Name: name, Known: name != ""}
	}

	// Given customers c1 and c2, orders o1 and o2 of c1, o3 of c2 and o4 of an unknown c9.
	produceAll(t, broker.Addrs(), customer("c1", "Ann"), customer("c2", "Bob"))
	produceAll(t, broker.Addrs(), order("o1", "c1"), order("o2", "c1"), order("o3", "c2"), order("o4", "c9"))
	for _, rt := range []*streamfold.Runtime{rt} {
		await(rt, innerT, "o1", row("o1", "c1", "Ann"))
		await(rt, innerT, "o2", row("o2", "c1", "Ann"))
		await(rt, innerT, "o3", row("o3", "c2", "Bob"))
		await(rt, leftT, "o4", row("o4", "c9", ""))
		await(rt, innerT, "o4", nil) // inner: no customer, no row
	}

	// When c1 is renamed, every order of c1 follows.
	produceAll(t, broker.Addrs(), customer("c1", "Anna"))
	for _, tb := range []tables.Table[orderView]{innerT, leftT} {
		await(rt, tb, "o1", row("o1", "c1", "Anna"))
		await(rt, tb, "o2", row("o2", "c1", "Anna"))
	}

	// When o2 moves to c2 and c1 is renamed again, o2 has left c1.
	produceAll(t, broker.Addrs(), order("o2", "c2"))
	await(rt, innerT, "o2", row("o2", "c2", "Bob"))
	await(rt, leftT, "o2", row("o2", "c2", "Bob"))
	awaitSubscribers(t, rt, "order-customers", "c1", []string{"o1"})
	awaitSubscribers(t, rt, "order-customers", "c2", []string{"o2", "o3"})
	produceAll(t, broker.Addrs(), customer("c1", "Annie"))
	await(rt, innerT, "o1", row("o1", "c1", "Annie"))
	await(rt, leftT, "o1", row("o1", "c1", "Annie"))
	await(rt, innerT, "o2", row("o2", "c2", "Bob"))
	await(rt, leftT, "o2", row("o2", "c2", "Bob"))

	// When c2 is deleted, its orders lose their customer: removed in the
	// inner join, joined with nil in the left one.
	produceAll(t, broker.Addrs(), deleted(customerEvents.Name, "c2"))
	await(rt, innerT, "o2", nil)
	await(rt, innerT, "o3", nil)
	await(rt, leftT, "o2", row("o2", "c2", ""))
	await(rt, leftT, "o3", row("o3", "c2", ""))

	// When o4 is deleted, its row goes from both.
	produceAll(t, broker.Addrs(), deleted(orderEvents.Name, "o4"))
	await(rt, leftT, "o4", nil)
	await(rt, innerT, "o4", nil)
	awaitSubscribers(t, rt, "order-customers", "c9", nil) // no customer and no orders: nothing kept

	// When c2 comes back, its orders join it again.
	produceAll(t, broker.Addrs(), customer("c2", "Bea"))
	await(rt, innerT, "o3", row("o3", "c2", "Bea"))
	await(rt, leftT, "o2", row("o2", "c2", "Bea"))

	// When the service restarts on empty state (restored from the changelogs).
	stop()
	topo2, innerT2, leftT2 := fkTopology()
	rt2, _ := startJoins(t, broker, topo2, t.TempDir())

	// Then every row is as it was, and a rename still reaches c1's orders
	// (the subscriptions were restored too) and not o2.
	await(rt2, innerT2, "o1", row("o1", "c1", "Annie"))
	await(rt2, innerT2, "o2", row("o2", "c2", "Bea"))
	await(rt2, leftT2, "o3", row("o3", "c2", "Bea"))
	await(rt2, leftT2, "o4", nil)
	produceAll(t, broker.Addrs(), customer("c1", "Ann Final"))
	await(rt2, innerT2, "o1", row("o1", "c1", "Ann Final"))
	await(rt2, leftT2, "o1", row("o1", "c1", "Ann Final"))
	await(rt2, leftT2, "o2", row("o2", "c2", "Bea"))
	for _, g := range []string{"order-customers", "order-customers-fk", "order-customers-left", "order-customers-left-fk"} {
		assert.Empty(t, rt2.Stats()[g].DeadLetters, g)
	}
}

// awaitSubscribers waits until the foreign-key join named join keeps, for
// the right key fk, exactly the subscribed left keys want (nil: nothing).
func awaitSubscribers(t *testing.T, rt *streamfold.Runtime, join, fk string, want []string) {
	t.Helper()
	topic := join + "-fk-table"
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, ok := rt.Store(topic, tables.PartitionFor(fk, rt.PartitionsOf(topic)))
		if !assert.True(c, ok, "store of %s", topic) {
			return
		}
		b, err := s.Get(fk)
		if !assert.NoError(c, err) {
			return
		}
		var st struct {
			Subscribers []string `json:"subscribers"`
		}
		if b != nil {
			assert.NoError(c, json.Unmarshal(b, &st))
		}
		assert.Equal(c, want, st.Subscribers, "subscribers of %s in %s", fk, join)
	}, wait, 10*time.Millisecond)
}

func TestJoin_GivenAJoinOfTwoTopicsWithDifferentPartitionCounts_ThenValidateNamesBothTopicsAndTheirCounts(t *testing.T) {
	orders := tables.Stream[codecs.Event]{Name: "orders", Codec: codecs.CloudEvents{}, Partitions: 8}
	stock := tables.Table[profile]{Name: "stock", Codec: codecs.JSON[profile]{}, Partitions: 4}
	join := func(_ string, ev codecs.Event, _ *profile) (codecs.Event, error) { return ev, nil }
	out := tables.NewStream[codecs.Event]("checked", codecs.CloudEvents{})

	// A co-partitioned stream-table join of 8 and 4 partitions does not validate.
	g := processors.NewGroup("stock-check")
	processors.JoinTable(g, orders, stock, join, out, processors.CoPartitioned())
	err := streamfold.NewTopology().AddGroup(g).Validate()
	require.ErrorIs(t, err, streamfold.ErrInvalidTopology)
	assert.Contains(t, err.Error(), "group stock-check is not co-partitioned")
	assert.Contains(t, err.Error(), "orders=8")
	assert.Contains(t, err.Error(), "stock=4")

	// One through a lookup of the table does (each instance reads the whole table).
	lookup := processors.NewGroup("stock-lookup")
	processors.JoinTable(lookup, orders, stock, join, out)
	require.NoError(t, streamfold.NewTopology().AddGroup(lookup).Validate())

	// Repartitioned to the table's count, the co-partitioned join validates.
	rekey := processors.NewGroup("orders-by-product")
	four := orders
	four.Name, four.Partitions = "orders-4", 4
	byProduct := processors.Repartition(rekey, four, func(k string, _ codecs.Event) (string, error) { return k, nil }, "product")
	checked := processors.NewGroup("stock-check-4")
	processors.JoinTable(checked, byProduct, stock, join, out, processors.CoPartitioned())
	require.NoError(t, streamfold.NewTopology().AddGroup(rekey, checked).Validate())

	// A foreign-key join's groups each take their side's count: 8 orders to 4 customers validates...
	ordersT := tables.Table[orderState]{Name: "orders-table", Codec: codecs.JSON[orderState]{}, Partitions: 8}
	customersT := tables.Table[customerState]{Name: "customers-table", Codec: codecs.JSON[customerState]{}, Partitions: 4}
	fk := processors.NewGroup("enriched")
	processors.JoinForeign(fk, ordersT, customersT, func(_ string, o orderState) (string, error) { return o.Customer, nil },
		func(_ string, o orderState, _ *customerState) (orderState, error) { return o, nil })
	topo := streamfold.NewTopology().AddGroup(fk)
	require.NoError(t, topo.Validate())
	parts := map[string]int{}
	for _, ti := range topo.Topics() {
		parts[ti.Name] = ti.Partitions
	}
	assert.Equal(t, 8, parts["enriched-table"])
	assert.Equal(t, 8, parts["enriched-responses"])
	assert.Equal(t, 4, parts["enriched-subscriptions"])
	assert.Equal(t, 4, parts["enriched-fk-table"])

	// ...and its groups take part in the check against the real counts: an
	// orders table that exists with 3 partitions, where 2 are declared, is
	// named with its count.
	broker := startBroker(t)
	admin, err := sarama.NewClusterAdmin(broker.Addrs(), sarama.NewConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.CreateTopic("orders-table", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false))
	ordersT.Partitions = 0
	bad := processors.NewGroup("enriched-bad")
	processors.JoinForeign(bad, ordersT, customersT, func(_ string, o orderState) (string, error) { return o.Customer, nil },
		func(_ string, o orderState, _ *customerState) (orderState, error) { return o, nil })
	_, err = streamfold.Open(context.Background(), streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(bad),
		streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1})
	require.ErrorIs(t, err, streamfold.ErrInvalidTopology)
	assert.Contains(t, err.Error(), "group enriched-bad is not co-partitioned")
	assert.Contains(t, err.Error(), "orders-table=3")
	assert.Contains(t, err.Error(), "enriched-bad-responses=2")
}

type stock struct {
	Units int `json:"units"`
}

type reservation struct {
	Order   string `json:"order"`
	Product string `json:"product"`
	Pass    bool   `json:"pass"`
}

func TestJoinTable_GivenOrdersRepartitionedByProduct_WhenJoinedCoPartitionedWithTheStock_ThenEachOrderMeetsItsProductsStock(t *testing.T) {
	orders := tables.NewStream[codecs.Event]("placed-orders", codecs.CloudEvents{})
	stockTable := tables.NewTable[stock]("stock", codecs.JSON[stock]{})
	checks := tables.NewStream[reservation]("stock-checks", codecs.JSON[reservation]{})
	rekey := processors.NewGroup("placed-by-product")
	byProduct := processors.Repartition(rekey, orders, func(_ string, ev codecs.Event) (string, error) {
		var l line
		err := ev.DataAs(&l)
		return l.Product, err
	}, "product")
	check := processors.NewGroup("stock-check")
	processors.JoinTable(check, byProduct, stockTable, func(product string, ev codecs.Event, s *stock) (reservation, error) {
		var l line
		if err := ev.DataAs(&l); err != nil {
			return reservation{}, err
		}
		return reservation{Order: ev.Subject, Product: product, Pass: s != nil && s.Units >= l.Qty}, nil
	}, checks, processors.CoPartitioned(), processors.LeftJoin())
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(rekey, check).WrittenBy(stockTable, "test").WrittenBy(orders, "test")
	broker := startBroker(t)
	rt, _ := startJoins(t, broker, topo, t.TempDir())

	// Given 3 apples in stock and no pears.
	b, err := json.Marshal(stock{Units: 3})
	require.NoError(t, err)
	produceAll(t, broker.Addrs(), &kgo.Record{Topic: stockTable.Name, Key: []byte("apple"), Value: b})
	awaitStored(t, rt, "stock-check", stockTable.Name, "apple")

	// When orders for 2 apples, 5 apples and a pear are placed (keyed by order).
	produceAll(t, broker.Addrs(),
		eventRecord(t, orders.Name, "o1", "Placed", line{Product: "apple", Qty: 2}),
		eventRecord(t, orders.Name, "o2", "Placed", line{Product: "apple", Qty: 5}),
		eventRecord(t, orders.Name, "o3", "Placed", line{Product: "pear", Qty: 1}))

	// Then each is checked against its product's stock, keyed by product.
	got := map[string]reservation{}
	for _, r := range consumeN(t, broker.Addrs(), checks.Name, 3) {
		var res reservation
		require.NoError(t, json.Unmarshal(r.Value, &res))
		assert.Equal(t, res.Product, string(r.Key))
		got[res.Order] = res
	}
	assert.Equal(t, map[string]reservation{
		"o1": {Order: "o1", Product: "apple", Pass: true},
		"o2": {Order: "o2", Product: "apple", Pass: false},
		"o3": {Order: "o3", Product: "pear", Pass: false},
	}, got)
}
