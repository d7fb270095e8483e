package main

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/shop"
)

// order places an order over HTTP and returns it as the shop decided it
// (GET ?wait=validated).
func (r *shopRun) order(t *testing.T, id, customer, product string, quantity int, price float64) shop.EnrichedOrder {
	t.Helper()
	var created shop.Order
	resp := r.do(http.MethodPost, "/orders", `{"id":"`+id+`","customerId":"`+customer+`","product":"`+product+`","quantity":`+itoa(quantity)+`,"price":`+ftoa(price)+`}`, &created)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "/orders/"+id, resp.Header.Get("Location"))
	assert.Equal(t, shop.OrderCreated, created.State)
	var decided shop.EnrichedOrder
	resp = r.do(http.MethodGet, "/orders/"+id+"?wait=validated&timeout=20s", "", &decided)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return decided
}

type stockAnswer struct {
	Stock, Reserved int
}

// awaitStock waits until the product's stock and reservations are want.
func (r *shopRun) awaitStock(t *testing.T, product string, want stockAnswer) {
	t.Helper()
	var got stockAnswer
	require.Eventually(t, func() bool {
		got = stockAnswer{}
		return r.do(http.MethodGet, "/inventory/"+product, "", &got).StatusCode == http.StatusOK && got == want
	}, wait, 10*time.Millisecond, "inventory of %s: %+v, want %+v", product, got, want)
}

func paymentRecord(t *testing.T, id, orderID string, amount float64) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:payments", shop.PaymentReceivedType, orderID, shop.PaymentReceived{OrderID: orderID, Amount: amount, Currency: "EUR"})
	require.NoError(t, err)
	ev.ID = id
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: shop.Payments.Name, Key: []byte(orderID), Value: b}
}

func TestOrders_GivenStockAndACustomer_WhenOrdersArePlaced_ThenEachCheckDecidesAndAPaidOrderIsConfirmedOnce(t *testing.T) {
	r := startShop(t, testConfig(t.TempDir()))
	resp := r.do(http.MethodPost, "/customers", `{"id":"c1","name":"Ada","email":"ada@example.com"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	r.awaitVersion("c1", 1)
	for product, stock := range map[string]string{"p1": "5", "p2": "100"} {
		resp := r.do(http.MethodPut, "/inventory/"+product, `{"stock":`+stock+`}`, nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	r.awaitStock(t, "p1", stockAnswer{Stock: 5})
	r.awaitStock(t, "p2", stockAnswer{Stock: 100})

	ok := r.order(t, "o-ok", "c1", "p1", 2, 100)
	assert.Equal(t, shop.OrderValidated, ok.State)
	assert.Equal(t, map[string]string{"details": "PASS", "fraud": "PASS", "inventory": "PASS"}, ok.Checks)
	assert.Equal(t, &shop.OrderCustomer{Name: "Ada", State: "active"}, ok.Customer, "enriched with its customer")
	r.awaitStock(t, "p1", stockAnswer{Stock: 5, Reserved: 2})

	short := r.order(t, "o-short", "c1", "p1", 4, 100) // 3 left
	assert.Equal(t, shop.OrderFailed, short.State)
	assert.Contains(t, short.Reason, "inventory check failed")

	zero := r.order(t, "o-zero", "c1", "p2", 0, 100)
	assert.Equal(t, shop.OrderFailed, zero.State)
	assert.Contains(t, zero.Reason, "details check failed")

	// c1's session now totals 600; 1,800 more reaches the limit. The
	// inventory check reserved a unit of p2 for it, released when it failed.
	big := r.order(t, "o-big", "c1", "p2", 1, 1800)
	assert.Equal(t, shop.OrderFailed, big.State)
	assert.Contains(t, big.Reason, "fraud check failed")
	r.awaitStock(t, "p2", stockAnswer{Stock: 100})
	r.awaitStock(t, "p1", stockAnswer{Stock: 5, Reserved: 2})

	// The validated order's payment through the payments service (its row
	// and its event in one transaction, relayed from the outbox), the POST
	// retried, and a second payment from any producer: one confirmation
	// e-mail.
	var paid shop.Payment
	resp = r.do(http.MethodPost, "/payments", `{"id":"pay-1","orderId":"o-ok","amount":200,"currency":"EUR"}`, &paid)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "/payments/pay-1", resp.Header.Get("Location"))
	resp = r.do(http.MethodPost, "/payments", `{"id":"pay-1","orderId":"o-ok","amount":200,"currency":"EUR"}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a retried POST answers the recorded payment")
	// The relayed event, then a payment from another producer behind it on
	// the same partition (same key): what comes before that is all the
	// relay sent, each batch in a Kafka transaction.
	consumeUntil(t, r.brokers(), shop.Payments.Name, func(recs []*kgo.Record) bool { return withID(recs, "payment-pay-1") })
	cl := kafkaClient(t, r.brokers())
	produce(t, cl, paymentRecord(t, "pay-2", "o-ok", 200))
	relayed := consumeUntil(t, r.brokers(), shop.Payments.Name, func(recs []*kgo.Record) bool { return withID(recs, "pay-2") })
	var fromOutbox []codecs.Event
	for _, rec := range relayed {
		ev, err := codecs.DecodeEvent(rec.Value, nil)
		require.NoError(t, err)
		if ev.ID == "payment-pay-1" {
			assert.Equal(t, "o-ok", string(rec.Key), "keyed by the order id")
			fromOutbox = append(fromOutbox, ev)
		}
	}
	require.Len(t, fromOutbox, 1, "the payment's event, relayed once: %d records on payments", len(relayed))
	var data shop.PaymentReceived
	require.NoError(t, fromOutbox[0].DataAs(&data))
	assert.Equal(t, shop.PaymentReceived{OrderID: "o-ok", Amount: 200, Currency: "EUR"}, data)
	stats := r.app.Runtime().Stats
	require.Eventually(t, func() bool { return stats()[shop.EmailerGroup].Applied == 2 }, wait, 10*time.Millisecond, "the e-mailer sees both payments' pairs")
	emails := consumeAll(t, r.brokers(), shop.Emails.Name, 1)
	var sent shop.EmailSent
	ev, err := codecs.DecodeEvent(emails[0].Value, nil)
	require.NoError(t, err)
	require.NoError(t, ev.DataAs(&sent))
	assert.Equal(t, shop.EmailSent{OrderID: "o-ok", To: "ada@example.com", Customer: "Ada", Subject: "Order o-ok confirmed", Amount: 200, EffectID: sent.EffectID}, sent)
	assert.NotEmpty(t, sent.EffectID)

	// A bad body is a 400 problem; an unknown order a 404; a wait that
	// cannot be met a 504.
	r.expectProblem(t, http.MethodPost, "/orders", `{"customerId":"c1"}`, http.StatusBadRequest)
	r.expectProblem(t, http.MethodGet, "/orders/nope", "", http.StatusNotFound)
	r.expectProblem(t, http.MethodGet, "/orders/o-ok?wait=shipped", "", http.StatusBadRequest)
	p := r.expectProblem(t, http.MethodGet, "/orders/never-placed?wait=validated&timeout=200ms", "", http.StatusGatewayTimeout)
	assert.Contains(t, p.Detail, "not known within 200ms")
	r.expectProblem(t, http.MethodPut, "/inventory/p1", `{"stock":-1}`, http.StatusBadRequest)

	// The payment is read from the database; the same id with another
	// payment is a 409, a bad payment a 422 naming its fields.
	var got shop.Payment
	require.Equal(t, http.StatusOK, r.do(http.MethodGet, "/payments/pay-1", "", &got).StatusCode)
	assert.Equal(t, paid, got)
	r.expectProblem(t, http.MethodPost, "/payments", `{"id":"pay-1","orderId":"o-ok","amount":300,"currency":"EUR"}`, http.StatusConflict)
	bad := r.expectProblem(t, http.MethodPost, "/payments", `{"orderId":"o-ok","amount":-5,"currency":"euro"}`, http.StatusUnprocessableEntity)
	assert.Contains(t, bad.Fields, "amount")
	assert.Contains(t, bad.Fields, "currency")
	r.expectProblem(t, http.MethodGet, "/payments/nope", "", http.StatusNotFound)
}

func itoa(n int) string     { return strconv.Itoa(n) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
