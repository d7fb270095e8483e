package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/shop"
)

// TestOrders_GivenProcessKilledMidFlow_ThenNoOrderIsReservedTwiceAndNoneEmailedTwice
// kills the shop (SIGKILL) twice while orders are placed and paid, then
// checks that every order was decided, each product's reservations are the
// sum of its validated orders' quantities (none counted twice) and every
// paid order got exactly one confirmation (one e-mail id; a copy re-sent
// after a crash carries the same id).
func TestOrders_GivenProcessKilledMidFlow_ThenNoOrderIsReservedTwiceAndNoneEmailedTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	broker := startProcessBroker(t)
	dataDir := t.TempDir()
	p := startShopProcess(t, broker.Addrs(), dataDir)
	cl := kafkaClient(t, broker.Addrs())
	for _, c := range []string{"c0", "c1", "c2"} {
		postJSON(t, p.base+"/customers", `{"id":"`+c+`","name":"`+strings.ToUpper(c)+`","email":"`+c+`@example.com"}`, http.StatusAccepted)
	}
	for _, pr := range []string{"p0", "p1"} {
		putJSON(t, p.base+"/inventory/"+pr, `{"stock":1000}`, http.StatusAccepted)
	}
	// The stock is applied before the first order is placed: the inventory
	// check reads the stock topic and the orders independently, so an order
	// racing its product's first stock level would rightly fail.
	for _, pr := range []string{"p0", "p1"} {
		awaitInventory(t, p.base, pr, "a stock of 1000", func(got stockAnswer) bool { return got.Stock == 1000 })
	}

	// The flow: orders placed one after another against whichever instance
	// runs, each retried until accepted, and paid at once.
	restarted := make(chan string, 2) // each replacement's address
	const orders = 24
	var placed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	first := p.base
	go func() {
		defer wg.Done()
		base := first
		for i := range orders {
			id := fmt.Sprintf("o%02d", i)
			body := fmt.Sprintf(`{"id":%q,"customerId":"c%d","product":"p%d","quantity":%d,"price":1}`, id, i%3, i%2, 1+i%4)
			for !tryPost(base+"/orders", body) {
				// Killed: go on with its replacement once it is ready (a
				// refusal by a live process is tried again a little later).
				select {
				case base = <-restarted:
				case <-time.After(100 * time.Millisecond):
				}
			}
			produce(t, cl, paymentRecord(t, "pay-"+id, id, 1))
			placed.Add(1)
		}
	}()
	for _, after := range []int64{6, 14} {
		require.Eventually(t, func() bool { return placed.Load() >= after }, wait, time.Millisecond)
		p.kill()
		p = startShopProcess(t, broker.Addrs(), dataDir)
		restarted <- p.base
	}
	wg.Wait()

	// Every order is decided, VALIDATED (stock and limits allow them all).
	want := map[string]int{}
	for i := range orders {
		id := fmt.Sprintf("o%02d", i)
		var o shop.EnrichedOrder
		require.Equal(t, http.StatusOK, httpGetJSON(t, p.base+"/orders/"+id+"?wait=validated&timeout=60s", &o), id)
		require.Equal(t, shop.OrderValidated, o.State, "%s: %s", id, o.Reason)
		want[o.Product] += o.Quantity
	}
	for product, reserved := range want {
		awaitInventory(t, p.base, product, fmt.Sprintf("%d reserved (each validated order once)", reserved),
			func(got stockAnswer) bool { return got.Reserved == reserved })
	}

	// One e-mail per order: every order has one, and all copies of an
	// order's e-mail are one e-mail (its id).
	// Copies re-sent after a crash count once: read until every order has
	// one, not until there are as many records as orders.
	recs := consumeUntil(t, broker.Addrs(), shop.Emails.Name, func(recs []*kgo.Record) bool {
		keys := map[string]bool{}
		for _, r := range recs {
			keys[string(r.Key)] = true
		}
		return len(keys) >= orders
	})
	ids := map[string]map[string]bool{}
	for _, r := range recs {
		ev, err := codecs.DecodeEvent(r.Value, nil)
		require.NoError(t, err)
		if ids[string(r.Key)] == nil {
			ids[string(r.Key)] = map[string]bool{}
		}
		ids[string(r.Key)][ev.ID] = true
	}
	assert.Len(t, ids, orders, "every paid order is confirmed")
	for order, emails := range ids {
		assert.Len(t, emails, 1, "order %s: e-mails %v", order, emails)
	}
	t.Logf("emails: %d records for %d orders", len(recs), len(ids))
}

func tryPost(url, body string) bool {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusCreated
}

func postJSON(t *testing.T, url, body string, status int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, status, resp.StatusCode, url)
}

func putJSON(t *testing.T, url, body string, status int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, status, resp.StatusCode, url)
}

// awaitInventory waits until GET base/inventory/product answers what ok
// accepts (want says what that is).
func awaitInventory(t *testing.T, base, product, want string, ok func(stockAnswer) bool) {
	t.Helper()
	// EventuallyWithT reports the last answer, not the first.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var got stockAnswer
		status := httpGetJSON(t, base+"/inventory/"+product, &got)
		assert.True(c, status == http.StatusOK && ok(got), "inventory of %s: %d %+v, want %s", product, status, got, want)
	}, wait, 10*time.Millisecond)
}
