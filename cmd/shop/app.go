package main

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
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
)

// app is one running shop: maybe a broker, the runtime, the HTTP server.
type app struct {
	cfg       Config
	log       *slog.Logger
	broker    *embedded.Broker // nil with --brokers
	rt        *streamfold.Runtime
	ln        net.Listener
	srv       *serve.Server
	closeHTTP func() error
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
	var advertise string
	a.ln, advertise, err = serve.Listen(cfg.HTTPAddr, cfg.AdvertiseHTTP)
	if err != nil {
		return nil, err
	}
	if !cfg.NoQuery {
		a.advertise = advertise
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
		Advertise:      a.advertise,
		Security:       sec,
		StoreMemory:    cfg.StoreMemoryMiB << 20,
	})
	if err != nil {
		return nil, err
	}
	log.Info("roles", "groups", groupsAttr(cfg.Groups), "query", !cfg.NoQuery, "standby", cfg.Standby, "advertised", a.advertise)
	a.srv, a.closeHTTP, err = newServer(a.rt, a.ln, log, cfg)
	if err != nil {
		return nil, err
	}
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

// Advertised is the query address this instance advertises; empty with --no-query.
func (a *app) Advertised() string { return a.advertise }

// HTTPAddr is the address the API listens on.
func (a *app) HTTPAddr() string { return a.ln.Addr().String() }

// Run processes and serves until ctx ends, then shuts down in order: HTTP
// (in-flight requests finish), processors (flush, commit), stores, broker (its
// log flushed to disk).
func (a *app) Run(ctx context.Context) error {
	err := a.srv.Run(ctx)
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
