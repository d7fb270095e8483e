package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/serve"
)

// Running is one started service: maybe an embedded broker, the runtime,
// the HTTP server.
//
// Concurrency: call Run once, from one goroutine; Close only when Run is
// never called (Run closes on its own). The getters are safe at any time
// between Start and Close.
type Running struct {
	app       App
	log       *slog.Logger
	broker    *embedded.Broker // nil with --brokers
	rt        *streamfold.Runtime
	ln        net.Listener
	srv       *serve.Server
	closeHTTP func() error
	brokers   []string
	advertise string    // the query address advertised to the groups
	started   time.Time // when Start began, for "ready in"
}

// Start brings up the broker (when cfg.Embedded), creates the topics, opens
// the stores, binds the HTTP listener and registers app's routes; Run then
// processes and serves. cfg is used as given: ParseRunFlags validates.
func Start(ctx context.Context, app App, cfg Config, log *slog.Logger) (_ *Running, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Running{app: app, log: log, brokers: cfg.Brokers, started: time.Now()}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if cfg.Embedded() {
		r.broker, err = embedded.Start(embedded.Config{
			Dir:        cfg.KafkaDir(),
			Listen:     cfg.KafkaListen,
			Partitions: cfg.Partitions,
			// Let members ask for short sessions (Kafka's own floor is 6 s).
			MinSessionTimeout: time.Second,
			Logger:            log.With("component", "broker"),
		})
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		r.brokers = r.broker.Addrs()
		log.Info("embedded broker listening", "addrs", r.brokers, "dir", cfg.KafkaDir())
	}
	// Listen first: the address other instances forward queries to is
	// derived from the listener and advertised to the groups at Open.
	var advertise string
	r.ln, advertise, err = serve.Listen(cfg.HTTPAddr, cfg.AdvertiseHTTP)
	if err != nil {
		return nil, err
	}
	if !cfg.NoQuery {
		r.advertise = advertise
	}
	sec, err := cfg.Kafka.Security()
	if err != nil {
		return nil, err
	}
	r.rt, err = streamfold.Open(ctx, app.Topology(cfg.Partitions, log, cfg.policy()), streamfold.Config{
		Brokers:        r.brokers,
		StateDir:       cfg.StateDir(),
		Replication:    cfg.Replication,
		ClientID:       app.Name,
		Logger:         log,
		SessionTimeout: cfg.SessionTimeout,
		Groups:         cfg.Groups,
		Replicas:       !cfg.NoQuery,
		Standby:        cfg.Standby,
		Advertise:      r.advertise,
		Security:       sec,
		StoreMemory:    cfg.StoreMemoryMiB << 20,
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	log.Info("roles", "groups", groupsAttr(cfg.Groups), "query", !cfg.NoQuery, "standby", cfg.Standby, "advertised", r.advertise)
	if err := r.serve(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// serve creates the server: with the query API, the application's routes
// and the operator endpoints; with --no-query only /healthz, /readyz and
// /metrics.
func (r *Running) serve(cfg Config) (err error) {
	opts := serve.Options{Listener: r.ln, Logger: r.log, Name: r.app.Name,
		AdminToken: cfg.AdminToken, AdminTokenHint: fmt.Sprintf("--admin-token (%s)", r.app.env().Name("admin-token")), WriteToken: cfg.WriteToken,
		TracerProvider: cfg.TracerProvider, Info: cfg.Settings}
	if !cfg.NoQuery {
		opts.CursorKey = []byte(cfg.CursorKey)
	}
	if r.srv, err = serve.New(r.rt, opts); err != nil || cfg.NoQuery {
		return err
	}
	if r.app.Routes != nil {
		if r.closeHTTP, err = r.app.Routes(r.srv, r.rt); err != nil {
			return err
		}
	}
	r.srv.OperatorEndpoints()
	return nil
}

func groupsAttr(groups []string) string {
	switch {
	case groups == nil:
		return "all"
	case len(groups) == 0:
		return "none"
	}
	return strings.Join(groups, ",")
}

// Runtime is the running topology.
func (r *Running) Runtime() *streamfold.Runtime { return r.rt }

// Server is the HTTP server, for a test's own listener or a restore bar.
func (r *Running) Server() *serve.Server { return r.srv }

// Brokers are the bootstrap servers: --brokers, or the embedded broker's.
func (r *Running) Brokers() []string { return r.brokers }

// Advertised is the query address this instance advertises; empty with --no-query.
func (r *Running) Advertised() string { return r.advertise }

// HTTPAddr is the address the API listens on.
func (r *Running) HTTPAddr() string { return r.ln.Addr().String() }

// Run processes and serves until ctx ends, then shuts down in order: HTTP
// (in-flight requests finish), processors (flush, commit), stores, broker (its
// log flushed to disk).
func (r *Running) Run(ctx context.Context) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); r.sayReady(watchCtx, r.rt, r.HTTPAddr()) }()
	err := r.srv.Run(ctx)
	stopWatch()
	<-watched
	if cerr := r.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		r.log.Error("stopped with an error", "err", err)
		return err
	}
	r.log.Info("stopped cleanly")
	return nil
}

// readyPoll is how often Run looks whether every table is restored.
const readyPoll = 100 * time.Millisecond

// sayReady logs one line once every table is restored and caught up: where
// the service answers and how long the start took.
func (r *Running) sayReady(ctx context.Context, rt *streamfold.Runtime, addr string) {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for !rt.Recovered() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	r.log.Info(fmt.Sprintf("ready in %.1f s", time.Since(r.started).Seconds()), "http", "http://"+addr, "kafka", strings.Join(r.brokers, ","))
}

// Close releases what Start acquired, in Run's order; a second Close does
// nothing.
func (r *Running) Close() error {
	var errs []error
	if r.ln != nil {
		_ = r.ln.Close()
	}
	if r.closeHTTP != nil {
		errs = append(errs, r.closeHTTP())
		r.closeHTTP = nil
	}
	if r.rt != nil {
		errs = append(errs, r.rt.Close())
		r.rt = nil
	}
	if r.broker != nil {
		errs = append(errs, r.broker.Close())
		r.broker = nil
	}
	return errors.Join(errs...)
}
