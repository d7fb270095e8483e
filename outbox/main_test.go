package outbox_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// databases runs f once on a fresh SQLite file and once on a fresh
// PostgreSQL database, each with the outbox table migrated.
func databases(t *testing.T, f func(t *testing.T, db *outbox.DB)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "test.db")
			if name == "postgres" {
				dsn = pgtest.Database(t)
			}
			f(t, openDB(t, dsn))
		})
	}
}

func openDB(t *testing.T, dsn string) *outbox.DB {
	t.Helper()
	ctx := context.Background()
	db, err := outbox.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := outbox.Migrate(ctx, db, ""); err != nil {
		t.Fatal(err)
	}
	return db
}

// startBroker starts an embedded Kafka broker (kfake over real sockets) with
// its log in a temporary directory, and returns its addresses.
func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addrs()
}
