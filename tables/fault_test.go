package tables

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// faultTestChangelog writes n distinct keys with values of about 200 bytes,
// each key once: whatever a store loses of them cannot be hidden by a later
// version. It returns the table of partition 0, what its store must hold.
func faultTestChangelog(t *testing.T, k *engineTestKafka, n int) map[string]string {
	t.Helper()
	kvs := map[string][]byte{}
	for i := range n {
		kvs[fmt.Sprintf("key-%05d", i)] = fmt.Appendf(nil, "value-%05d-%s", i, strings.Repeat("x", 190))
	}
	k.produce(t, kvs)
	return restoreTestFold(restoreTestRead(t, k, 0), restoreTestHwm(t, k, 0))
}

// faultTestEngine is an engine restoring from k's changelog, with a fault
// handler recording what it is told.
func faultTestEngine(t *testing.T, k *engineTestKafka, dir string, log *storeTestLog, faults *faultTestFaults) *Engine {
	t.Helper()
	return storeTestEngine(t, dir, WithWatermarks(SaramaWatermarks(k.client)),
		WithRestorer(NewKafkaRestorer(k.addrs, "t-restore")), WithBatchSize(20),
		WithLogger(log.logger()), WithFaultHandler(faults.record))
}

type faultTestFaults struct {
	mu   sync.Mutex
	errs []error
}

func (f *faultTestFaults) record(_ string, _ int32, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *faultTestFaults) all() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// faultTestData reads every key of want from s.
func faultTestData(t *testing.T, s *Store, want map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	kvs, err := s.Scan("", 0)
	require.NoError(t, err)
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	for key := range want {
		v, err := s.Get(key)
		require.NoError(t, err)
		require.NotNil(t, v, "key %s", key)
	}
	return got
}

// faultTestFile returns the largest file of dir whose name ends in ext.
func faultTestFile(t *testing.T, dir, ext string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var best string
	var size int64
	for _, e := range ents {
		info, err := e.Info()
		require.NoError(t, err)
		if strings.HasSuffix(e.Name(), ext) && info.Size() > size {
			best, size = filepath.Join(dir, e.Name()), info.Size()
		}
	}
	require.NotEmpty(t, best, "no %s file in %s", ext, dir)
	return best
}

// faultTestDamage overwrites n bytes of file at off with garbage.
func faultTestDamage(t *testing.T, file string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	require.NoError(t, err)
	garbage := bytes.Repeat([]byte{0xa5, 0x5a, 0x13, 0x37}, n/4)
	_, err = f.WriteAt(garbage, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestStore_GivenJournalDamagedNearItsEnd_WhenReopened_ThenItIsRebuiltFromTheChangelogNotOpenedWithLostData(t *testing.T) {
	k := engineTestCluster(t)
	want := faultTestChangelog(t, k, 2400)
	dir := t.TempDir()
	var log storeTestLog
	var faults faultTestFaults
	e := faultTestEngine(t, k, dir, &log, &faults)
	s := storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())
	require.Equal(t, want, faultTestData(t, s, want))
	require.NoError(t, s.Close())

	// Given 4 KB of garbage at the end of the journal's second-to-last
	// 32 KB block: LevelDB's lenient recovery would drop the rest of that
	// block and keep the later ones, offset included.
	journal := faultTestFile(t, s.path, ".log")
	info, err := os.Stat(journal)
	require.NoError(t, err)
	const block = 32 << 10
	require.Greater(t, info.Size(), int64(block+block/2), "the journal needs several blocks")
	last := (info.Size() - 1) / block * block
	faultTestDamage(t, journal, last-6<<10, 4<<10)

	// When the store is opened again
	s = storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())

	// Then it holds exactly the changelog, and said why it rebuilt.
	assert.Equal(t, want, faultTestData(t, s, want))
	assert.Contains(t, log.String(), "local state corrupted; rebuilding from changelog")
	assert.Equal(t, int64(1), e.Stats().Rebuilt)
	assert.Equal(t, int64(1), e.Stats().Broken)
	assert.NoError(t, s.Fault())
}

// faultTestBreakTable restores partition 0 into e, compacts it into table
// files, closes it and damages the middle of the largest table file.
func faultTestBreakTable(t *testing.T, e *Engine) *Store {
	t.Helper()
	s := storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.db.Load().CompactRange(util.Range{}))
	require.NoError(t, s.Close())
	table := faultTestFile(t, s.path, ".ldb")
	info, err := os.Stat(table)
	require.NoError(t, err)
	faultTestDamage(t, table, info.Size()/2, 4<<10)
	return s
}

func TestStore_GivenDamagedTableBlock_WhenRead_ThenTheStoreIsBrokenRefusesReadsAndWritesAndIsRebuiltOnReopen(t *testing.T) {
	k := engineTestCluster(t)
	want := faultTestChangelog(t, k, 2400)
	var log storeTestLog
	var faults faultTestFaults
	e := faultTestEngine(t, k, t.TempDir(), &log, &faults)
	old := faultTestBreakTable(t, e)

	// Given the store reopened over the damaged table (nothing reads it at open)
	s := storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.Fault())

	// When every key is read
	var broken error
	for key := range want {
		v, err := s.Get(key)
		if err != nil {
			broken = err
			break
		}
		assert.Equal(t, want[key], string(v), "a key that reads reads right")
	}

	// Then a read met the damage: an error, not a value, not a panic
	require.ErrorIs(t, broken, ErrStoreBroken)
	assert.ErrorIs(t, s.Fault(), ErrStoreBroken)
	assert.True(t, s.Broken())
	assert.NotEmpty(t, s.Progress().Fault)
	assert.FileExists(t, filepath.Join(s.path, storeBrokenMarker))
	require.Len(t, faults.all(), 1, "the owner is told once")
	assert.ErrorIs(t, faults.all()[0], ErrStoreBroken)
	assert.Contains(t, log.String(), "local state corrupted; partition out of service")
	// and from now on every read and write is refused, even of keys that
	// would still read: nothing may be built on this store.
	for key := range want {
		_, err := s.Get(key)
		require.ErrorIs(t, err, ErrStoreBroken)
	}
	_, err := s.Scan("", 0)
	assert.ErrorIs(t, err, ErrStoreBroken)
	assert.ErrorIs(t, s.Set("key-new", []byte("built on a damaged store")), ErrStoreBroken)
	assert.ErrorIs(t, s.Delete("key-00001"), ErrStoreBroken)
	require.NoError(t, s.Close())

	// When opened again, by another process (a new engine on the directory)
	var log2 storeTestLog
	e2 := faultTestEngine(t, k, filepath.Dir(old.path), &log2, &faults)
	s = storeTestOpen(t, e2, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())

	// Then it is rebuilt from the changelog to the exact state, with a log
	// line and a count.
	assert.Equal(t, want, faultTestData(t, s, want))
	assert.NoFileExists(t, filepath.Join(s.path, storeBrokenMarker))
	assert.Contains(t, log2.String(), "local state marked broken; rebuilding from changelog")
	assert.Equal(t, int64(1), e2.Stats().Rebuilt)
	assert.NoError(t, s.Set("key-new", []byte("v")))
}

func TestStore_GivenStateMetadataUnreadable_WhenOpened_ThenEveryWipeLogsItsReason(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string){
		"another format version": func(t *testing.T, dir string) {
			storeTestPut(t, dir, storeMetaVersion, []byte{9})
		},
		"format 1 (values stored without their index terms)": func(t *testing.T, dir string) {
			storeTestPut(t, dir, storeMetaVersion, binary.AppendUvarint(nil, 1))
			storeTestPut(t, dir, storeDataKey(nil, "b"), []byte(`{"color":"red"}`))
		},
		"offset of the wrong size": func(t *testing.T, dir string) {
			storeTestPut(t, dir, storeMetaOffset, []byte{1, 2, 3})
		},
		"metadata block damaged": func(t *testing.T, dir string) {
			db := storeTestRawDB(t, dir)
			require.NoError(t, db.CompactRange(util.Range{}))
			require.NoError(t, db.Close())
			faultTestDamage(t, faultTestFile(t, dir, ".ldb"), 0, 16)
		},
		"unknown layout": func(t *testing.T, dir string) {
			storeTestDelete(t, dir, storeMetaVersion)
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			storeTestWithOffset(t, dir, 5)
			damage(t, filepath.Join(dir, "t.0"))
			var log storeTestLog
			e := storeTestEngine(t, dir, WithLogger(log.logger()))
			s := storeTestOpen(t, e, "t", 0)
			assert.Empty(t, storeTestKeys(t, s))
			assert.Contains(t, log.String(), "local state unreadable; rebuilding from changelog")
			assert.Contains(t, log.String(), "reason=")
			assert.Equal(t, int64(1), e.Stats().Rebuilt)
		})
	}
}

// faultTestFill writes a file into dir until the file system is full and
// returns its name.
func faultTestFill(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 4<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return name
		}
	}
}

func TestStore_GivenDiskFull_WhenWriting_ThenTheStoreFailsUntilReopenedAndKeepsEveryAcknowledgedWrite(t *testing.T) {
	k := engineTestCluster(t)
	want := faultTestChangelog(t, k, 400)
	dir := faultTestMount(t, 4<<20)
	var log storeTestLog
	var faults faultTestFaults
	e := faultTestEngine(t, k, dir, &log, &faults)
	s := storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())
	// An acknowledged write: stored, then in the changelog.
	ack := func(s *Store, key, value string) {
		require.NoError(t, s.Set(key, []byte(value)))
		k.produce(t, map[string][]byte{key: []byte(value)})
		require.NoError(t, s.SetOffset(restoreTestHwm(t, k, 0)-1))
		want[key] = value
	}
	key0 := func(prefix string) string {
		partitioner := k.cfg.Producer.Partitioner(engineTestTopic)
		for i := 0; ; i++ {
			key := fmt.Sprintf("%s-%d", prefix, i)
			p, err := partitioner.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, 4)
			require.NoError(t, err)
			if p == 0 {
				return key
			}
		}
	}
	ack(s, key0("before"), "acknowledged before the disk filled")

	// Given a full disk
	filler := faultTestFill(t, dir)

	// When the store writes
	err := s.Set(key0("lost"), bytes.Repeat([]byte("v"), 64<<10))

	// Then the write fails, the store is out of service (not broken), and
	// refuses writes, the process goes on.
	require.ErrorIs(t, err, ErrStoreFailed)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.ErrorIs(t, s.Fault(), ErrStoreFailed)
	assert.False(t, s.Broken())
	assert.ErrorIs(t, s.Set(key0("later"), []byte("v")), ErrStoreFailed)
	require.Len(t, faults.all(), 1)
	assert.Contains(t, log.String(), "disk_full=true")
	v, err := s.Get(key0("before"))
	require.NoError(t, err, "what was written still reads")
	assert.Equal(t, "acknowledged before the disk filled", string(v))
	_ = s.Close() // may fail to write: the disk is full

	// When space returns and the store is reopened
	require.NoError(t, os.Remove(filler))
	s = storeTestOpen(t, e, engineTestTopic, 0)
	require.NoError(t, s.MarkRecovered())

	// Then every acknowledged write is there and it writes again.
	assert.NoError(t, s.Fault())
	assert.Equal(t, want, faultTestData(t, s, want))
	ack(s, key0("after"), "acknowledged after space returned")
	assert.Equal(t, want, faultTestData(t, s, want))
}

func storeTestPut(t *testing.T, dir string, key, value []byte) {
	t.Helper()
	db := storeTestRawDB(t, dir)
	require.NoError(t, db.Put(key, value, nil))
	require.NoError(t, db.Close())
}

func storeTestDelete(t *testing.T, dir string, key []byte) {
	t.Helper()
	db := storeTestRawDB(t, dir)
	require.NoError(t, db.Delete(key, nil))
	require.NoError(t, db.Close())
}

func storeTestRawDB(t *testing.T, dir string) *leveldb.DB {
	t.Helper()
	db, err := leveldb.OpenFile(dir, nil)
	require.NoError(t, err)
	return db
}
