package shop

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/streamfold/streamfold/outbox"
)

// The SQL read models: the customers and orders tables projected into the
// shop's database by sinks, exactly once across crashes (each sink keeps
// its offsets in the same transactions), for reports and for people who
// query with SQL:
//
//	sqlite3 data/shop.db 'select state, count(*) from customers group by state'
const (
	CustomersSinkName = "customers-sql"
	OrdersSinkName    = "orders-sql"
)

// MigrateReadModels creates the read models' tables if they do not exist.
// The same DDL serves SQLite and PostgreSQL.
func MigrateReadModels(ctx context.Context, db *outbox.DB) error {
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS customers (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	email TEXT NOT NULL,
	state TEXT NOT NULL,
	version BIGINT NOT NULL,
	updated_at TEXT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS orders (
	id TEXT PRIMARY KEY,
	customer_id TEXT NOT NULL,
	product TEXT NOT NULL,
	quantity BIGINT NOT NULL,
	price_cents BIGINT NOT NULL,
	state TEXT NOT NULL,
	reason TEXT NOT NULL,
	customer_name TEXT NOT NULL
)`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("read models: %s: %w", strings.Fields(ddl)[5], err)
		}
	}
	return nil
}

// CustomersSink keeps the SQL table customers equal to CustomersTable: a
// registered or updated customer is upserted with the state the API shows
// (active, deleted), an erased one deleted. A changelog that no longer has
// what the table was built from (a wiped broker) empties it and builds it
// again.
func CustomersSink(db *outbox.DB, k outbox.Kafka) *outbox.Sink[Customer] {
	rows := outbox.Rows[Customer]{Table: "customers", Key: "id", Columns: func(c Customer) map[string]any {
		return map[string]any{"name": c.Name, "email": c.Email, "state": c.State, "version": c.Version,
			"updated_at": c.UpdatedAt.UTC().Format(time.RFC3339Nano)}
	}}
	return &outbox.Sink[Customer]{
		Name: CustomersSinkName, DB: db, Kafka: k,
		Source: outbox.TableSource(CustomersTable), Apply: rows.Apply, Rebuild: rows.Clear,
	}
}

// OrdersSink keeps the SQL table orders equal to EnrichedOrdersTable: each
// order with its state (CREATED, VALIDATED, FAILED), why it failed and its
// customer's name.
func OrdersSink(db *outbox.DB, k outbox.Kafka) *outbox.Sink[EnrichedOrder] {
	rows := outbox.Rows[EnrichedOrder]{Table: "orders", Key: "id", Columns: func(o EnrichedOrder) map[string]any {
		name := ""
		if o.Customer != nil {
			name = o.Customer.Name
		}
		return map[string]any{"customer_id": o.CustomerID, "product": o.Product, "quantity": o.Quantity,
			"price_cents": int64(math.Round(o.Price * 100)), "state": o.State, "reason": o.Reason, "customer_name": name}
	}}
	return &outbox.Sink[EnrichedOrder]{
		Name: OrdersSinkName, DB: db, Kafka: k,
		Source: outbox.TableSource(EnrichedOrdersTable), Apply: rows.Apply, Rebuild: rows.Clear,
	}
}
