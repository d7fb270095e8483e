package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// LogRelay publishes an outbox table's events to Kafka by tailing
// PostgreSQL's write-ahead log (logical replication with the built-in
// pgoutput plugin), the way Debezium does, from a Go process.
//
// It reads the inserts into the outbox table from a replication slot, so it
// also sees rows a [Writer] with Transient deletes again in the same
// transaction (the table stays empty), and it never queries the table. Each
// row is published as its structured CloudEvent keyed by its aggregate id,
// in commit order. The slot's confirmed position moves past a transaction
// only after the broker acknowledged every row of it and of the
// transactions before it, so after a stop, a crash or a lost connection the
// relay resumes exactly where the slot says: at least once — a crash
// between the acknowledgement and the confirmation publishes those rows
// again, with the same ids — and nothing is lost.
//
// Rows are never deleted by the relay: with Writer{Transient: true} there is
// nothing to delete; rows a writer keeps are the writer's history, removed
// by a retention job (e.g. DELETE FROM outbox WHERE timestamp < now() -
// interval '7 days'), which the relay never notices since it reads the log.
//
// The slot keeps every event committed after it was created, so create it
// before the first write ([LogRelay.Prepare] at deployment or start-up;
// Run does it too). It also keeps the WAL from its position on: a relay
// stopped for good must drop its slot (SELECT pg_drop_replication_slot(…)),
// or the server's disk fills.
//
// Fill the exported fields, then call Run. Run must not be called again
// before it returned; Stats may be called at any time from any goroutine.
// Several relays may run on one slot: one streams, the others retry until
// the slot is free (a warm standby). Do not copy a LogRelay once used.
type LogRelay struct {
	// URL is the PostgreSQL URL (postgres://…). The relay opens its own
	// replication connection to it (replication=database): the role needs
	// the REPLICATION attribute, and the server wal_level=logical.
	URL string
	// Kafka is where rows are published.
	Kafka Kafka
	// Table is the outbox table; DefaultTable when empty.
	Table string
	// Slot is the logical replication slot; "streamfold_<table>" when
	// empty. Slot names are cluster-wide: give every relayed database its
	// own.
	Slot string
	// Publication names the publication the slot reads; "streamfold_<table>"
	// when empty. Created FOR TABLE <table> WITH (publish = 'insert') if
	// missing; an existing one must publish the table.
	Publication string
	// StatusInterval is how often the relay tells the server where it is
	// (a standby status update) when nothing else made it; 10 s when zero.
	// Keep it well below the server's wal_sender_timeout (60 s by default).
	StatusInterval time.Duration
	// BatchSize is the most rows published at once; 500 when zero. Rows
	// arriving together (several transactions, or one large one) are
	// published together.
	BatchSize int
	// Backoff is the first wait after a failure (Kafka or PostgreSQL
	// unreachable), doubling up to MaxBackoff; 100 ms and 5 s when zero.
	Backoff, MaxBackoff time.Duration
	// DeadLetterTopic receives rows that cannot become a CloudEvent, or
	// that the broker refuses for good (too large, invalid topic), so they
	// do not stall the slot; "<table>-dlq" when empty.
	DeadLetterTopic string
	// Logger receives failures and reconnections; nil discards.
	Logger *slog.Logger

	afterAck func(acked int) // test hook: runs after an acknowledgement, before the LSN is confirmed

	mu    sync.Mutex
	stats LogRelayStats
}

// LogRelayStats is a LogRelay's progress.
type LogRelayStats struct {
	// Published counts rows the broker acknowledged on their topics since
	// the LogRelay was created (rows published twice count twice).
	Published int64
	// DeadLettered counts rows acknowledged on the dead-letter topic.
	DeadLettered int64
	// ConfirmedLSN is the slot position the relay has confirmed to
	// PostgreSQL, in PostgreSQL's text form ("0/1A2B3C8", as
	// pg_replication_slots.confirmed_flush_lsn shows it): every transaction
	// committed before it is on Kafka. Empty before Run reached the slot.
	ConfirmedLSN string
	// Streaming is true while the replication connection is up. A relay
	// standing by while another streams from the slot is not streaming
	// and reports no error.
	Streaming bool
	// Reconnects counts replication connections opened after the first.
	Reconnects int64
	// LastError is the last failure (Kafka, PostgreSQL), nil before any;
	// the relay retries after each, see LastErrorAt.
	LastError   error
	LastErrorAt time.Time
}

// Stats returns the relay's progress. Safe for concurrent use.
func (r *LogRelay) Stats() LogRelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *LogRelay) update(f func(s *LogRelayStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// ErrLogRelayConfig is returned by Run and Prepare for a LogRelay or a
// database they cannot work with (bad names, wal_level not logical, a slot
// of another plugin or database, a publication without the table); Run
// returns it instead of retrying.
var ErrLogRelayConfig = errors.New("outbox: log relay configuration")

// tailConfig is a LogRelay's fields with their defaults applied.
type tailConfig struct {
	url, table, slot, publication, deadLetters string
	status, backoff, maxBackoff                time.Duration
	batch                                      int
	log                                        *slog.Logger
}

var tailSlotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (r *LogRelay) config() (tailConfig, error) {
	c := tailConfig{url: r.URL, slot: r.Slot, publication: r.Publication, deadLetters: r.DeadLetterTopic,
		status: r.StatusInterval, backoff: r.Backoff, maxBackoff: r.MaxBackoff, batch: r.BatchSize, log: r.Logger}
	if !strings.HasPrefix(c.url, "postgres://") && !strings.HasPrefix(c.url, "postgresql://") {
		return c, fmt.Errorf("%w: URL %q: want postgres://…", ErrLogRelayConfig, Redact(c.url))
	}
	if len(r.Kafka.Brokers) == 0 {
		return c, fmt.Errorf("%w: no Kafka brokers", ErrLogRelayConfig)
	}
	table, err := tableName(r.Table)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrLogRelayConfig, err)
	}
	c.table = strings.ToLower(table) // unquoted, as Migrate creates it
	if c.slot == "" {
		c.slot = "streamfold_" + c.table
	}
	if !tailSlotName.MatchString(c.slot) {
		return c, fmt.Errorf("%w: slot name %q: want lower-case letters, digits and _", ErrLogRelayConfig, c.slot)
	}
	if c.publication == "" {
		c.publication = "streamfold_" + c.table
	}
	if !identifier.MatchString(c.publication) {
		return c, fmt.Errorf("%w: publication name %q: want letters, digits and _", ErrLogRelayConfig, c.publication)
	}
	c.publication = strings.ToLower(c.publication)
	if c.deadLetters == "" {
		c.deadLetters = c.table + "-dlq"
	}
	if c.status <= 0 {
		c.status = 10 * time.Second
	}
	if c.backoff <= 0 {
		c.backoff = 100 * time.Millisecond
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = 5 * time.Second
	}
	c.maxBackoff = max(c.maxBackoff, c.backoff)
	if c.batch <= 0 {
		c.batch = 500
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// Prepare creates the publication and the replication slot if they are
// missing, and checks them if not. From then on the slot keeps every
// committed event until a relay publishes it: call Prepare before the
// first write (Run calls it too). The outbox table must exist (Migrate).
func (r *LogRelay) Prepare(ctx context.Context) error {
	c, err := r.config()
	if err != nil {
		return err
	}
	_, err = r.prepare(ctx, c)
	return err
}

// prepare makes sure the publication and the slot exist and returns the
// slot's confirmed position.
func (r *LogRelay) prepare(ctx context.Context, c tailConfig) (pglogrepl.LSN, error) {
	db, err := sql.Open("pgx", c.url)
	if err != nil {
		return 0, fmt.Errorf("outbox: log relay: open %s: %w", Redact(c.url), err)
	}
	defer db.Close()
	var wal string
	if err := db.QueryRowContext(ctx, `SHOW wal_level`).Scan(&wal); err != nil {
		return 0, fmt.Errorf("outbox: log relay: %w", err)
	}
	if wal != "logical" {
		return 0, fmt.Errorf("%w: the server's wal_level is %s, want logical", ErrLogRelayConfig, wal)
	}
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, c.publication).Scan(&exists); err != nil {
		return 0, fmt.Errorf("outbox: log relay: publication %s: %w", c.publication, err)
	}
	if !exists {
		// Inserts are all the relay reads: a transient writer's deletes
		// need not travel.
		_, err := db.ExecContext(ctx, `CREATE PUBLICATION `+c.publication+` FOR TABLE `+c.table+` WITH (publish = 'insert')`)
		if err != nil && !tailIsCode(err, "42710") { // duplicate_object: another relay was quicker
			return 0, fmt.Errorf("outbox: log relay: create publication %s: %w", c.publication, err)
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2)`,
		c.publication, c.table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("outbox: log relay: publication %s: %w", c.publication, err)
	}
	if !exists {
		return 0, fmt.Errorf("%w: publication %s does not publish table %s", ErrLogRelayConfig, c.publication, c.table)
	}
	for attempt := 0; ; attempt++ {
		var plugin, database, current string
		var confirmed sql.NullString
		err := db.QueryRowContext(ctx, `SELECT coalesce(s.plugin, ''), coalesce(s.database, ''), s.confirmed_flush_lsn::text, current_database()
			FROM pg_replication_slots s WHERE s.slot_name = $1`, c.slot).Scan(&plugin, &database, &confirmed, &current)
		if errors.Is(err, sql.ErrNoRows) && attempt == 0 {
			_, err := db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, c.slot)
			if err != nil && !tailIsCode(err, "42710") {
				return 0, fmt.Errorf("outbox: log relay: create slot %s: %w", c.slot, err)
			}
			c.log.Info("outbox log relay: created replication slot", "slot", c.slot, "publication", c.publication)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("outbox: log relay: slot %s: %w", c.slot, err)
		}
		if plugin != "pgoutput" || database != current {
			return 0, fmt.Errorf("%w: slot %s is for plugin %q in database %q, want pgoutput in %q", ErrLogRelayConfig, c.slot, plugin, database, current)
		}
		lsn, err := pglogrepl.ParseLSN(confirmed.String)
		if err != nil {
			return 0, fmt.Errorf("outbox: log relay: slot %s: confirmed position %q: %w", c.slot, confirmed.String, err)
		}
		return lsn, nil
	}
}

func tailIsCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// tailFatal tells whether Run should give up on err rather than retry: a
// configuration it cannot work with, or the server refusing the relay's
// statements (no such table or database, no permission, bad password).
func tailFatal(err error) bool {
	if errors.Is(err, ErrLogRelayConfig) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) >= 2 {
		switch pe.Code[:2] {
		case "42", "28", "3D":
			return true
		}
	}
	return false
}

// Run relays until ctx ends (then it returns nil, after confirming to the
// server what the broker acknowledged) or a fatal error
// (ErrLogRelayConfig, or the server refusing the relay's setup). Kafka or
// PostgreSQL being unreachable is not fatal: Run backs off and retries,
// see Stats().LastError.
//
// While Kafka is unreachable the relay stops reading the log, keeps the
// rows it holds, and keeps the replication connection alive with status
// updates carrying the old confirmed position; when Kafka returns it
// publishes them in order. If the replication connection breaks, it
// reconnects and starts again from the last confirmed position.
func (r *LogRelay) Run(ctx context.Context) error {
	c, err := r.config()
	if err != nil {
		return err
	}
	s := &tailSession{relay: r, c: c}
	defer s.closePublisher()
	b := backoff{min: c.backoff, max: c.maxBackoff}
	for {
		s.confirmed, err = r.prepare(ctx, c)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if tailFatal(err) {
			return err
		}
		s.fail(err)
		if !sleep(ctx, b.next()) {
			return nil
		}
	}
	r.update(func(st *LogRelayStats) { st.ConfirmedLSN = s.confirmed.String() })
	b.reset()
	for first := true; ; first = false {
		if !first {
			r.update(func(st *LogRelayStats) { st.Reconnects++ })
		}
		progressed, err := s.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			b.reset()
		}
		if tailFatal(err) && !progressed {
			return err
		}
		if tailIsCode(err, "55006") { // object_in_use: another relay streams from the slot
			c.log.Debug("outbox log relay: the slot is in use; standing by", "slot", c.slot)
		} else {
			s.fail(err)
			c.log.Warn("outbox log relay: replication stopped; reconnecting", "slot", c.slot, "err", err)
		}
		if !sleep(ctx, b.next()) {
			return nil
		}
	}
}

// tailSession is what one Run keeps across replication connections.
type tailSession struct {
	relay     *LogRelay
	c         tailConfig
	pub       *publisher
	confirmed pglogrepl.LSN // every transaction ending at or before it is acknowledged
}

func (s *tailSession) fail(err error) {
	s.relay.update(func(st *LogRelayStats) { st.LastError, st.LastErrorAt = err, time.Now() })
}

func (s *tailSession) closePublisher() {
	if s.pub != nil {
		s.pub.close()
		s.pub = nil
	}
}

// tailConn is one replication connection and what it has received but not
// yet confirmed.
type tailConn struct {
	*tailSession
	conn    *pgconn.PgConn
	decoder tailDecoder
	pending tailPending
	flushAt time.Time // when rows that arrived first are published at the latest
	broken  error     // the connection failed while the relay was waiting for Kafka
	probe   bool      // after a failed publish, send one row alone until one is acknowledged
}

// tailLinger is how long the first row received waits for others to be
// published with it. Under load rows arrive while a batch is published and
// form the next one without waiting.
const tailLinger = time.Millisecond

// stream replicates over one connection until it breaks or ctx ends. It
// reports whether it confirmed anything, so that Run's backoff starts
// again from its minimum.
func (s *tailSession) stream(ctx context.Context) (progressed bool, err error) {
	cfg, err := pgconn.ParseConfig(s.c.url)
	if err != nil {
		return false, fmt.Errorf("%w: URL: %w", ErrLogRelayConfig, err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["DateStyle"] = "ISO" // timestamps arrive as text: one format to parse
	cfg.RuntimeParams["TimeZone"] = "UTC"  // … with a +00 offset
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "streamfold-outbox-relay"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("outbox: log relay: replication connection: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	t := &tailConn{tailSession: s, conn: conn, decoder: tailDecoder{table: s.c.table}}
	start := s.confirmed
	err = pglogrepl.StartReplication(ctx, conn, s.c.slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.c.publication + "'"},
	})
	if err != nil {
		return false, fmt.Errorf("outbox: log relay: start replication on slot %s: %w", s.c.slot, err)
	}
	s.relay.update(func(st *LogRelayStats) { st.Streaming = true })
	defer s.relay.update(func(st *LogRelayStats) { st.Streaming = false })
	s.c.log.Info("outbox log relay: streaming", "slot", s.c.slot, "from", start.String())
	err = t.loop(ctx)
	if ctx.Err() != nil {
		// Stopping: tell the server what is acknowledged, so that the next
		// relay starts right after it.
		_ = t.sendStatus()
	}
	return s.confirmed > start, err
}

// loop reads the log, publishes what it read and confirms what the broker
// acknowledged.
func (t *tailConn) loop(ctx context.Context) error {
	if err := t.sendStatus(); err != nil {
		return err
	}
	nextStatus := time.Now().Add(t.c.status)
	for {
		now := time.Now()
		if upTo, due := t.due(now); due {
			if err := t.flush(ctx, upTo); err != nil {
				return err
			}
			nextStatus = time.Now().Add(t.c.status)
			continue
		}
		if !now.Before(nextStatus) {
			if err := t.sendStatus(); err != nil {
				return err
			}
			nextStatus = now.Add(t.c.status)
		}
		deadline := nextStatus
		if len(t.pending.commits) > 0 && t.flushAt.Before(deadline) {
			deadline = t.flushAt
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := t.conn.ReceiveMessage(rctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("outbox: log relay: receive: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := t.handle(msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("outbox: log relay: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("outbox: log relay: the server ended replication")
		}
	}
}

// handle takes one message of the replication stream.
func (t *tailConn) handle(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("outbox: log relay: keepalive: %w", err)
		}
		// Holding nothing, the relay has seen every transaction that
		// committed before the server's position: confirming it lets the
		// server free the WAL that other tables' writes fill.
		if !t.pending.waiting() && !t.decoder.inTransaction() && ka.ServerWALEnd > t.confirmed {
			t.confirm(ka.ServerWALEnd)
		}
		if ka.ReplyRequested {
			return t.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("outbox: log relay: %w", err)
		}
		was := t.pending.waiting()
		if err := t.decoder.decode(x.WALData, x.WALStart, &t.pending); err != nil {
			return err
		}
		if !was && t.pending.waiting() {
			t.flushAt = time.Now().Add(tailLinger)
		}
	}
	return nil
}

func (t *tailConn) confirm(lsn pglogrepl.LSN) {
	if lsn <= t.confirmed {
		return
	}
	t.confirmed = lsn
	t.relay.update(func(st *LogRelayStats) { st.ConfirmedLSN = lsn.String() })
}

// sendStatus tells the server the confirmed position: written, flushed and
// applied are all of it, since the relay keeps nothing it could not
// read again from the slot.
func (t *tailConn) sendStatus() error {
	if t.broken != nil {
		return t.broken
	}
	if t.confirmed == 0 {
		return nil // pglogrepl would send 0 as "the write position"; nothing to say yet
	}
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), t.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: t.confirmed, WALFlushPosition: t.confirmed, WALApplyPosition: t.confirmed,
	})
	if err != nil {
		return fmt.Errorf("outbox: log relay: status update: %w", err)
	}
	return nil
}

// due tells whether to publish now, and how many rows: a full batch at
// once, even from a transaction whose end has not arrived yet (rows arrive
// only once their transaction committed: a large one need not sit in
// memory); otherwise, once the first waited tailLinger, the rows of the
// transactions whose end arrived, so that what is acknowledged can be
// confirmed at once.
func (t *tailConn) due(now time.Time) (upTo int, ok bool) {
	if n := len(t.pending.rows); n >= t.c.batch {
		return n, true
	}
	if n := len(t.pending.commits); n > 0 && !now.Before(t.flushAt) {
		return t.pending.commits[n-1].end, true
	}
	return 0, false
}

// flush publishes the first upTo pending rows, in order, and confirms the
// transactions whose rows are all acknowledged. While Kafka fails it backs
// off without reading more, keeping the connection alive.
func (t *tailConn) flush(ctx context.Context, upTo int) error {
	b := backoff{min: t.c.backoff, max: t.c.maxBackoff}
	for upTo > 0 {
		if t.pub == nil {
			p, err := newPublisher(t.relay.Kafka)
			if err != nil {
				t.probe = true
				if err := t.retryLater(ctx, fmt.Errorf("outbox: log relay: %w", err), &b); err != nil {
					return err
				}
				continue
			}
			t.pub = p
		}
		// Coming back from a failure, one row goes alone first: a batch is
		// one transaction, committed or aborted as a whole (so order holds
		// whatever fails), and a batch the broker refused does not say which
		// row it refuses; a row sent alone does.
		size := t.c.batch
		if t.probe {
			size = 1
		}
		batch := t.pending.rows[:min(upTo, size)]
		msgs := make([]*sarama.ProducerMessage, len(batch))
		for i := range batch {
			msgs[i] = t.message(&batch[i])
		}
		var acked int
		var err error
		t.keepAlive(func() { acked, err = t.pub.send(ctx, msgs) })
		if acked > 0 {
			var published, dead int64
			for _, r := range batch[:acked] {
				if r.dead != nil {
					dead++
				} else {
					published++
				}
			}
			t.relay.update(func(st *LogRelayStats) { st.Published += published; st.DeadLettered += dead })
			if t.relay.afterAck != nil {
				t.relay.afterAck(acked)
			}
			if lsn, ok := t.pending.ack(acked); ok {
				t.confirm(lsn)
			}
			upTo -= acked
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			b.reset()
			t.probe = false
			continue
		}
		t.probe = true
		if first := &t.pending.rows[0]; len(batch) == 1 && first.dead == nil && tailRefused(err) {
			// The broker will never take this row: dead-letter it rather
			// than stall every row behind it.
			first.dead = fmt.Errorf("refused by Kafka: %w", err)
			t.c.log.Error("outbox log relay: row refused by Kafka; dead-lettered", "id", first.row.ID, "topic", t.c.deadLetters, "err", err)
			continue
		}
		// A producer that failed may hold records in retry: a new one
		// starts clean, and the rows are sent again in order.
		t.closePublisher()
		if err := t.retryLater(ctx, fmt.Errorf("outbox: log relay: publish: %w", err), &b); err != nil {
			return err
		}
	}
	if lsn, ok := t.pending.ack(0); ok { // transactions without rows after the last acknowledged one
		t.confirm(lsn)
	}
	return t.sendStatus()
}

// retryLater records err and waits the next backoff, keeping the
// replication connection alive meanwhile. It returns an error only if ctx
// ended or the connection broke.
func (t *tailConn) retryLater(ctx context.Context, err error, b *backoff) error {
	t.fail(err)
	d := b.next()
	t.c.log.Warn("outbox log relay: Kafka unavailable; rows wait", "err", err, "retry_in", d, "waiting_rows", len(t.pending.rows))
	t.keepAlive(func() { sleep(ctx, d) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return t.broken
}

// keepAlive runs f, and while it runs sends the server a status update
// (with the old confirmed position) every StatusInterval, so that the
// server does not take the waiting relay for dead. The log is not read
// meanwhile: the server holds the rest.
func (t *tailConn) keepAlive(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	tick := time.NewTicker(t.c.status)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if t.broken == nil {
				if err := t.sendStatus(); err != nil {
					t.broken = err
				}
			}
		}
	}
}

// tailRefused tells whether Kafka refused a record for what it is, so that
// sending it again cannot succeed.
func tailRefused(err error) bool {
	var ce sarama.ConfigurationError
	if errors.As(err, &ce) && strings.Contains(string(ce), "MaxMessageBytes") {
		return true
	}
	return errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrInvalidTopic) || errors.Is(err, sarama.ErrInvalidRecord)
}
