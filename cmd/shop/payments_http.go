package main

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
)

// paymentsHTTP serves the payments service: its rows live in the shop's
// database (SQLite under the data directory, or --database), not in Kafka;
// their events reach the payments topic through the outbox relay.
type paymentsHTTP struct {
	store shop.PaymentStore
}

// register serves POST /payments and GET /payments/{id}. Both are answered
// by the instance asked: the database is the payments' home, so with
// several instances they share one (PostgreSQL).
func (p paymentsHTTP) register(srv *serve.Server) {
	srv.Handle(http.MethodPost, "/payments", p.create)
	srv.Handle(http.MethodGet, "/payments/{id}", p.get)
}

type paymentBody struct {
	ID       string  `json:"id,omitempty"`
	OrderID  string  `json:"orderId"`
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
}

// create records a payment and its event in one transaction: 201 with its
// Location. The same id sent again with the same payment answers 200 with
// the payment recorded (a client's retry); with another payment, 409.
func (p paymentsHTTP) create(r *http.Request) (int, any, error) {
	var b paymentBody
	if err := queryapi.DecodeJSON(r, &b); err != nil {
		return 0, nil, err
	}
	if b.ID == "" {
		b.ID = codecs.NewID()
	}
	for _, f := range []struct{ name, v string }{{"id", b.ID}, {"orderId", b.OrderID}} {
		if f.v == "" {
			continue // NewPayment says it is required
		}
		if err := queryapi.ValidateID(f.name, f.v); err != nil {
			return 0, nil, err
		}
	}
	pay, err := shop.NewPayment(b.ID, b.OrderID, b.Amount, b.Currency)
	var inv *shop.InvalidPaymentError
	if errors.As(err, &inv) {
		fields := map[string]any{}
		for k, v := range inv.Fields {
			fields[k] = v
		}
		return 0, nil, queryapi.Unprocessable("the payment is not valid", map[string]any{"fields": fields})
	}
	if err != nil {
		return 0, nil, err
	}
	h := http.Header{}
	h.Set("Location", "/payments/"+url.PathEscape(pay.ID))
	recorded, err := p.store.Record(r.Context(), pay)
	if errors.Is(err, shop.ErrDuplicatePayment) {
		prev, gerr := p.store.Get(r.Context(), pay.ID)
		if gerr != nil {
			return 0, nil, gerr
		}
		if prev.OrderID != pay.OrderID || prev.Amount != pay.Amount || prev.Currency != pay.Currency {
			return 0, nil, queryapi.Conflict("payment "+pay.ID+" was recorded with other values", map[string]any{"payment": prev})
		}
		return http.StatusOK, queryapi.WithHeaders(prev, h), nil
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, queryapi.WithHeaders(recorded, h), nil
}

// get reads a payment from the database.
func (p paymentsHTTP) get(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	pay, err := p.store.Get(r.Context(), id)
	if errors.Is(err, shop.ErrPaymentNotFound) {
		return 0, nil, queryapi.NotFound("no payment " + id)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pay, nil
}
