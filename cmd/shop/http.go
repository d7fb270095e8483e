package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// routes registers the shop's resources on srv: its views and commands.
// The returned close releases the reply reader.
func routes(srv *serve.Server, rt *streamfold.Runtime, cfg Config) (func() error, error) {
	replies, err := streamfold.NewReplies(rt, shop.CartReplies)
	if err != nil {
		return nil, err
	}
	db, err := openDatabase(cfg, rt, srv.Logger())
	if err != nil {
		replies.Close()
		return nil, err
	}
	customers := views.New(rt, shop.CustomersTable)
	srv.Resource("customers", customers, &serve.Lister[shop.Customer]{
		View:    customers,
		Filters: map[string]string{"state": shop.CustomerStateIndex.Name},
		Terms:   map[string][]string{"state": {shop.StateActive, shop.StateDeleted}},
	})
	// Writes of a customer check its current state first (POST answers 409
	// for a registered id, PATCH and DELETE 404 for an unknown one), so they
	// go to the owner too; a registration is served here when no owner can
	// be reached (it then skips its duplicate check).
	c := customerCommands{view: customers, emit: streamfold.NewEmitter(rt, shop.CustomerEvents)}
	srv.Handle(http.MethodPost, "/customers", c.register, serve.KeyFromBody(customers.Name()), serve.OrLocal())
	srv.Handle(http.MethodPatch, "/customers/{id}", c.update, serve.KeyFromPath(customers.Name(), "id"))
	srv.Handle(http.MethodDelete, "/customers/{id}", c.delete, serve.KeyFromPath(customers.Name(), "id"))
	srv.Get("/customers/{id}/carts", views.New(rt, shop.CustomerCartsTable))

	srv.Resource("products", views.New(rt, shop.ProductsTable), nil)
	cartsHTTP{
		carts:    views.New(rt, shop.CartsTable),
		history:  views.New(rt, shop.CartHistoryTable),
		commands: streamfold.NewEmitter(rt, shop.CartCommands),
		replies:  replies,
		timeout:  cfg.ReplyTimeout,
	}.register(srv)
	newOrdersHTTP(rt).register(srv)
	paymentsHTTP{store: db.payments}.register(srv)
	return func() error { return errors.Join(replies.Close(), db.close()) }, nil
}

type customerCommands struct {
	view *views.View[shop.Customer]
	emit *streamfold.Emitter[codecs.Event]
}

// accepted is the answer to a command: the event is in the log; the view will
// show it once the customers group has folded it.
type accepted struct {
	ID       string              `json:"id"`
	EventID  string              `json:"eventId"`
	Type     string              `json:"type"`
	Position streamfold.Position `json:"position"`
}

func (c customerCommands) register(r *http.Request) (int, any, error) {
	var cmd shop.RegisterCustomer
	if err := queryapi.DecodeJSON(r, &cmd); err != nil {
		return 0, nil, err
	}
	if cmd.ID != "" {
		if err := queryapi.ValidateID(`body: field "id"`, cmd.ID); err != nil {
			return 0, nil, err
		}
	}
	ev, err := shop.RegisterEvent(cmd)
	if err != nil {
		return 0, nil, validationProblem(err)
	}
	if cmd.ID != "" {
		if cur, err := c.view.Get(r.Context(), cmd.ID); err == nil && cur.State == shop.StateActive {
			return 0, nil, queryapi.Conflict(fmt.Sprintf("customer %q is already registered", cmd.ID), map[string]any{"version": cur.Version})
		}
	}
	return c.send(r.Context(), ev, http.StatusAccepted)
}

func (c customerCommands) update(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	var cmd shop.UpdateCustomer
	if err := queryapi.DecodeJSON(r, &cmd); err != nil {
		return 0, nil, err
	}
	ev, err := shop.UpdateEvent(id, cmd)
	if err != nil {
		return 0, nil, validationProblem(err)
	}
	if err := c.mustExist(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return c.send(r.Context(), ev, http.StatusAccepted)
}

func (c customerCommands) delete(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	erase := false
	if v := r.URL.Query().Get("erase"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return 0, nil, queryapi.BadRequest(fmt.Sprintf("erase must be true or false, got %q", v))
		}
		erase = b
	}
	if err := c.mustExist(r.Context(), id); err != nil {
		return 0, nil, err
	}
	ev, err := shop.DeleteEvent(id, erase)
	if err != nil {
		return 0, nil, err
	}
	return c.send(r.Context(), ev, http.StatusAccepted)
}

// mustExist answers 404 for a customer the (caught-up) view does not have, and
// 503 while the view is restoring.
func (c customerCommands) mustExist(ctx context.Context, id string) error {
	_, err := c.view.GetRaw(ctx, id)
	return err
}

func (c customerCommands) send(ctx context.Context, ev codecs.Event, status int) (int, any, error) {
	pos, err := c.emit.Emit(ctx, ev.Subject, ev)
	if err != nil {
		return 0, nil, err
	}
	h := http.Header{}
	h.Set("Location", "/customers/"+url.PathEscape(ev.Subject))
	return status, queryapi.WithHeaders(accepted{ID: ev.Subject, EventID: ev.ID, Type: ev.Type, Position: pos}, h), nil
}

func validationProblem(err error) error {
	if verr, ok := errors.AsType[*shop.ValidationError](err); ok {
		return queryapi.Unprocessable(verr.Error(), map[string]any{"fields": verr.Fields})
	}
	return err
}
