package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
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
	// DedupHorizon is how long an applied event id is remembered: a re-sent
	// event younger than that is dropped.
	DedupHorizon time.Duration
	// StoreMemoryMiB is the budget of the local stores' memtables and block
	// caches, in MiB.
	StoreMemoryMiB int

	// Groups are the processor groups this instance runs: nil all of them,
	// empty none (a query-only instance serving from read replicas).
	Groups []string
	// NoQuery turns the query API off: the instance processes, and serves
	// only /healthz, /readyz and /metrics.
	NoQuery bool
	// Standby keeps hot copies of the partitions other instances own.
	Standby bool
	// AdvertiseHTTP is the host:port other instances forward queries to;
	// empty derives it from the listener (see advertiseAddr).
	AdvertiseHTTP string

	// AdminToken guards the operator endpoints (dead letters, re-drive,
	// parked records): requests must send Authorization: Bearer <token>.
	// Without one they are served only on a loopback listener.
	AdminToken string
	// WriteToken, when set, guards every state-changing endpoint (POST,
	// PUT, PATCH, DELETE) the same way.
	WriteToken string
	// CursorKey authenticates list cursors; empty is a random key per
	// process. Instances behind one address need the same key.
	CursorKey string

	// Kafka is how the shop connects to --brokers: TLS and SASL.
	Kafka KafkaSecurity
}

// KafkaSecurity are the TLS and SASL settings of a real cluster.
type KafkaSecurity struct {
	// TLS encrypts connections; CAFile (PEM) replaces the system roots,
	// CertFile and KeyFile (PEM) are a client certificate.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none).
	SASLMechanism, SASLUser, SASLPassword string
}

func (k KafkaSecurity) any() bool { return k != KafkaSecurity{} }

// security loads the certificate files into the runtime's settings.
func (k KafkaSecurity) security() (streamfold.Security, error) {
	sec := streamfold.Security{SASLMechanism: k.SASLMechanism, SASLUser: k.SASLUser, SASLPassword: k.SASLPassword}
	if !k.TLS {
		return sec, nil
	}
	sec.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if k.CAFile != "" {
		pem, err := os.ReadFile(k.CAFile)
		if err != nil {
			return sec, fmt.Errorf("--kafka-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return sec, fmt.Errorf("--kafka-tls-ca: no PEM certificate in %s", k.CAFile)
		}
		sec.TLS.RootCAs = pool
	}
	if k.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
		if err != nil {
			return sec, fmt.Errorf("--kafka-tls-cert/--kafka-tls-key: %w", err)
		}
		sec.TLS.Certificates = []tls.Certificate{cert}
	}
	return sec, nil
}

func (k KafkaSecurity) validate(embedded bool) []error {
	var errs []error
	if embedded && k.any() {
		errs = append(errs, errors.New("--kafka-tls and --kafka-sasl-* apply to --brokers; the embedded broker speaks plaintext on --kafka-listen"))
	}
	if (k.CertFile == "") != (k.KeyFile == "") {
		errs = append(errs, errors.New("--kafka-tls-cert and --kafka-tls-key go together"))
	}
	sec := streamfold.Security{SASLMechanism: k.SASLMechanism, SASLUser: k.SASLUser, SASLPassword: k.SASLPassword}
	if err := sec.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--kafka-sasl-*: %w", err))
	}
	return errs
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
	if c.DedupHorizon <= 0 {
		errs = append(errs, fmt.Errorf("--dedup-horizon must be positive, got %s", c.DedupHorizon))
	}
	if c.StoreMemoryMiB <= 0 {
		errs = append(errs, fmt.Errorf("--store-memory must be a positive number of MiB, got %d", c.StoreMemoryMiB))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("--max-wait must be positive, got %s", c.MaxWait))
	}
	if c.Embedded() && c.KafkaListen == "" {
		errs = append(errs, errors.New("--kafka-listen must not be empty when running the embedded broker"))
	}
	errs = append(errs, c.Kafka.validate(c.Embedded())...)
	if err := validateGroups(c.Groups); err != nil {
		errs = append(errs, err)
	}
	if c.NoQuery && c.Groups != nil && len(c.Groups) == 0 {
		errs = append(errs, errors.New("--groups none with --no-query leaves the instance nothing to do"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("--http must not be empty"))
	}
	if c.AdminToken != "" && c.AdminToken == c.WriteToken {
		errs = append(errs, errors.New("--admin-token and --write-token must differ: a client that may write must not thereby re-drive dead letters"))
	}
	if c.AdvertiseHTTP != "" {
		if _, port, err := net.SplitHostPort(c.AdvertiseHTTP); err != nil || port == "" || port == "0" {
			errs = append(errs, fmt.Errorf("--advertise-http must be host:port, got %q", c.AdvertiseHTTP))
		}
	}
	return errors.Join(errs...)
}

// shopGroups are the processor groups of the shop's topology, sorted.
func shopGroups() []string {
	var names []string
	for _, g := range shop.Topology(1, nil).Groups() {
		names = append(names, g.Name())
	}
	slices.Sort(names)
	return names
}

func validateGroups(groups []string) error {
	valid := shopGroups()
	var unknown []string
	for _, g := range groups {
		if !slices.Contains(valid, g) {
			unknown = append(unknown, fmt.Sprintf("%q", g))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return fmt.Errorf("--groups: unknown group %s; give all, none, or a comma-separated list of: %s",
		strings.Join(unknown, ", "), strings.Join(valid, ", "))
}

// parseGroups reads --groups: "all" is nil, "" and "none" are no group.
func parseGroups(s string) []string {
	switch s = strings.TrimSpace(s); s {
	case "all":
		return nil
	case "", "none":
		return []string{}
	}
	var out []string
	for g := range strings.SplitSeq(s, ",") {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// parseRunFlags parses the run command's arguments into a validated config.
// The flag package has already written a parse error to out when the error
// is errUsage.
func parseRunFlags(args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("shop run", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg Config
	raw := bindFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(out, "shop run: unexpected arguments %q\n", fs.Args())
		return Config{}, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg.finish(raw)
	return cfg, cfg.Validate()
}

// rawFlags are the flags finish turns into Config fields.
type rawFlags struct {
	brokers, groups string
	// secrets are read from their SHOP_* variable after parsing when no
	// flag gave them: as flag defaults they would be printed by -h.
	secrets map[*string]string
}

// bindFlags declares the flags of the run command on fs, each with its SHOP_*
// environment variable as the default.
func bindFlags(fs *flag.FlagSet, c *Config) *rawFlags {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(envName(name)); ok {
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
	envBool := func(name string, def bool) bool {
		if v, err := strconv.ParseBool(env(name, strconv.FormatBool(def))); err == nil {
			return v
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
	fs.StringVar(&c.HTTPAddr, "http", env("http", ""), "HTTP listen address; default 127.0.0.1:8080 with the embedded broker (loopback only: a laptop's shop is nobody else's), :8080 with --brokers (SHOP_HTTP)")
	fs.StringVar(&c.KafkaListen, "kafka-listen", env("kafka-listen", "127.0.0.1:9092"), "embedded broker's listen and advertised address (SHOP_KAFKA_LISTEN)")
	raw := rawFlags{secrets: map[*string]string{}}
	secret := func(p *string, name, usage string) {
		fs.StringVar(p, name, "", usage)
		raw.secrets[p] = envName(name)
	}
	fs.StringVar(&raw.brokers, "brokers", env("brokers", ""), "comma-separated Kafka bootstrap servers; runs against them instead of the embedded broker (SHOP_BROKERS)")
	fs.IntVar(&c.Partitions, "partitions", envInt("partitions", 8), "partitions of topics the shop creates (SHOP_PARTITIONS)")
	fs.IntVar(&c.Replication, "replication", envInt("replication", 0), "replication factor of topics the shop creates; default 1 embedded, the cluster's default (-1) otherwise (SHOP_REPLICATION)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", envDuration("session-timeout", 10*time.Second), "consumer-group session timeout (SHOP_SESSION_TIMEOUT)")
	fs.DurationVar(&c.DedupHorizon, "dedup-horizon", envDuration("dedup-horizon", processors.DefaultDedupHorizon), "how long an applied event id is remembered; a re-sent event younger than that is dropped (SHOP_DEDUP_HORIZON)")
	fs.IntVar(&c.StoreMemoryMiB, "store-memory", envInt("store-memory", streamfold.DefaultStoreMemory>>20), "MiB shared by the local stores' memtables and block caches (SHOP_STORE_MEMORY)")
	fs.DurationVar(&c.MaxWait, "max-wait", envDuration("max-wait", 7*24*time.Hour), "how long a record waits for a missing parent (e.g. a cart for an unregistered customer) before it is dead-lettered (SHOP_MAX_WAIT)")
	fs.DurationVar(&c.ReplyTimeout, "reply-timeout", envDuration("reply-timeout", 5*time.Second), "how long POST /carts/{id}/commands waits for the reply before 504 (SHOP_REPLY_TIMEOUT)")
	fs.TextVar(&c.LogLevel, "log-level", levelFromEnv(env("log-level", "info")), "log level: debug, info, warn, error (SHOP_LOG_LEVEL)")
	fs.StringVar(&raw.groups, "groups", env("groups", "all"), "processor groups to run: all, none (a query-only instance), or a comma-separated list such as customers,carts,carts-relay (SHOP_GROUPS)")
	c.NoQuery = !envBool("query", true)
	fs.Var(boolFlag{p: &c.NoQuery, invert: true}, "query", "serve the query API; --no-query (or --query=false) turns it off (SHOP_QUERY)")
	fs.Var(boolFlag{p: &c.NoQuery}, "no-query", "serve no query API, only /healthz, /readyz and /metrics")
	c.Standby = envBool("standby", false)
	fs.Var(boolFlag{p: &c.Standby}, "standby", "keep hot copies of partitions other instances own, for fast failover and stale reads (SHOP_STANDBY)")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http", env("advertise-http", ""), "host:port other instances forward queries to; default the --http port on this host's first non-loopback address, or --http itself when it names a host (SHOP_ADVERTISE_HTTP)")
	secret(&c.AdminToken, "admin-token", "bearer token the dead-letter, re-drive and parked endpoints require; without it they answer only on a loopback --http (SHOP_ADMIN_TOKEN)")
	secret(&c.WriteToken, "write-token", "bearer token every state-changing endpoint requires; default none (SHOP_WRITE_TOKEN)")
	bindKafkaFlags(fs, &c.Kafka, secret)
	secret(&c.CursorKey, "cursor-key", "key that signs list cursors; default a random one per process — give instances behind one address the same (SHOP_CURSOR_KEY)")
	return &raw
}

// bindKafkaFlags declares the flags of the connection to --brokers (TLS and
// SASL) on fs, for the run command and for shop dlq; secret declares a flag
// whose SHOP_* variable is read only after parsing.
func bindKafkaFlags(fs *flag.FlagSet, k *KafkaSecurity, secret func(p *string, name, usage string)) {
	env := func(name string) string { return os.Getenv(envName(name)) }
	k.TLS, _ = strconv.ParseBool(env("kafka-tls"))
	fs.Var(boolFlag{p: &k.TLS}, "kafka-tls", "connect to --brokers over TLS (implied by --kafka-tls-ca/--kafka-tls-cert) (SHOP_KAFKA_TLS)")
	fs.StringVar(&k.CAFile, "kafka-tls-ca", env("kafka-tls-ca"), "PEM file of the CAs that sign the brokers' certificates; default the system's (SHOP_KAFKA_TLS_CA)")
	fs.StringVar(&k.CertFile, "kafka-tls-cert", env("kafka-tls-cert"), "PEM client certificate, with --kafka-tls-key (SHOP_KAFKA_TLS_CERT)")
	fs.StringVar(&k.KeyFile, "kafka-tls-key", env("kafka-tls-key"), "PEM key of --kafka-tls-cert (SHOP_KAFKA_TLS_KEY)")
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", env("kafka-sasl-mechanism"), "SASL mechanism for --brokers: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SHOP_KAFKA_SASL_MECHANISM)")
	fs.StringVar(&k.SASLUser, "kafka-sasl-user", env("kafka-sasl-user"), "SASL user (SHOP_KAFKA_SASL_USER)")
	secret(&k.SASLPassword, "kafka-sasl-password", "SASL password; prefer SHOP_KAFKA_SASL_PASSWORD, a flag shows in ps (SHOP_KAFKA_SASL_PASSWORD)")
}

// envName is the SHOP_* variable of a flag.
func envName(flag string) string {
	return "SHOP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// finish normalises what the flags gave: the mechanism's spelling, TLS
// implied by its files.
func (k *KafkaSecurity) finish() {
	k.SASLMechanism = strings.ToUpper(strings.TrimSpace(k.SASLMechanism))
	if k.CAFile != "" || k.CertFile != "" {
		k.TLS = true
	}
}

// boolFlag is a boolean flag bound to *p, inverted for --query.
type boolFlag struct {
	p      *bool
	invert bool
}

func (b boolFlag) IsBoolFlag() bool { return true }

func (b boolFlag) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p != b.invert)
}

func (b boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = v != b.invert
	return nil
}

func levelFromEnv(s string) *slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		l = slog.LevelInfo
	}
	return &l
}

// finish fills what depends on other settings.
func (c *Config) finish(raw *rawFlags) {
	for p, name := range raw.secrets {
		if *p == "" {
			*p = os.Getenv(name)
		}
	}
	c.Groups = parseGroups(raw.groups)
	for b := range strings.SplitSeq(raw.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	c.Kafka.finish()
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
		if c.Embedded() {
			c.HTTPAddr = "127.0.0.1:8080"
		}
	}
	if c.Replication == 0 {
		c.Replication = -1
		if c.Embedded() {
			c.Replication = 1
		}
	}
}
