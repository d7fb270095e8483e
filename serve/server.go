package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/tables"
)

// Runtime is what a Server needs of a *streamfold.Runtime: its lifecycle,
// where keys live, its health and its groups.
type Runtime interface {
	Run(ctx context.Context) error
	Place(table, key string) (streamfold.Placement, error)
	Self() streamfold.Member
	Membership() []streamfold.GroupState
	RefreshMembership(ctx context.Context) error
	Recovered() bool
	Progress() map[string][]tables.Progress
	Stats() map[string]processors.Snapshot
	Lag(ctx context.Context) ([]streamfold.PartitionLag, error)
	Parked(group string) ([]streamfold.ParkedRecord, error)
	GroupNames() []string
	Brokers() []string
	Security() streamfold.Security
	Topics() []streamfold.TopicInfo
}

var _ Runtime = (*streamfold.Runtime)(nil)

// Options configure a Server. Listener is required.
type Options struct {
	// Listener is where the Server serves; Run closes it. Its address is
	// logged as "http listening", and a loopback listener serves the
	// operator endpoints without an admin token.
	Listener net.Listener
	// Logger logs requests, routing and lifecycle; nil discards.
	Logger *slog.Logger
	// Name names the application in bearer realms ("<name>-admin",
	// "<name>-write") and Kafka client ids; default "streamfold".
	Name string
	// AdminToken guards the operator endpoints (see OperatorEndpoints and
	// AdminOnly): requests must send Authorization: Bearer <token>. Without
	// one they are served only on a loopback listener and answer 403
	// elsewhere.
	AdminToken string
	// AdminTokenHint says how an operator gives the admin token, e.g.
	// "--admin-token (APP_ADMIN_TOKEN)"; the 403 of a disabled operator
	// endpoint names it.
	AdminTokenHint string
	// WriteToken, when set, guards every route but GET, HEAD and OPTIONS.
	WriteToken string
	// CursorKey authenticates list cursors (queryapi.WithCursorKey); empty
	// is a random key per process.
	CursorKey []byte
	// TracerProvider, when set, serves every request in an OpenTelemetry
	// server span, a child of the request's W3C traceparent header, named
	// by its route ("POST /carts/{id}/commands"); records the handlers emit
	// carry its context (streamfold.Config.TracerProvider). Open takes the
	// runtime config's when this is nil. nil traces nothing.
	TracerProvider trace.TracerProvider
	// Info is the configuration the dashboard (GET /ui) shows as the
	// instance's: keep secrets out of it. Package cli gives every flag of
	// the run command (cli.Config.Settings).
	Info map[string]any
}

// Server serves a runtime's resources over HTTP and routes each key to the
// instance that owns it.
//
// Concurrency: register every route (Resource, Get, Handle,
// OperatorEndpoints) from one goroutine before Run; once running, the
// Server is safe for any number of concurrent requests.
type Server struct {
	rt       Runtime
	api      *queryapi.API
	ln       net.Listener
	log      *slog.Logger
	opts     Options
	handler  http.Handler
	progress io.Writer           // where Run draws restore progress; nil for nowhere
	keyed    *queryapi.Routes    // the templates of key routes, matched as the API matches them
	routes   []keyRoute          // by index in keyed
	operator map[string]bool     // route templates only operators may call
	owned    *streamfold.Runtime // opened by Open: Run closes it
	lag      *lagCollector       // of /metrics; its timeout is the tests'

	// What the dashboard shows (ui.go).
	info      map[string]any
	resources []uiResource
	lookups   []uiLookup
}

// New returns a Server of rt on opts.Listener with the built-in routes
// (/healthz, /readyz and /metrics from rt, /membership when rt advertises a
// query address, the dashboard at /ui) and the access rules of opts.
// /metrics serves a registry of the Server's own (see the package
// documentation for its series).
func New(rt Runtime, opts Options) (*Server, error) {
	if rt == nil {
		return nil, errors.New("serve: no runtime")
	}
	if opts.Listener == nil {
		return nil, errors.New("serve: no listener")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Name == "" {
		opts.Name = "streamfold"
	}
	s := &Server{
		rt:       rt,
		ln:       opts.Listener,
		log:      opts.Logger,
		opts:     opts,
		keyed:    queryapi.NewRoutes(),
		operator: map[string]bool{},
		info:     maps.Clone(opts.Info),
	}
	reg, lag := newRegistry(rt, opts.Logger)
	s.lag = lag
	var apiOpts []queryapi.Option
	if opts.TracerProvider != nil {
		apiOpts = append(apiOpts, queryapi.WithGuard(nameSpan)) // first: a refused request is named too
	}
	apiOpts = append(apiOpts,
		queryapi.WithLogger(opts.Logger),
		queryapi.WithReadiness(readiness{rt}),
		queryapi.WithRegistry(reg),
		queryapi.WithGuard(access{
			name:     opts.Name,
			admin:    opts.AdminToken,
			hint:     opts.AdminTokenHint,
			write:    opts.WriteToken,
			loopback: isLoopback(opts.Listener.Addr()),
			operator: s.operator,
		}.guard),
	)
	if len(opts.CursorKey) > 0 {
		apiOpts = append(apiOpts, queryapi.WithCursorKey(opts.CursorKey))
	}
	s.api = queryapi.New(apiOpts...)
	s.handler = uiHandler{next: newRouter(s, rt.Self().Query), name: opts.Name}
	s.uiEndpoints()
	if opts.TracerProvider != nil {
		s.handler = tracedHandler{tracer: opts.TracerProvider.Tracer(instrumentation), next: s.handler}
	}
	// Tests and scripts read the address from the end of this line.
	s.log.Info("http listening", "addr", s.ln.Addr().String())
	return s, nil
}

// Addr is the address the Server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Logger is the server's logger (Options.Logger), for what an application
// runs beside its routes.
func (s *Server) Logger() *slog.Logger { return s.log }

// Reader is a queryapi.Reader over one table: a *views.View is one.
type Reader interface {
	queryapi.Reader
	// Name is the table's name.
	Name() string
}

// Resource serves GET /{name}/{id} from r, at the owner of id's partition in
// r's table, and GET /{name} from l (here: a listing spans partitions).
// Either may be nil to leave its route out. It panics as
// queryapi.API.Resource does.
func (s *Server) Resource(name string, r Reader, l queryapi.Lister) {
	s.noteResource(name, r, l)
	if r == nil {
		s.api.Resource(name, nil, l)
		return
	}
	s.api.Resource(name, r, l)
	s.keyRoute(http.MethodGet, "/"+name+"/{id}", []RouteOption{KeyFromPath(r.Name(), "id")})
}

// Get serves GET path, a template with an {id} variable such as
// "/customers/{id}/carts", from r's value of id, at the owner of id's
// partition in r's table.
func (s *Server) Get(path string, r Reader) {
	s.Handle(http.MethodGet, path, func(req *http.Request) (int, any, error) {
		doc, err := r.GetJSON(req.Context(), queryapi.Vars(req)["id"])
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, doc, nil
	}, KeyFromPath(r.Name(), "id"))
}

// Handle serves method requests on path (a gorilla/mux template, as
// queryapi.API.Handle) with h. Without options it is served by whichever
// instance receives it; KeyFromPath or KeyFromBody send it to the owner of
// its key, OrLocal serves it here when no owner can be reached, AdminOnly
// puts it behind the admin token. It panics as queryapi.API.Handle does, and
// on a KeyFromPath variable that path does not have.
func (s *Server) Handle(method, path string, h queryapi.HandlerFunc, opts ...RouteOption) {
	s.api.Handle(method, path, h)
	s.keyRoute(method, path, opts)
}

func (s *Server) keyRoute(method, path string, opts []RouteOption) {
	kr := keyRoute{template: path}
	for _, o := range opts {
		o(&kr)
	}
	if kr.admin {
		s.operator[path] = true
	}
	s.noteLookup(method, path, kr)
	if kr.table == "" {
		return
	}
	i, err := s.keyed.Add(method, path)
	kr.varIndex = -1
	if err == nil {
		kr.varIndex = slices.Index(s.keyed.Names(i), kr.variable)
	}
	if !kr.bodyKey && kr.varIndex < 0 {
		// A programming error, as queryapi treats a malformed route.
		panic(fmt.Sprintf("serve: route %s %s has no variable {%s} to find its key in", method, path, kr.variable))
	}
	s.routes = append(s.routes, kr)
}

// RouteOption says how a route registered with Handle is served.
type RouteOption func(*keyRoute)

// KeyFromPath routes requests to the owner of the partition of table that
// holds the path variable's (unescaped) value.
func KeyFromPath(table, variable string) RouteOption {
	return func(kr *keyRoute) { kr.table, kr.variable, kr.bodyKey = table, variable, false }
}

// KeyFromBody routes requests to the owner of the partition of table that
// holds the "id" of the JSON body; a body without one (a new id is made by
// the handler, or the handler rejects the body) is served here.
func KeyFromBody(table string) RouteOption {
	return func(kr *keyRoute) { kr.table, kr.variable, kr.bodyKey = table, "", true }
}

// OrLocal serves a keyed route here when no owner can be reached: for a
// handler that copes without the owner's state, so that a write stays
// available through a rebalance.
func OrLocal() RouteOption { return func(kr *keyRoute) { kr.orLocal = true } }

// WaitsFor marks a keyed route as a long poll whose handler waits up to the
// duration its query parameter param names (at most max): its time budget,
// here and when forwarded to the key's owner, is that wait plus the usual
// 10 s, instead of the usual alone.
func WaitsFor(param string, max time.Duration) RouteOption {
	return func(kr *keyRoute) { kr.waitParam, kr.waitMax = param, max }
}

// AdminOnly puts a route behind the admin token, as the operator endpoints.
func AdminOnly() RouteOption { return func(kr *keyRoute) { kr.admin = true } }

// ShowRestore has Run draw the tables' restore progress on w, a terminal,
// as one line redrawn in place until every table is restored. Call it
// before Run.
func (s *Server) ShowRestore(w io.Writer) { s.progress = w }

// ServeHTTP serves r: routed to its key's owner, or here.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Run processes and serves until ctx ends or either fails, and returns once
// both have stopped. The processors outlive the HTTP server: requests in
// flight at the stop (a command waiting for its reply) finish while the
// groups still process. A processor that fails stops the HTTP server at
// once. Run closes the listener; closing the runtime is the caller's, after
// Run, unless Open opened it.
func (s *Server) Run(ctx context.Context) (err error) {
	if s.owned != nil {
		defer func() { err = errors.Join(err, s.owned.Close()) }()
	}
	rtCtx, stopRT := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRT()
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	var eg errgroup.Group
	eg.Go(func() error {
		defer stopHTTP()
		return s.rt.Run(rtCtx)
	})
	eg.Go(func() error {
		defer stopRT()
		return queryapi.ServeListener(httpCtx, s.ln, s, s.log)
	})
	if s.progress != nil {
		eg.Go(func() error {
			restoreBar(httpCtx, s.progress, s.rt.Progress, s.rt.Recovered)
			return nil
		})
	}
	if err := eg.Wait(); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
