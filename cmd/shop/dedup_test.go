package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
)

// renames registers a customer and renames it n times, in one produce, and
// waits until all are folded; it returns the events, registration first.
func renames(t *testing.T, s *shopRun, cl *kgo.Client, id string, n int) []codecs.Event {
	t.Helper()
	reg, regEv := eventRecord(t, id, shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Name 0", Email: id + "@example.com"})
	recs, evs := []*kgo.Record{reg}, []codecs.Event{regEv}
	for i := 1; i <= n; i++ {
		r, ev := eventRecord(t, id, shop.CustomerUpdatedType, map[string]string{"name": fmt.Sprintf("Name %d", i)})
		recs, evs = append(recs, r), append(evs, ev)
	}
	produce(t, cl, recs...)
	s.awaitVersion(id, int64(n+1))
	return evs
}

// awaitChangelog waits until customers-table holds at least n records (the
// view answers once the local store has a write, the changelog follows) and
// returns how many it holds.
func awaitChangelog(t *testing.T, s *shopRun, n int64) int64 {
	t.Helper()
	var have int64
	require.Eventually(t, func() bool {
		have = endOffsets(t, s.brokers(), shop.CustomersTable.Name)
		return have >= n
	}, wait, 20*time.Millisecond, "customers-table never held %d records", n)
	return have
}

// resend produces ev again, as a producer's retry does: a new record, same id.
func resend(t *testing.T, cl *kgo.Client, ev codecs.Event) {
	t.Helper()
	b, err := shopEventBytes(t, ev)
	require.NoError(t, err)
	produce(t, cl, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte(ev.Subject), Value: b})
}

func TestCustomers_GivenAnEventReSentAHundredIDsLater_ThenStateAndChangelogDoNotChange(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	cl := kafkaClient(t, s.brokers())

	// Given a customer renamed 101 times, all 102 snapshots in the changelog.
	evs := renames(t, s, cl, "kim", 101)
	before := awaitChangelog(t, s, 102)

	// When the first rename is re-sent, 100 ids back, and then a new rename.
	resend(t, cl, evs[1])
	next, _ := eventRecord(t, "kim", shop.CustomerUpdatedType, map[string]string{"name": "After"})
	produce(t, cl, next)

	// Then only the new rename applied: the name did not go back.
	kim := s.awaitVersion("kim", 103)
	assert.Equal(t, "After", kim.Name)
	assert.Equal(t, int64(1), s.app.Runtime().Stats()[shop.CustomersGroup].Duplicates)
	// And the duplicate appended nothing to the changelog: one record, the
	// rename's (the duplicate came first, so its record would be in by now).
	assert.Equal(t, before+1, awaitChangelog(t, s, before+1))
}

func TestCustomers_GivenLocalStateWipedAndChangelogCompacted_WhenAnOldEventIsReSent_ThenItIsStillDropped(t *testing.T) {
	// Given a broker of its own, so that the changelog can be cut while the
	// shop is down.
	broker, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Partitions = 1
	cfg.Brokers = broker.Addrs()
	s := startShop(t, cfg)
	cl := kafkaClient(t, s.brokers())
	evs := renames(t, s, cl, "kim", 10)
	s.stop()

	// And the local stores lost, and the changelog compacted down to kim's
	// last snapshot, which names only the last event.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "state")))
	scfg := sarama.NewConfig()
	scfg.Version = kafkaconf.Version()
	admin, err := sarama.NewClusterAdmin(broker.Addrs(), scfg)
	require.NoError(t, err)
	defer admin.Close()
	hwm := endOffsets(t, broker.Addrs(), shop.CustomersTable.Name)
	require.NoError(t, admin.DeleteRecords(shop.CustomersTable.Name, map[int32]int64{0: hwm - 1}))
	s = startShop(t, cfg)

	// When the first rename is re-sent, and then a new rename.
	resend(t, cl, evs[1])
	next, _ := eventRecord(t, "kim", shop.CustomerUpdatedType, map[string]string{"name": "After"})
	produce(t, cl, next)

	// Then the restored store still knew its id, from the group's seen topic.
	kim := s.awaitVersion("kim", 12)
	assert.Equal(t, "After", kim.Name)
	assert.Equal(t, int64(1), s.app.Runtime().Stats()[shop.CustomersGroup].Duplicates)
	assert.Contains(t, s.logs.String(), "applied event ids restored")
}

func TestCustomers_GivenSubjectOtherThanKeyOrMissing_ThenKeyMismatchDeadLetteredOrAppliedUnderTheKey(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	cl := kafkaClient(t, s.brokers())
	renames(t, s, cl, "kim", 0)

	// When an event keyed kim says it is about lee.
	wrong, _ := eventRecord(t, "kim", shop.CustomerUpdatedType, map[string]string{"name": "Lee"})
	ev, err := codecs.CloudEvents{}.Decode(wrong.Value)
	require.NoError(t, err)
	ev.Subject = "lee"
	wrong.Value, err = shopEventBytes(t, ev)
	require.NoError(t, err)
	produce(t, cl, wrong)

	// Then it is dead-lettered as a key mismatch.
	dlq := consumeAll(t, s.brokers(), "customers-dlq", 1)
	h := headerMap(dlq[0])
	assert.Equal(t, processors.ClassKeyMismatch, h[processors.HeaderExceptionClass])
	assert.Equal(t, "kim", h[processors.HeaderOriginalKey])

	// When an event keyed kim has no subject, it applies to kim.
	bare, _ := eventRecord(t, "kim", shop.CustomerUpdatedType, map[string]string{"name": "Kim Bare"})
	ev, err = codecs.CloudEvents{}.Decode(bare.Value)
	require.NoError(t, err)
	ev.Subject = ""
	bare.Value, err = shopEventBytes(t, ev)
	require.NoError(t, err)
	produce(t, cl, bare)

	// Then the state moved by that event only.
	kim := s.awaitVersion("kim", 2)
	assert.Equal(t, "Kim Bare", kim.Name)
	_, found := s.customer("lee")
	assert.False(t, found)
}
