package main

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
)

type parkedList struct {
	Items []streamfold.ParkedRecord `json:"items"`
}

func TestCustomerCarts_GivenCartsOfAnUnregisteredCustomer_ThenParkedAndReleasedInOrder(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	addProducts(t, s, "apple")
	for _, cart := range []string{"zoe-1", "zoe-2"} {
		status, rep := s.command(cart, "", `{"type":"AddItem","data":{"productId":"apple","quantity":1,"customerId":"zoe"}}`)
		require.Equal(t, http.StatusOK, status, rep.Detail)
	}
	var parked parkedList
	require.Eventually(t, func() bool {
		parked = parkedList{}
		s.do(http.MethodGet, "/parked/customer-carts", "", &parked)
		return len(parked.Items) == 2
	}, wait, 10*time.Millisecond, "carts never parked")
	assert.Equal(t, "zoe", parked.Items[0].Key)
	assert.Contains(t, parked.Items[0].WaitsFor, "customer")
	assert.Equal(t, http.StatusNotFound, s.do(http.MethodGet, "/customers/zoe/carts", "", nil).StatusCode)
	// The two carts are keyed apart, so they may reach the customer's key in
	// either order: the order they were parked in is their order on
	// customer-cart-events.
	var inOrder []shop.CustomerCart
	for _, r := range consumeAll(t, s.brokers(), shop.CustomerCartEvents.Name, 2) {
		ev, err := codecs.CloudEvents{}.Decode(r.Value)
		require.NoError(t, err)
		var d shop.CustomerCartEvent
		require.NoError(t, ev.DataAs(&d))
		inOrder = append(inOrder, shop.CustomerCart{CartID: d.CartID, Status: shop.CartOpen})
	}

	// When the customer registers, the parked carts are applied in their order.
	require.Equal(t, http.StatusAccepted, s.do(http.MethodPost, "/customers", `{"id":"zoe","name":"Zoe","email":"zoe@example.com"}`, nil).StatusCode)
	var cc shop.CustomerCarts
	require.Eventually(t, func() bool {
		cc = shop.CustomerCarts{}
		s.do(http.MethodGet, "/customers/zoe/carts", "", &cc)
		return len(cc.Carts) == 2
	}, wait, 10*time.Millisecond)
	require.Len(t, cc.Carts, 2)
	assert.Equal(t, inOrder, cc.Carts)
	parked = parkedList{}
	s.do(http.MethodGet, "/parked/customer-carts", "", &parked)
	assert.Empty(t, parked.Items)
	assert.Equal(t, int64(2), s.app.Runtime().Stats()[shop.CustomerCartsGroup].Counters["released"])

	// And later cart events for a registered customer apply at once.
	status, rep := s.command("zoe-1", "", `{"type":"CheckOut"}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)
	require.Eventually(t, func() bool {
		cc = shop.CustomerCarts{}
		s.do(http.MethodGet, "/customers/zoe/carts", "", &cc)
		return len(cc.Carts) == 2 && slices.ContainsFunc(cc.Carts, func(c shop.CustomerCart) bool {
			return c.CartID == "zoe-1" && c.Status == shop.CartCheckedOut
		})
	}, wait, 10*time.Millisecond)
}

func TestCustomerCarts_GivenCustomerNeverArrives_ThenDeadLetteredAfterMaxWait(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxWait = time.Second
	s := startShop(t, cfg)
	addProducts(t, s, "apple")
	status, rep := s.command("ghost-cart", "", `{"type":"AddItem","data":{"productId":"apple","quantity":1,"customerId":"ghost"}}`)
	require.Equal(t, http.StatusOK, status, rep.Detail)

	dl := consumeUpTo(t, s.brokers(), shop.CustomerCartsGroup+"-dlq", 1)
	h := headerMap(dl[0])
	assert.Equal(t, processors.ClassMissingDependency, h[processors.HeaderExceptionClass])
	assert.Equal(t, shop.CustomerCartEvents.Name, h[processors.HeaderOriginalTopic])
	assert.Equal(t, "ghost", string(dl[0].Key))
	assert.Contains(t, h[processors.HeaderExceptionMessage], "did not arrive within 1s")
	var parked parkedList
	require.Eventually(t, func() bool {
		parked = parkedList{}
		s.do(http.MethodGet, "/parked/customer-carts", "", &parked)
		return len(parked.Items) == 0
	}, wait, 10*time.Millisecond)
}
