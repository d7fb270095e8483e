// Package queryapi is the HTTP face of a streamfold service: it serves
// resources read from local views and command handlers as JSON, and answers
// every error as an RFC 9457 problem (application/problem+json).
//
// It knows no domain and imports no other streamfold package: it defines the
// small interfaces it consumes (Reader, Lister, Readiness) and
// cmd/ wires views and command handlers onto an API:
//
//	api := queryapi.New(queryapi.WithLogger(log), queryapi.WithReadiness(views))
//	api.Resource("customers", customers, customers)   // GET /customers/{id}, GET /customers
//	api.Handle(http.MethodPost, "/carts/{id}/commands", submit)
//	err := queryapi.Serve(ctx, ":8080", api, log)     // until ctx is done, then graceful shutdown
//
// # Errors
//
// Readers, listers and handlers return plain errors. Implementations live in
// other packages, so errors are classified by the methods they have, anywhere
// in their wrap tree:
//
//   - *Problem: its Status, as given.
//   - context.DeadlineExceeded: 504.
//   - NotFound() bool (true): 404.
//   - RetryAfter() time.Duration: 503 with a Retry-After header in whole
//     seconds (rounded up, at least 1); Progress() any, if present, is added
//     to the body as "progress".
//   - Conflict() bool (true): 409.
//   - anything else: 500 with a generic detail; the cause is logged, never
//     sent.
//
// For 404, 409 and 503 the error's text is the problem's detail, and
// ProblemExtras() map[string]any, if present, adds members to the body.
// A request whose client went away (context.Canceled with the request context
// done) is recorded as 499.
//
// # Built-in routes
//
// GET /healthz answers {"status":"ok"}. GET /readyz answers
// {"ready":true,"details":...} or, while the Readiness says no, a 503 problem
// with Retry-After and the members "ready": false and "details". GET /metrics
// serves a Prometheus registry (promhttp): the one given to WithRegistry,
// with the application's collectors, or one of the API's own. On it the API
// registers its request metrics: streamfold_http_requests_total and the
// streamfold_http_request_duration_seconds histogram, labelled by method,
// route template ("unmatched" for requests no route matched) and status,
// and streamfold_http_requests_in_flight. Unknown routes answer a 404 problem, a known route with the
// wrong method a 405 problem with Allow. A panicking handler answers a 500
// problem; the process keeps running.
//
// Every success is application/json, every error application/problem+json
// (the /metrics text format is the one exception).
//
// # Input rules and access
//
// Every route variable is an id and is checked once, after the guards and
// before the handler, by ValidateID: 1 to MaxIDBytes (256) bytes of UTF-8
// without control characters or line separators, and not "." or "..";
// anything else is a 400 problem. Handlers check ids they take from bodies
// and headers with the same function. A request body is at most
// MaxBodyBytes (1 MiB; 413 problem), the one limit for the API and any
// proxy in front of it (ErrBodyTooLarge).
//
// List cursors are signed (HMAC-SHA256, a random key per API unless
// WithCursorKey gives one): a Lister only ever sees cursors it produced, and
// a forged or garbled one is a 400 problem.
//
// WithGuard adds checks that run for every matched route before its
// handler, with the route's template, e.g. RequireBearer for operator
// routes (401 with a WWW-Authenticate challenge).
//
// # Routes
//
// Paths are gorilla/mux templates ("/carts/{id}/commands"), matched as a
// mux.Router matches them: against the escaped path, never cleaned, the first
// route whose path and method match winning; Vars returns the variables
// unescaped. Routes is that matching on its own, for a proxy in front of an
// API (package serve's key routing): when every template is plain (whole
// segments, default patterns) it compares strings instead of running mux's
// regexps, the hot path of a query.
//
// # Concurrency
//
// Build the API (New, Resource, Handle) in one goroutine before serving;
// afterwards ServeHTTP may be called concurrently without limit, and so the
// Reader, Lister, Readiness and collectors given to it must be safe for
// concurrent use.
package queryapi
