package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
)

// Config is a service's run configuration, filled from flags and the
// environment (flags win) by ParseRunFlags. Only this package reads the
// environment.
type Config struct {
	DataDir     string
	HTTPAddr    string
	KafkaListen string
	Brokers     []string
	Partitions  int
	Replication int
	LogLevel    slog.Level
	// SessionTimeout is the consumer-group session timeout (how fast a dead
	// member's partitions move).
	SessionTimeout time.Duration
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
	// empty derives it from the listener (see serve.Listen).
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

	// CPUProfile, when set, is the file a CPU profile of the whole run is
	// written to (go tool pprof), for measuring the service under load.
	CPUProfile string

	// Kafka is how the service connects to --brokers: TLS and SASL.
	Kafka KafkaSecurity

	// TracerProvider traces HTTP requests and records across hops
	// (streamfold.Config.TracerProvider); nil traces nothing. Not a flag:
	// the run command sets it from the OpenTelemetry environment
	// (OTEL_EXPORTER_OTLP_ENDPOINT), a test or an embedding program gives
	// its own.
	TracerProvider trace.TracerProvider

	// Settings are every flag of the run command (the framework's and the
	// application's) by name, as parsed: what the dashboard shows as the
	// instance's configuration (serve.Options.Info). A secret flag shows
	// only whether it is set; a URL or DSN shows no password.
	Settings map[string]any
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

// Security loads the certificate files into the runtime's settings.
func (k KafkaSecurity) Security() (streamfold.Security, error) {
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

// Embedded reports whether the service runs its own broker (no --brokers given).
func (c Config) Embedded() bool { return len(c.Brokers) == 0 }

// KafkaDir is where the embedded broker keeps its log.
func (c Config) KafkaDir() string { return filepath.Join(c.DataDir, "kafka") }

// StateDir is where the local table stores live, never mixed with the broker's log.
func (c Config) StateDir() string { return filepath.Join(c.DataDir, "state") }

// Validate reports every problem at once. Which groups exist it leaves to
// ParseRunFlags, which knows the topology.
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

// policy is the failure policy the run flags ask of every group.
func (c Config) policy() processors.Policy {
	p := processors.DefaultPolicy()
	p.MaxWait = c.MaxWait
	p.DedupHorizon = c.DedupHorizon
	return p
}

// groupNames are the processor groups of the application's topology, in
// its order.
func (a App) groupNames() []string {
	var names []string
	for _, g := range a.Topology(1, nil, processors.DefaultPolicy()).Groups() {
		names = append(names, g.Name())
	}
	return names
}

func validateGroups(groups, valid []string) error {
	valid = slices.Sorted(slices.Values(valid))
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

// ParseRunFlags parses the run command's arguments (the framework's flags
// and app.Flags) into a validated config. The flag package has already
// written a parse error to out when the error is ErrUsage; -h is
// flag.ErrHelp.
func ParseRunFlags(app App, args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet(app.Name+" run", flag.ContinueOnError)
	fs.SetOutput(out)
	// -h shows the commands too: run is the default, so "<name> --help"
	// lands here.
	fs.Usage = func() {
		fmt.Fprintf(out, usage, app.Name)
		fmt.Fprint(out, "\nflags of run:\n")
		fs.PrintDefaults()
	}
	var cfg Config
	groups := app.groupNames()
	raw := app.bindFlags(fs, &cfg, groups)
	if app.Flags != nil {
		app.Flags(fs, app.env())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(out, "%s run: unexpected arguments %q\n", app.Name, fs.Args())
		return Config{}, fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	raw.secrets.read()
	cfg.finish(raw)
	cfg.Settings = settings(fs, raw.secrets)
	errs := []error{cfg.Validate(), validateGroups(cfg.Groups, groups)}
	if app.Parsed != nil {
		app.Parsed(cfg)
	}
	if app.Validate != nil {
		errs = append(errs, app.Validate())
	}
	return cfg, errors.Join(errs...)
}

// rawFlags are the flags finish turns into Config fields.
type rawFlags struct {
	brokers, groups string
	secrets         secrets
}

// secrets are flags read from their variable after parsing when no flag
// gave them: as flag defaults they would be printed by -h.
type secrets map[*string]secretFlag

type secretFlag struct{ name, env string }

// flag declares a secret flag on fs.
func (s secrets) flag(fs *flag.FlagSet, env Env) func(p *string, name, text string) {
	return func(p *string, name, text string) {
		fs.StringVar(p, name, "", fmt.Sprintf("%s (%s)", text, env.Name(name)))
		s[p] = secretFlag{name: name, env: env.Name(name)}
	}
}

// read fills every secret no flag gave from its variable.
func (s secrets) read() {
	for p, f := range s {
		if *p == "" {
			*p = os.Getenv(f.env)
		}
	}
}

// settings are fs's flags by name with their values; a secret says only
// whether it is set, and a password in a URL or a key=value DSN is hidden.
func settings(fs *flag.FlagSet, s secrets) map[string]any {
	secret := map[string]bool{}
	for p, f := range s {
		secret[f.name] = *p != ""
	}
	out := map[string]any{}
	fs.VisitAll(func(f *flag.Flag) {
		set, isSecret := secret[f.Name]
		switch {
		case isSecret && set:
			out[f.Name] = "set (hidden)"
		case isSecret:
			out[f.Name] = "not set"
		default:
			out[f.Name] = hidePassword(f.Value.String())
		}
	})
	return out
}

// dsnPassword is the password of a key=value DSN ("host=db password=x").
var dsnPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('[^']*'|\S+)`)

// hidePassword hides the password of a URL (as url.URL.Redacted) or of a
// key=value DSN; any other value is returned as it is.
func hidePassword(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return dsnPassword.ReplaceAllString(v, "${1}xxxxx")
}

// bindFlags declares the flags of the run command on fs, each with its
// environment variable as the default.
func (a App) bindFlags(fs *flag.FlagSet, c *Config, groups []string) *rawFlags {
	env := a.env()
	// usage ends a flag's help with the variable that sets it.
	usage := func(name, text string) string { return fmt.Sprintf("%s (%s)", text, env.Name(name)) }
	str := func(p *string, name, def, text string) {
		fs.StringVar(p, name, env.String(name, def), usage(name, text))
	}
	dur := func(p *time.Duration, name string, def time.Duration, text string) {
		fs.DurationVar(p, name, env.Duration(name, def), usage(name, text))
	}
	num := func(p *int, name string, def int, text string) {
		fs.IntVar(p, name, env.Int(name, def), usage(name, text))
	}
	raw := rawFlags{secrets: secrets{}}
	secret := raw.secrets.flag(fs, env)
	str(&c.DataDir, "data-dir", "./data", "data directory: the embedded broker's log in <dir>/kafka, table state in <dir>/state")
	str(&c.HTTPAddr, "http", "", fmt.Sprintf("HTTP listen address; default 127.0.0.1:8080 with the embedded broker (loopback only: a laptop's %s is nobody else's), :8080 with --brokers", a.Name))
	str(&c.KafkaListen, "kafka-listen", "127.0.0.1:9092", "embedded broker's listen and advertised address")
	str(&raw.brokers, "brokers", "", "comma-separated Kafka bootstrap servers; runs against them instead of the embedded broker")
	num(&c.Partitions, "partitions", 8, fmt.Sprintf("partitions of topics the %s creates", a.Name))
	num(&c.Replication, "replication", 0, fmt.Sprintf("replication factor of topics the %s creates; default 1 embedded, the cluster's default (-1) otherwise", a.Name))
	dur(&c.SessionTimeout, "session-timeout", 10*time.Second, "consumer-group session timeout")
	dur(&c.DedupHorizon, "dedup-horizon", processors.DefaultDedupHorizon, "how long an applied event id is remembered; a re-sent event younger than that is dropped")
	num(&c.StoreMemoryMiB, "store-memory", streamfold.DefaultStoreMemory>>20, "MiB shared by the local stores' memtables and block caches")
	dur(&c.MaxWait, "max-wait", 7*24*time.Hour, "how long a record waits for a missing parent (a record it depends on that has not arrived) before it is dead-lettered")
	fs.TextVar(&c.LogLevel, "log-level", levelFromEnv(env.String("log-level", "info")), usage("log-level", "log level: debug, info, warn, error"))
	str(&raw.groups, "groups", "all", fmt.Sprintf("processor groups to run: all, none (a query-only instance), or a comma-separated list such as %s", strings.Join(groups[:min(3, len(groups))], ",")))
	c.NoQuery = !env.Bool("query", true)
	fs.Var(boolFlag{p: &c.NoQuery, invert: true}, "query", usage("query", "serve the query API; --no-query (or --query=false) turns it off"))
	fs.Var(boolFlag{p: &c.NoQuery}, "no-query", "serve no query API, only /healthz, /readyz and /metrics")
	c.Standby = env.Bool("standby", false)
	fs.Var(boolFlag{p: &c.Standby}, "standby", usage("standby", "keep hot copies of partitions other instances own, for fast failover and stale reads"))
	str(&c.AdvertiseHTTP, "advertise-http", "", "host:port other instances forward queries to; default the --http port on this host's first non-loopback address, or --http itself when it names a host")
	secret(&c.AdminToken, "admin-token", "bearer token the dead-letter, re-drive and parked endpoints require; without it they answer only on a loopback --http")
	secret(&c.WriteToken, "write-token", "bearer token every state-changing endpoint requires; default none")
	bindKafkaFlags(fs, env, &c.Kafka, secret)
	str(&c.CPUProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file when the process stops (go tool pprof)")
	secret(&c.CursorKey, "cursor-key", "key that signs list cursors; default a random one per process — give instances behind one address the same")
	return &raw
}

// bindKafkaFlags declares the flags of the connection to --brokers (TLS and
// SASL) on fs, for the run command and for dlq; secret declares a flag whose
// variable is read only after parsing.
func bindKafkaFlags(fs *flag.FlagSet, env Env, k *KafkaSecurity, secret func(p *string, name, usage string)) {
	str := func(p *string, name, text string) {
		fs.StringVar(p, name, env.String(name, ""), fmt.Sprintf("%s (%s)", text, env.Name(name)))
	}
	k.TLS, _ = strconv.ParseBool(env.String("kafka-tls", ""))
	fs.Var(boolFlag{p: &k.TLS}, "kafka-tls", fmt.Sprintf("connect to --brokers over TLS (implied by --kafka-tls-ca/--kafka-tls-cert) (%s)", env.Name("kafka-tls")))
	str(&k.CAFile, "kafka-tls-ca", "PEM file of the CAs that sign the brokers' certificates; default the system's")
	str(&k.CertFile, "kafka-tls-cert", "PEM client certificate, with --kafka-tls-key")
	str(&k.KeyFile, "kafka-tls-key", "PEM key of --kafka-tls-cert")
	str(&k.SASLMechanism, "kafka-sasl-mechanism", "SASL mechanism for --brokers: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	str(&k.SASLUser, "kafka-sasl-user", "SASL user")
	pw := env.Name("kafka-sasl-password")
	secret(&k.SASLPassword, "kafka-sasl-password", fmt.Sprintf("SASL password; prefer %s, a flag shows in ps", pw))
}

// Env reads flag defaults from environment variables named by a prefix:
// under Env("SHOP") the flag data-dir is SHOP_DATA_DIR. A variable that does
// not parse leaves the default.
type Env string

// Name is the variable of a flag.
func (e Env) Name(flag string) string {
	return string(e) + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// String is the flag's variable, or def when it is unset.
func (e Env) String(flag, def string) string {
	if v, ok := os.LookupEnv(e.Name(flag)); ok {
		return v
	}
	return def
}

// Duration is the flag's variable as a time.Duration, or def.
func (e Env) Duration(flag string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(e.String(flag, def.String())); err == nil {
		return d
	}
	return def
}

// Int is the flag's variable as an int, or def.
func (e Env) Int(flag string, def int) int {
	if v, err := strconv.Atoi(e.String(flag, strconv.Itoa(def))); err == nil {
		return v
	}
	return def
}

// Bool is the flag's variable as a bool, or def.
func (e Env) Bool(flag string, def bool) bool {
	if v, err := strconv.ParseBool(e.String(flag, strconv.FormatBool(def))); err == nil {
		return v
	}
	return def
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
