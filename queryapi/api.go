package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Reader serves one keyed resource from a local view. The returned bytes are
// a JSON document. GetJSON is called concurrently from many requests; a
// *views.View is a Reader.
type Reader interface {
	GetJSON(ctx context.Context, key string) (json.RawMessage, error)
}

// Lister pages through a resource, optionally filtered (e.g. state=deleted
// answered from a secondary index). It may reject a filter it cannot answer
// by returning BadRequest. List is called concurrently from many requests.
type Lister interface {
	List(ctx context.Context, q ListQuery) (Page, error)
}

// ListQuery is what a GET /{name} request asks of a Lister.
type ListQuery struct {
	// Filters holds every query parameter other than limit and cursor, one
	// value each. Never nil.
	Filters map[string]string
	// Limit is the page size, 1..MaxLimit (DefaultLimit when not given).
	Limit int
	// Cursor is the Next of the previous page, verbatim (the API has checked
	// it is one it handed out); empty for the first.
	Cursor string
}

// Page is one page of a listing. Next is empty on the last page.
type Page struct {
	Items []json.RawMessage `json:"items"`
	Next  string            `json:"next,omitempty"`
}

// Readiness reports whether every table is restored and caught up, with
// details (restore progress) to show. Ready is called concurrently.
type Readiness interface {
	Ready(ctx context.Context) (ready bool, details any)
}

// HandlerFunc answers a request. A nil err and a nil body answer with no
// content (status 204 when status is 0); otherwise body is marshalled as JSON
// (status 200 when 0). If body implements Headers() http.Header those headers
// are added to the response (see WithHeaders). A non-nil err is answered as a
// problem, classified as described in the package documentation; returning a
// status of 400 or more with a nil err answers a bare Problem of that status
// (use a *Problem error to say more).
type HandlerFunc func(r *http.Request) (status int, body any, err error)

// Page size limits of GET /{name}.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// notReadyRetryAfter is the Retry-After of GET /readyz while not ready.
const notReadyRetryAfter = 5 * time.Second

// Option configures New.
type Option func(*options)

type options struct {
	log       *slog.Logger
	ready     Readiness
	registry  *prometheus.Registry
	cursorKey []byte
	guards    []Guard
}

// WithLogger sets the logger. nil (the default) discards. Each request is
// logged at Debug (method, path, route, status, duration); 5xx answers at
// Error with their cause, except 503s that carry Retry-After (a view still
// restoring is an expected state), which are logged at Warn.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithReadiness makes GET /readyz ask r. Without it /readyz always answers
// ready.
func WithReadiness(r Readiness) Option { return func(o *options) { o.ready = r } }

// WithRegistry registers the API's request metrics on r and serves r at GET
// /metrics, so that an application's own collectors (and the Go runtime's)
// are served beside them. Without it the API serves a registry of its own
// with its request metrics alone. New panics if r has them already (one
// registry per API: two would count into the same series).
func WithRegistry(r *prometheus.Registry) Option { return func(o *options) { o.registry = r } }

// WithCursorKey sets the key that authenticates list cursors (HMAC-SHA256).
// Without it each API makes a random key: cursors then stay valid for the
// life of the process, and only on the instance that handed them out. Give
// every instance behind one address the same key.
func WithCursorKey(key []byte) Option {
	return func(o *options) { o.cursorKey = append([]byte(nil), key...) }
}

// A Guard decides whether a request may reach a route: route is the matched
// route's path template (e.g. "/dlq/{group}"). nil lets the request through;
// an error is answered as a problem, e.g. RequireBearer's 401. Guards run in
// the order given, before the route's variables are validated and before its
// handler; requests no route matches never reach them (they answer 404/405).
// A Guard is called concurrently.
type Guard func(r *http.Request, route string) error

// WithGuard adds g to the guards of every route, built-in ones included.
func WithGuard(g Guard) Option { return func(o *options) { o.guards = append(o.guards, g) } }

// API is an http.Handler serving resources and command handlers as JSON.
//
// Concurrency: register every route (Resource, Handle) before the API serves
// its first request, from one goroutine; registering afterwards panics. Once
// serving, ServeHTTP is safe for any number of concurrent requests.
type API struct {
	routes   *Routes
	handlers []route // by index in routes
	log      *slog.Logger
	ready    Readiness
	requests *requestMetrics
	cursors  cursorSigner
	guards   []Guard
	serving  atomic.Bool
}

// New returns an API with the built-in routes GET /healthz, GET /readyz and
// GET /metrics.
func New(opts ...Option) *API {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.registry == nil {
		o.registry = prometheus.NewRegistry()
	}
	requests := newRequestMetrics()
	if err := requests.register(o.registry); err != nil {
		panic("queryapi: " + err.Error()) // a programming error: see WithRegistry
	}
	a := &API{
		log:      o.log,
		ready:    o.ready,
		requests: requests,
		cursors:  newCursorSigner(o.cursorKey),
		guards:   o.guards,
	}
	// Encoded paths let keys contain '/' (as %2F); Vars unescapes. No
	// path cleaning: an API answers JSON or problems, never a redirect to
	// another path ("/carts/." is a 400 for its id, not a 301 to /carts/).
	a.routes = NewRoutes()

	a.handle(http.MethodGet, "/healthz", a.adapt(func(*http.Request) (int, any, error) {
		return http.StatusOK, map[string]string{"status": "ok"}, nil
	}))
	a.handle(http.MethodGet, "/readyz", a.adapt(a.readyz))
	a.handle(http.MethodGet, "/metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{o.log},
		// A collector that fails (a broker that does not answer) leaves
		// its series out; the rest is still served.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return a
}

var reservedNames = map[string]bool{"healthz": true, "readyz": true, "metrics": true}

var resourceName = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// Resource serves GET /{name}/{id} from r and GET /{name} from l; either may
// be nil to leave its route out.
//
// The list route takes limit (1..MaxLimit, default DefaultLimit; anything
// else is a 400 problem) and cursor; every other query parameter becomes a
// filter, given at most once. The API authenticates cursors (see
// WithCursorKey): the Lister's Next goes out signed, and a cursor that comes
// back forged, garbled or from another listing is a 400 problem that never
// reaches the Lister.
//
// Resource panics on a name that is not a plain path segment
// ([A-Za-z0-9._~-]+), that is reserved (healthz, readyz, metrics), or when
// called after the API started serving: these are programming errors.
func (a *API) Resource(name string, r Reader, l Lister) {
	a.mustBeConfiguring("Resource")
	if !resourceName.MatchString(name) || reservedNames[name] {
		panic(fmt.Sprintf("queryapi: invalid resource name %q", name))
	}
	if r != nil {
		// The hot path of a query API: the document goes out as the Reader
		// returned it, without a HandlerFunc's boxing and checks.
		a.handle(http.MethodGet, "/"+name+"/{id}", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			doc, err := r.GetJSON(req.Context(), routeVar(req, 0))
			if err == nil && len(doc) == 0 {
				err = fmt.Errorf("reader of %q returned neither a document nor an error", name)
			}
			if err != nil {
				a.writeError(w, req, err)
				return
			}
			writeJSON(w, http.StatusOK, doc)
		}))
	}
	if l != nil {
		a.handle(http.MethodGet, "/"+name, a.adapt(func(req *http.Request) (int, any, error) {
			q, err := parseListQuery(req.URL.RawQuery)
			if err != nil {
				return 0, nil, err
			}
			if q.Cursor, err = a.cursors.verify(name, q.Cursor); err != nil {
				return 0, nil, err
			}
			page, err := l.List(req.Context(), q)
			if err != nil {
				return 0, nil, err
			}
			page.Next = a.cursors.sign(name, page.Next)
			if page.Items == nil {
				page.Items = []json.RawMessage{}
			}
			return http.StatusOK, page, nil
		}))
	}
}

// Handle serves method requests on path, a gorilla/mux path template such as
// "/carts/{id}/commands". Templates match the escaped path; Vars returns
// unescaped values. Handle panics on an empty method, a path not starting
// with '/', a nil h, or when called after the API started serving.
func (a *API) Handle(method, path string, h HandlerFunc) {
	a.mustBeConfiguring("Handle")
	if method == "" || len(path) == 0 || path[0] != '/' || h == nil {
		panic(fmt.Sprintf("queryapi: invalid route %q %q", method, path))
	}
	a.handle(method, path, a.adapt(h))
}

func (a *API) mustBeConfiguring(what string) {
	if a.serving.Load() {
		panic("queryapi: " + what + " called after the API started serving")
	}
}

// route is what ServeHTTP knows of a matched route.
type route struct {
	template string // the path template: the route label of metrics and logs, what guards see
	names    []string
	whats    []string // "path segment {name}" per variable, for ValidateID's problems
	h        http.Handler
}

func (a *API) handle(method, path string, h http.Handler) {
	i, _ := a.routes.add(method, path, h) // a malformed template's route never matches, as with mux
	rt := route{template: path, names: a.routes.Names(i), h: h}
	for _, name := range rt.names {
		rt.whats = append(rt.whats, fmt.Sprintf("path segment {%s}", name))
	}
	a.handlers = append(a.handlers, rt)
}

// Vars returns the route variables of r, unescaped: r is a request the API
// is serving, as its guards and handlers get it. (A guard runs before the
// variables are checked: a value that does not unescape is given as sent.)
func Vars(r *http.Request) map[string]string {
	info := infoOf(r)
	if info == nil {
		return map[string]string{}
	}
	out := make(map[string]string, len(info.names))
	for i, name := range info.names {
		v := info.vars[i]
		if !info.unescaped {
			if u, err := pathUnescape(v); err == nil {
				v = u
			}
		}
		out[name] = v
	}
	return out
}

// routeVar is the i-th variable (unescaped) of the route serving r.
func routeVar(r *http.Request, i int) string {
	if info := infoOf(r); info != nil && info.unescaped && i < len(info.vars) {
		return info.vars[i]
	}
	return ""
}

// WithHeaders returns a body for HandlerFunc that marshals as body and adds
// h to the response, e.g. Location after a create or ETag. A nil body still
// answers with no content.
func WithHeaders(body any, h http.Header) any { return headed{body: body, header: h} }

type headed struct {
	body   any
	header http.Header
}

func (h headed) Headers() http.Header         { return h.header }
func (h headed) MarshalJSON() ([]byte, error) { return json.Marshal(h.body) }

func parseListQuery(raw string) (ListQuery, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return ListQuery{}, BadRequest("query: " + err.Error())
	}
	q := ListQuery{Filters: make(map[string]string, len(vals)), Limit: DefaultLimit}
	for k, vs := range vals {
		if len(vs) > 1 {
			return ListQuery{}, BadRequest(fmt.Sprintf("query: parameter %q given %d times, at most once allowed", k, len(vs)))
		}
		v := vs[0]
		switch k {
		case "":
			return ListQuery{}, BadRequest("query: parameter with an empty name")
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				return ListQuery{}, BadRequest(fmt.Sprintf("query: limit must be an integer from 1 to %d, got %q", MaxLimit, v))
			}
			q.Limit = n
		case "cursor":
			q.Cursor = v
		default:
			q.Filters[k] = v
		}
	}
	return q, nil
}

// notReady is the error /readyz answers with while the Readiness says no.
type notReady struct{ details any }

func (notReady) Error() string { return "not ready: tables are restoring or catching up" }

func (n notReady) RetryAfter() time.Duration {
	if ra, ok := n.details.(interface{ RetryAfter() time.Duration }); ok {
		return ra.RetryAfter()
	}
	return notReadyRetryAfter
}

func (n notReady) ProblemExtras() map[string]any {
	return map[string]any{"ready": false, "details": n.details}
}

type readyBody struct {
	Ready   bool `json:"ready"`
	Details any  `json:"details,omitempty"`
}

func (a *API) readyz(r *http.Request) (int, any, error) {
	if a.ready == nil {
		return http.StatusOK, readyBody{Ready: true}, nil
	}
	ok, details := a.ready.Ready(r.Context())
	if !ok {
		return 0, nil, notReady{details: details}
	}
	return http.StatusOK, readyBody{Ready: true, Details: details}, nil
}

// slogPrinter logs promhttp's errors (a collector that failed) at Warn.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "error", fmt.Sprint(v...)) }

func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	a.writeProblem(w, r, NotFound(fmt.Sprintf("no route for %s %s", r.Method, r.URL.EscapedPath())), 0)
}

func (a *API) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allow []string
	_ = a.routes.mux.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		var m mux.RouteMatch
		if route.Match(r, &m) || errors.Is(m.MatchErr, mux.ErrMethodMismatch) {
			if ms, err := route.GetMethods(); err == nil {
				allow = append(allow, ms...)
			}
		}
		return nil
	})
	slices.Sort(allow)
	allow = slices.Compact(allow)
	for _, m := range allow {
		w.Header().Add("Allow", m)
	}
	a.writeProblem(w, r, &Problem{
		Status: http.StatusMethodNotAllowed,
		Detail: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.EscapedPath()),
		Extras: map[string]any{"allow": allow},
	}, 0)
}

// adapt turns a HandlerFunc into an http.Handler writing JSON or problems.
func (a *API) adapt(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		a.respond(w, r, status, body, err)
	})
}

func (a *API) respond(w http.ResponseWriter, r *http.Request, status int, body any, err error) {
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if status != 0 && (status < 200 || status > 599) {
		a.writeError(w, r, fmt.Errorf("handler returned status %d", status))
		return
	}
	if status >= 400 {
		a.writeProblem(w, r, &Problem{Status: status}, 0)
		return
	}
	var header http.Header
	if hb, ok := body.(interface{ Headers() http.Header }); ok {
		header = hb.Headers()
	}
	if h, ok := body.(headed); ok {
		body = h.body
	}
	if body == nil || status == http.StatusNoContent || status == http.StatusNotModified {
		copyHeader(w.Header(), header)
		if status == 0 {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
		return
	}
	b, err := encodeBody(body)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("encode response body: %w", err))
		return
	}
	copyHeader(w.Header(), header)
	if status == 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, b)
}

// writeJSON writes the document b with status. The header keys are
// canonical already: they go into the map without http.Header.Set's
// canonicalisation, and both values share one allocation (capped, so that an
// Add to either cannot reach the other).
func writeJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	vals := []string{"application/json", strconv.Itoa(len(b))}
	h["Content-Type"], h["Content-Length"] = vals[0:1:1], vals[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// encodeBody is body as JSON. A json.RawMessage (a Reader's document) is
// written as it is: json.Marshal would validate and compact it again.
func encodeBody(body any) ([]byte, error) {
	if raw, ok := body.(json.RawMessage); ok {
		return raw, nil
	}
	return json.Marshal(body)
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
	}
}

// writeError classifies err and writes it as a problem; the cause is kept for
// the request log.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	c := classify(r.Context(), err)
	if info := infoOf(r); info != nil {
		info.cause = err
		info.retryable = c.retryAfter > 0
	}
	a.writeProblem(w, r, c.problem, c.retryAfter)
}

func (a *API) writeProblem(w http.ResponseWriter, r *http.Request, p *Problem, retryAfter time.Duration) {
	if err := WriteProblem(w, r, p, retryAfter); err != nil {
		a.log.ErrorContext(r.Context(), "encode problem extras", "path", r.URL.Path, "error", err)
	}
}

// WriteProblem writes p as application/problem+json (its instance defaults
// to the request's path), with Retry-After when retryAfter > 0: for handlers
// in front of an API, such as a router, that answer in the same shape. An
// extra that does not marshal is left out rather than breaking the response;
// the error says which.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem, retryAfter time.Duration) error {
	cp := *p
	if cp.Instance == "" {
		cp.Instance = r.URL.EscapedPath()
	}
	b, err := cp.MarshalJSON()
	if err != nil {
		cp.Extras = nil
		b, _ = cp.MarshalJSON()
	}
	h := w.Header()
	copyHeader(h, cp.Header)
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(retryAfter), 10))
	}
	w.WriteHeader(cp.status())
	_, _ = w.Write(b)
	return err
}

// requestInfo travels in the request context from ServeHTTP to the handlers
// (one goroutine) and carries back what the log and metrics need.
type requestInfo struct {
	route     string
	cause     error
	retryable bool
	// names and vars are the matched route's variables; unescaped once
	// they are checked, before the handler runs.
	names     []string
	vars      []string
	unescaped bool
}

type infoKey struct{}

func infoOf(r *http.Request) *requestInfo {
	info, _ := r.Context().Value(infoKey{}).(*requestInfo)
	return info
}

// serveRoute serves r on the matched route rt: its guards, then the check
// of its variables, then its handler.
func (a *API) serveRoute(w http.ResponseWriter, r *http.Request, info *requestInfo, rt *route) {
	for _, g := range a.guards {
		if err := g(r, rt.template); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	// Every route variable is an id, checked once here rather than by each
	// handler.
	for i, raw := range info.vars {
		v, err := pathUnescape(raw)
		if err != nil {
			a.writeError(w, r, BadRequest(fmt.Sprintf("%s: invalid escape: %v", rt.whats[i], err)))
			return
		}
		if err := ValidateID(rt.whats[i], v); err != nil {
			a.writeError(w, r, err)
			return
		}
		info.vars[i] = v
	}
	info.unescaped = true
	rt.h.ServeHTTP(w, r)
}

// pathUnescape is url.PathUnescape, without its work for a segment that
// has nothing escaped.
func pathUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	return url.PathUnescape(s)
}

// served is what ServeHTTP allocates for a request, in one piece.
type served struct {
	rec  recorder
	info requestInfo
	vars [4]string
}

// CountRequest counts a request answered in front of the API (a router that
// forwarded it to another instance, or refused it) in the API's request
// metrics, as the API counts those it answers: route is its route template.
// A request the API answered itself is counted already.
func (a *API) CountRequest(method, route string, status int, d time.Duration) {
	a.requests.observe(method, route, status, d)
}

// ServeHTTP implements http.Handler. A panic in a handler is recovered into a
// 500 problem (if nothing was written yet) and logged with its stack, except
// http.ErrAbortHandler, which is re-raised for net/http to abort the
// response as documented.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.ServeWithContext(r.Context(), w, r)
}

// ServeWithContext is ServeHTTP under ctx in place of r's context (from
// which ctx derives): a handler in front of the API that gives a request a
// deadline hands it over without a copy of the request for the new context.
func (a *API) ServeWithContext(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if !a.serving.Load() {
		a.serving.Store(true)
	}
	start := time.Now()
	sv := &served{rec: recorder{ResponseWriter: w}, info: requestInfo{route: routeUnmatched}}
	info, rec := &sv.info, &sv.rec
	r = r.WithContext(context.WithValue(ctx, infoKey{}, info))
	a.requests.start()
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			info.cause = fmt.Errorf("panic: %v", p)
			a.log.ErrorContext(r.Context(), "handler panicked",
				"method", r.Method, "path", r.URL.Path, "route", info.route,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				a.writeProblem(rec, r, NewProblem(http.StatusInternalServerError, genericDetail), 0)
			}
		}
		status := rec.status
		if !rec.wroteHeader {
			status = http.StatusOK // what net/http sends for a handler that wrote nothing
			if p != nil {
				status = http.StatusInternalServerError
			}
		}
		d := time.Since(start)
		a.requests.done(r.Method, info.route, status, d)
		a.logRequest(r, info, status, d)
		if p != nil && p == http.ErrAbortHandler {
			panic(p)
		}
	}()
	i, vars, methodMismatch := a.routes.Match(r, sv.vars[:0])
	switch {
	case i >= 0:
		rt := &a.handlers[i]
		info.route, info.names, info.vars = rt.template, rt.names, vars
		a.serveRoute(rec, r, info, rt)
	case methodMismatch:
		a.methodNotAllowed(rec, r)
	default:
		a.notFound(rec, r)
	}
}

func (a *API) logRequest(r *http.Request, info *requestInfo, status int, d time.Duration) {
	if status < 500 && !a.log.Enabled(r.Context(), slog.LevelDebug) {
		return // the attributes would be built for nothing
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "route", info.route, "status", status, "duration", d}
	switch {
	case status >= 500 && info.retryable && info.route == "/readyz":
		// a probe's "not yet" is its answer, not a problem: every probe
		// during a start would otherwise warn
		a.log.DebugContext(r.Context(), "not ready", append(attrs, "error", info.cause)...)
	case status >= 500 && info.retryable:
		a.log.WarnContext(r.Context(), "request unavailable", append(attrs, "error", info.cause)...)
	case status >= 500:
		a.log.ErrorContext(r.Context(), "request failed", append(attrs, "error", info.cause)...)
	default:
		a.log.DebugContext(r.Context(), "request", attrs...)
	}
}

// recorder remembers the status written, for the log and the metrics.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
