// Command shop runs the streamfold reference shop: an embedded Kafka-protocol
// broker (or a real cluster with --brokers), the shop's processor groups and
// its HTTP API.
//
//	shop [run] [flags]          run everything (the default)
//	shop topology [--format]    print the topology: text, mermaid or json
//	shop dlq list|show|redrive  read and re-drive a group's dead letters
//
// The command line is package cli's; the shop brings its topology, its
// resources and --reply-timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/cli"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(shopMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// shopMain runs the shop's command line and returns its exit code. Package
// cli parses the framework's flags; the shop's own land in cfg.
func shopMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg Config
	return cli.Main(ctx, shopApp(&cfg), args, stdout, stderr)
}

// Config is the shop's run configuration: the framework's, and how long a
// cart command waits for its reply.
type Config struct {
	cli.Config
	ReplyTimeout time.Duration
	// FraudSessionGap is the inactivity gap of the fraud check's sessions.
	FraudSessionGap time.Duration
	// Database is the shop's SQL database (payments, the outbox, the read
	// models): a postgres:// URL, or a SQLite file; empty is
	// <data-dir>/shop.db.
	Database string
	// OutboxRelay is how the payments outbox reaches Kafka: "poll" (any
	// database) or "log" (PostgreSQL's WAL, with the table kept empty).
	OutboxRelay string
}

// DatabaseURL is the database to open: --database, or SQLite in the data directory.
func (c Config) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "shop.db")
}

// Validate reports every problem at once.
func (c Config) Validate() error { return errors.Join(c.Config.Validate(), c.validateShop()) }

func (c Config) validateShop() error {
	var errs []error
	if c.ReplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reply-timeout must be positive, got %s", c.ReplyTimeout))
	}
	switch c.OutboxRelay {
	case "poll":
	case "log":
		if !strings.HasPrefix(c.DatabaseURL(), "postgres://") && !strings.HasPrefix(c.DatabaseURL(), "postgresql://") {
			errs = append(errs, errors.New("--outbox-relay log tails PostgreSQL's log: it needs --database postgres://…"))
		}
	default:
		errs = append(errs, fmt.Errorf("--outbox-relay is poll or log, got %q", c.OutboxRelay))
	}
	if c.FraudSessionGap <= 0 {
		errs = append(errs, fmt.Errorf("--fraud-session-gap must be positive, got %s", c.FraudSessionGap))
	}
	return errors.Join(errs...)
}

// shopApp is the shop as package cli runs it; its own flags land in c.
func shopApp(c *Config) cli.App {
	return cli.App{
		Name:      "shop",
		EnvPrefix: "SHOP",
		Topology: func(partitions int, log *slog.Logger, policy processors.Policy) *streamfold.Topology {
			return shop.Topology(partitions, log, shop.WithPolicy(policy), shop.WithFraudSessionGap(c.FraudSessionGap))
		},
		Flags: func(fs *flag.FlagSet, env cli.Env) {
			fs.DurationVar(&c.ReplyTimeout, "reply-timeout", env.Duration("reply-timeout", 5*time.Second),
				"how long POST /carts/{id}/commands waits for the reply before 504 (SHOP_REPLY_TIMEOUT)")
			fs.DurationVar(&c.FraudSessionGap, "fraud-session-gap", env.Duration("fraud-session-gap", shop.FraudSessionGap),
				"the fraud check sums a customer's orders in sessions that end after this long without an order (SHOP_FRAUD_SESSION_GAP)")
			fs.StringVar(&c.Database, "database", env.String("database", ""),
				"the shop's SQL database for payments, the outbox and read models: postgres://... or a SQLite file (default <data-dir>/shop.db) (SHOP_DATABASE)")
			fs.StringVar(&c.OutboxRelay, "outbox-relay", env.String("outbox-relay", "poll"),
				"how the payments outbox reaches Kafka: poll (any database) or log (PostgreSQL's WAL through a logical replication slot; the table stays empty) (SHOP_OUTBOX_RELAY)")
		},
		// the database's default lives in --data-dir
		Parsed:   func(cc cli.Config) { c.Config = cc },
		Validate: func() error { return c.validateShop() },
		Routes: func(srv *serve.Server, rt *streamfold.Runtime) (func() error, error) {
			return routes(srv, rt, *c)
		},
	}
}
