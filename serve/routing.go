package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/queryapi"
)

// Routing headers.
const (
	// HeaderServedBy names the instance (its advertised query address) whose
	// local state answered.
	HeaderServedBy = "X-Served-By"
	// HeaderRoutedVia names the instance that forwarded the request to the
	// one that answered.
	HeaderRoutedVia = "X-Routed-Via"
	// HeaderHops marks a forwarded request; one is never forwarded again, so
	// instances that disagree about an owner cannot bounce a query around.
	HeaderHops = "X-Streamfold-Hops"
	// HeaderTimeout is the caller's time budget as a Go duration ("1.5s"),
	// optional from a client, always set on a forwarded request to what is
	// left of it.
	HeaderTimeout = "X-Streamfold-Timeout"
)

const (
	// ownerWait is how long a query waits for its partition's owner while
	// the group rebalances (or its store restores) before answering 503.
	ownerWait = 2 * time.Second
	// defaultBudget bounds a routed query whose caller gave no deadline.
	defaultBudget = 10 * time.Second
	// ownerPoll is how often a waiting query looks again.
	ownerPoll = 25 * time.Millisecond
)

// keyRoute is how a route is served: with a table, where the key's
// partition is. The key is the path variable, or with bodyKey the "id" of
// the JSON body. A route with orLocal is served here when no owner can be
// reached: its handler copes without the owner's state (a registration then
// skips its duplicate check) and a write stays available through a
// rebalance. admin puts the route behind the admin token.
type keyRoute struct {
	table, variable         string
	varIndex                int // of variable among the route's variables
	bodyKey, orLocal, admin bool
	waitParam               string        // a long poll's query parameter (WaitsFor)
	waitMax                 time.Duration // and its largest value
	template                string        // the route's path template
}

// matchKeyRoute finds the key route of r and, unless the key is in the body,
// its (unescaped) key.
func (s *Server) matchKeyRoute(r *http.Request) (keyRoute, string, bool) {
	var buf [4]string
	i, vars, _ := s.keyed.Match(r, buf[:0])
	if i < 0 {
		return keyRoute{}, "", false
	}
	kr := s.routes[i]
	if kr.bodyKey {
		return kr, "", true
	}
	key := vars[kr.varIndex]
	if strings.IndexByte(key, '%') >= 0 {
		var err error
		if key, err = url.PathUnescape(key); err != nil {
			return keyRoute{}, "", false
		}
	}
	if key == "" {
		return keyRoute{}, "", false
	}
	return kr, key, true
}

// router sends each key route to the instance that owns the key's partition
// and serves everything else (and what it owns or replicates) locally. Safe
// for concurrent use.
type router struct {
	srv    *Server
	rt     Runtime
	next   localAPI
	log    *slog.Logger
	self   string // our advertised query address
	client *http.Client
}

// forwardTransport is shared by every router of the process: connections to
// owners are reused across requests.
var forwardTransport = &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     90 * time.Second,
}

// newRouter wraps the server's API so that key routes are answered by the
// owner of the key's partition; every response says who served it.
func newRouter(s *Server, self string) *router {
	return &router{srv: s, rt: s.rt, next: localAPI{s.api}, log: s.log, self: self, client: &http.Client{Transport: forwardTransport}}
}

func (ro *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ro.self != "" {
		w.Header()[HeaderServedBy] = []string{ro.self} // canonical already: no Set
	}
	if ro.self != "" && r.Method == http.MethodGet && r.URL.Path == membershipPath {
		ro.membership(w)
		return
	}
	kr, key, ok := ro.srv.matchKeyRoute(r)
	if !ok {
		ro.next.api.ServeHTTP(w, r)
		return
	}
	if ro.srv.opts.TracerProvider != nil {
		_ = nameSpan(r, kr.template) // named here too: a forwarded request never reaches the API
	}
	budget := defaultBudget
	if kr.waitParam != "" {
		// A long poll: the handler waits up to what the caller asked, and
		// has the usual budget for the rest.
		if d, err := time.ParseDuration(r.URL.Query().Get(kr.waitParam)); err == nil && d > 0 {
			budget += min(d, kr.waitMax)
		}
	}
	if v := headerValue(r.Header, HeaderTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			ro.refuse(w, r, kr, time.Now(), queryapi.BadRequest(fmt.Sprintf("%s must be a positive duration such as 1.5s, got %q", HeaderTimeout, v)))
			return
		}
		budget = d
	}
	now := time.Now()
	ctx := withBudget(r.Context(), now, budget)
	defer ctx.stop()
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		r = r.WithContext(ctx) // a copy whose Body can be replaced
		// The one body limit is the API's: a body it would refuse is
		// refused here in the same words, before it is forwarded.
		b, err := io.ReadAll(io.LimitReader(r.Body, queryapi.MaxBodyBytes+1))
		if err != nil {
			ro.refuse(w, r, kr, now, queryapi.BadRequest("body: "+err.Error()))
			return
		}
		if len(b) > queryapi.MaxBodyBytes {
			ro.refuse(w, r, kr, now, queryapi.ErrBodyTooLarge())
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	if kr.bodyKey {
		var doc struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &doc) != nil || doc.ID == "" {
			// No key to route by (a new id is made here), or a body the
			// handler will reject.
			ro.next.ServeWithContext(ctx, w, r)
			return
		}
		key = doc.ID
	}
	ro.route(ctx, w, r, kr, key, body, now)
}

// refuse answers a key route's request with p before it is routed, and
// counts it in the API's request metrics as the API counts its own.
func (ro *router) refuse(w http.ResponseWriter, r *http.Request, kr keyRoute, start time.Time, p *queryapi.Problem) {
	writeProblem(w, r, p, 0)
	ro.next.api.CountRequest(r.Method, kr.template, p.Status, time.Since(start))
}

// localAPI is the API as the router hands it requests: it marks the
// request's countedWriter as answered here, where the API counts it.
type localAPI struct{ api *queryapi.API }

func (l localAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	markLocal(w)
	l.api.ServeHTTP(w, r)
}

func (l localAPI) ServeWithContext(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	markLocal(w)
	l.api.ServeWithContext(ctx, w, r)
}

// countedWriter is the writer of a key route's request: its status, and
// whether the API answered it (and counted it).
type countedWriter struct {
	statusWriter
	local bool
}

// count counts the request in api's metrics unless the API answered it.
func (w *countedWriter) count(api *queryapi.API, method, route string, start time.Time) {
	if w.local {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK // what net/http sends for nothing written
	}
	api.CountRequest(method, route, status, time.Since(start))
}

// markLocal finds the countedWriter under w's wrappers, if any, and marks it.
func markLocal(w http.ResponseWriter) {
	for w != nil {
		if cw, ok := w.(*countedWriter); ok {
			cw.local = true
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// membershipPath answers which instance owns which partition of each group,
// as this instance last heard from the group coordinators.
const membershipPath = "/membership"

func (ro *router) membership(w http.ResponseWriter) {
	b, err := json.Marshal(map[string]any{"self": ro.rt.Self(), "groups": ro.rt.Membership()})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// route serves r, which arrived at now, where its key lives, under ctx (its
// budget), waiting up to ownerWait for an owner.
func (ro *router) route(ctx context.Context, w http.ResponseWriter, r *http.Request, kr keyRoute, key string, body []byte, now time.Time) {
	stale := r.URL.RawQuery != "" && r.URL.Query().Get("stale") == "ok"
	forwarded := headerValue(r.Header, HeaderHops) != ""
	deadline := now.Add(ownerWait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var why unavailable
	var cw *countedWriter
	for {
		pl, err := ro.rt.Place(kr.table, key)
		if err == nil && (pl.Replica || pl.Local && pl.Restored) {
			// The common case: r goes to the API as it is, with ctx (and
			// w as it came: nothing to mark).
			ro.next.api.ServeWithContext(ctx, w, r)
			return
		}
		if cw == nil {
			// Not (yet) the API's to answer: what the routing answers
			// (the owner's answer, or a refusal) is counted in the API's
			// request metrics all the same. Not made in the common case,
			// which costs a GET nothing.
			cw = &countedWriter{statusWriter: statusWriter{ResponseWriter: w}}
			defer cw.count(ro.next.api, r.Method, kr.template, now)
			w = cw
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		if r.Context() != ctx {
			r = r.WithContext(ctx) // what the rest below reads
		}
		switch {
		case forwarded && !pl.Assigned:
			// The sender's membership is older than ours (or than the
			// group's new generation): let it look again.
			writeProblem(w, r, &queryapi.Problem{
				Status: http.StatusMisdirectedRequest,
				Detail: fmt.Sprintf("partition %d of %s is not owned here", pl.Partition, pl.Table),
				Extras: placementExtras(pl, "not the owner"),
			}, 0)
			return
		case forwarded:
			why = unavailable{pl: pl, reason: "the partition is restoring here"}
		case pl.OwnerKnown && !pl.OwnerIsSelf && pl.Owner.Query == "":
			why = unavailable{pl: pl, reason: fmt.Sprintf("its owner (instance %s) serves no queries", pl.Owner.Instance)}
			if !stale {
				ro.giveUp(w, r, kr, why)
				return
			}
		case pl.OwnerKnown && !pl.OwnerIsSelf:
			retry, err := ro.forward(w, r, pl, body)
			if err == nil {
				return
			}
			why = unavailable{pl: pl, reason: err.Error(), err: err}
			if !retry {
				ro.giveUp(w, r, kr, why)
				return
			}
			// The owner is gone or moved: ask the coordinators again.
		case pl.OwnerKnown:
			why = unavailable{pl: pl, reason: "the partition is being restored here"}
		default:
			why = unavailable{pl: pl, reason: fmt.Sprintf("no owner is known: group %s is rebalancing", pl.Group)}
		}
		if stale && pl.Copy {
			ro.serveStale(w, r)
			return
		}
		if !time.Now().Before(deadline) {
			if pl.Assigned || pl.OwnerIsSelf {
				// Ours, still restoring: the view answers 503 with its progress.
				ro.next.ServeHTTP(w, r)
				return
			}
			ro.giveUp(w, r, kr, why)
			return
		}
		if !pl.OwnerKnown || why.err != nil {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			_ = ro.rt.RefreshMembership(rctx)
			cancel()
		}
		select {
		case <-ctx.Done():
			writeError(w, r, ctx.Err())
			return
		case <-time.After(ownerPoll):
		}
	}
}

// errMisdirected: the instance we forwarded to no longer owns the partition.
var errMisdirected = errors.New("the owner says it no longer owns the partition")

// forward sends r to the partition's owner and relays its answer. retry
// reports a failure worth another look at the membership (the owner is gone
// or no longer owns the partition); nothing has been written then.
func (ro *router) forward(w http.ResponseWriter, r *http.Request, pl streamfold.Placement, body []byte) (retry bool, err error) {
	u := *r.URL
	u.Scheme, u.Host = "http", pl.Owner.Query
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rd)
	if err != nil {
		return false, err
	}
	for k, vs := range r.Header {
		if !hopByHop[k] {
			req.Header[k] = vs
		}
	}
	if ro.srv.opts.TracerProvider != nil {
		injectTrace(r, req)
	}
	req.Header.Set(HeaderHops, "1")
	if dl, ok := r.Context().Deadline(); ok {
		req.Header.Set(HeaderTimeout, time.Until(dl).String())
	}
	resp, err := ro.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return true, fmt.Errorf("owner %s unreachable: %w", pl.Owner.Query, err)
		}
		return false, fmt.Errorf("forward to owner %s: %w", pl.Owner.Query, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusMisdirectedRequest {
		_, _ = io.Copy(io.Discard, resp.Body)
		return true, fmt.Errorf("forward to %s: %w", pl.Owner.Query, errMisdirected)
	}
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopByHop[k] {
			h[k] = vs
		}
	}
	if ro.self != "" {
		h.Set(HeaderRoutedVia, ro.self)
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		// The status is out; all we can do is cut the answer short.
		ro.log.Warn("forwarded answer cut short", "owner", pl.Owner.Query, "path", r.URL.Path, "err", err)
	}
	return false, nil
}

var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// unavailable is why a key's owner could not answer.
type unavailable struct {
	pl     streamfold.Placement
	reason string
	err    error // a failed forward
}

// giveUp answers a request no owner could serve: here for a route that
// copes, else with a problem.
func (ro *router) giveUp(w http.ResponseWriter, r *http.Request, kr keyRoute, why unavailable) {
	if kr.orLocal && r.Context().Err() == nil && (why.err == nil || isDial(why.err) || errors.Is(why.err, errMisdirected)) {
		ro.log.Info("no owner reachable; serving here", "table", why.pl.Table, "key", why.pl.Key, "reason", why.reason)
		ro.next.ServeHTTP(w, r)
		return
	}
	ro.fail(w, r, why)
}

// fail answers a query no owner could serve: 504 when the caller's time ran
// out, 502 when the owner's answer broke off, else 503 with Retry-After.
func (ro *router) fail(w http.ResponseWriter, r *http.Request, why unavailable) {
	pl := why.pl
	detail := fmt.Sprintf("key %q of %s (partition %d) cannot be served: %s", pl.Key, pl.Table, pl.Partition, why.reason)
	p := &queryapi.Problem{Status: http.StatusServiceUnavailable, Detail: detail, Extras: placementExtras(pl, why.reason)}
	retryAfter := time.Second
	switch {
	case errors.Is(why.err, context.DeadlineExceeded) || budgetSpent(r.Context()):
		p.Status, retryAfter = http.StatusGatewayTimeout, 0
	case why.err != nil && !errors.Is(why.err, errMisdirected) && !isDial(why.err):
		p.Status, retryAfter = http.StatusBadGateway, 0
	}
	ro.log.Warn("query not routed", "table", pl.Table, "key", pl.Key, "partition", pl.Partition,
		"owner", pl.Owner.Query, "status", p.Status, "reason", why.reason)
	writeProblem(w, r, p, retryAfter)
}

// budgetSpent reports whether the caller's time has run out: by the clock,
// since the context's timer may not have fired yet at the deadline.
func budgetSpent(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || ok && !time.Now().Before(dl)
}

func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func placementExtras(pl streamfold.Placement, reason string) map[string]any {
	x := map[string]any{"table": pl.Table, "partition": pl.Partition, "group": pl.Group, "reason": reason}
	if pl.OwnerKnown {
		x["owner"] = pl.Owner
	}
	return x
}

// headerValue is h.Get(key) for a canonical key, without Get's work to
// canonicalise it.
func headerValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, p *queryapi.Problem, retryAfter time.Duration) {
	_ = queryapi.WriteProblem(w, r, p, retryAfter)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeProblem(w, r, queryapi.NewProblem(http.StatusGatewayTimeout, "the request timed out"), 0)
	case errors.Is(err, context.Canceled):
		writeProblem(w, r, &queryapi.Problem{Status: queryapi.StatusClientClosedRequest, Title: "Client Closed Request", Detail: "the client closed the request"}, 0)
	default:
		writeProblem(w, r, queryapi.NewProblem(http.StatusInternalServerError, err.Error()), 0)
	}
}
