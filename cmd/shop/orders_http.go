package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// Long polls of GET /orders/{id}?wait=validated.
const (
	orderWaitDefault = 8 * time.Second // within the route's usual 10 s budget
	orderWaitMax     = 2 * time.Minute
	orderWaitPoll    = 20 * time.Millisecond
)

type ordersHTTP struct {
	orders    *views.View[shop.EnrichedOrder]
	inventory *views.View[shop.Inventory]
	emit      *streamfold.Emitter[codecs.Event]
	stock     *streamfold.Emitter[shop.StockLevel]
}

func newOrdersHTTP(rt *streamfold.Runtime) ordersHTTP {
	return ordersHTTP{
		orders:    views.New(rt, shop.EnrichedOrdersTable),
		inventory: views.New(rt, shop.InventoryTable),
		emit:      streamfold.NewEmitter(rt, shop.Orders),
		stock:     streamfold.NewEmitter(rt, shop.WarehouseInventory),
	}
}

// register serves the orders and the warehouse's stock. Creating an order
// or setting a stock level needs no routing (any instance produces it);
// reads go to the key's owner.
func (o ordersHTTP) register(srv *serve.Server) {
	srv.Handle(http.MethodPost, "/orders", o.create)
	srv.Handle(http.MethodGet, "/orders/{id}", o.get, serve.KeyFromPath(o.orders.Name(), "id"), serve.WaitsFor("timeout", orderWaitMax))
	srv.Handle(http.MethodPut, "/inventory/{product}", o.setStock)
	srv.Handle(http.MethodGet, "/inventory/{product}", o.getStock, serve.KeyFromPath(o.inventory.Name(), "product"))
}

type orderBody struct {
	ID         string  `json:"id,omitempty"`
	CustomerID string  `json:"customerId"`
	Product    string  `json:"product"`
	Quantity   int     `json:"quantity"`
	Price      float64 `json:"price"`
}

// create writes an OrderCreated event; the order is CREATED until the
// checks have answered (GET /orders/{id}?wait=validated).
func (o ordersHTTP) create(r *http.Request) (int, any, error) {
	var b orderBody
	if err := queryapi.DecodeJSON(r, &b); err != nil {
		return 0, nil, err
	}
	id := b.ID
	if id == "" {
		id = codecs.NewID()
	}
	if err := queryapi.ValidateID("id", id); err != nil {
		return 0, nil, err
	}
	for _, f := range []struct{ name, v string }{{"customerId", b.CustomerID}, {"product", b.Product}} {
		if f.v == "" {
			continue // NewOrder says it is required
		}
		if err := queryapi.ValidateID(f.name, f.v); err != nil {
			return 0, nil, err
		}
	}
	order, err := shop.NewOrder(id, shop.Order{CustomerID: b.CustomerID, Product: b.Product, Quantity: b.Quantity, Price: b.Price})
	if err != nil {
		return 0, nil, queryapi.BadRequest(err.Error())
	}
	ev, err := codecs.NewEvent(shop.Source, shop.OrderCreatedType, id, order)
	if err != nil {
		return 0, nil, err
	}
	ev.ID = "order-created-" + id // a POST sent again with the same id creates nothing twice
	if _, err := o.emit.Emit(r.Context(), id, ev); err != nil {
		return 0, nil, err
	}
	h := http.Header{}
	h.Set("Location", "/orders/"+url.PathEscape(id))
	return http.StatusCreated, queryapi.WithHeaders(order, h), nil
}

// get answers an order with its customer; with ?wait=validated it waits
// (up to timeout, default 30 s) until the order is VALIDATED or FAILED, and
// answers 504 if it is not by then (default 8 s).
func (o ordersHTTP) get(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	q := r.URL.Query()
	switch q.Get("wait") {
	case "":
		v, err := o.orders.Get(r.Context(), id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	case "validated":
	default:
		return 0, nil, queryapi.BadRequest(`wait takes one value: "validated"`)
	}
	timeout := orderWaitDefault
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > orderWaitMax {
			return 0, nil, queryapi.BadRequest(fmt.Sprintf("timeout must be a duration like 30s, at most %s", orderWaitMax))
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(orderWaitPoll)
	defer tick.Stop()
	var last shop.EnrichedOrder
	for {
		v, err := o.orders.Get(ctx, id)
		switch {
		case err == nil && v.State != shop.OrderCreated:
			return http.StatusOK, v, nil
		case err == nil:
			last = v
		case ctx.Err() != nil && r.Context().Err() == nil:
			// the wait ran out during the read: the same answer as between reads
			return 0, nil, waitedInVain(id, timeout, last)
		case !errors.Is(err, views.ErrNotFound) && !errors.Is(err, views.ErrNotReady):
			return 0, nil, err
		}
		select {
		case <-ctx.Done():
			if r.Context().Err() != nil {
				return 0, nil, r.Context().Err()
			}
			return 0, nil, waitedInVain(id, timeout, last)
		case <-tick.C:
		}
	}
}

// waitedInVain is the 504 of a wait for an order's decision that ran out;
// last is the order as last read (zero: never found).
func waitedInVain(id string, timeout time.Duration, last shop.EnrichedOrder) error {
	detail := fmt.Sprintf("order %s is not validated or failed within %s", id, timeout)
	if last.ID == "" {
		detail = fmt.Sprintf("order %s is not known within %s", id, timeout)
	}
	return queryapi.NewProblem(http.StatusGatewayTimeout, detail)
}

// setStock writes the product's stock level to warehouse-inventory.
func (o ordersHTTP) setStock(r *http.Request) (int, any, error) {
	product := queryapi.Vars(r)["product"]
	var s struct {
		Stock *int `json:"stock"`
	}
	if err := queryapi.DecodeJSON(r, &s); err != nil {
		return 0, nil, err
	}
	if s.Stock == nil || *s.Stock < 0 {
		return 0, nil, queryapi.BadRequest(`stock must be a number of units, at least 0: {"stock": 10}`)
	}
	if _, err := o.stock.Emit(r.Context(), product, shop.StockLevel{Stock: *s.Stock}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]any{"product": product, "stock": *s.Stock}, nil
}

// getStock answers a product's stock and reserved units.
func (o ordersHTTP) getStock(r *http.Request) (int, any, error) {
	inv, err := o.inventory.Get(r.Context(), queryapi.Vars(r)["product"])
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"product": inv.Product, "stock": inv.Stock, "reserved": inv.Reserved}, nil
}
