package shop

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// catalog is a ProductLookup over fixed products; "broken" fails.
func catalog(ps ...Product) ProductLookup {
	return func(id string) (*Product, error) {
		if id == "broken" {
			return nil, errLookup
		}
		for _, p := range ps {
			if p.ID == id {
				return &p, nil
			}
		}
		return nil, nil
	}
}

var errLookup = errors.New("lookup failed")

// history is a HistoryLookup: the carts in used were checked out before.
func history(used ...string) HistoryLookup {
	return func(id string) (bool, error) {
		if id == "broken" {
			return false, errLookup
		}
		for _, u := range used {
			if u == id {
				return true, nil
			}
		}
		return false, nil
	}
}

func cartCmd(typ, product string, quantity int) CartCommand {
	return CartCommand{ID: "cmd", Type: typ, Data: CartCommandData{ProductID: product, Quantity: quantity, CustomerID: "ada"}}
}

func openCart(items ...CartItem) *Cart {
	return &Cart{ID: "c1", Items: items, Status: CartOpen, Version: 2}
}

func TestDecideCart_GivenCommandsAndStates_ThenEventsOrTheRuleThatRefuses(t *testing.T) {
	shop := catalog(
		Product{ID: "tea", Validation: ProductValidated},
		Product{ID: "new", Validation: ProductPending},
		Product{ID: "bad", Validation: ProductRejected},
	)
	negative := int64(-1)
	for _, tc := range []struct {
		name   string
		cart   *Cart
		id     string // the cart's id; default c1
		cmd    CartCommand
		want   []processors.NewEvent
		reject string // part of the rejection's reason
		err    error  // a failure, not a rejection
	}{
		{name: "unknown command type", cmd: cartCmd("Teleport", "tea", 1), reject: `unknown command type "Teleport"`},
		{name: "AddItem without product", cmd: cartCmd(AddItemType, "", 1), reject: "AddItem needs data.productId"},
		{name: "RemoveItem without product", cart: openCart(), cmd: cartCmd(RemoveItemType, "", 0), reject: "RemoveItem needs data.productId"},
		{name: "negative expected version", cmd: CartCommand{Type: CheckOutType, ExpectedVersion: &negative}, reject: "expectedVersion must not be negative"},

		{name: "first AddItem creates the cart", cmd: cartCmd(AddItemType, "tea", 2), want: []processors.NewEvent{
			{Type: CartCreatedType, Data: CartCreated{CustomerID: "ada"}},
			{Type: ItemAddedType, Data: ItemAdded{ProductID: "tea", Quantity: 2}},
		}},
		{name: "AddItem to an open cart", cart: openCart(CartItem{"cake", 1}), cmd: cartCmd(AddItemType, "tea", 99), want: []processors.NewEvent{
			{Type: ItemAddedType, Data: ItemAdded{ProductID: "tea", Quantity: 99}},
		}},
		{name: "quantity below the minimum", cmd: cartCmd(AddItemType, "tea", 0), reject: "quantity must be 1..99, got 0"},
		{name: "quantity above the maximum", cmd: cartCmd(AddItemType, "tea", 100), reject: "quantity must be 1..99, got 100"},
		{name: "product that does not exist", cmd: cartCmd(AddItemType, "nope", 1), reject: "product nope does not exist"},
		{name: "product pending validation", cmd: cartCmd(AddItemType, "new", 1), reject: "product new is not validated (pending)"},
		{name: "rejected product", cmd: cartCmd(AddItemType, "bad", 1), reject: "product bad is not validated (rejected)"},
		{name: "product already in the cart", cart: openCart(CartItem{"tea", 1}), cmd: cartCmd(AddItemType, "tea", 1), reject: "product tea is already in the cart"},
		{name: "product lookup fails", cmd: cartCmd(AddItemType, "broken", 1), err: errLookup},

		{name: "RemoveItem of an item in the cart", cart: openCart(CartItem{"tea", 1}), cmd: cartCmd(RemoveItemType, "tea", 0), want: []processors.NewEvent{
			{Type: ItemRemovedType, Data: ItemRemoved{ProductID: "tea"}},
		}},
		{name: "RemoveItem of an item not in the cart", cart: openCart(CartItem{"tea", 1}), cmd: cartCmd(RemoveItemType, "cake", 0), reject: "product cake is not in the cart"},
		{name: "RemoveItem without a cart", cmd: cartCmd(RemoveItemType, "tea", 0), reject: "product tea is not in the cart"},

		{name: "CheckOut of a cart with items", cart: openCart(CartItem{"tea", 1}), cmd: cartCmd(CheckOutType, "", 0), want: []processors.NewEvent{
			{Type: CartCheckedOutType, Data: struct{}{}},
		}},
		{name: "CheckOut of an empty cart", cart: openCart(), cmd: cartCmd(CheckOutType, "", 0), reject: "cannot check out an empty cart"},
		{name: "CheckOut without a cart", cmd: cartCmd(CheckOutType, "", 0), reject: "cannot check out an empty cart"},

		{name: "any change to a checked-out cart", cart: &Cart{ID: "c1", Items: []CartItem{{"tea", 1}}, Status: CartCheckedOut},
			cmd: cartCmd(RemoveItemType, "tea", 0), reject: "cart c1 is checked out: no changes after checkout"},
		{name: "a cart id used and checked out before", id: "used", cmd: cartCmd(AddItemType, "tea", 1),
			reject: "cart used is checked out: no changes after checkout"},
		{name: "history lookup fails", id: "broken", cmd: cartCmd(AddItemType, "tea", 1), err: errLookup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = "c1"
			}
			evs, err := DecideCart(tc.cart, tc.cmd, id, shop, history("used"))
			switch {
			case tc.err != nil:
				assert.ErrorIs(t, err, tc.err)
				_, rejected := errors.AsType[*processors.RejectedError](err)
				assert.False(t, rejected, "a failed lookup is not a business rule")
			case tc.reject != "":
				rej, ok := errors.AsType[*processors.RejectedError](err)
				require.True(t, ok, "want a rejection, got %v", err)
				assert.Contains(t, rej.Reason, tc.reject)
				assert.Empty(t, evs)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want, evs)
			}
		})
	}
}

func TestDecideCart_GivenACommandThatPassesValidateCartCommand_ThenTheDecisionNeverCallsItMalformed(t *testing.T) {
	for _, cmd := range []CartCommand{cartCmd(AddItemType, "tea", 1), cartCmd(RemoveItemType, "tea", 0), cartCmd(CheckOutType, "", 0)} {
		assert.NoError(t, ValidateCartCommand(cmd), cmd.Type)
	}
}

func cartEvent(t *testing.T, typ string, data any, at time.Time) codecs.Event {
	t.Helper()
	ev := event(t, typ, "c1", data)
	ev.Time = at
	return ev
}

func TestEvolveCart_GivenALifecycle_ThenItemsStatusAndTime(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	steps := []struct {
		ev   codecs.Event
		want Cart
	}{
		{cartEvent(t, CartCreatedType, CartCreated{CustomerID: "ada"}, t0),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{}, Status: CartOpen, UpdatedAt: t0}},
		{cartEvent(t, ItemAddedType, ItemAdded{ProductID: "tea", Quantity: 2}, t0.Add(time.Minute)),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{{"tea", 2}}, Status: CartOpen, UpdatedAt: t0.Add(time.Minute)}},
		{cartEvent(t, ItemAddedType, ItemAdded{ProductID: "cake", Quantity: 1}, t0.Add(2*time.Minute)),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{{"tea", 2}, {"cake", 1}}, Status: CartOpen, UpdatedAt: t0.Add(2 * time.Minute)}},
		{cartEvent(t, ItemRemovedType, ItemRemoved{ProductID: "tea"}, t0.Add(3*time.Minute)),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{{"cake", 1}}, Status: CartOpen, UpdatedAt: t0.Add(3 * time.Minute)}},
		{cartEvent(t, ItemRemovedType, ItemRemoved{ProductID: "not there"}, t0.Add(4*time.Minute)),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{{"cake", 1}}, Status: CartOpen, UpdatedAt: t0.Add(4 * time.Minute)}},
		{cartEvent(t, CartCheckedOutType, struct{}{}, t0.Add(5*time.Minute)),
			Cart{ID: "c1", CustomerID: "ada", Items: []CartItem{{"cake", 1}}, Status: CartCheckedOut, UpdatedAt: t0.Add(5 * time.Minute)}},
	}
	var c *Cart
	for _, s := range steps {
		before := clone(c)
		next, err := EvolveCart(c, s.ev)
		require.NoError(t, err, s.ev.Type)
		assert.Equal(t, s.want, *next, s.ev.Type)
		assert.Equal(t, before, c, "%s: the state folded from is not changed", s.ev.Type)
		c = next
	}
}

func clone(c *Cart) *Cart {
	if c == nil {
		return nil
	}
	cp := *c
	cp.Items = slices.Clone(c.Items)
	return &cp
}

func TestEvolveCart_GivenUnknownOrMalformedEvents_ThenErrors(t *testing.T) {
	_, err := EvolveCart(openCart(), event(t, "CartTeleported", "c1", struct{}{}))
	assert.ErrorIs(t, err, ErrUnknownEvent)
	for _, typ := range []string{CartCreatedType, ItemAddedType, ItemRemovedType} {
		_, err := EvolveCart(openCart(), event(t, typ, "c1", "not an object"))
		assert.Error(t, err, typ)
	}
}

func TestDecideThenEvolve_GivenAcceptedCommands_ThenTheFoldedCartIsWhatTheNextDecisionSees(t *testing.T) {
	shop := catalog(Product{ID: "tea", Validation: ProductValidated}, Product{ID: "cake", Validation: ProductValidated})
	var c *Cart
	for _, cmd := range []CartCommand{cartCmd(AddItemType, "tea", 1), cartCmd(AddItemType, "cake", 3), cartCmd(RemoveItemType, "tea", 0), cartCmd(CheckOutType, "", 0)} {
		news, err := DecideCart(c, cmd, "c1", shop, history())
		require.NoError(t, err, cmd.Type)
		for _, ne := range news {
			ev := event(t, ne.Type, "c1", ne.Data)
			c, err = EvolveCart(c, ev)
			require.NoError(t, err)
		}
	}
	assert.Equal(t, []CartItem{{"cake", 3}}, c.Items)
	assert.Equal(t, CartCheckedOut, c.Status)
	_, err := DecideCart(c, cartCmd(AddItemType, "tea", 1), "c1", shop, history())
	_, rejected := errors.AsType[*processors.RejectedError](err)
	assert.True(t, rejected, "no changes after checkout")
}

func TestCartProductIndex_GivenACart_ThenItsProductsAreItsTerms(t *testing.T) {
	assert.Equal(t, []string{"tea", "cake"}, CartProductIndex.Terms("c1", []byte(`{"id":"c1","items":[{"productId":"tea","quantity":1},{"productId":"cake","quantity":2}]}`)))
	assert.Empty(t, CartProductIndex.Terms("c1", []byte(`{"id":"c1","items":[]}`)))
	assert.Nil(t, CartProductIndex.Terms("c1", []byte(`not json`)))
}
