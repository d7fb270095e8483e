package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/shop"
)

// The shop on PostgreSQL as the README documents it, with the log-tailing
// relay: a payment's event reaches Kafka from the WAL while the outbox
// table stays empty, and the SQL read models fill in the same database.
func TestPayments_GivenPostgreSQLAndTheLogRelay_ThenThePaymentIsRelayedAndTheReadModelsFollow(t *testing.T) {
	dsn := pgtest.Database(t)
	cfg := testConfig(t.TempDir())
	cfg.Database, cfg.OutboxRelay = dsn, "log"
	r := startShop(t, cfg)

	require.Equal(t, http.StatusAccepted, r.do(http.MethodPost, "/customers", `{"id":"ada","name":"Ada","email":"ada@example.com"}`, nil).StatusCode)
	r.awaitVersion("ada", 1)
	resp := r.do(http.MethodPost, "/payments", `{"id":"pay-1","orderId":"o-1","amount":12.5,"currency":"EUR"}`, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	recs := consumeUntil(t, r.brokers(), shop.Payments.Name, func(recs []*kgo.Record) bool { return withID(recs, "payment-pay-1") })
	for _, rec := range recs {
		if eventID(rec) == "payment-pay-1" {
			assert.Equal(t, "o-1", string(rec.Key), "keyed by the order id")
		}
	}

	db, err := outbox.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer db.Close()
	var rows int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&rows))
	assert.Zero(t, rows, "the log relay's writer leaves the outbox table empty")
	var got shop.Payment
	require.Equal(t, http.StatusOK, r.do(http.MethodGet, "/payments/pay-1", "", &got).StatusCode)
	assert.Equal(t, 12.5, got.Amount)

	var name, state string
	require.Eventually(t, func() bool {
		return db.QueryRow(`SELECT name, state FROM customers WHERE id = 'ada'`).Scan(&name, &state) == nil
	}, wait, 20*time.Millisecond, "the customers read model in PostgreSQL")
	assert.Equal(t, "Ada", name)
	assert.Equal(t, shop.StateActive, state)

	// Last, as it skips without Debian's python3-confluent-kafka: librdkafka,
	// reading committed records as it does by default, sees the relayed
	// event once, under the order's key.
	assert.Equal(t, []string{"o-1 payment-pay-1"}, librdkafkaRead(t, r.brokers(), shop.Payments.Name))
}
