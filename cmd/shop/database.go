package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/shop"
)

// shopDB is the shop's SQL database and what runs on it: the payments
// service's rows, the relay that publishes their outbox to Kafka, and the
// sinks that keep the SQL read models.
type shopDB struct {
	db        *outbox.DB
	payments  shop.PaymentStore
	relay     func(context.Context) error // the outbox relay's Run
	customers *outbox.Sink[shop.Customer]
	orders    *outbox.Sink[shop.EnrichedOrder]
	stop      context.CancelFunc
	done      chan error
	running   int
}

// openDatabase opens and migrates the shop's database (SQLite in the data
// directory unless --database names another) and starts the outbox relay
// beside the runtime.
func openDatabase(cfg Config, rt *streamfold.Runtime, log *slog.Logger) (*shopDB, error) {
	dsn := cfg.DatabaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := outbox.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s := &shopDB{db: db, payments: shop.PaymentStore{DB: db}}
	if err := errors.Join(s.payments.Migrate(ctx), shop.MigrateReadModels(ctx, db)); err != nil {
		db.Close()
		return nil, err
	}
	switch cfg.OutboxRelay {
	case "log":
		// The writer inserts and deletes each row in one transaction: only
		// the WAL keeps it, and the relay reads it from there.
		s.payments.Outbox.Transient = true
		lr := &outbox.LogRelay{URL: dsn, Kafka: outbox.KafkaOf(rt, "shop-outbox-relay"), DeadLetterTopic: shop.OutboxDeadLetters.Name,
			Logger: log.With("component", "outbox-relay")}
		// the slot must exist before the first payment commits
		if err := lr.Prepare(ctx); err != nil {
			db.Close()
			return nil, err
		}
		s.relay = lr.Run
	default:
		s.relay = (&outbox.PollingRelay{DB: db, Kafka: outbox.KafkaOf(rt, "shop-outbox-relay"),
			Logger: log.With("component", "outbox-relay")}).Run
	}
	s.customers = shop.CustomersSink(db, outbox.KafkaOf(rt, "shop-"+shop.CustomersSinkName))
	s.customers.Logger = log.With("component", "sink", "sink", shop.CustomersSinkName)
	s.orders = shop.OrdersSink(db, outbox.KafkaOf(rt, "shop-"+shop.OrdersSinkName))
	s.orders.Logger = log.With("component", "sink", "sink", shop.OrdersSinkName)
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	runs := []func(context.Context) error{s.relay, s.customers.Run, s.orders.Run}
	s.done, s.running = make(chan error, len(runs)), len(runs)
	for _, run := range runs {
		go func() {
			err := run(runCtx)
			if err != nil {
				log.Error("database service stopped", "err", err)
			}
			s.done <- err
		}()
	}
	log.Info("database", "dialect", db.Dialect, "url", outbox.Redact(dsn), "outbox relay", cfg.OutboxRelay,
		"read models", shop.CustomersSinkName+","+shop.OrdersSinkName)
	return s, nil
}

// close stops the relay (rows it did not publish wait for the next start)
// and the sinks (they resume from the offsets in the database), and closes
// the database.
func (s *shopDB) close() error {
	s.stop()
	var errs []error
	for range s.running {
		errs = append(errs, <-s.done)
	}
	return errors.Join(append(errs, s.db.Close())...)
}
