package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
)

// storeFaultDamageTable overwrites the start of the largest table file of a
// stopped store: its first data block, the lowest keys, while the store's
// metadata (after the data) still reads, so the damage is only found when
// those keys are read.
func storeFaultDamageTable(t *testing.T, storeDir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(storeDir, "*.ldb"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no table files in %s", storeDir)
	var largest string
	var size int64
	for _, f := range files {
		info, err := os.Stat(f)
		require.NoError(t, err)
		if info.Size() > size {
			largest, size = f, info.Size()
		}
	}
	require.Greater(t, size, int64(4096), "the table needs several blocks")
	f, err := os.OpenFile(largest, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("damaged!", 8)), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestStoreFault_GivenCustomersTableFileDamagedWhileStopped_WhenTheShopServes_ThenItsKeysAnswer503UntilRebuiltAndNoStaleSnapshotReachesTheChangelog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := startShop(t, cfg)
	seedCustomers(t, s, 120)
	s.stop()
	// A second start moves the stores' journals into table files.
	s = startShop(t, cfg)
	s.stop()

	p := tables.PartitionFor("c0", cfg.Partitions)
	keys := seededKeysOn(120, cfg.Partitions, p)
	slices.Sort(keys)
	storeFaultDamageTable(t, filepath.Join(cfg.StateDir(), shop.CustomersGroup, fmt.Sprintf("%s.%d", shop.CustomersTable.Name, p)))

	// Given the shop started again over the damaged store
	s = startShop(t, cfg)

	// When the lowest key of the partition is read, it answers 503 with
	// Retry-After: never a stale 200, never a 500
	resp := s.do(http.MethodGet, "/customers/"+keys[0], "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	// and so does a command for it (it reads the customer first).
	s.expectProblem(t, http.MethodPatch, "/customers/"+keys[0], `{"name":"After the damage"}`, http.StatusServiceUnavailable)
	// An event that arrives meanwhile is folded on the rebuilt state only.
	upd, _ := eventRecord(t, keys[0], shop.CustomerUpdatedType, map[string]string{"name": "After the damage"})
	produce(t, kafkaClient(t, s.brokers()), upd)

	// Then every key of the partition answers 503 or its exact state, until
	// all answer their exact state after the rebuild.
	want := func(id string) int64 {
		if id == keys[0] {
			return 3
		}
		return 2
	}
	require.Eventually(t, func() bool {
		done := true
		for _, id := range keys {
			var c shop.Customer
			resp := s.do(http.MethodGet, "/customers/"+id, "", &c)
			switch resp.StatusCode {
			case http.StatusServiceUnavailable:
				done = false
			case http.StatusOK:
				if id == keys[0] && c.Version == 2 {
					done = false // rebuilt, the PATCH not folded yet
					continue
				}
				require.Equal(t, want(id), c.Version, "%s answered a stale version", id)
			default:
				require.Failf(t, "unexpected status", "%s: %d", id, resp.StatusCode)
			}
		}
		return done
	}, wait, 50*time.Millisecond, "the partition was never rebuilt")
	c, _ := s.customer(keys[0])
	assert.Equal(t, "After the damage", c.Name)

	// and the process never stopped: it rebuilt in place, with a log line
	// and counters.
	s.requireRunning(t)
	logs := s.logs.String()
	assert.Contains(t, logs, "local state corrupted; partition out of service")
	assert.Contains(t, logs, "local state marked broken; rebuilding from changelog")
	counters := s.app.Runtime().Stats()[shop.CustomersGroup].Counters
	assert.GreaterOrEqual(t, counters[streamfold.CounterStoresRebuilt], int64(1))
	assert.GreaterOrEqual(t, counters[streamfold.CounterStoresBroken], int64(1))
	assert.GreaterOrEqual(t, counters[streamfold.CounterProcessorRestarted], int64(1))

	// And every version of the partition's customers in the changelog is one
	// the fold produced from the one before: 1, 2 (and 3) — a snapshot built
	// on a stale base would repeat a version.
	storeFaultChangelogVersions(t, s, cfg.Partitions, p, keys, want)
}

// seededKeysOn lists the ids seedCustomers(n) registered that live on
// partition p.
func seededKeysOn(n, partitions int, p int32) []string {
	var keys []string
	for i := range n {
		if id := fmt.Sprintf("c%d", i); tables.PartitionFor(id, partitions) == p {
			keys = append(keys, id)
		}
	}
	return keys
}

// storeFaultChangelogVersions checks that the changelog holds, for each of
// keys (all on partition p), exactly the versions 1..want(key) in order. The
// view answers once the local store has a write, so it waits until the
// changelog has every key's last version before it compares.
func storeFaultChangelogVersions(t *testing.T, s *shopRun, partitions int, p int32, keys []string, want func(string) int64) {
	t.Helper()
	read := func() map[string][]int64 {
		// At least what the changelog held a moment ago: a write still on
		// its way (the view answers before it lands) may come on top.
		n := int(endOffsets(t, s.brokers(), shop.CustomersTable.Name))
		versions := map[string][]int64{}
		for _, r := range consumeUpTo(t, s.brokers(), shop.CustomersTable.Name, n) {
			id := string(r.Key)
			if r.Value == nil || tables.PartitionFor(id, partitions) != p || envelope.Absent(r.Value) {
				continue
			}
			_, state, err := envelope.Split(r.Value)
			require.NoError(t, err)
			c, err := shop.CustomersTable.Codec.Decode(state)
			require.NoError(t, err)
			versions[id] = append(versions[id], c.Version)
		}
		return versions
	}
	var versions map[string][]int64
	require.Eventually(t, func() bool {
		versions = read()
		for _, id := range keys {
			if v := versions[id]; len(v) == 0 || v[len(v)-1] < want(id) {
				return false
			}
		}
		return true
	}, wait, 50*time.Millisecond, "the changelog never held every key's last version")
	for _, id := range keys {
		var seq []int64
		for v := int64(1); v <= want(id); v++ {
			seq = append(seq, v)
		}
		assert.Equal(t, seq, versions[id], "versions of %s in the changelog", id)
	}
}

func TestStoreFault_GivenCustomersJournalDamagedNearItsEndWhileStopped_WhenTheShopServes_ThenItsKeysAnswer503OrTheExactStateNeverAStaleOne(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := startShop(t, cfg)
	seedCustomers(t, s, 400)
	s.stop()

	p := tables.PartitionFor("c0", cfg.Partitions)
	keys := seededKeysOn(400, cfg.Partitions, p)
	// Given 4 KB of garbage at the end of the second-to-last 32 KB block of
	// the partition's journal (the writes of the last run, not yet in table
	// files): LevelDB's lenient recovery drops the rest of that block and
	// keeps the later ones, the latest offset among them.
	store := filepath.Join(cfg.StateDir(), shop.CustomersGroup, fmt.Sprintf("%s.%d", shop.CustomersTable.Name, p))
	journals, err := filepath.Glob(filepath.Join(store, "*.log"))
	require.NoError(t, err)
	require.Len(t, journals, 1)
	info, err := os.Stat(journals[0])
	require.NoError(t, err)
	const block = 32 << 10
	require.Greater(t, info.Size(), int64(block+block/2), "the journal needs several blocks")
	last := (info.Size() - 1) / block * block
	f, err := os.OpenFile(journals[0], os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("damaged!", 512)), last-6<<10)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// When the shop starts again over the damaged store
	s = startShop(t, cfg)

	// Then every key of the partition answers its exact state (version 2)
	// once the store is rebuilt, and never a stale one (version 1) or a 500.
	require.Eventually(t, func() bool {
		done := true
		for _, id := range keys {
			var c shop.Customer
			switch resp := s.do(http.MethodGet, "/customers/"+id, "", &c); resp.StatusCode {
			case http.StatusServiceUnavailable:
				done = false
			case http.StatusOK:
				require.Equal(t, int64(2), c.Version, "%s answered a stale version", id)
			default:
				require.Failf(t, "unexpected status", "%s: %d", id, resp.StatusCode)
			}
		}
		return done
	}, wait, 50*time.Millisecond, "the partition was never rebuilt")
	assert.Contains(t, s.logs.String(), "local state corrupted; rebuilding from changelog")

	// And the next event folds on the exact state: the changelog holds 1, 2, 3.
	upd, _ := eventRecord(t, keys[0], shop.CustomerUpdatedType, map[string]string{"name": "After the damage"})
	produce(t, kafkaClient(t, s.brokers()), upd)
	s.awaitVersion(keys[0], 3)
	storeFaultChangelogVersions(t, s, cfg.Partitions, p, keys, func(id string) int64 {
		if id == keys[0] {
			return 3
		}
		return 2
	})
}

// storeFaultFill writes a file into dir until the file system is full and
// returns its name.
func storeFaultFill(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := len(chunk); n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return name
}

func TestStoreFault_GivenStateDiskFull_WhenEventsArrive_ThenTheShopGoesUnreadyKeepsRunningAndRecoversWithEveryAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	storeFaultMount(t, cfg.StateDir(), 256<<20)
	s := startShop(t, cfg)
	seedCustomers(t, s, 10)

	// Given a full state disk
	filler := storeFaultFill(t, cfg.StateDir())

	// When events keep arriving (each accepted into Kafka)
	ready := func() int {
		resp, err := http.Get(s.base + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	accepted := 0
	require.Eventually(t, func() bool {
		body := fmt.Sprintf(`{"id":"full%d","name":"Full %d","email":"full%d@example.com"}`, accepted, accepted, accepted)
		require.Equal(t, http.StatusAccepted, s.do(http.MethodPost, "/customers", body, nil).StatusCode)
		accepted++
		return ready() == http.StatusServiceUnavailable
	}, wait, 20*time.Millisecond, "the shop stayed ready on a full disk")

	// Then the shop is unready, and keeps running
	assert.Contains(t, s.logs.String(), "local state write failed")
	select {
	case err := <-s.done:
		t.Fatalf("the shop exited on a full disk: %v", err)
	default:
	}

	// When space returns
	require.NoError(t, os.Remove(filler))

	// Then it recovers with every acknowledged write.
	require.Eventually(t, func() bool { return ready() == http.StatusOK }, wait, 50*time.Millisecond, "the shop never recovered")
	for i := range 10 {
		s.awaitVersion(fmt.Sprintf("c%d", i), 2)
	}
	for i := range accepted {
		s.awaitVersion(fmt.Sprintf("full%d", i), 1)
	}
	s.requireRunning(t)
	counters := s.app.Runtime().Stats()[shop.CustomersGroup].Counters
	assert.GreaterOrEqual(t, counters[streamfold.CounterProcessorRestarted], int64(1))
}

func TestStoreFault_GivenAReplicaTableFileDamagedWhileStopped_WhenItsKeysAreRead_ThenNoWrongAnswerAndTheReplicaIsRebuiltInPlace(t *testing.T) {
	cluster := startCluster(t)
	startShop(t, memberConfig(t, cluster.Addrs()))
	qcfg := memberConfig(t, cluster.Addrs())
	qcfg.Groups = []string{} // query-only: customers-table is a read replica here
	q := startShop(t, qcfg)
	ids := registerAll(t, q.base, "r", 300)
	allReadable(t, []string{q.base}, ids)
	q.stop()
	// A second start moves the replica's journals into table files.
	q = startShop(t, qcfg)
	q.stop()

	part := tables.PartitionFor(ids[0], qcfg.Partitions)
	var keys []string
	for _, id := range ids {
		if tables.PartitionFor(id, qcfg.Partitions) == part {
			keys = append(keys, id)
		}
	}
	slices.Sort(keys)
	storeFaultDamageTable(t, filepath.Join(qcfg.StateDir(), "replicas", shop.CustomersTable.Name, fmt.Sprintf("%s.%d", shop.CustomersTable.Name, part)))

	// Given the query instance started again over the damaged replica
	q = startShop(t, qcfg)

	// When its keys are read, every answer is a 503 or the right customer,
	// until the replica, rebuilt, answers them all itself.
	require.Eventually(t, func() bool {
		local := true
		for _, id := range keys {
			a := mustGet(t, q.base, "/customers/"+id)
			switch a.status {
			case http.StatusServiceUnavailable:
				local = false
			case http.StatusOK:
				var c shop.Customer
				require.NoError(t, json.Unmarshal(a.body, &c))
				require.Equal(t, "name-"+id, c.Name)
				local = local && a.servedBy == q.app.Advertised()
			default:
				require.Failf(t, "unexpected status", "%s: %d %s", id, a.status, a.body)
			}
		}
		return local
	}, wait, 50*time.Millisecond, "the replica never served its keys again")

	// Then the damage was found, the replica rebuilt and restarted, and the
	// instance never stopped.
	q.requireRunning(t)
	counters := q.app.Runtime().Stats()[shop.CustomersGroup].Counters
	assert.GreaterOrEqual(t, counters[streamfold.CounterStoresBroken], int64(1))
	assert.GreaterOrEqual(t, counters[streamfold.CounterStoresRebuilt], int64(1))
	assert.GreaterOrEqual(t, counters[streamfold.CounterProcessorRestarted], int64(1))
	assert.Contains(t, q.logs.String(), "local state marked broken; rebuilding from changelog")
}
