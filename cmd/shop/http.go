package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// newHTTP wires the shop's views and commands onto the query API, behind the
// access rules of cfg (see access). The returned close releases the reply
// reader.
func newHTTP(rt *streamfold.Runtime, log *slog.Logger, cfg Config, loopback bool) (http.Handler, func() error, error) {
	customers := views.New(rt, shop.CustomersTable)
	replies, err := streamfold.NewReplies(rt, shop.CartReplies)
	if err != nil {
		return nil, nil, err
	}
	api := queryapi.New(
		queryapi.WithLogger(log),
		queryapi.WithReadiness(readiness{rt}),
		queryapi.WithMetrics(metrics{rt}),
		queryapi.WithCursorKey([]byte(cfg.CursorKey)),
		queryapi.WithGuard(access{admin: cfg.AdminToken, write: cfg.WriteToken, loopback: loopback}.guard),
	)
	api.Resource("customers", customers, customerLister{customers})
	c := customerCommands{rt: rt, view: customers, emit: streamfold.NewEmitter(rt, shop.CustomerEvents)}
	api.Handle(http.MethodPost, "/customers", c.register)
	api.Handle(http.MethodPatch, "/customers/{id}", c.update)
	api.Handle(http.MethodDelete, "/customers/{id}", c.delete)

	api.Resource("products", views.New(rt, shop.ProductsTable), nil)
	cartsHTTP{
		carts:    views.New(rt, shop.CartsTable),
		history:  views.New(rt, shop.CartHistoryTable),
		commands: streamfold.NewEmitter(rt, shop.CartCommands),
		replies:  replies,
		timeout:  cfg.ReplyTimeout,
	}.register(api)
	// The operator routes below are guarded by access.guard (adminRoutes).
	registerDLQ(api, rt, log)
	registerParked(api, rt)
	return routeQueries(rt, api, log), replies.Close, nil
}

// adminRoutes are the path templates of the operator endpoints: dead letters,
// their re-drive and parked records show and move other people's data.
var adminRoutes = []string{"/dlq", "/parked"}

func isAdminRoute(template string) bool {
	for _, p := range adminRoutes {
		if template == p || strings.HasPrefix(template, p+"/") {
			return true
		}
	}
	return false
}

// access is who may do what over HTTP:
//   - operator routes (adminRoutes) need the admin token; with none
//     configured they are served only on a loopback listener (a developer's
//     shop) and answer 403 elsewhere, so a shop put on a network without
//     thinking about it does not hand out its dead letters;
//   - state-changing routes need the write token when one is configured;
//   - everything else (queries, health, metrics) is open.
//
// The CLI (shop dlq) talks to Kafka directly and needs none of this.
type access struct {
	admin, write string
	loopback     bool
}

func (a access) guard(r *http.Request, route string) error {
	switch {
	case isAdminRoute(route) && a.admin != "":
		return queryapi.RequireBearer(r, "shop-admin", a.admin)
	case isAdminRoute(route) && !a.loopback:
		return queryapi.Forbidden("operator endpoints are disabled: this shop listens beyond loopback and has no --admin-token (SHOP_ADMIN_TOKEN)")
	case isAdminRoute(route):
		return nil
	case a.write != "" && !isReadOnly(r.Method):
		return queryapi.RequireBearer(r, "shop-write", a.write)
	}
	return nil
}

func isReadOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// customerLister answers GET /customers?state=active|deleted from the state index.
type customerLister struct{ v *views.View[shop.Customer] }

func (l customerLister) List(ctx context.Context, q queryapi.ListQuery) (queryapi.Page, error) {
	var index, term string
	for k, v := range q.Filters {
		switch {
		case k == "state" && (v == shop.StateActive || v == shop.StateDeleted):
			index, term = "state", v
		case k == "state":
			return queryapi.Page{}, queryapi.BadRequest(fmt.Sprintf("state must be %q or %q, got %q", shop.StateActive, shop.StateDeleted, v))
		default:
			return queryapi.Page{}, queryapi.BadRequest(fmt.Sprintf("unknown filter %q (supported: state)", k))
		}
	}
	page, err := l.v.List(ctx, index, term, q.Cursor, q.Limit)
	if errors.Is(err, views.ErrBadCursor) {
		return queryapi.Page{}, queryapi.BadRequest("cursor is not one this API handed out")
	}
	if err != nil {
		return queryapi.Page{}, err
	}
	return rawPage(page)
}

type customerCommands struct {
	rt   *streamfold.Runtime
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

type readiness struct{ rt *streamfold.Runtime }

func (r readiness) Ready(context.Context) (bool, any) {
	return r.rt.Recovered(), map[string]any{"tables": r.rt.Progress(), "groups": r.rt.Stats()}
}

type metrics struct{ rt *streamfold.Runtime }

// WriteMetrics writes one family at a time — HELP, TYPE, then every series
// of it — as the text format requires; groups and labels in a stable order.
func (m metrics) WriteMetrics(w io.Writer) error {
	stats := m.rt.Stats()
	groups := slices.Sorted(maps.Keys(stats))
	family := func(name, typ, help string, samples func(group string, s processors.Snapshot)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, g := range groups {
			samples(g, stats[g])
		}
	}
	family("streamfold_records_processed_total", "counter", "Records handed to a group's handlers.", func(g string, s processors.Snapshot) {
		fmt.Fprintf(w, "streamfold_records_processed_total{group=%s} %d\n", label(g), s.Processed)
	})
	family("streamfold_records_applied_total", "counter", "Records a group's handlers applied.", func(g string, s processors.Snapshot) {
		fmt.Fprintf(w, "streamfold_records_applied_total{group=%s} %d\n", label(g), s.Applied)
	})
	family("streamfold_records_duplicate_total", "counter", "Records a group skipped as already applied.", func(g string, s processors.Snapshot) {
		fmt.Fprintf(w, "streamfold_records_duplicate_total{group=%s} %d\n", label(g), s.Duplicates)
	})
	family("streamfold_failures_total", "counter", "Records retried in place, moved to retry topics, parked and released; stores found broken, rebuilt, failed writes and processor restarts; by group.", func(g string, s processors.Snapshot) {
		for _, reason := range slices.Sorted(maps.Keys(s.Counters)) {
			fmt.Fprintf(w, "streamfold_failures_total{group=%s,reason=%s} %d\n", label(g), label(reason), s.Counters[reason])
		}
	})
	family("streamfold_dead_letters_total", "counter", "Records dead-lettered, by group and error class.", func(g string, s processors.Snapshot) {
		for _, class := range slices.Sorted(maps.Keys(s.DeadLetters)) {
			fmt.Fprintf(w, "streamfold_dead_letters_total{group=%s,class=%s} %d\n", label(g), label(class), s.DeadLetters[class])
		}
	})
	return nil
}

// label quotes a label value as the text format wants: only backslash,
// double quote and newline are escaped (Go's %q would escape more, in ways
// Prometheus does not read back).
func label(v string) string {
	return `"` + labelEscaper.Replace(v) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
