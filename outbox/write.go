package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// Writer adds events to one outbox table. The zero Writer writes to
// DefaultTable and keeps the rows for a polling relay.
type Writer struct {
	// Table is the outbox table's name; DefaultTable when empty.
	Table string
	// Transient deletes each row again in the same transaction, right after
	// inserting it, so the table stays empty, as Debezium users do: only a
	// log-tailing relay, which reads the insert from the database's log,
	// sees such events. A polling relay never does.
	Transient bool
}

// ErrNoAggregateType is returned by Write without an aggregate type.
var ErrNoAggregateType = errors.New("outbox: aggregate type is empty")

// Write adds events to the default outbox inside tx (see Writer.Write).
func Write(ctx context.Context, tx *sql.Tx, aggregateType string, events ...codecs.Event) error {
	return Writer{}.Write(ctx, tx, aggregateType, events...)
}

// Write adds events to the outbox inside tx, the caller's transaction: they
// are published if and only if tx commits. aggregateType is what relays
// route by (our relays publish to the topic of that name; Debezium's router
// does with route.topic.replacement=${routedByValue}); each event's Subject is
// its aggregate id and becomes the Kafka record key, so events about one
// aggregate keep their order. Each event must be a valid CloudEvent with a
// subject; its id is the row's id, so writing the same event twice fails
// with the database's unique violation instead of publishing it twice.
func (w Writer) Write(ctx context.Context, tx *sql.Tx, aggregateType string, events ...codecs.Event) error {
	table, err := tableName(w.Table)
	if err != nil {
		return err
	}
	if aggregateType == "" {
		return ErrNoAggregateType
	}
	insert := `INSERT INTO ` + table + ` (id, aggregatetype, aggregateid, type, payload, timestamp, headers) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	for _, e := range events {
		r, err := rowOf(aggregateType, e)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insert, r.ID, r.AggregateType, r.AggregateID, r.Type, r.payload(), r.Timestamp.Format(time.RFC3339Nano), string(r.Headers)); err != nil {
			return fmt.Errorf("outbox: write event %s: %w", e.ID, err)
		}
		if w.Transient {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = $1`, r.ID); err != nil {
				return fmt.Errorf("outbox: delete transient event %s: %w", e.ID, err)
			}
		}
	}
	return nil
}

// Row is one outbox row: an event and where it goes.
type Row struct {
	Seq           int64
	ID            string
	AggregateType string
	AggregateID   string
	Type          string
	Payload       json.RawMessage // nil: no data
	Timestamp     time.Time
	Headers       json.RawMessage // the other CloudEvents attributes
}

// headers are the CloudEvents attributes a row keeps beside its columns.
type headers struct {
	SpecVersion     string `json:"specversion"`
	Source          string `json:"source"`
	Time            string `json:"time,omitempty"` // exact, where the column may round
	DataContentType string `json:"datacontenttype,omitempty"`
}

func rowOf(aggregateType string, e codecs.Event) (Row, error) {
	if err := e.Validate(); err != nil {
		return Row{}, fmt.Errorf("outbox: event %s: %w", e.ID, err)
	}
	if e.Subject == "" {
		return Row{}, fmt.Errorf("outbox: event %s has no subject (the aggregate id)", e.ID)
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	h, err := json.Marshal(headers{SpecVersion: e.SpecVersion, Source: e.Source, Time: t.Format(time.RFC3339Nano), DataContentType: e.DataContentType})
	if err != nil {
		return Row{}, fmt.Errorf("outbox: event %s: %w", e.ID, err)
	}
	return Row{ID: e.ID, AggregateType: aggregateType, AggregateID: e.Subject, Type: e.Type, Payload: e.Data, Timestamp: t, Headers: h}, nil
}

// payload is the payload column's value: NULL without data.
func (r Row) payload() any {
	if r.Payload == nil {
		return nil
	}
	return string(r.Payload)
}

// Event is the CloudEvent the row holds, as the writer wrote it.
func (r Row) Event() (codecs.Event, error) {
	var h headers
	if len(r.Headers) > 0 {
		if err := json.Unmarshal(r.Headers, &h); err != nil {
			return codecs.Event{}, fmt.Errorf("outbox: row %s: headers: %w", r.ID, err)
		}
	}
	e := codecs.Event{SpecVersion: h.SpecVersion, ID: r.ID, Source: h.Source, Type: r.Type, Subject: r.AggregateID,
		Time: r.Timestamp.UTC(), DataContentType: h.DataContentType}
	if h.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, h.Time)
		if err != nil {
			return codecs.Event{}, fmt.Errorf("outbox: row %s: time: %w", r.ID, err)
		}
		e.Time = t
	}
	if len(r.Payload) > 0 {
		e.Data = r.Payload
	}
	if e.SpecVersion == "" {
		e.SpecVersion = codecs.SpecVersion
	}
	if e.Source == "" {
		e.Source = "urn:outbox:" + r.AggregateType
	}
	return e, nil
}
