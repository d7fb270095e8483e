package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/tables"
)

// Payment is a payment as the payments service keeps it in its own
// database. Its PaymentReceived event reaches the payments topic through
// the outbox: written in the same transaction as the row, relayed to Kafka
// keyed by the order id.
type Payment struct {
	ID        string    `json:"id"`
	OrderID   string    `json:"orderId"`
	Amount    float64   `json:"amount"`
	Currency  string    `json:"currency"`
	CreatedAt time.Time `json:"createdAt"`
}

// PaymentsAggregate is the outbox aggregate type of payments: the relays
// publish its events to the topic of that name.
const PaymentsAggregate = "payments"

// OutboxDeadLetters receives the payments outbox's rows that the
// log-tailing relay can never publish (outbox.LogRelay's DeadLetterTopic).
var OutboxDeadLetters = tables.NewStream[[]byte]("outbox-dlq", codecs.Bytes{})

// ErrPaymentNotFound is returned by PaymentStore.Get for an unknown id.
var ErrPaymentNotFound = errors.New("payment not found")

// ErrDuplicatePayment is returned by PaymentStore.Record for an id that is taken.
var ErrDuplicatePayment = errors.New("payment id already recorded")

// InvalidPaymentError names what is wrong with a payment; nothing was written.
type InvalidPaymentError struct{ Fields map[string]string }

func (e *InvalidPaymentError) Error() string {
	var parts []string
	for _, f := range []string{"id", "orderId", "amount", "currency"} {
		if m, ok := e.Fields[f]; ok {
			parts = append(parts, f+": "+m)
		}
	}
	return "invalid payment: " + strings.Join(parts, "; ")
}

// NewPayment checks a payment: an order id, an amount above zero with at
// most two decimals, and a currency of three capital letters (ISO 4217).
func NewPayment(id, orderID string, amount float64, currency string) (Payment, error) {
	bad := map[string]string{}
	if id == "" {
		bad["id"] = "required"
	}
	if orderID == "" {
		bad["orderId"] = "required"
	}
	switch {
	case math.IsNaN(amount) || math.IsInf(amount, 0) || amount <= 0:
		bad["amount"] = "must be above zero"
	case math.Abs(amount*100-math.Round(amount*100)) > 1e-6:
		bad["amount"] = "at most two decimals"
	}
	if len(currency) != 3 || strings.ToUpper(currency) != currency || strings.Trim(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		bad["currency"] = "three capital letters (ISO 4217), like EUR"
	}
	if len(bad) > 0 {
		return Payment{}, &InvalidPaymentError{Fields: bad}
	}
	return Payment{ID: id, OrderID: orderID, Amount: amount, Currency: currency}, nil
}

// PaymentStore is the payments service's database: the payments table and the
// outbox its events leave by.
type PaymentStore struct {
	DB *outbox.DB
	// Outbox is how events are written; the zero Writer keeps the rows for
	// a polling relay.
	Outbox outbox.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Migrate creates the payments table and the outbox if they do not exist.
func (s PaymentStore) Migrate(ctx context.Context) error {
	if err := outbox.Migrate(ctx, s.DB, s.Outbox.Table); err != nil {
		return err
	}
	_, err := s.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS payments (
	id TEXT PRIMARY KEY,
	order_id TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	currency TEXT NOT NULL,
	created_at TEXT NOT NULL
)`)
	if err != nil {
		return fmt.Errorf("payments: create table: %w", err)
	}
	return nil
}

// Record stores p and its PaymentReceived event (id "payment-<id>", keyed by
// the order id) in one transaction: both or neither. An id recorded before
// is ErrDuplicatePayment, and nothing is written again.
func (s PaymentStore) Record(ctx context.Context, p Payment) (Payment, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	p.CreatedAt = now().UTC().Truncate(time.Microsecond)
	ev, err := codecs.NewEvent(Source, PaymentReceivedType, p.OrderID, PaymentReceived{OrderID: p.OrderID, Amount: p.Amount, Currency: p.Currency})
	if err != nil {
		return Payment{}, err
	}
	ev.ID, ev.Time = "payment-"+p.ID, p.CreatedAt
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return Payment{}, fmt.Errorf("payments: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, `INSERT INTO payments (id, order_id, amount_cents, currency, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		p.ID, p.OrderID, int64(math.Round(p.Amount*100)), p.Currency, p.CreatedAt.Format(time.RFC3339Nano))
	if err != nil {
		return Payment{}, fmt.Errorf("payments: insert %s: %w", p.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Payment{}, fmt.Errorf("payments: insert %s: %w", p.ID, err)
	} else if n == 0 {
		return Payment{}, ErrDuplicatePayment
	}
	if err := s.Outbox.Write(ctx, tx, PaymentsAggregate, ev); err != nil {
		return Payment{}, err
	}
	if err := tx.Commit(); err != nil {
		return Payment{}, fmt.Errorf("payments: commit %s: %w", p.ID, err)
	}
	return p, nil
}

// Get reads a payment from the database.
func (s PaymentStore) Get(ctx context.Context, id string) (Payment, error) {
	var p Payment
	var cents int64
	var created string
	err := s.DB.QueryRowContext(ctx, `SELECT id, order_id, amount_cents, currency, created_at FROM payments WHERE id = $1`, id).
		Scan(&p.ID, &p.OrderID, &cents, &p.Currency, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, ErrPaymentNotFound
	}
	if err != nil {
		return Payment{}, fmt.Errorf("payments: get %s: %w", id, err)
	}
	p.Amount = float64(cents) / 100
	if p.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return Payment{}, fmt.Errorf("payments: %s: created_at %q: %w", id, created, err)
	}
	return p, nil
}
