package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/shop"
)

// shopDB is the shop's SQL database and what runs on it.
type shopDB struct {
	db       *outbox.DB
	payments shop.PaymentStore
}

// openDatabase opens and migrates the shop's database: SQLite in the data
// directory unless --database names another.
func openDatabase(cfg Config) (*shopDB, error) {
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
	s := &shopDB{db: db, payments: shop.PaymentStore{DB: db}}
	if err := s.payments.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *shopDB) close() error { return s.db.Close() }
