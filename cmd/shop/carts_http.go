package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// Read-your-writes timing.
const (
	minVersionWait   = 2 * time.Second
	minVersionPoll   = 10 * time.Millisecond
	idempotencyKeyHd = "Idempotency-Key"
)

type cartsHTTP struct {
	carts    *views.View[shop.Cart]
	history  *views.View[processors.Timeline]
	commands *streamfold.Emitter[shop.CartCommand]
	replies  *streamfold.Replies[processors.Reply]
	timeout  time.Duration // how long a command waits for its reply
}

// register serves the carts. A command needs no routing: any instance
// produces it and reads the reply topic.
func (c cartsHTTP) register(srv *serve.Server) {
	srv.Resource("carts", nil, &serve.Lister[shop.Cart]{View: c.carts, Filters: map[string]string{"product": shop.CartProductIndex.Name}, Filtered: true})
	srv.Handle(http.MethodGet, "/carts/{id}", c.get, serve.KeyFromPath(c.carts.Name(), "id"))
	srv.Get("/carts/{id}/events", c.history)
	srv.Handle(http.MethodPost, "/carts/{id}/commands", c.command)
}

// command produces a cart command and waits for the carts group's reply.
func (c cartsHTTP) command(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	var cmd shop.CartCommand
	if err := queryapi.DecodeJSON(r, &cmd); err != nil {
		return 0, nil, err
	}
	if err := validateCommandIDs(r, cmd); err != nil {
		return 0, nil, err
	}
	if key := r.Header.Get(idempotencyKeyHd); key != "" {
		if cmd.ID != "" && cmd.ID != key {
			return 0, nil, queryapi.BadRequest(fmt.Sprintf("commandId %q and %s %q differ", cmd.ID, idempotencyKeyHd, key))
		}
		cmd.ID = key
	}
	if cmd.ID == "" {
		cmd.ID = codecs.NewID()
	}
	if err := shop.ValidateCartCommand(cmd); err != nil {
		return 0, nil, queryapi.BadRequest(err.Error())
	}
	// The timeout covers producing the command as well as its reply: a
	// broker that does not acknowledge is as unknown an outcome as a
	// processor that does not answer.
	ctx, stop := context.WithTimeout(r.Context(), c.timeout)
	defer stop()
	rep, err := c.request(ctx, id, cmd)
	if err == nil {
		return commandAnswer(rep)
	}
	if errors.Is(err, streamfold.ErrNoReply) || errors.Is(err, context.DeadlineExceeded) {
		return 0, nil, queryapi.NewProblem(http.StatusGatewayTimeout,
			fmt.Sprintf("no reply to command %s within %s; it may still be applied — retry with the same %s", cmd.ID, c.timeout, idempotencyKeyHd))
	}
	return 0, nil, err
}

// validateCommandIDs checks the ids a command carries in its body and
// headers as the API checks ids in paths: they become keys, headers and log
// lines.
func validateCommandIDs(r *http.Request, cmd shop.CartCommand) error {
	for what, id := range map[string]string{
		`body: field "commandId"`:       cmd.ID,
		`body: field "data.productId"`:  cmd.Data.ProductID,
		`body: field "data.customerId"`: cmd.Data.CustomerID,
		"header " + idempotencyKeyHd:    r.Header.Get(idempotencyKeyHd),
	} {
		if id == "" {
			continue
		}
		if err := queryapi.ValidateID(what, id); err != nil {
			return err
		}
	}
	return nil
}

// request produces cmd and waits for its reply.
func (c cartsHTTP) request(ctx context.Context, id string, cmd shop.CartCommand) (processors.Reply, error) {
	wait, cancel := c.replies.Expect(cmd.ID)
	if _, err := c.commands.Emit(ctx, id, cmd); err != nil {
		cancel()
		return processors.Reply{}, err
	}
	return wait(ctx)
}

// commandAnswer turns the carts group's reply into the HTTP answer.
func commandAnswer(rep processors.Reply) (int, any, error) {
	extras := map[string]any{"commandId": rep.CommandID, "version": rep.Version}
	switch rep.Status {
	case processors.ReplyAccepted:
		return http.StatusOK, commandAccepted{CommandID: rep.CommandID, Version: rep.Version, Events: rep.Events, Duplicate: rep.Duplicate}, nil
	case processors.ReplyConflict:
		return 0, nil, queryapi.Conflict(rep.Reason, extras)
	case processors.ReplyRejected:
		return 0, nil, queryapi.Unprocessable(rep.Reason, extras)
	default:
		return 0, nil, fmt.Errorf("command %s failed: %s", rep.CommandID, rep.Reason)
	}
}

type commandAccepted struct {
	CommandID string         `json:"commandId"`
	Version   int64          `json:"version"`
	Events    []codecs.Event `json:"events"`
	Duplicate bool           `json:"duplicate,omitempty"`
}

// get answers GET /carts/{id}[?minVersion=N]: with minVersion it never answers
// with an older version; it waits briefly for the view, then answers 503.
// A cart the view does not have is answered 404 like a plain GET as soon as
// the view has applied everything its changelog holds (so the cart was never
// created, or was checked out), and at the latest when the wait is over:
// only a cart the view has at an older version is "not yet".
func (c cartsHTTP) get(r *http.Request) (int, any, error) {
	id := queryapi.Vars(r)["id"]
	var min int64
	if v := r.URL.Query().Get("minVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, queryapi.BadRequest(fmt.Sprintf("minVersion must be a non-negative integer, got %q", v))
		}
		min = n
	}
	deadline := time.Now().Add(minVersionWait)
	for {
		cart, err := c.carts.Get(r.Context(), id)
		if err == nil && cart.Version >= min {
			return http.StatusOK, cart, nil
		}
		absent := errors.Is(err, views.ErrNotFound)
		if err != nil && !absent {
			return 0, nil, err
		}
		if min == 0 || absent && c.caughtUp(r.Context(), id) {
			return 0, nil, err
		}
		if time.Now().After(deadline) {
			if absent {
				return 0, nil, err
			}
			return 0, nil, versionNotYet{id: id, want: min, have: cart.Version}
		}
		select {
		case <-r.Context().Done():
			return 0, nil, r.Context().Err()
		case <-time.After(minVersionPoll):
		}
	}
}

// caughtUp reports whether the carts view has applied its whole changelog
// for the partition of id.
func (c cartsHTTP) caughtUp(ctx context.Context, id string) bool {
	lag, err := c.carts.Lag(ctx, id)
	return err == nil && lag == 0
}

// versionNotYet is a 503 with Retry-After: the view has not reached the version.
type versionNotYet struct {
	id         string
	want, have int64
}

func (e versionNotYet) Error() string {
	return fmt.Sprintf("cart %s is at version %d in this view, not yet %d", e.id, e.have, e.want)
}
func (e versionNotYet) RetryAfter() time.Duration { return time.Second }
