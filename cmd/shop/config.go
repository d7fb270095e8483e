package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the shop's configuration, filled from flags and SHOP_* environment
// variables (flags win). Only this package reads the environment.
type Config struct {
	DataDir     string
	HTTPAddr    string
	KafkaListen string
	Brokers     []string
	Partitions  int
	Replication int
	LogLevel    slog.Level
	// SessionTimeout is the consumer-group session timeout (how fast a dead
	// member's partitions move); ReplyTimeout how long a command waits for its reply.
	SessionTimeout time.Duration
	ReplyTimeout   time.Duration
	// MaxWait is how long a record parked for a missing parent waits before
	// it is dead-lettered.
	MaxWait time.Duration
}

// Embedded reports whether the shop runs its own broker (no --brokers given).
func (c Config) Embedded() bool { return len(c.Brokers) == 0 }

// KafkaDir is where the embedded broker keeps its log.
func (c Config) KafkaDir() string { return filepath.Join(c.DataDir, "kafka") }

// StateDir is where the local table stores live, never mixed with the broker's log.
func (c Config) StateDir() string { return filepath.Join(c.DataDir, "state") }

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("--partitions must be at least 1, got %d", c.Partitions))
	}
	if c.Replication == 0 || c.Replication < -1 {
		errs = append(errs, fmt.Errorf("--replication must be -1 (the cluster's default) or at least 1, got %d", c.Replication))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--session-timeout must be at least 1s, got %s", c.SessionTimeout))
	}
	if c.ReplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reply-timeout must be positive, got %s", c.ReplyTimeout))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("--max-wait must be positive, got %s", c.MaxWait))
	}
	if c.Embedded() && c.KafkaListen == "" {
		errs = append(errs, errors.New("--kafka-listen must not be empty when running the embedded broker"))
	}
	return errors.Join(errs...)
}

// bindFlags declares the flags of the run command on fs, each with its SHOP_*
// environment variable as the default.
func bindFlags(fs *flag.FlagSet, c *Config) *string {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv("SHOP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
			return v
		}
		return def
	}
	envDuration := func(name string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(env(name, def.String())); err == nil {
			return d
		}
		return def
	}
	envInt := func(name string, def int) int {
		if v, err := strconv.Atoi(env(name, strconv.Itoa(def))); err == nil {
			return v
		}
		return def
	}
	fs.StringVar(&c.DataDir, "data-dir", env("data-dir", "./data"), "data directory: the embedded broker's log in <dir>/kafka, table state in <dir>/state (SHOP_DATA_DIR)")
	fs.StringVar(&c.HTTPAddr, "http", env("http", ":8080"), "HTTP listen address (SHOP_HTTP)")
	fs.StringVar(&c.KafkaListen, "kafka-listen", env("kafka-listen", "127.0.0.1:9092"), "embedded broker's listen and advertised address (SHOP_KAFKA_LISTEN)")
	brokers := fs.String("brokers", env("brokers", ""), "comma-separated Kafka bootstrap servers; runs against them instead of the embedded broker (SHOP_BROKERS)")
	fs.IntVar(&c.Partitions, "partitions", envInt("partitions", 8), "partitions of topics the shop creates (SHOP_PARTITIONS)")
	fs.IntVar(&c.Replication, "replication", envInt("replication", 0), "replication factor of topics the shop creates; default 1 embedded, the cluster's default (-1) otherwise (SHOP_REPLICATION)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", envDuration("session-timeout", 10*time.Second), "consumer-group session timeout (SHOP_SESSION_TIMEOUT)")
	fs.DurationVar(&c.MaxWait, "max-wait", envDuration("max-wait", 7*24*time.Hour), "how long a record waits for a missing parent (e.g. a cart for an unregistered customer) before it is dead-lettered (SHOP_MAX_WAIT)")
	fs.DurationVar(&c.ReplyTimeout, "reply-timeout", envDuration("reply-timeout", 5*time.Second), "how long POST /carts/{id}/commands waits for the reply before 504 (SHOP_REPLY_TIMEOUT)")
	fs.TextVar(&c.LogLevel, "log-level", levelFromEnv(env("log-level", "info")), "log level: debug, info, warn, error (SHOP_LOG_LEVEL)")
	return brokers
}

func levelFromEnv(s string) *slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		l = slog.LevelInfo
	}
	return &l
}

// finish fills what depends on other settings.
func (c *Config) finish(brokers string) {
	for b := range strings.SplitSeq(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	if c.Replication == 0 {
		c.Replication = -1
		if c.Embedded() {
			c.Replication = 1
		}
	}
}
