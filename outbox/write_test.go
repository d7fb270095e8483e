package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
)

func event(t testing.TB, subject string, data any) codecs.Event {
	t.Helper()
	e, err := codecs.NewEvent("urn:test", "PaymentReceived", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func count(t *testing.T, db *outbox.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWrite_GivenACommittedAndARolledBackTransaction_ThenOnlyTheCommittedEventsAreInTheOutbox(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		kept := event(t, "o1", map[string]any{"amount": 10})
		write := func(e codecs.Event, commit bool) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := outbox.Write(ctx, tx, "payments", e); err != nil {
				t.Fatal(err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		write(kept, true)
		write(event(t, "o2", nil), false)

		var r outbox.Row
		var payload sql.NullString
		var headers string
		err := db.QueryRow("SELECT id, aggregatetype, aggregateid, type, payload, headers FROM outbox").
			Scan(&r.ID, &r.AggregateType, &r.AggregateID, &r.Type, &payload, &headers)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 1 {
			t.Fatalf("outbox has %d rows, want only the committed one", n)
		}
		if r.ID != kept.ID || r.AggregateType != "payments" || r.AggregateID != "o1" || r.Type != "PaymentReceived" {
			t.Errorf("row = %+v, want the committed event's id, aggregate and type", r)
		}
		r.Payload, r.Headers, r.Timestamp = json.RawMessage(payload.String), json.RawMessage(headers), time.Now()
		got, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		if err := json.Unmarshal(got.Data, &data); err != nil || data["amount"] != float64(10) {
			t.Errorf("payload = %s (%v), want the event's data", got.Data, err)
		}
		if !got.Time.Equal(kept.Time) || got.Source != kept.Source || got.SpecVersion != "1.0" {
			t.Errorf("event from row = %+v, want time, source and specversion as written (%+v)", got, kept)
		}
	})
}

func TestWrite_GivenTheSameEventTwice_ThenTheSecondFails(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		e := event(t, "o1", nil)
		for i, wantErr := range []bool{false, true} {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = outbox.Write(ctx, tx, "payments", e)
			if (err != nil) != wantErr {
				t.Fatalf("write %d: err = %v, want error %v", i+1, err, wantErr)
			}
			if err != nil {
				tx.Rollback()
				continue
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, db); n != 1 {
			t.Errorf("outbox has %d rows, want 1", n)
		}
	})
}

func TestWrite_GivenATransientWriter_ThenTheTableStaysEmpty(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := (outbox.Writer{Transient: true}).Write(ctx, tx, "payments", event(t, "o1", nil)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 0 {
			t.Errorf("outbox has %d rows, want 0", n)
		}
	})
}

func TestWrite_GivenAnInvalidEventOrNoAggregateType_ThenItIsRefused(t *testing.T) {
	databases(t, func(t *testing.T, db *outbox.DB) {
		ctx := context.Background()
		for name, write := range map[string]func(*sql.Tx) error{
			"no subject":        func(tx *sql.Tx) error { return outbox.Write(ctx, tx, "payments", event(t, "", nil)) },
			"no aggregate type": func(tx *sql.Tx) error { return outbox.Write(ctx, tx, "", event(t, "o1", nil)) },
			"no id": func(tx *sql.Tx) error {
				e := event(t, "o1", nil)
				e.ID = ""
				return outbox.Write(ctx, tx, "payments", e)
			},
		} {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := write(tx); err == nil {
				t.Errorf("%s: no error", name)
			}
			tx.Rollback()
		}
		if n := count(t, db); n != 0 {
			t.Errorf("outbox has %d rows, want 0", n)
		}
	})
}
