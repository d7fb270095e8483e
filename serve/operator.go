package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/deadletters"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/queryapi"
)

// dlqTimeout bounds one dead-letter request: reads stop at the end offsets
// anyway; this is for a broker that stops answering.
const dlqTimeout = 30 * time.Second

// OperatorEndpoints serves the operator endpoints, behind the admin token
// (see Options.AdminToken): the groups' dead letters and their parked
// records.
//
//	GET  /parked/{group}                       records waiting for a parent, and what each waits for
//
//	GET  /dlq                                  the groups and their dead-letter topics
//	GET  /dlq/{group}?limit=N&cursor=C         a page: {items, next}
//	GET  /dlq/{group}/{partition}/{offset}     one dead letter
//	POST /dlq/{group}/redrive                  {partition, offset} | {partition, from, to} | {all: true}, and force: true
//	                                           to re-drive stale dead letters (see deadletters.Selection.Forced)
//
// Each request opens its own Kafka client: these are operator calls, rare
// next to the queries, and nothing is left to close.
func (s *Server) OperatorEndpoints() {
	h := dlqHTTP{groups: s.rt.GroupNames(), brokers: s.rt.Brokers(), security: s.rt.Security(), log: s.log, clientID: s.opts.Name + "-dlq-http"}
	s.Handle(http.MethodGet, "/dlq", h.groupList, AdminOnly())
	s.Handle(http.MethodGet, "/dlq/{group}", h.list, AdminOnly())
	s.Handle(http.MethodGet, "/dlq/{group}/{partition}/{offset}", h.show, AdminOnly())
	s.Handle(http.MethodPost, "/dlq/{group}/redrive", h.redrive, AdminOnly())
	s.Handle(http.MethodGet, "/parked/{group}", parked(s.rt), AdminOnly())
}

// parked answers GET /parked/{group}.
func parked(rt Runtime) queryapi.HandlerFunc {
	return func(r *http.Request) (int, any, error) {
		ps, err := rt.Parked(queryapi.Vars(r)["group"])
		if errors.Is(err, streamfold.ErrUnknownGroup) {
			return 0, nil, queryapi.NotFound(err.Error())
		}
		if err != nil {
			return 0, nil, fmt.Errorf("parked records: %w", err)
		}
		if ps == nil {
			ps = []streamfold.ParkedRecord{}
		}
		return http.StatusOK, map[string]any{"items": ps}, nil
	}
}

type dlqHTTP struct {
	groups   []string
	brokers  []string
	security streamfold.Security
	log      *slog.Logger
	clientID string
}

type dlqGroup struct {
	Group string `json:"group"`
	Topic string `json:"topic"`
}

func (h dlqHTTP) groupList(*http.Request) (int, any, error) {
	out := make([]dlqGroup, 0, len(h.groups))
	for _, g := range h.groups {
		out = append(out, dlqGroup{g, deadletters.Topic(g)})
	}
	return http.StatusOK, map[string]any{"groups": out}, nil
}

func (h dlqHTTP) list(r *http.Request) (int, any, error) {
	group, err := h.group(r)
	if err != nil {
		return 0, nil, err
	}
	limit, cursor, err := parseDLQQuery(r.URL.RawQuery)
	if err != nil {
		return 0, nil, err
	}
	var page deadletters.Page
	err = h.with(r, func(ctx context.Context, c *deadletters.Client) (err error) {
		page, err = c.List(ctx, group, cursor, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

func (h dlqHTTP) show(r *http.Request) (int, any, error) {
	group, err := h.group(r)
	if err != nil {
		return 0, nil, err
	}
	vars := queryapi.Vars(r)
	p, perr := strconv.ParseInt(vars["partition"], 10, 32)
	o, oerr := strconv.ParseInt(vars["offset"], 10, 64)
	if perr != nil || oerr != nil {
		return 0, nil, queryapi.BadRequest(fmt.Sprintf("partition and offset must be integers, got %q and %q", vars["partition"], vars["offset"]))
	}
	var d deadletters.DeadLetter
	err = h.with(r, func(ctx context.Context, c *deadletters.Client) (err error) {
		d, err = c.Get(ctx, group, int32(p), o)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

func (h dlqHTTP) redrive(r *http.Request) (int, any, error) {
	group, err := h.group(r)
	if err != nil {
		return 0, nil, err
	}
	var req RedriveRequest
	if err := queryapi.DecodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	sel, err := req.Selection()
	if err != nil {
		return 0, nil, queryapi.BadRequest(err.Error() + "; " + selectionHelp)
	}
	var res deadletters.Result
	err = h.with(r, func(ctx context.Context, c *deadletters.Client) (err error) {
		res, err = c.Redrive(ctx, group, sel)
		return err
	})
	if err != nil && res.Count > 0 {
		// Say what did go out before the failure; the cause is logged.
		h.log.ErrorContext(r.Context(), "re-drive stopped", "group", group, "selection", sel.String(), "count", res.Count, "err", err)
		return 0, nil, &queryapi.Problem{
			Status: http.StatusBadGateway,
			Detail: fmt.Sprintf("re-drive stopped after %d records: %v", res.Count, err),
			Extras: map[string]any{"result": res},
		}
	}
	if err != nil {
		return 0, nil, err
	}
	h.log.InfoContext(r.Context(), "re-drove dead letters", "group", group, "selection", sel.String(), "count", res.Count, "skipped", len(res.Skipped))
	return http.StatusOK, res, nil
}

// group is the {group} of the path, 404 unless the runtime runs it.
func (h dlqHTTP) group(r *http.Request) (string, error) {
	g := queryapi.Vars(r)["group"]
	if !slices.Contains(h.groups, g) {
		return "", queryapi.NotFound(fmt.Sprintf("no group %q (groups: %s)", g, strings.Join(h.groups, ", ")))
	}
	return g, nil
}

// with runs fn with a fresh client under the request's deadline, and turns
// the package's errors into problems.
func (h dlqHTTP) with(r *http.Request, fn func(context.Context, *deadletters.Client) error) error {
	if len(h.brokers) == 0 {
		return kafkaUnavailable{errors.New("the dead-letter routes do not know the Kafka brokers")}
	}
	ctx, cancel := context.WithTimeout(r.Context(), dlqTimeout)
	defer cancel()
	c, err := deadletters.New(h.brokers, deadletters.WithKafkaVersion(kafkaconf.Version()), deadletters.WithClientID(h.clientID),
		deadletters.WithSarama(h.security.ApplySarama))
	if err != nil {
		return kafkaUnavailable{err}
	}
	defer c.Close()
	return dlqProblem(fn(ctx, c))
}

// dlqProblem maps the deadletters package's conditions to statuses.
func dlqProblem(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, deadletters.ErrBadCursor), errors.Is(err, deadletters.ErrBadLimit), errors.Is(err, deadletters.ErrBadSelection):
		return queryapi.BadRequest(err.Error())
	case errors.Is(err, deadletters.ErrNotFound), errors.Is(err, deadletters.ErrNoTopic):
		return queryapi.NotFound(err.Error())
	case errors.Is(err, deadletters.ErrNotRedrivable):
		return queryapi.Unprocessable(err.Error(), nil)
	case errors.Is(err, deadletters.ErrSkipped):
		return &queryapi.Problem{Status: http.StatusConflict, Detail: err.Error()}
	}
	return err
}

// kafkaUnavailable answers 503 with Retry-After.
type kafkaUnavailable struct{ err error }

func (e kafkaUnavailable) Error() string             { return "kafka unavailable: " + e.err.Error() }
func (e kafkaUnavailable) Unwrap() error             { return e.err }
func (e kafkaUnavailable) RetryAfter() time.Duration { return 5 * time.Second }

// parseDLQQuery reads limit (1..queryapi.MaxLimit, default
// queryapi.DefaultLimit) and cursor; anything else is a 400.
func parseDLQQuery(raw string) (limit int, cursor string, err error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return 0, "", queryapi.BadRequest("query: " + err.Error())
	}
	limit = queryapi.DefaultLimit
	for k, vs := range vals {
		if len(vs) > 1 {
			return 0, "", queryapi.BadRequest(fmt.Sprintf("query: parameter %q given %d times, at most once allowed", k, len(vs)))
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 1 || n > queryapi.MaxLimit {
				return 0, "", queryapi.BadRequest(fmt.Sprintf("query: limit must be an integer from 1 to %d, got %q", queryapi.MaxLimit, vs[0]))
			}
			limit = n
		case "cursor":
			cursor = vs[0]
		default:
			return 0, "", queryapi.BadRequest(fmt.Sprintf("query: unknown parameter %q (supported: limit, cursor)", k))
		}
	}
	return limit, cursor, nil
}

// RedriveRequest is the body of POST /dlq/{group}/redrive (and what a
// command line's re-drive flags say): exactly one of {partition, offset},
// {partition, from, to} (offsets from through to) or {all: true}.
type RedriveRequest struct {
	Partition *int32 `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	From      *int64 `json:"from,omitempty"`
	To        *int64 `json:"to,omitempty"`
	All       *bool  `json:"all,omitempty"`
	// Force re-drives stale dead letters and ones awaiting their outcome.
	Force bool `json:"force,omitempty"`
}

// selectionHelp follows a bad selection's reason in the 400 answer.
const selectionHelp = "give partition and offset (one), partition, from and to (a range, both included), or all: true"

// Selection is the one selection q makes; its errors say what is wrong,
// the caller says how to write it right.
func (q RedriveRequest) Selection() (deadletters.Selection, error) {
	var sel deadletters.Selection
	switch {
	case q.All != nil:
		if !*q.All {
			return sel, errors.New("all must be true when given")
		}
		if q.Partition != nil || q.Offset != nil || q.From != nil || q.To != nil {
			return sel, errors.New("all selects every dead letter: give it alone")
		}
		sel = deadletters.All()
	case q.Partition == nil:
		return sel, errors.New("no partition")
	case q.Offset != nil && q.From == nil && q.To == nil:
		sel = deadletters.One(*q.Partition, *q.Offset)
	case q.Offset == nil && q.From != nil && q.To != nil:
		sel = deadletters.Range(*q.Partition, *q.From, *q.To)
	default:
		return sel, errors.New("ambiguous or incomplete selection")
	}
	if q.Force {
		sel = sel.Forced()
	}
	return sel, sel.Validate()
}
