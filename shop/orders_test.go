package shop

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/streamfold/streamfold/codecs"
)

func TestCheckOrderDetails_GivenEachRule_ThenPassOrTheBrokenRule(t *testing.T) {
	ok := Order{ID: "o", CustomerID: "c", Product: "p", Quantity: 1, Price: 0.5}
	for name, tc := range map[string]struct {
		edit   func(*Order)
		result string
		reason string
	}{
		"valid":          {func(*Order) {}, Pass, ""},
		"zero quantity":  {func(o *Order) { o.Quantity = 0 }, Fail, "quantity 0 is not positive"},
		"negative price": {func(o *Order) { o.Price = -1 }, Fail, "price -1 is not positive"},
		"zero price":     {func(o *Order) { o.Price = 0 }, Fail, "price 0 is not positive"},
		"no customer":    {func(o *Order) { o.CustomerID = "" }, Fail, "customer and product are required"},
		"no product":     {func(o *Order) { o.Product = "" }, Fail, "customer and product are required"},
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			result, reason := CheckOrderDetails(o)
			assert.Equal(t, tc.result, result)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestReserve_GivenStock_ThenAnOrderReservesOnceAndAFailedOneReleases(t *testing.T) {
	inv := Inventory{Product: "p", Stock: 5}
	o1 := Order{ID: "o1", Product: "p", Quantity: 3}

	inv, result, _ := Reserve(inv, o1)
	assert.Equal(t, Pass, result)
	assert.Equal(t, 3, inv.Reserved)

	again, result, _ := Reserve(inv, o1)
	assert.Equal(t, Pass, result, "an order read again passes again")
	assert.Equal(t, 3, again.Reserved, "and reserves nothing more")

	_, result, reason := Reserve(inv, Order{ID: "o2", Product: "p", Quantity: 3})
	assert.Equal(t, Fail, result)
	assert.Equal(t, "2 of product p available, 3 ordered", reason)

	exact, result, _ := Reserve(inv, Order{ID: "o3", Product: "p", Quantity: 2})
	assert.Equal(t, Pass, result, "stock − reserved ≥ quantity")
	assert.Equal(t, 5, exact.Reserved)

	released := Release(exact, "o1")
	assert.Equal(t, 2, released.Reserved)
	assert.Equal(t, map[string]int{"o3": 2}, released.Orders)
	assert.Equal(t, 5, exact.Reserved, "the state it came from is untouched")
	assert.Equal(t, released, Release(released, "o1"), "released once")
	assert.Equal(t, released, Release(released, "unknown"))
}

func TestFraudSession_GivenOrders_ThenTheOneReachingTheLimitFails(t *testing.T) {
	s := AddToSession(FraudSession{}, Order{ID: "o1", Quantity: 10, Price: 100})
	assert.Equal(t, FraudSession{Total: 1000, Last: "o1", Result: Pass}, s)
	s = AddToSession(s, Order{ID: "o2", Quantity: 9, Price: 100})
	assert.Equal(t, Pass, s.Result)
	s = AddToSession(s, Order{ID: "o3", Quantity: 1, Price: 100})
	assert.Equal(t, FraudSession{Total: 2000, Last: "o3", Result: Fail}, s, "reaching the limit fails")

	merged := MergeSessions(FraudSession{Total: 500, Last: "a", Result: Pass}, FraudSession{Total: 700, Last: "b", Result: Pass})
	assert.Equal(t, FraudSession{Total: 1200, Last: "b", Result: Pass}, merged)
}

func TestPendingDecide_GivenResults_ThenFailedAtTheFirstFailValidatedWhenAllPassAndOnce(t *testing.T) {
	o := &Order{ID: "o1"}
	p := Pending{Order: o, Results: map[string]string{CheckDetails: Pass, CheckFraud: Pass}}
	state, _ := p.Decide()
	assert.Empty(t, state, "one check has not answered")

	p.Results[CheckInventory] = Pass
	state, _ = p.Decide()
	assert.Equal(t, OrderValidated, state)

	fail := Pending{Order: o, Results: map[string]string{CheckFraud: Fail}, Reasons: map[string]string{CheckFraud: "too much"}}
	state, reason := fail.Decide()
	assert.Equal(t, OrderFailed, state, "a fail decides before the others answer")
	assert.Equal(t, "fraud check failed: too much", reason)

	fail.Decided = OrderFailed
	state, _ = fail.Decide()
	assert.Empty(t, state, "decided once")

	state, _ = Pending{Results: map[string]string{CheckDetails: Pass, CheckFraud: Pass, CheckInventory: Pass}}.Decide()
	assert.Empty(t, state, "results before the order: nothing to decide yet")
}

func TestEvolveOrder_GivenEvents_ThenCreatedOnceAndDecidedOnce(t *testing.T) {
	created := orderEvent(t, OrderCreatedType, Order{CustomerID: "c", Product: "p", Quantity: 1, Price: 1, State: OrderCreated})
	o, err := EvolveOrder(nil, created)
	assert.NoError(t, err)
	assert.Equal(t, "o1", o.ID)
	assert.Equal(t, OrderCreated, o.State)

	validated := orderEvent(t, OrderValidatedType, Order{CustomerID: "c", Product: "p", Quantity: 1, Price: 1, State: OrderValidated})
	v, err := EvolveOrder(o, validated)
	assert.NoError(t, err)
	assert.Equal(t, OrderValidated, v.State)

	failed := orderEvent(t, OrderFailedType, Order{State: OrderFailed})
	still, err := EvolveOrder(v, failed)
	assert.NoError(t, err)
	assert.Equal(t, OrderValidated, still.State, "a decision is not flipped")

	again, err := EvolveOrder(v, created)
	assert.NoError(t, err)
	assert.Equal(t, v, again, "a second creation changes nothing")
}

func orderEvent(t *testing.T, typ string, o Order) codecs.Event {
	t.Helper()
	return event(t, typ, "o1", o)
}
