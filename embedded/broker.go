package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Defaults applied by Start to zero Config fields.
const (
	DefaultListen             = "127.0.0.1:9092"
	DefaultPartitions         = 8
	DefaultCompactionInterval = 2 * time.Minute

	// LargeLogBytes is the log size from which Start warns that the
	// embedded broker is the wrong tool: kfake keeps an index entry for
	// every record batch in memory (about 64 bytes; a log of small batches
	// holds millions of them) and replays its segments at every start.
	LargeLogBytes = 1 << 30
)

// Config configures an embedded broker. The zero value is a one-broker,
// memory-only cluster on DefaultListen.
type Config struct {
	// Dir is the broker's log directory; "" keeps everything in memory.
	// It is created if needed, and reloaded when it holds a previous run.
	Dir string
	// Listen is the host:port of the first broker, and the address
	// metadata advertises for it. Default DefaultListen; port 0 picks a
	// free port (see Broker.Addrs).
	Listen string
	// AdvertisedHost overrides the host named in metadata, for clients
	// that reach the broker under another name than Listen's host. By
	// default it is Listen's host, or 127.0.0.1 when Listen binds every
	// interface (0.0.0.0, ::, or no host).
	AdvertisedHost string
	// Brokers is the number of brokers, default 1. Brokers after the
	// first listen on free ports of Listen's host.
	Brokers int
	// Partitions is the partition count of topics created without one,
	// default DefaultPartitions.
	Partitions int
	// CompactionInterval is how often compacted topics are compacted
	// (kfake's log.cleaner.backoff.ms), default DefaultCompactionInterval.
	// Each pass reads and rewrites every compacted partition holding more
	// than one batch, so keep it in minutes outside tests.
	CompactionInterval time.Duration
	// SyncWrites fsyncs every produced batch, so that acknowledged records
	// survive a machine crash, not just a process crash.
	SyncWrites bool
	// MinSessionTimeout is the shortest consumer-group session timeout the
	// broker accepts (Kafka's group.min.session.timeout.ms); 0 keeps kfake's
	// 6 s. Tests that kill group members lower it to fail over quickly.
	MinSessionTimeout time.Duration
	// LargeLog is the size of a reloaded log from which Start warns that
	// the log has outgrown the embedded broker; default LargeLogBytes.
	LargeLog int64
	// Logger receives the broker's warnings and errors; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Brokers == 0 {
		c.Brokers = 1
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.CompactionInterval == 0 {
		c.CompactionInterval = DefaultCompactionInterval
	}
	if c.LargeLog == 0 {
		c.LargeLog = LargeLogBytes
	}
	var errs []error
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.Listen, err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: bad port", c.Listen))
	}
	if c.Brokers < 0 {
		errs = append(errs, fmt.Errorf("brokers %d: must be positive", c.Brokers))
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions %d: must be positive", c.Partitions))
	}
	if c.CompactionInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("compaction interval %v: must be at least 1ms", c.CompactionInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("embedded: invalid config: %w", err)
	}
	return c, nil
}

// Broker is a running embedded cluster. All methods are safe for concurrent
// use.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string
	log     *logBridge
	joins   *joinKeeper

	// mu guards closed: kfake blocks forever on admin calls after Close,
	// so Compact must not reach it once Close has started.
	mu     sync.RWMutex
	closed bool

	stopCompactor chan struct{}
	compactorDone chan struct{}
}

// Start starts the brokers, loading Dir's contents from a previous run if
// there are any, and returns once they accept connections.
func Start(cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	restored := false
	if cfg.Dir != "" {
		entries, err := os.ReadDir(cfg.Dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("embedded: data directory: %w", err)
		}
		restored = len(entries) > 0
	}

	host, _, _ := net.SplitHostPort(cfg.Listen)
	advertised := cfg.AdvertisedHost
	if advertised == "" {
		advertised = host
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			advertised = "127.0.0.1"
		}
	}
	log := &logBridge{l: cfg.Logger}
	opts := []kfake.Opt{
		kfake.NumBrokers(cfg.Brokers),
		kfake.ListenFn(listenFn(cfg.Listen, host, advertised)),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.ClusterID("streamfold-embedded"),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": strconv.FormatInt(cfg.CompactionInterval.Milliseconds(), 10),
		}),
		kfake.WithLogger(log),
	}
	if cfg.Dir != "" {
		opts = append(opts, kfake.DataDir(cfg.Dir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.MinSessionTimeout > 0 {
		opts = append(opts, kfake.GroupMinSessionTimeout(cfg.MinSessionTimeout))
	}
	if restored && cfg.Logger != nil {
		if n := dirBytes(cfg.Dir); n >= cfg.LargeLog {
			cfg.Logger.Warn("the embedded broker's log is large: it keeps an index of every record batch in memory and replays the log at every start; run on real Kafka (--brokers) for logs of this size",
				"dir", cfg.Dir, "log_bytes", n, "warn_from_bytes", cfg.LargeLog)
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: start: %w", err)
	}
	b := &Broker{
		cluster: c,
		addrs:   c.ListenAddrs(),
		log:     log,
	}
	b.joins = keepJoinersAlive(c, b.addrs)
	// kfake arms its cleaner only when a topic is created or reconfigured,
	// never for topics loaded from disk; without this a restarted broker
	// would not compact until someone touched a topic.
	if restored {
		b.stopCompactor = make(chan struct{})
		b.compactorDone = make(chan struct{})
		go b.compactEvery(cfg.CompactionInterval)
	}
	return b, nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// listenFn makes kfake listen where we say instead of on 127.0.0.1: broker
// 0 on listen, the others on free ports of host. kfake calls it for every
// broker, one at a time, and advertises what Addr returns.
func listenFn(listen, host, advertised string) func(string, string) (net.Listener, error) {
	var (
		mu    sync.Mutex
		first = true
	)
	return func(network, _ string) (net.Listener, error) {
		mu.Lock()
		addr := net.JoinHostPort(host, "0")
		if first {
			addr, first = listen, false
		}
		mu.Unlock()
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return advertisedListener{ln, advertisedAddr{network, net.JoinHostPort(advertised, port)}}, nil
	}
}

// advertisedListener reports the address clients should dial rather than
// the one it is bound to, which kfake puts in metadata as is.
type advertisedListener struct {
	net.Listener
	addr advertisedAddr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type advertisedAddr struct{ network, hostport string }

func (a advertisedAddr) Network() string { return a.network }
func (a advertisedAddr) String() string  { return a.hostport }

func (b *Broker) compactEvery(interval time.Duration) {
	defer close(b.compactorDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stopCompactor:
			return
		case <-t.C:
			b.Compact()
		}
	}
}

// Addrs returns the advertised host:port of each broker, the first being
// the one on Config.Listen.
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Compact compacts every compacted topic now, and applies retention to all
// topics. It does nothing once Close has been called.
func (b *Broker) Compact() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.closed {
		b.cluster.Compact()
	}
}

// Cluster returns the underlying kfake cluster, for tests that need its
// controls (fault injection, group inspection). Its methods block forever
// once the broker is closed.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the brokers and, with a Dir, writes the remaining state to
// it. It returns what went wrong while persisting, and nil on second and
// later calls.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()

	if b.stopCompactor != nil {
		close(b.stopCompactor)
		<-b.compactorDone
	}
	b.joins.close()
	b.log.collectErrors(true)
	b.cluster.Close()
	return b.log.collectErrors(false)
}

// logBridge passes kfake's warnings and errors to slog, and collects the
// errors logged while closing: kfake's Close reports a failed save only in
// its log.
type logBridge struct {
	l *slog.Logger

	mu         sync.Mutex
	collecting bool
	errs       []error
}

// collectErrors starts (on) or stops collecting errors, returning those
// collected.
func (lb *logBridge) collectErrors(on bool) error {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.collecting = on
	errs := lb.errs
	lb.errs = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

func (lb *logBridge) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
		lb.mu.Lock()
		if lb.collecting {
			lb.errs = append(lb.errs, fmt.Errorf(format, args...))
		}
		lb.mu.Unlock()
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		return
	}
	if lb.l == nil || !lb.l.Enabled(context.Background(), sl) {
		return
	}
	lb.l.Log(context.Background(), sl, fmt.Sprintf(format, args...), "component", "kfake")
}
