package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/shop"
)

// shopDB is the shop's SQL database and what runs on it: the payments
// service's rows and the relay that publishes their outbox to Kafka.
type shopDB struct {
	db       *outbox.DB
	payments shop.PaymentStore
	relay    *outbox.PollingRelay
	stop     context.CancelFunc
	done     chan error
}

// openDatabase opens and migrates the shop's database (SQLite in the data
// directory unless --database names another) and starts the outbox relay
// beside the runtime.
func openDatabase(cfg Config, rt *streamfold.Runtime, log *slog.Logger) (*shopDB, error) {
	dsn := cfg.DatabaseURL()
	if !strings.Contains(dsn, "://") {
		if err := os.MkdirAll(filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")), 0o755); err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := outbox.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s := &shopDB{db: db, payments: shop.PaymentStore{DB: db}, done: make(chan error, 1)}
	if err := s.payments.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.relay = &outbox.PollingRelay{
		DB:     db,
		Kafka:  outbox.KafkaOf(rt, "shop-outbox-relay"),
		Logger: log.With("component", "outbox-relay"),
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go func() { s.done <- s.relay.Run(runCtx) }()
	log.Info("database", "dialect", db.Dialect, "url", redactDSN(dsn), "outbox relay", "polling")
	return s, nil
}

// close stops the relay (rows it did not publish wait for the next start)
// and closes the database.
func (s *shopDB) close() error {
	s.stop()
	return errors.Join(<-s.done, s.db.Close())
}

// redactDSN hides a URL's password for the log.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if colon := strings.Index(dsn[i+3:at], ":"); colon >= 0 {
				return dsn[:i+3+colon+1] + "xxxxx" + dsn[at:]
			}
		}
	}
	return dsn
}
