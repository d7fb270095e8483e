package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pglogrepl"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// tailRow is an outbox row read from the log, waiting for the broker.
type tailRow struct {
	row  Row
	lsn  pglogrepl.LSN   // where its insert is in the log
	dead error           // why it cannot be published: it goes to the dead-letter topic
	raw  json.RawMessage // its columns as the log had them, for the dead letter of a row that could not be read
}

// tailCommit marks the end of a transaction: once rows[:end] are
// acknowledged, the slot may move to lsn.
type tailCommit struct {
	end int
	lsn pglogrepl.LSN
}

// tailPending is what a replication connection received and the broker has
// not acknowledged yet: rows in commit order, and the transactions they
// close. pgoutput (protocol 1) sends a transaction only once it committed,
// so rows may be published before their Commit message arrives; only the
// confirmation waits for it.
type tailPending struct {
	rows    []tailRow
	commits []tailCommit
}

func (p *tailPending) waiting() bool { return len(p.rows) > 0 || len(p.commits) > 0 }

// ack drops the first n rows, acknowledged, and returns the end of the last
// transaction none of whose rows remain (ok false: none).
func (p *tailPending) ack(n int) (lsn pglogrepl.LSN, ok bool) {
	rest := copy(p.rows, p.rows[n:])
	clear(p.rows[rest:])
	p.rows = p.rows[:rest]
	i := 0
	for ; i < len(p.commits) && p.commits[i].end <= n; i++ {
		lsn, ok = p.commits[i].lsn, true
	}
	rest = copy(p.commits, p.commits[i:])
	p.commits = p.commits[:rest]
	for j := range p.commits {
		p.commits[j].end -= n
	}
	return lsn, ok
}

// tailDecoder turns pgoutput messages into outbox rows.
type tailDecoder struct {
	table     string
	relations map[uint32][]string // the outbox table's relation ids → column names
	inTxn     bool
}

func (d *tailDecoder) inTransaction() bool { return d.inTxn }

// decode reads one pgoutput message at lsn into p. Only inserts into the
// outbox table count: a transient writer's delete, and any update, leave
// the event as inserted.
func (d *tailDecoder) decode(data []byte, lsn pglogrepl.LSN, p *tailPending) (err error) {
	if len(data) == 0 {
		return nil
	}
	defer func() {
		if v := recover(); v != nil { // pglogrepl trusts the server's lengths
			err = fmt.Errorf("outbox: log relay: malformed %c message at %s: %v", data[0], lsn, v)
		}
	}()
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeRelation:
		var m pglogrepl.RelationMessage
		if err := m.Decode(data[1:]); err != nil {
			return fmt.Errorf("outbox: log relay: relation message at %s: %w", lsn, err)
		}
		if d.relations == nil {
			d.relations = map[uint32][]string{}
		}
		if m.RelationName != d.table {
			delete(d.relations, m.RelationID) // another table of a shared publication
			return nil
		}
		cols := make([]string, len(m.Columns))
		for i, c := range m.Columns {
			cols[i] = c.Name
		}
		d.relations[m.RelationID] = cols
	case pglogrepl.MessageTypeBegin:
		d.inTxn = true
	case pglogrepl.MessageTypeInsert:
		var m pglogrepl.InsertMessage
		if err := m.Decode(data[1:]); err != nil {
			return fmt.Errorf("outbox: log relay: insert message at %s: %w", lsn, err)
		}
		if cols, ok := d.relations[m.RelationID]; ok {
			p.rows = append(p.rows, tailRowOf(cols, m.Tuple, lsn))
		}
	case pglogrepl.MessageTypeCommit:
		var m pglogrepl.CommitMessage
		if err := m.Decode(data[1:]); err != nil {
			return fmt.Errorf("outbox: log relay: commit message at %s: %w", lsn, err)
		}
		d.inTxn = false
		// The end of the commit record: the server skips a transaction on
		// restart only if its commit lies before the confirmed position.
		p.commits = append(p.commits, tailCommit{end: len(p.rows), lsn: m.TransactionEndLSN})
	}
	return nil
}

// tailRowOf reads an inserted tuple. Values arrive in PostgreSQL's text
// format; a row that cannot be read is returned with dead set and its raw
// columns.
func tailRowOf(cols []string, tuple *pglogrepl.TupleData, lsn pglogrepl.LSN) tailRow {
	values := map[string]*string{}
	if tuple != nil {
		for i, c := range tuple.Columns {
			if i >= len(cols) {
				break
			}
			switch c.DataType {
			case pglogrepl.TupleDataTypeText:
				s := string(c.Data)
				values[cols[i]] = &s
			case pglogrepl.TupleDataTypeNull:
				values[cols[i]] = nil
			}
		}
	}
	r := tailRow{lsn: lsn}
	var problems []error
	text := func(name string, required bool) string {
		v, ok := values[name]
		if !ok || v == nil {
			if required {
				problems = append(problems, fmt.Errorf("no %s", name))
			}
			return ""
		}
		return *v
	}
	r.row.ID = text("id", true)
	r.row.AggregateType = text("aggregatetype", true)
	r.row.AggregateID = text("aggregateid", true)
	r.row.Type = text("type", true)
	if s := text("seq", false); s != "" {
		seq, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			problems = append(problems, fmt.Errorf("seq %q: %w", s, err))
		}
		r.row.Seq = seq
	}
	if v := values["payload"]; v != nil {
		r.row.Payload = json.RawMessage(*v)
	}
	if h := text("headers", false); h != "" {
		r.row.Headers = json.RawMessage(h)
	}
	if ts := text("timestamp", true); ts != "" {
		t, err := tailTime(ts)
		if err != nil {
			problems = append(problems, err)
		}
		r.row.Timestamp = t
	}
	if r.row.ID == "" && len(problems) == 0 {
		problems = append(problems, errors.New("empty id"))
	}
	if len(problems) > 0 {
		r.dead = fmt.Errorf("outbox: row %q at %s: %w", r.row.ID, lsn, errors.Join(problems...))
		r.raw, _ = json.Marshal(values)
	}
	return r
}

// tailTimeLayouts are timestamptz in the ISO DateStyle the relay asks for,
// whatever the time zone's offset looks like.
var tailTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07:00:00",
}

// tailTime parses a timestamptz as PostgreSQL writes it with DateStyle ISO
// ("2026-12-02 06:50:17.123456+00").
func tailTime(s string) (time.Time, error) {
	for _, l := range tailTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: not a timestamptz in ISO format", s)
}

// Headers of a dead-lettered outbox row, beside the dead-letter headers
// every streamfold dead letter has (processors.HeaderExceptionMessage,
// HeaderExceptionClass, HeaderOriginalKey).
const (
	// HeaderOutboxTable names the outbox table a dead-lettered row is from.
	HeaderOutboxTable = "streamfold-outbox-table"
	// HeaderOutboxID is a dead-lettered row's id column.
	HeaderOutboxID = "streamfold-outbox-id"
	// HeaderOutboxLSN is where a dead-lettered row's insert is in
	// PostgreSQL's log.
	HeaderOutboxLSN = "streamfold-outbox-lsn"
)

// tailPoisonClass is the exception class of an outbox row's dead letter.
const tailPoisonClass = "outbox.PoisonRow"

// message is r as the record to send: its CloudEvent, or, when it cannot be
// one, its dead letter.
func (t *tailConn) message(r *tailRow) *sarama.ProducerMessage {
	if r.dead == nil {
		if t.pub.topic(r.row.AggregateType) == "" {
			r.dead = fmt.Errorf("outbox: row %s: no topic for aggregate type %q", r.row.ID, r.row.AggregateType)
		} else {
			m, err := t.pub.message(r.row)
			if err == nil {
				return m
			}
			r.dead = err
		}
		t.c.log.Error("outbox log relay: poison row; dead-lettered", "id", r.row.ID, "topic", t.c.deadLetters, "err", r.dead)
	}
	return tailDeadLetter(t.c.table, t.c.deadLetters, r)
}

// tailDeadLetter is the record that stands for r on the dead-letter topic:
// its columns (the payload left out when the row was readable: it may be
// what the broker refused), keyed by its aggregate id, with headers saying
// why and from where.
func tailDeadLetter(table, topic string, r *tailRow) *sarama.ProducerMessage {
	value := r.raw
	if value == nil {
		value, _ = json.Marshal(map[string]any{
			"seq": r.row.Seq, "id": r.row.ID, "aggregatetype": r.row.AggregateType, "aggregateid": r.row.AggregateID,
			"type": r.row.Type, "timestamp": r.row.Timestamp.Format(time.RFC3339Nano), "headers": r.row.Headers,
		})
	}
	key := r.row.AggregateID
	if key == "" {
		key = r.row.ID
	}
	h := func(k, v string) sarama.RecordHeader { return sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	return &sarama.ProducerMessage{
		Topic: topic,
		Key:   sarama.StringEncoder(key),
		Value: sarama.ByteEncoder(value),
		Headers: []sarama.RecordHeader{
			h(codecs.ContentTypeHeader, "application/json"),
			h(processors.HeaderExceptionClass, tailPoisonClass),
			h(processors.HeaderExceptionMessage, r.dead.Error()),
			h(processors.HeaderOriginalKey, r.row.AggregateID),
			h(HeaderOutboxTable, table),
			h(HeaderOutboxID, r.row.ID),
			h(HeaderOutboxLSN, r.lsn.String()),
		},
	}
}
