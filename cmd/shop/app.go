package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	policy := processors.DefaultPolicy()
	policy.MaxWait = cfg.MaxWait
	topo := shop.Topology(cfg.Partitions, log, shop.WithPolicy(policy))
	a.rt, err = streamfold.Open(ctx, topo, streamfold.Config{
		Brokers:        a.brokers,
		StateDir:       cfg.StateDir(),
		Replication:    cfg.Replication,
		ClientID:       "shop",
		Logger:         log,
		SessionTimeout: cfg.SessionTimeout,
	})
	if err != nil {
		return nil, err
	}
	a.handler, a.closeHTTP, err = newHTTP(a.rt, log, cfg.ReplyTimeout)
	if err != nil {
		return nil, err
	}
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	log.Info("http listening", "addr", a.ln.Addr().String())
	return a, nil
}

// HTTPAddr is the address the API listens on.
func (a *app) HTTPAddr() string { return a.ln.Addr().String() }

// Run processes and serves until ctx ends, then shuts down in order: HTTP,
// processors (flush, commit), stores, broker (its log flushed to disk).
func (a *app) Run(ctx context.Context) error {
	eg, gctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return a.rt.Run(gctx) })
	eg.Go(func() error { return queryapi.ServeListener(gctx, a.ln, a.handler, a.log) })
	if a.progress != nil {
		eg.Go(func() error {
			restoreBar(gctx, a.progress, a.rt.Progress, a.rt.Recovered)
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
