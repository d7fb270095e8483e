package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/shop"
)

// app is one running shop: maybe a broker, the runtime, the HTTP listener.
type app struct {
	cfg       Config
	log       *slog.Logger
	broker    *embedded.Broker // nil with --brokers
	rt        *streamfold.Runtime
	ln        net.Listener
	handler   http.Handler
	closeHTTP func() error
	progress  io.Writer // where the restore progress bar goes; nil for none
	brokers   []string
	advertise string // the query address advertised to the groups
}

// start brings up the broker (when embedded), creates the topics, opens the
// stores and binds the HTTP listener; Run then processes and serves.
func start(ctx context.Context, cfg Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, brokers: cfg.Brokers}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if cfg.Embedded() {
		a.broker, err = embedded.Start(embedded.Config{
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
		a.brokers = a.broker.Addrs()
		log.Info("embedded broker listening", "addrs", a.brokers, "dir", cfg.KafkaDir())
	}
	// Listen first: the address other instances forward queries to is
	// derived from the listener and advertised to the groups at Open.
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	advertise := ""
	if !cfg.NoQuery {
		advertise = advertiseAddr(a.ln.Addr(), cfg.AdvertiseHTTP)
	}
	sec, err := cfg.Kafka.security()
	if err != nil {
		return nil, err
	}
	policy := processors.DefaultPolicy()
	policy.MaxWait = cfg.MaxWait
	policy.DedupHorizon = cfg.DedupHorizon
	topo := shop.Topology(cfg.Partitions, log, shop.WithPolicy(policy))
	a.rt, err = streamfold.Open(ctx, topo, streamfold.Config{
		Brokers:        a.brokers,
		StateDir:       cfg.StateDir(),
		Replication:    cfg.Replication,
		ClientID:       "shop",
		Logger:         log,
		SessionTimeout: cfg.SessionTimeout,
		Groups:         cfg.Groups,
		Replicas:       !cfg.NoQuery,
		Standby:        cfg.Standby,
		Advertise:      advertise,
		Security:       sec,
		StoreMemory:    cfg.StoreMemoryMiB << 20,
	})
	if err != nil {
		return nil, err
	}
	if cfg.NoQuery {
		a.handler = queryapi.New(queryapi.WithLogger(log), queryapi.WithReadiness(readiness{a.rt}), queryapi.WithMetrics(metrics{a.rt}))
	} else {
		a.handler, a.closeHTTP, err = newHTTP(a.rt, log, cfg, isLoopback(a.ln.Addr()))
		if err != nil {
			return nil, err
		}
	}
	a.advertise = advertise
	log.Info("roles", "groups", groupsAttr(cfg.Groups), "query", !cfg.NoQuery, "standby", cfg.Standby, "advertised", advertise)
	// Tests and scripts read the address from the end of this line.
	log.Info("http listening", "addr", a.ln.Addr().String())
	return a, nil
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

// advertiseAddr is the address other instances forward queries to: the
// configured one, else the listener's, with an unspecified host (":8080")
// replaced by this machine's first non-loopback address — a container's or
// pod's address, reachable by its peers.
func advertiseAddr(ln net.Addr, configured string) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return ln.String()
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return ln.String()
	}
	return net.JoinHostPort(firstAddress(), port)
}

// firstAddress is the first IPv4 address of an interface that is up and not
// a loopback, or 127.0.0.1.
func firstAddress() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// isLoopback reports whether a listener accepts only local connections.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Advertised is the query address this instance advertises; empty with --no-query.
func (a *app) Advertised() string { return a.advertise }

// HTTPAddr is the address the API listens on.
func (a *app) HTTPAddr() string { return a.ln.Addr().String() }

// Run processes and serves until ctx ends, then shuts down in order: HTTP
// (in-flight requests finish), processors (flush, commit), stores, broker (its
// log flushed to disk).
func (a *app) Run(ctx context.Context) error {
	// The processors outlive the HTTP server: requests in flight at the
	// stop (a command waiting for its reply) finish while the groups still
	// process. A processor that fails stops the HTTP server at once.
	rtCtx, stopRT := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRT()
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	var eg errgroup.Group
	eg.Go(func() error {
		defer stopHTTP()
		return a.rt.Run(rtCtx)
	})
	eg.Go(func() error {
		defer stopRT()
		return queryapi.ServeListener(httpCtx, a.ln, a.handler, a.log)
	})
	if a.progress != nil {
		eg.Go(func() error {
			restoreBar(httpCtx, a.progress, a.rt.Progress, a.rt.Recovered)
			return nil
		})
	}
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if cerr := a.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		a.log.Error("stopped with an error", "err", err)
		return err
	}
	a.log.Info("stopped cleanly")
	return nil
}

func (a *app) close() error {
	var errs []error
	if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.closeHTTP != nil {
		errs = append(errs, a.closeHTTP())
		a.closeHTTP = nil
	}
	if a.rt != nil {
		errs = append(errs, a.rt.Close())
		a.rt = nil
	}
	if a.broker != nil {
		errs = append(errs, a.broker.Close())
		a.broker = nil
	}
	return errors.Join(errs...)
}
