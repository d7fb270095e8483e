package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
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
	p := &pollRun{relay: r, cfg: c, db: r.DB, backoff: c.minBackoff, maxBytes: sarama.NewConfig().Producer.MaxMessageBytes}
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
			wait = p.backoff
			p.backoff = min(2*p.backoff, c.maxBackoff)
		} else {
			p.recovered()
			p.backoff = c.minBackoff
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
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
	ready   bool // the dead (and lease) tables exist
	backoff time.Duration

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

// createTables creates the dead table and, on SQLite, the lease table.
func (p *pollRun) createTables(ctx context.Context) error {
	ddl := []string{`CREATE TABLE IF NOT EXISTS ` + p.cfg.dead + ` (
	seq bigint NOT NULL,
	id text NOT NULL,
	aggregatetype text NOT NULL,
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload jsonb,
	timestamp timestamptz NOT NULL,
	headers jsonb NOT NULL,
	error text NOT NULL,
	failed_at timestamptz NOT NULL DEFAULT now()
)`}
	if !p.cfg.postgres {
		ddl = []string{`CREATE TABLE IF NOT EXISTS ` + p.cfg.dead + ` (
	seq INTEGER NOT NULL,
	id TEXT NOT NULL,
	aggregatetype TEXT NOT NULL,
	aggregateid TEXT NOT NULL,
	type TEXT NOT NULL,
	payload TEXT,
	timestamp TEXT NOT NULL,
	headers TEXT NOT NULL,
	error TEXT NOT NULL,
	failed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`, `CREATE TABLE IF NOT EXISTS ` + p.cfg.lease + ` (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires INTEGER NOT NULL
)`}
	}
	for _, s := range ddl {
		if _, err := p.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("outbox: create the relay's tables: %w", err)
		}
	}
	return nil
}

// holdLease takes or renews the SQLite lease and says whether this relay
// holds it. It renews when a third of the lease has passed, so a holder
// always has two thirds of it left when it starts publishing a batch.
func (p *pollRun) holdLease(ctx context.Context) (bool, error) {
	now := time.Now()
	lease := p.cfg.leaseFor
	if p.leaseUntil.After(now.Add(lease * 2 / 3)) {
		return true, nil
	}
	// One statement, atomic: take the lease if nobody has it, it has run
	// out, or it is ours.
	res, err := p.db.ExecContext(ctx, `INSERT INTO `+p.cfg.lease+` (name, holder, expires) VALUES ('relay', $1, $2)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE `+p.cfg.lease+`.holder = excluded.holder OR `+p.cfg.lease+`.expires <= $3`,
		p.cfg.instance, now.Add(lease).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("outbox: take the relay lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: take the relay lease: %w", err)
	}
	if n == 0 {
		if !p.leaseUntil.IsZero() {
			p.cfg.log.Warn("outbox relay lost its lease to another relay; it stops publishing")
			p.leaseLost()
		}
		return false, nil
	}
	if p.leaseUntil.IsZero() {
		p.cfg.log.Info("outbox relay took the lease; it publishes", "lease", lease)
		p.relay.mu.Lock()
		p.relay.stats.LeaseHeld, p.relay.stats.LeaseSince = true, now
		p.relay.mu.Unlock()
	}
	p.leaseUntil = now.Add(lease)
	return true, nil
}

func (p *pollRun) leaseLost() {
	p.leaseUntil = time.Time{}
	p.relay.mu.Lock()
	p.relay.stats.LeaseHeld, p.relay.stats.LeaseSince = false, time.Time{}
	p.relay.mu.Unlock()
}

// pollRow is a row read from the table, or why it cannot be published.
type pollRow struct {
	Row
	bad error
}

// pollColumns are the columns a round reads, in pollScan's order.
const pollColumns = `seq, id, aggregatetype, aggregateid, type, payload, timestamp, headers`

// round publishes one batch and says whether there may be more at once.
func (p *pollRun) round(ctx context.Context) (bool, error) {
	dbctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pollRoundTimeout+10*time.Second)
	defer cancel()
	if p.cfg.postgres {
		return p.roundPostgres(ctx, dbctx)
	}
	return p.roundSQLite(ctx, dbctx)
}

// roundPostgres takes a batch with SELECT … FOR UPDATE SKIP LOCKED in a
// transaction held while publishing, so several relays each publish
// different rows, and deletes the acknowledged ones in it.
//
// SKIP LOCKED alone would break an aggregate's order: while relay A holds
// aggregate X's row 50, relay B skips it and may publish X's row 150 first
// (or A's publish fails, A rolls back, and B's row 150 still goes first).
// So a relay publishes a row only if no earlier row of its aggregate is
// still in the table outside its batch (pollInOrder) — whoever holds the
// earlier row, and whether it will publish or roll back. The check reads
// committed rows, locked or not, after the batch was locked, so a row it
// misses was deleted, i.e. already published. We chose this over
// transaction-scoped advisory locks per aggregate
// (pg_try_advisory_xact_lock(hashtext(aggregateid))): a lock says only that
// nobody holds the aggregate now, not that its earlier rows are gone — after
// A's rollback B would take the lock and publish row 150 before row 50. The
// relay holding the lowest row always publishes it, so the relays never
// starve each other.
func (p *pollRun) roundPostgres(ctx, dbctx context.Context) (bool, error) {
	tx, err := p.db.BeginTx(dbctx, nil)
	if err != nil {
		return false, pollDB(fmt.Errorf("outbox: begin: %w", err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	rows, err := pollScan(tx.QueryContext(dbctx, `SELECT `+pollColumns+` FROM `+p.cfg.table+
		` ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`, p.cfg.batch))
	if err != nil {
		return false, pollDB(fmt.Errorf("outbox: read %s: %w", p.cfg.table, err))
	}
	if len(rows) == 0 {
		return false, nil
	}
	full := len(rows) == p.cfg.batch
	held, err := pollInOrder(dbctx, tx, p.cfg.table, rows)
	if err != nil {
		return false, pollDB(err)
	}
	sent, dead, perr := p.publish(ctx, held)
	if err := p.finish(dbctx, tx, sent, dead); err != nil {
		return false, pollDB(err)
	}
	if err := tx.Commit(); err != nil {
		return false, pollDB(fmt.Errorf("outbox: delete published rows: %w", err))
	}
	p.done(sent, dead)
	if perr != nil {
		return false, perr
	}
	// a batch cut short by another relay's rows: wait for it, don't spin
	return full && len(held) == len(rows) || p.oneByOne, nil
}

// pollInOrder keeps the rows of batch (in seq order) that no earlier row of
// their aggregate outside the batch precedes.
func pollInOrder(ctx context.Context, tx *sql.Tx, table string, batch []pollRow) ([]pollRow, error) {
	seqs := make([]int64, len(batch))
	aggs := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for i, r := range batch {
		seqs[i] = r.Seq
		if !seen[r.AggregateID] {
			seen[r.AggregateID] = true
			aggs = append(aggs, r.AggregateID)
		}
	}
	// seq < the batch's last: the primary key's range, in which only the
	// batch and rows other relays hold can be (the batch is the lowest
	// unlocked rows)
	q, err := tx.QueryContext(ctx, `SELECT aggregateid, min(seq) FROM `+table+
		` WHERE seq < $1 AND aggregateid = ANY($2) AND NOT (seq = ANY($3)) GROUP BY aggregateid`,
		seqs[len(seqs)-1], aggs, seqs)
	if err != nil {
		return nil, fmt.Errorf("outbox: check order in %s: %w", table, err)
	}
	defer q.Close()
	before := map[string]int64{} // aggregate → its first row outside the batch
	for q.Next() {
		var agg string
		var seq int64
		if err := q.Scan(&agg, &seq); err != nil {
			return nil, fmt.Errorf("outbox: check order in %s: %w", table, err)
		}
		before[agg] = seq
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("outbox: check order in %s: %w", table, err)
	}
	if len(before) == 0 {
		return batch, nil
	}
	kept := batch[:0:0]
	for _, r := range batch {
		if s, ok := before[r.AggregateID]; !ok || r.Seq < s {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// roundSQLite publishes the first rows of the table; only the lease holder
// gets here, so nobody else publishes them meanwhile.
func (p *pollRun) roundSQLite(ctx, dbctx context.Context) (bool, error) {
	rows, err := pollScan(p.db.QueryContext(dbctx, `SELECT `+pollColumns+` FROM `+p.cfg.table+` ORDER BY seq LIMIT $1`, p.cfg.batch))
	if err != nil {
		return false, pollDB(fmt.Errorf("outbox: read %s: %w", p.cfg.table, err))
	}
	if len(rows) == 0 {
		return false, nil
	}
	// Stop waiting for the broker when the lease runs out: after that
	// another relay may publish these rows too.
	pctx, cancel := context.WithDeadline(ctx, p.leaseUntil)
	sent, dead, perr := p.publish(pctx, rows)
	cancel()
	if len(sent) > 0 || len(dead) > 0 {
		tx, err := p.db.BeginTx(dbctx, nil)
		if err != nil {
			return false, pollDB(fmt.Errorf("outbox: begin: %w", err))
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if err := p.finish(dbctx, tx, sent, dead); err != nil {
			return false, pollDB(err)
		}
		if err := tx.Commit(); err != nil {
			return false, pollDB(fmt.Errorf("outbox: delete published rows: %w", err))
		}
	}
	p.done(sent, dead)
	if perr != nil {
		return false, perr
	}
	return len(rows) == p.cfg.batch || p.oneByOne, nil
}

// pollDead is a row that cannot be published, and why.
type pollDead struct {
	seq int64
	id  string
	err error
}

// publish sends the publishable rows in order and returns those the broker
// acknowledged (a prefix) and those that can never be published.
func (p *pollRun) publish(ctx context.Context, rows []pollRow) ([]Row, []pollDead, error) {
	if p.pub == nil {
		pub, err := newPublisher(p.relay.Kafka)
		if err != nil {
			return nil, nil, pollKafka(err)
		}
		p.pub = pub
	}
	var dead []pollDead
	good := make([]Row, 0, len(rows))
	msgs := make([]*sarama.ProducerMessage, 0, len(rows))
	for _, r := range rows {
		if r.bad != nil {
			dead = append(dead, pollDead{r.Seq, r.ID, r.bad})
			continue
		}
		m, err := p.pub.message(r.Row)
		if err == nil && m.ByteSize(2) > p.maxBytes {
			// the producer would refuse it, and then send the records
			// behind it: set it aside now, not after them
			err = fmt.Errorf("outbox: row %s: %d bytes, more than the producer's MaxMessageBytes (%d): %w", r.ID, m.ByteSize(2), p.maxBytes, sarama.ErrMessageSizeTooLarge)
		}
		if err != nil {
			dead = append(dead, pollDead{r.Seq, r.ID, err})
			continue
		}
		good = append(good, r.Row)
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, dead, nil
	}
	if h := p.relay.hooks.beforePublish; h != nil {
		h(good)
	}
	pctx, cancel := context.WithTimeout(ctx, pollRoundTimeout)
	defer cancel()
	if p.oneByOne {
		return p.publishOneByOne(pctx, good, msgs, dead)
	}
	acked, err := p.pub.sender.SendAll(pctx, msgs)
	if acked > 0 {
		if h := p.relay.hooks.afterAck; h != nil {
			h(good[:acked])
		}
	}
	switch {
	case err == nil:
		return good, dead, nil
	case pollRefused(err) && acked == len(good)-1:
		// the last record, alone in the batch the broker refused: dead
		return good[:acked], append(dead, pollDead{good[acked].Seq, good[acked].ID, err}), nil
	case pollRefused(err):
		// The broker refuses a whole record batch for one record (too
		// large for the topic's max.message.bytes): find it by sending the
		// rest one by one, next round, rather than blame the first.
		p.oneByOne = true
		p.cfg.log.Warn("the broker refused a batch of records; sending the next rows one by one to find the one it refuses", "error", err)
		return good[:acked], dead, nil
	}
	return good[:acked], dead, pollKafka(fmt.Errorf("outbox: publish: %w", err))
}

// publishOneByOne sends each record by itself, so that a refusal names its
// record.
func (p *pollRun) publishOneByOne(ctx context.Context, good []Row, msgs []*sarama.ProducerMessage, dead []pollDead) ([]Row, []pollDead, error) {
	sent := make([]Row, 0, len(good))
	defer func() {
		if h := p.relay.hooks.afterAck; h != nil && len(sent) > 0 {
			h(sent)
		}
	}()
	for i := range msgs {
		_, err := p.pub.sender.SendAll(ctx, msgs[i:i+1])
		switch {
		case err == nil:
			sent = append(sent, good[i])
		case pollRefused(err):
			dead = append(dead, pollDead{good[i].Seq, good[i].ID, err})
		default:
			return sent, dead, pollKafka(fmt.Errorf("outbox: publish: %w", err))
		}
	}
	p.oneByOne = false
	return sent, dead, nil
}

// pollRefused says the broker refuses a record batch for what it holds, so
// sending it again cannot succeed.
func pollRefused(err error) bool {
	return errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrInvalidRecord)
}

// finish deletes the acknowledged rows and moves the dead ones, in tx.
func (p *pollRun) finish(ctx context.Context, tx *sql.Tx, sent []Row, dead []pollDead) error {
	for _, d := range dead {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+p.cfg.dead+` (`+pollColumns+`, error) SELECT `+pollColumns+`, $2 FROM `+p.cfg.table+` WHERE seq = $1`, d.seq, d.err.Error()); err != nil {
			return fmt.Errorf("outbox: move row %s to %s: %w", d.id, p.cfg.dead, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+p.cfg.table+` WHERE seq = $1`, d.seq); err != nil {
			return fmt.Errorf("outbox: move row %s to %s: %w", d.id, p.cfg.dead, err)
		}
	}
	if len(sent) == 0 {
		return nil
	}
	var err error
	if p.cfg.postgres {
		seqs := make([]int64, len(sent))
		for i, r := range sent {
			seqs[i] = r.Seq
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM `+p.cfg.table+` WHERE seq = ANY($1)`, seqs)
	} else {
		var b strings.Builder
		args := make([]any, len(sent))
		for i, r := range sent {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "$%d", i+1)
			args[i] = r.Seq
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM `+p.cfg.table+` WHERE seq IN (`+b.String()+`)`, args...)
	}
	if err != nil {
		return fmt.Errorf("outbox: delete published rows: %w", err)
	}
	return nil
}

// done counts a round that committed.
func (p *pollRun) done(sent []Row, dead []pollDead) {
	for _, d := range dead {
		p.cfg.log.Error("outbox relay moved a row it cannot publish to the dead table",
			"id", d.id, "seq", d.seq, "dead_table", p.cfg.dead, "error", d.err)
	}
	p.relay.mu.Lock()
	defer p.relay.mu.Unlock()
	s := &p.relay.stats
	s.Published += int64(len(sent))
	s.DeadLettered += int64(len(dead))
	if len(sent) > 0 {
		s.LastPublished = time.Now()
	}
}

// pollScan reads the rows of a query of pollColumns. A row whose values
// cannot be an event is returned with bad set, not as an error: it must not
// hold up the others.
func pollScan(q *sql.Rows, err error) ([]pollRow, error) {
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var rows []pollRow
	for q.Next() {
		var r pollRow
		var payload, ts, headers any
		if err := q.Scan(&r.Seq, &r.ID, &r.AggregateType, &r.AggregateID, &r.Type, &payload, &ts, &headers); err != nil {
			return nil, err
		}
		if payload != nil {
			r.Payload = json.RawMessage(pollText(payload))
		}
		r.Headers = json.RawMessage(pollText(headers))
		switch t := ts.(type) {
		case time.Time:
			r.Timestamp = t
		default:
			r.Timestamp, r.bad = time.Parse(time.RFC3339Nano, pollText(t))
			if r.bad != nil {
				r.bad = fmt.Errorf("outbox: row %s: timestamp: %w", r.ID, r.bad)
			}
		}
		rows = append(rows, r)
	}
	return rows, q.Err()
}

// pollText is a text column's value as the drivers return it.
func pollText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
