package outbox_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
)

// Customer is the state a customers group folds into customers-table.
type Customer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	State string `json:"state"`
}

// A read model in SQL: every customer of the customers group's table is a
// row of customers(id PRIMARY KEY, name, email, state), created by the
// application's migration; an erased customer's tombstone deletes its row.
// The offsets live beside the rows, so a crash never applies a record twice
// nor skips one.
func ExampleSink() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	db, err := outbox.Open(ctx, "data/shop.db") // or postgres://…
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sink := &outbox.Sink[Customer]{
		Name:   "customers-sql",
		DB:     db,
		Kafka:  outbox.Kafka{Brokers: []string{"localhost:9092"}},
		Source: outbox.TableSource(processors.GroupTable[Customer]("customers")),
		Apply: outbox.Rows[Customer]{Table: "customers", Key: "id", Columns: func(c Customer) map[string]any {
			return map[string]any{"name": c.Name, "email": c.Email, "state": c.State}
		}}.Apply,
	}
	if err := sink.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
