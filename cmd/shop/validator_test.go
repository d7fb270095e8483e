package main

import (
	"fmt"
	"net/http"
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

// productRecords are n valid ProductAdded events with distinct SKUs.
func productRecords(t *testing.T, from, n int) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("prod-%05d", i)
		recs = append(recs, productAdded(t, id, shop.ProductAdded{Name: "Product " + id, Price: "4.20", SKU: fmt.Sprintf("%s-%04d", string(rune('A'+i/10000))+"BC", i%10000)}))
	}
	return recs
}

// productAdded is a ProductAdded event for product-events, as any producer
// writes it.
func productAdded(t *testing.T, id string, p shop.ProductAdded) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", shop.ProductAddedType, id, p)
	require.NoError(t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: shop.ProductEvents.Name, Key: []byte(id), Value: b}
}

// validations reads product-validations: per product, its distinct event ids
// and how many records it has.
func validations(t *testing.T, brokers []string) (ids map[string]map[string]bool, records int) {
	t.Helper()
	n := int(endOffsets(t, brokers, shop.ProductValidations.Name))
	ids = map[string]map[string]bool{}
	for _, r := range consumeUpTo(t, brokers, shop.ProductValidations.Name, n) {
		ev, err := codecs.DecodeEvent(r.Value, nil)
		require.NoError(t, err)
		if ids[ev.Subject] == nil {
			ids[ev.Subject] = map[string]bool{}
		}
		ids[ev.Subject][ev.ID] = true
	}
	return ids, n
}

func awaitValidations(t *testing.T, brokers []string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return endOffsets(t, brokers, shop.ProductValidations.Name) >= int64(n) },
		wait, 20*time.Millisecond, "validations never reached %d", n)
}

func TestValidator_GivenManyProducts_ThenOneValidationEachAcrossRestartAndWipedState(t *testing.T) {
	n := 4000 // enough to cross many commits and partitions; more only waits longer on a busy machine
	if testing.Short() {
		n = 1000
	}
	dir := t.TempDir()
	s := startShop(t, testConfig(dir))
	brokers := s.brokers()
	produce(t, kafkaClient(t, brokers, kgo.ProducerLinger(5*time.Millisecond)), productRecords(t, 0, n)...)
	awaitValidations(t, brokers, n)
	check := func(phase string) {
		t.Helper()
		ids, records := validations(t, s.brokers())
		assert.Equal(t, n, records, "%s: product-validations holds %d records for %d products", phase, records, n)
		assert.Equal(t, int64(n), endOffsets(t, s.brokers(), shop.ProductValidations.Name), phase)
		assert.Len(t, ids, n, phase)
		for p, set := range ids {
			if !assert.Len(t, set, 1, "%s: product %s", phase, p) {
				break
			}
		}
	}
	check("first run")
	s.stop()

	s = startShop(t, testConfig(dir))
	check("after a restart")
	assert.Zero(t, s.app.Runtime().Stats()[shop.ValidatorGroup].Processed)
	s.stop()

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "state")))
	s = startShop(t, testConfig(dir))
	check("after the local state was wiped")
	assert.Zero(t, s.app.Runtime().Stats()[shop.ValidatorGroup].Processed, "restore ran handlers")
	var p shop.Product
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/products/prod-00042", "", &p).StatusCode)
	assert.Equal(t, shop.ProductValidated, p.Validation)
}

func TestValidator_GivenRules_ThenVerdictsAndFirstClaimKeepsTheSKU(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	cl := kafkaClient(t, s.brokers())
	add := func(id, name, price, sku string) {
		produce(t, cl, productAdded(t, id, shop.ProductAdded{Name: name, Price: jsonNumber(price), SKU: sku}))
	}
	add("first", "First", "10", "DUP-0001")
	awaitProduct(t, s, "first", shop.ProductValidated)
	add("second", "Second", "10", "DUP-0001")
	add("nameless", "", "1.00", "NON-0001")
	add("cheap", "Cheap", "0", "CHP-0001")
	add("precise", "Precise", "1.999", "PRC-0001")
	add("badsku", "Bad", "1.00", "abc-12")

	second := awaitProduct(t, s, "second", shop.ProductRejected)
	assert.Contains(t, second.Reasons, "sku DUP-0001 already belongs to product first")
	assert.Contains(t, awaitProduct(t, s, "nameless", shop.ProductRejected).Reasons, "name is required")
	assert.Len(t, awaitProduct(t, s, "cheap", shop.ProductRejected).Reasons, 1)
	assert.Len(t, awaitProduct(t, s, "precise", shop.ProductRejected).Reasons, 1)
	assert.Len(t, awaitProduct(t, s, "badsku", shop.ProductRejected).Reasons, 1)
	assert.Equal(t, shop.ProductValidated, awaitProduct(t, s, "first", shop.ProductValidated).Validation)
}

func awaitProduct(t *testing.T, s *shopRun, id, validation string) shop.Product {
	t.Helper()
	var p shop.Product
	require.Eventually(t, func() bool {
		p = shop.Product{}
		return s.do(http.MethodGet, "/products/"+id, "", &p).StatusCode == http.StatusOK && p.Validation == validation
	}, wait, 10*time.Millisecond, "product %s never %s (last %+v)", id, validation, p)
	return p
}

func TestValidator_GivenFreshDeploymentAgainstHistory_ThenBootstrapEmitsNothingThenGoesLive(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	cfg := testConfig(t.TempDir())
	cfg.Brokers = broker.Addrs()
	s := startShop(t, cfg)
	produce(t, kafkaClient(t, broker.Addrs()), productRecords(t, 0, 200)...)
	awaitValidations(t, broker.Addrs(), 200)
	s.stop()

	// The validator is deployed fresh: its group, its table's changelog, its
	// loopback and its local state are gone; the history is not.
	scfg := sarama.NewConfig()
	scfg.Version = kafkaconf.Version()
	admin, err := sarama.NewClusterAdmin(broker.Addrs(), scfg)
	require.NoError(t, err)
	require.NoError(t, admin.DeleteConsumerGroup(shop.ValidatorGroup))
	for _, topic := range []string{shop.ValidatorTable.Name, shop.ValidatorLoop.Name, shop.ValidatorGroup + "-bootstrap"} {
		require.NoError(t, admin.DeleteTopic(topic))
	}
	require.NoError(t, admin.Close())
	require.NoError(t, os.RemoveAll(filepath.Join(cfg.DataDir, "state", shop.ValidatorGroup)))

	s = startShop(t, cfg)
	require.Eventually(t, func() bool {
		return s.app.Runtime().Stats()[shop.ValidatorGroup].Suppressed >= 200
	}, wait, 10*time.Millisecond, "the validator never caught up")
	assert.Contains(t, s.logs.String(), "bootstrap: catching up, side effects suppressed")
	assert.Equal(t, int64(200), endOffsets(t, broker.Addrs(), shop.ProductValidations.Name), "bootstrap emitted validations")

	// Then it is live: a new product is validated once.
	produce(t, kafkaClient(t, broker.Addrs()), productRecords(t, 200, 1)...)
	awaitProduct(t, s, "prod-00200", shop.ProductValidated)
	assert.Equal(t, int64(201), endOffsets(t, broker.Addrs(), shop.ProductValidations.Name))
	assert.Contains(t, s.logs.String(), "bootstrap: caught up; live")
}

func TestValidator_GivenProcessKilledMidStream_ThenEveryProductHasOneValidationID(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	broker := startProcessBroker(t)
	dataDir := t.TempDir()
	cl := kafkaClient(t, broker.Addrs(), kgo.ProducerLinger(5*time.Millisecond))

	const chunk, kills = 1000, 3
	p := startShopProcess(t, broker.Addrs(), dataDir)
	var poison []*kgo.Record
	for k := range kills {
		// Products keep arriving, poison among them; the shop is killed while
		// it validates them and dead-letters the poison.
		recs := productRecords(t, k*chunk, chunk)
		for i := range 5 {
			bad := &kgo.Record{Topic: shop.ProductEvents.Name, Key: fmt.Appendf(nil, "poison-%d-%d", k, i), Value: []byte("not an event")}
			poison = append(poison, bad)
			recs = append(recs, bad)
		}
		produce(t, cl, recs...)
		from := endOffsets(t, broker.Addrs(), shop.ProductValidations.Name)
		require.Eventually(t, func() bool {
			return endOffsets(t, broker.Addrs(), shop.ProductValidations.Name) > from+chunk/10
		}, wait, time.Millisecond, "validations stopped flowing")
		p.kill()
		p = startShopProcess(t, broker.Addrs(), dataDir)
	}
	total := kills * chunk
	require.Eventually(t, func() bool {
		ids, _ := validations(t, broker.Addrs())
		return len(ids) == total
	}, wait, 100*time.Millisecond, "not every product was validated")
	ids, records := validations(t, broker.Addrs())
	for prod, set := range ids {
		require.Len(t, set, 1, "product %s has %d validation ids", prod, len(set))
	}
	t.Logf("product-validations: %d records for %d products", records, total)

	// A crash between writing a dead letter and committing repeats the dead
	// letter, never loses it: every poison record is in the DLQ.
	dlq := shop.ValidatorGroup + "-dlq"
	want := map[string]bool{}
	for _, r := range poison {
		want[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = true
	}
	require.Eventually(t, func() bool {
		n := int(endOffsets(t, broker.Addrs(), dlq))
		seen := map[string]bool{}
		for _, r := range consumeUpTo(t, broker.Addrs(), dlq, n) {
			h := headerMap(r)
			seen[h[processors.HeaderOriginalPartition]+"/"+h[processors.HeaderOriginalOffset]] = true
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	}, wait, 100*time.Millisecond, "a poison record was lost instead of dead-lettered")
}
