package shop_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/shop"
)

func paymentStore(t *testing.T) shop.PaymentStore {
	t.Helper()
	db, err := outbox.Open(context.Background(), filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	s := shop.PaymentStore{DB: db, Now: func() time.Time { return now }}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewPayment_GivenBadFields_ThenEachIsNamed(t *testing.T) {
	for _, tc := range []struct {
		name           string
		id, order, cur string
		amount         float64
		wantFields     []string
	}{
		{"valid", "p1", "o1", "EUR", 12.5, nil},
		{"no ids", "", "", "EUR", 1, []string{"id", "orderId"}},
		{"zero amount", "p1", "o1", "EUR", 0, []string{"amount"}},
		{"negative amount", "p1", "o1", "EUR", -3, []string{"amount"}},
		{"three decimals", "p1", "o1", "EUR", 1.005, []string{"amount"}},
		{"lower-case currency", "p1", "o1", "eur", 1, []string{"currency"}},
		{"long currency", "p1", "o1", "EURO", 1, []string{"currency"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shop.NewPayment(tc.id, tc.order, tc.amount, tc.cur)
			var inv *shop.InvalidPaymentError
			if len(tc.wantFields) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v, want an *InvalidPaymentError", err)
			}
			for _, f := range tc.wantFields {
				if _, ok := inv.Fields[f]; !ok {
					t.Errorf("fields %v do not name %s", inv.Fields, f)
				}
			}
			if len(inv.Fields) != len(tc.wantFields) {
				t.Errorf("fields %v, want exactly %v", inv.Fields, tc.wantFields)
			}
		})
	}
}

func TestPaymentStore_GivenARecordedPayment_ThenTheRowAndItsEventAreWrittenTogether(t *testing.T) {
	ctx := context.Background()
	s := paymentStore(t)
	p, err := shop.NewPayment("p1", "o1", 99.95, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got.OrderID != "o1" || got.Amount != 99.95 || got.Currency != "EUR" || got.CreatedAt.IsZero() {
		t.Errorf("payment read back = %+v", got)
	}
	var id, aggType, aggID, typ, payload string
	if err := s.DB.QueryRow(`SELECT id, aggregatetype, aggregateid, type, payload FROM outbox`).Scan(&id, &aggType, &aggID, &typ, &payload); err != nil {
		t.Fatal(err)
	}
	var data shop.PaymentReceived
	if err := json.Unmarshal([]byte(payload), &data); err != nil {
		t.Fatal(err)
	}
	if id != "payment-p1" || aggType != shop.PaymentsAggregate || aggID != "o1" || typ != shop.PaymentReceivedType ||
		data != (shop.PaymentReceived{OrderID: "o1", Amount: 99.95, Currency: "EUR"}) {
		t.Errorf("outbox row = %s %s %s %s %+v, want the payment's PaymentReceived keyed by its order", id, aggType, aggID, typ, data)
	}
}

func TestPaymentStore_GivenTheSameIdTwice_ThenTheSecondIsADuplicateAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := paymentStore(t)
	p, _ := shop.NewPayment("p1", "o1", 10, "EUR")
	if _, err := s.Record(ctx, p); err != nil {
		t.Fatal(err)
	}
	p2, _ := shop.NewPayment("p1", "o2", 20, "USD")
	if _, err := s.Record(ctx, p2); !errors.Is(err, shop.ErrDuplicatePayment) {
		t.Fatalf("second record: err = %v, want ErrDuplicatePayment", err)
	}
	var rows int
	if err := s.DB.QueryRow(`SELECT count(*) FROM outbox`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("outbox has %d rows, want 1", rows)
	}
	if got, _ := s.Get(ctx, "p1"); got.OrderID != "o1" {
		t.Errorf("payment p1 = %+v, want the first one kept", got)
	}
}

func TestPaymentStore_GivenAnUnknownId_ThenNotFound(t *testing.T) {
	if _, err := paymentStore(t).Get(context.Background(), "nope"); !errors.Is(err, shop.ErrPaymentNotFound) {
		t.Errorf("err = %v, want ErrPaymentNotFound", err)
	}
}
