package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// PollingRelay publishes an outbox table to Kafka by reading it: the relay
// that works on any SQL database. Each round it reads up to Batch committed
// rows in seq order, publishes them (the structured CloudEvent, keyed by the
// aggregate id, the row id as the event id), waits for the broker's
// acknowledgement and then deletes exactly the acknowledged rows.
//
// The table is a queue, as in Debezium's outbox pattern, not a log with a
// "relayed" flag: a published row is deleted rather than marked. So the
// relay reads by the seq index from the front of what is left instead of
// skipping an ever longer tail of marked rows (or keeping a cursor, which
// would miss a row whose transaction took a lower seq but committed after a
// higher one), the table stays as small as the backlog, and nothing needs
// vacuuming by a second job. The events themselves are kept by Kafka.
//
// Delivery is at least once: a crash (or a lost database connection)
// between the broker's acknowledgement and the delete publishes those rows
// again on the next round, with the same id, so consumers that drop ids they
// have applied (streamfold's do) see each event once. Nothing acknowledged is
// ever deleted before the broker has it, so nothing is lost.
//
// Order: the events of one aggregate reach Kafka in seq order, on one
// partition, also with several relays on one table. On PostgreSQL every relay
// takes its batch with SELECT … FOR UPDATE SKIP LOCKED, so relays share the
// work; on SQLite, which has no row locks, the relays hold a lease (a row in
// Table+"_lease") and only its holder publishes — the others wait, and take
// over when the holder stops or its lease runs out. Writers must write one
// aggregate's events in transactions that do not overlap (the usual lock on
// the aggregate's own row does it), as seq is the order of the inserts.
//
// While Kafka (or the database) cannot be reached, the relay keeps the rows,
// waits MinBackoff, doubling up to MaxBackoff, and logs once when it starts
// failing and once when it recovers, not at every attempt; then it drains the
// table in order.
//
// A row that cannot be published at all — it is not a valid CloudEvent (its
// headers are not a JSON object, its payload not JSON) or the broker refuses
// it as too large — is moved to Table+"_dead" with the error, logged and
// counted, and the relay goes on, as Kafka Connect does with
// errors.tolerance=all and a dead-letter queue: one bad row must not stop
// every aggregate's events. The aggregate's later events are published
// without it; the dead table keeps it for a person to look at.
//
// The relay creates Table+"_dead" (and, on SQLite, Table+"_lease") if they do
// not exist; the outbox table itself comes from [Migrate].
//
// Set the fields, then call Run once; Stats and Pending may be called from
// any goroutine meanwhile. The fields must not change after Run started.
type PollingRelay struct {
	// DB holds the outbox table.
	DB *DB
	// Kafka is where the rows go. With a Config of your own, keep the
	// producer idempotent (or Net.MaxOpenRequests at 1): order per
	// aggregate relies on it when the producer retries.
	Kafka Kafka
	// Table is the outbox table; DefaultTable when empty.
	Table string
	// Batch is the most rows read and published per round; default 256.
	Batch int
	// Interval is how long the relay waits after a round that found nothing
	// (more) to publish; default 100 ms. A full batch is followed at once by
	// the next round.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed round: it
	// starts at MinBackoff and doubles up to MaxBackoff; defaults 100 ms and
	// 10 s. A successful round resets it.
	MinBackoff, MaxBackoff time.Duration
	// Lease is, on SQLite, how long the lease lasts without renewal: the
	// holder renews it every third of it, and another relay takes over once
	// a stopped holder's lease has run out; default 10 s. A holder that
	// stops cleanly hands the lease over at once. Unused on PostgreSQL.
	Lease time.Duration
	// Instance names this relay in logs and as the lease's holder; default
	// host name, process id and a random suffix.
	Instance string
	// Logger receives state changes (failing, recovered, lease taken or
	// lost) and dead rows; nil discards.
	Logger *slog.Logger

	hooks   pollHooks
	running atomic.Bool
	mu      sync.Mutex
	stats   PollingStats
}

// PollingStats is what a PollingRelay has done so far.
type PollingStats struct {
	// Published counts rows the broker acknowledged. A row published again
	// after a crash or a failed delete counts again.
	Published int64
	// DeadLettered counts rows moved to the dead table.
	DeadLettered int64
	// LastPublished is when the broker last acknowledged rows.
	LastPublished time.Time
	// Failing says the last round failed and the relay is backing off.
	Failing bool
	// Failures counts failed rounds.
	Failures int64
	// LastError is the latest failure, kept after the relay recovered, and
	// LastErrorAt when it happened.
	LastError   error
	LastErrorAt time.Time
	// LeaseHeld says, on SQLite, that this relay holds the lease, and
	// LeaseSince since when.
	LeaseHeld  bool
	LeaseSince time.Time
}

// Stats returns what the relay has done so far. Safe for concurrent use.
func (r *PollingRelay) Stats() PollingStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Pending counts the rows waiting in the outbox table (including those
// other relays are publishing right now). It queries the database.
func (r *PollingRelay) Pending(ctx context.Context) (int64, error) {
	if r.DB == nil {
		return 0, errPollNoDB
	}
	table, err := tableName(r.Table)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := r.DB.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count %s: %w", table, err)
	}
	return n, nil
}

// pollHooks let tests stop a relay at the moments they crash it at.
type pollHooks struct {
	beforePublish func(rows []Row) // rows about to be sent
	afterAck      func(rows []Row) // rows the broker acknowledged, not yet deleted
}

var errPollNoDB = errors.New("outbox: polling relay has no DB")

// Defaults of a PollingRelay's options.
const (
	pollDefaultBatch      = 256
	pollDefaultInterval   = 100 * time.Millisecond
	pollDefaultMinBackoff = 100 * time.Millisecond
	pollDefaultMaxBackoff = 10 * time.Second
	pollDefaultLease      = 10 * time.Second
	// pollRoundTimeout bounds one round's database work and its wait for
	// the broker: a hung connection fails the round instead of the relay.
	pollRoundTimeout = time.Minute
)

// pollConfig is a relay's options with the defaults filled in.
type pollConfig struct {
	table, dead, lease     string
	batch                  int
	interval               time.Duration
	minBackoff, maxBackoff time.Duration
	leaseFor               time.Duration
	instance               string
	log                    *slog.Logger
	postgres               bool
}

func (r *PollingRelay) config() (pollConfig, error) {
	var errs []error
	if r.DB == nil {
		errs = append(errs, errPollNoDB)
	}
	if len(r.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("outbox: polling relay has no Kafka brokers"))
	}
	table, err := tableName(r.Table)
	if err != nil {
		errs = append(errs, err)
	}
	// the relay's own tables must be names too
	if _, err := tableName(table + "_lease"); err != nil {
		errs = append(errs, fmt.Errorf("outbox: table name %q is too long for the relay's %s_lease and %s_dead", table, table, table))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", r.Interval}, {"MinBackoff", r.MinBackoff}, {"MaxBackoff", r.MaxBackoff}, {"Lease", r.Lease}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("outbox: polling relay %s %v: must not be negative", d.name, d.v))
		}
	}
	if r.Batch < 0 {
		errs = append(errs, fmt.Errorf("outbox: polling relay Batch %d: must not be negative", r.Batch))
	}
	if err := errors.Join(errs...); err != nil {
		return pollConfig{}, err
	}
	c := pollConfig{
		table: table, dead: table + "_dead", lease: table + "_lease",
		batch: pollOr(r.Batch, pollDefaultBatch), interval: pollOr(r.Interval, pollDefaultInterval),
		minBackoff: pollOr(r.MinBackoff, pollDefaultMinBackoff), maxBackoff: pollOr(r.MaxBackoff, pollDefaultMaxBackoff),
		leaseFor: pollOr(r.Lease, pollDefaultLease), instance: r.Instance, log: r.Logger,
		postgres: r.DB.Dialect == Postgres,
	}
	c.maxBackoff = max(c.maxBackoff, c.minBackoff)
	if c.instance == "" {
		c.instance = pollInstance()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("table", table, "instance", c.instance)
	return c, nil
}

func pollOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// pollInstance is a name unique enough to tell relays apart in a lease.
func pollInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relay"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Run relays until ctx ends, then returns nil. It returns an error only for
// a relay it cannot run (no DB, no brokers, a bad table name, or Run called
// twice at once); failures of the database or of Kafka are waited out.
func (r *PollingRelay) Run(ctx context.Context) error {
	c, err := r.config()
	if err != nil {
		return err
	}
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("outbox: polling relay is already running")
	}
	defer r.running.Store(false)
	p := &pollRun{relay: r, cfg: c, db: r.DB, backoff: backoff{min: c.minBackoff, max: c.maxBackoff}, maxBytes: sarama.NewConfig().Producer.MaxMessageBytes}
	if r.Kafka.Config != nil {
		p.maxBytes = r.Kafka.Config.Producer.MaxMessageBytes
	}
	defer p.stop()
	for ctx.Err() == nil {
		wait, err := p.step(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			p.failed(err)
			wait = p.backoff.next()
		} else {
			p.recovered()
			p.backoff.reset()
		}
		if wait > 0 {
			sleep(ctx, wait)
		}
	}
	return nil
}

// pollRun is one Run's state; only Run's goroutine uses it.
type pollRun struct {
	relay   *PollingRelay
	cfg     pollConfig
	db      *DB
	pub     *publisher
	ready   bool    // the dead (and lease) tables exist
	backoff backoff // between failed steps

	failing   string // what fails ("kafka", "database"), "" while all is well
	failSince time.Time
	attempts  int

	leaseUntil time.Time // SQLite: the lease is ours until then
	maxBytes   int       // the producer's largest record
	oneByOne   bool      // the broker refused a batch: find the record it refuses
}

// pollError says which side failed, for logging state changes.
type pollError struct {
	side string // "kafka" or "database"
	err  error
}

func (e *pollError) Error() string { return e.err.Error() }
func (e *pollError) Unwrap() error { return e.err }

func pollDB(err error) error    { return &pollError{side: "database", err: err} }
func pollKafka(err error) error { return &pollError{side: "kafka", err: err} }

// step runs one round and says how long to wait before the next.
func (p *pollRun) step(ctx context.Context) (time.Duration, error) {
	if !p.ready {
		if err := p.createTables(ctx); err != nil {
			return 0, pollDB(err)
		}
		p.ready = true
	}
	if !p.cfg.postgres {
		held, err := p.holdLease(ctx)
		if err != nil {
			return 0, pollDB(err)
		}
		if !held {
			return p.cfg.interval, nil
		}
	}
	more, err := p.round(ctx)
	if err != nil || !more {
		return p.cfg.interval, err
	}
	return 0, nil
}

func (p *pollRun) failed(err error) {
	side := "database"
	var pe *pollError
	if errors.As(err, &pe) {
		side = pe.side
	}
	now := time.Now()
	p.relay.mu.Lock()
	s := &p.relay.stats
	s.Failing, s.Failures, s.LastError, s.LastErrorAt = true, s.Failures+1, err, now
	p.relay.mu.Unlock()
	p.attempts++
	if p.failing != side {
		// once per state change, not per attempt: a broker down for an
		// hour is one line, not thirty-six thousand
		p.cfg.log.Warn("outbox relay cannot publish; keeping the rows and retrying with backoff",
			"failing", side, "error", err, "max_backoff", p.cfg.maxBackoff)
		p.failing, p.failSince, p.attempts = side, now, 1
	}
	if side == "kafka" && p.pub != nil {
		// A new producer starts clean (new producer id, fresh metadata); the
		// old one is closed first, so nothing of it is still in flight.
		p.pub.close()
		p.pub = nil
	}
}

func (p *pollRun) recovered() {
	if p.failing == "" {
		return
	}
	p.cfg.log.Info("outbox relay recovered", "was_failing", p.failing,
		"down_for", time.Since(p.failSince).Round(time.Millisecond), "attempts", p.attempts)
	p.failing = ""
	p.relay.mu.Lock()
	p.relay.stats.Failing = false
	p.relay.mu.Unlock()
}

// stop hands the lease over and closes the producer.
func (p *pollRun) stop() {
	if !p.cfg.postgres && !p.leaseUntil.IsZero() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := p.db.ExecContext(ctx, `UPDATE `+p.cfg.lease+` SET expires = 0 WHERE name = 'relay' AND holder = $1`, p.cfg.instance); err != nil {
			p.cfg.log.Warn("outbox relay could not hand its lease over; another relay takes over when it runs out", "error", err)
		}
		cancel()
		p.leaseLost()
	}
	if p.pub != nil {
		p.pub.close()
		p.pub = nil
	}
}
