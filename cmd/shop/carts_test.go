package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// cartsLookup reads the carts group's lookup tables.
type cartsLookup struct{ rt *streamfold.Runtime }

func (c cartsLookup) Store(topic string, p int32) (*tables.Store, bool) {
	return c.rt.GroupStore(shop.CartsGroup, topic, p)
}

func (c cartsLookup) PartitionsOf(topic string) int { return c.rt.PartitionsOf(topic) }

type cartReply struct {
	CommandID string         `json:"commandId"`
	Version   int64          `json:"version"`
	Events    []codecs.Event `json:"events"`
	Duplicate bool           `json:"duplicate"`
	// problem members
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// addProducts produces ProductAdded events as any producer would and waits for them.
func addProducts(t *testing.T, s *shopRun, ids ...string) {
	t.Helper()
	cl := kafkaClient(t, s.brokers())
	for i, id := range ids {
		produce(t, cl, productAdded(t, id, shop.ProductAdded{Name: "Product " + id, Price: "9.99", SKU: fmt.Sprintf("ABC-%04d", i)}))
	}
	// Wait until the carts group's own copy of products-table (a lookup
	// table, which may lag the products group) shows them validated.
	views := views.New(cartsLookup{s.app.Runtime()}, shop.ProductsTable)
	for _, id := range ids {
		require.Eventually(t, func() bool {
			p, err := views.Get(context.Background(), id)
			return err == nil && p.Validation == shop.ProductValidated
		}, wait, 10*time.Millisecond, "product %s never validated in the carts group's lookup table", id)
	}
}

func (s *shopRun) command(cart, idemKey, body string) (int, cartReply) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/carts/"+cart+"/commands", stringsReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	var rep cartReply
	status := s.doReq(req, &rep)
	return status, rep
}

func addItem(product string, qty int) string {
	return fmt.Sprintf(`{"type":"AddItem","data":{"productId":%q,"quantity":%d}}`, product, qty)
}

func TestCarts_GivenCommands_ThenRulesStatusCodesViewsHistoryAndIndex(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	addProducts(t, s, "apple", "pear")

	status, rep := s.command("c1", "", `{"type":"AddItem","data":{"productId":"apple","quantity":2,"customerId":"ada"}}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)
	assert.Equal(t, int64(2), rep.Version)
	require.Len(t, rep.Events, 2)
	assert.Equal(t, shop.CartCreatedType, rep.Events[0].Type)
	assert.Equal(t, shop.ItemAddedType, rep.Events[1].Type)

	rules := []struct {
		name, body string
		status     int
	}{
		{"a product at most once", addItem("apple", 1), http.StatusUnprocessableEntity},
		{"quantity below 1", addItem("pear", 0), http.StatusUnprocessableEntity},
		{"quantity above 99", addItem("pear", 100), http.StatusUnprocessableEntity},
		{"unknown product", addItem("durian", 1), http.StatusUnprocessableEntity},
		{"removing an absent item", `{"type":"RemoveItem","data":{"productId":"pear"}}`, http.StatusUnprocessableEntity},
		{"stale expected version", `{"type":"AddItem","expectedVersion":1,"data":{"productId":"pear","quantity":1}}`, http.StatusConflict},
		{"malformed JSON", `{"type":`, http.StatusBadRequest},
		{"unknown command type", `{"type":"Teleport"}`, http.StatusBadRequest},
		{"missing product id", `{"type":"AddItem","data":{"quantity":1}}`, http.StatusBadRequest},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			status, rep := s.command("c1", "", r.body)
			assert.Equal(t, r.status, status, rep.Detail)
			if r.status == http.StatusConflict {
				assert.Equal(t, int64(2), rep.Version, "a conflict carries the current version")
			}
		})
	}

	status, rep = s.command("c1", "", `{"type":"AddItem","expectedVersion":2,"data":{"productId":"pear","quantity":3}}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)
	assert.Equal(t, int64(3), rep.Version)

	// Read your writes: the view never answers with an older version.
	var cart shop.Cart
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/carts/c1?minVersion=3", "", &cart).StatusCode)
	assert.Equal(t, int64(3), cart.Version)
	assert.Equal(t, []shop.CartItem{{ProductID: "apple", Quantity: 2}, {ProductID: "pear", Quantity: 3}}, cart.Items)
	assert.Equal(t, "ada", cart.CustomerID)
	resp := s.do(http.MethodGet, "/carts/c1?minVersion=99", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))

	var byProduct page
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/carts?product=pear", "", &byProduct).StatusCode)
	var cartsWithPear struct {
		Items []shop.Cart `json:"items"`
	}
	s.do(http.MethodGet, "/carts?product=pear", "", &cartsWithPear)
	require.Len(t, cartsWithPear.Items, 1)
	assert.Equal(t, "c1", cartsWithPear.Items[0].ID)

	status, rep = s.command("c1", "", `{"type":"RemoveItem","data":{"productId":"pear"}}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)
	status, rep = s.command("c1", "", `{"type":"CheckOut"}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)
	assert.Equal(t, int64(5), rep.Version)

	// After checkout: tombstoned, out of the index, no more changes, history kept.
	require.Eventually(t, func() bool {
		return s.do(http.MethodGet, "/carts/c1", "", nil).StatusCode == http.StatusNotFound
	}, wait, 10*time.Millisecond)
	s.do(http.MethodGet, "/carts?product=apple", "", &cartsWithPear)
	assert.Empty(t, cartsWithPear.Items)
	var history processors.Timeline
	require.Eventually(t, func() bool {
		history = processors.Timeline{}
		s.do(http.MethodGet, "/carts/c1/events", "", &history)
		return len(history.Events) == 5
	}, wait, 10*time.Millisecond)
	var types []string
	for _, e := range history.Events {
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{shop.CartCreatedType, shop.ItemAddedType, shop.ItemAddedType, shop.ItemRemovedType, shop.CartCheckedOutType}, types)
	status, rep = s.command("c1", "", addItem("apple", 1))
	assert.Equal(t, http.StatusUnprocessableEntity, status, rep.Detail)
	status, _ = s.command("c2", "", `{"type":"CheckOut"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status, "checking out an empty cart")
}

func TestCarts_GivenConcurrentWritersWithSameExpectedVersion_ThenExactlyOneAccepted(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	addProducts(t, s, "apple", "pear", "plum")
	status, rep := s.command("c1", "", addItem("apple", 1))
	require.Equal(t, http.StatusOK, status, rep.Detail)

	for round, product := range []string{"pear", "plum"} {
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		version := int64(2 + round)
		for i := range statuses {
			wg.Go(func() {
				statuses[i], _ = s.command("c1", "", fmt.Sprintf(`{"type":"AddItem","expectedVersion":%d,"data":{"productId":%q,"quantity":%d}}`, version, product, i+1))
			})
		}
		wg.Wait()
		assert.ElementsMatch(t, []int{http.StatusOK, http.StatusConflict}, statuses, "round %d", round)
	}
}

func TestCarts_GivenDuplicateCommandID_ThenOriginalReplyAndOneSetOfEvents(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	addProducts(t, s, "apple")
	first, rep1 := s.command("c1", "key-1", addItem("apple", 1))
	require.Equal(t, http.StatusOK, first, rep1.Detail)
	again, rep2 := s.command("c1", "key-1", addItem("apple", 1))
	require.Equal(t, http.StatusOK, again, rep2.Detail)
	assert.True(t, rep2.Duplicate)
	assert.Equal(t, rep1.Version, rep2.Version)
	require.Len(t, rep2.Events, len(rep1.Events))
	for i := range rep1.Events {
		assert.Equal(t, rep1.Events[i].ID, rep2.Events[i].ID, "re-sent events keep their ids")
	}
	// The history holds one set (re-appended copies carry the same ids and are dropped).
	var history processors.Timeline
	require.Eventually(t, func() bool {
		history = processors.Timeline{}
		s.do(http.MethodGet, "/carts/c1/events", "", &history)
		return len(history.Events) == 2
	}, wait, 10*time.Millisecond)
	var cart shop.Cart
	s.do(http.MethodGet, "/carts/c1?minVersion=2", "", &cart)
	assert.Equal(t, int64(2), cart.Version)
	assert.Len(t, cart.Items, 1)
	// And the retry appended nothing to cart-events.
	assert.Equal(t, int64(2), endOffsets(t, s.brokers(), shop.CartEvents.Name))
}
