package outbox_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/streamfold/streamfold/outbox"
)

// A service writes its rows and their events in one transaction (see
// Write); a relay beside it publishes the events to the topic named by the
// aggregate type ("payments"), keyed by the aggregate id, and deletes the
// rows the broker acknowledged. Start as many relays as you like: on
// PostgreSQL they share the work, on SQLite one holds the lease.
func ExamplePollingRelay() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	db, err := outbox.Open(ctx, "data/shop.db") // or postgres://…
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db, ""); err != nil {
		log.Fatal(err)
	}
	relay := &outbox.PollingRelay{
		DB:     db,
		Kafka:  outbox.Kafka{Brokers: []string{"localhost:9092"}},
		Logger: slog.Default(),
	}
	go func() {
		for range time.Tick(time.Minute) {
			s := relay.Stats()
			slog.Info("outbox relay", "published", s.Published, "dead", s.DeadLettered, "failing", s.Failing, "last_error", s.LastError)
		}
	}()
	if err := relay.Run(ctx); err != nil { // until Ctrl-C
		log.Fatal(err)
	}
}
