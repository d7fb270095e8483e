package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

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
	acked, err := p.pub.send(pctx, msgs)
	if acked > 0 {
		if h := p.relay.hooks.afterAck; h != nil {
			h(good[:acked])
		}
	}
	switch {
	case err == nil:
		return good, dead, nil
	case pollRefused(err) && len(good) == 1:
		// the record alone in the batch the broker refused: dead
		return nil, append(dead, pollDead{good[0].Seq, good[0].ID, err}), nil
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
		_, err := p.pub.send(ctx, msgs[i:i+1])
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
