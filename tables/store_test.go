package tables

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// storeTestColor indexes values of the form "color=<c>;tags=<t1>,<t2>".
var (
	storeTestColor = Index{Name: "color", Terms: func(_ string, v []byte) []string {
		return storeTestField(v, "color")
	}}
	storeTestTags = Index{Name: "tags", Terms: func(_ string, v []byte) []string {
		return storeTestField(v, "tags")
	}}
)

func storeTestField(v []byte, name string) []string {
	for _, f := range strings.Split(string(v), ";") {
		if k, val, ok := strings.Cut(f, "="); ok && k == name && val != "" {
			return strings.Split(val, ",")
		}
	}
	return nil
}

// storeTestLog is a concurrency-safe log sink for assertions on log lines.
type storeTestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *storeTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *storeTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *storeTestLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// storeTestEventually polls cond until it holds or a generous deadline passes.
func storeTestEventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", msg)
		}
		time.Sleep(time.Millisecond)
	}
}

func storeTestEngine(t *testing.T, dir string, opts ...EngineOption) *Engine {
	t.Helper()
	e, err := NewEngine(dir, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func storeTestOpen(t *testing.T, e *Engine, topic string, partition int32) *Store {
	t.Helper()
	st, err := e.Builder()(topic, partition)
	require.NoError(t, err)
	require.NoError(t, st.Open())
	s, ok := e.Store(topic, partition)
	require.True(t, ok)
	require.Same(t, st, s)
	return s
}

// storeTestCrash drops the store's LevelDB handle the way a killed process
// would: staged restore writes and the in-memory offset are lost, what
// LevelDB already wrote to its journal stays.
func storeTestCrash(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	require.NoError(t, s.awaitCommitLocked())
	s.closed = true
	db := s.db.Load()
	s.mu.Unlock()
	close(s.stopProgress)
	<-s.progressDone
	require.NoError(t, db.Close())
	s.engine.unregister(s)
}

// storeTestSettle waits for the restore batch being committed, if any.
func storeTestSettle(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.awaitCommitLocked())
}

// storeTestCopyDir copies an open store's files, a crash-consistent
// snapshot as long as nobody writes meanwhile.
func storeTestCopyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if d.Name() == "LOCK" {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(to, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Close()
	})
	require.NoError(t, err)
}

func storeTestKeys(t *testing.T, s *Store) []string {
	t.Helper()
	it, err := s.Iterator()
	require.NoError(t, err)
	defer it.Release()
	var keys []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
	}
	require.NoError(t, it.Err())
	return keys
}

// storeTestCheckIndexes asserts that the index entries are exactly the terms
// of the stored values: nothing stale, nothing missing.
func storeTestCheckIndexes(t *testing.T, s *Store) {
	t.Helper()
	want := map[string]bool{}
	kvs, err := s.Scan("", 0)
	require.NoError(t, err)
	for _, kv := range kvs {
		for _, idx := range s.indexes {
			for _, term := range idx.Terms(kv.Key, kv.Value) {
				want[string(storeIndexKey(nil, idx.Name, term, kv.Key))] = true
			}
		}
	}
	got := map[string]bool{}
	it := s.db.Load().NewIterator(util.BytesPrefix([]byte{storePrefixIndex}), nil)
	for it.Next() {
		got[string(it.Key())] = true
	}
	it.Release()
	require.NoError(t, it.Error())
	assert.Equal(t, want, got)
}

func TestStore_GivenRecoveredStore_WhenSetGetDelete_ThenReadsFollowWrites(t *testing.T) {
	e := storeTestEngine(t, t.TempDir())
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	storeTestSetGetDelete(t, s)
}

func TestStore_GivenRestoringStore_WhenSetGetDelete_ThenReadsSeeStagedWrites(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithBatchSize(1000))
	s := storeTestOpen(t, e, "t", 0)

	require.NoError(t, s.Set("a", []byte("1")))
	require.NoError(t, s.Set("b", []byte{}))
	require.NoError(t, s.Set("c", []byte("3")))
	require.NoError(t, s.Delete("c"))

	v, err := s.Get("a")
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)
	v, err = s.Get("b")
	require.NoError(t, err)
	assert.NotNil(t, v, "an empty value is not a missing one")
	v, err = s.Get("c")
	require.NoError(t, err)
	assert.Nil(t, v)
	ok, err := s.Has("c")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Empty(t, storeTestKeys(t, s), "iterators see committed batches only")

	require.NoError(t, s.MarkRecovered())
	assert.Equal(t, []string{"a", "b"}, storeTestKeys(t, s))
	storeTestSetGetDelete(t, s)
}

func storeTestSetGetDelete(t *testing.T, s *Store) {
	t.Helper()
	for _, k := range []string{"k2", "k1", "k3", "j1", "k10"} {
		require.NoError(t, s.Set(k, []byte("v-"+k)))
	}
	require.NoError(t, s.Set("k1", []byte("v-k1-new")))
	require.NoError(t, s.Delete("k3"))
	require.NoError(t, s.Delete("never-there"))

	v, err := s.Get("k1")
	require.NoError(t, err)
	assert.Equal(t, []byte("v-k1-new"), v)
	v, err = s.Get("k3")
	require.NoError(t, err)
	assert.Nil(t, v)
	ok, err := s.Has("k2")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.Has("k3")
	require.NoError(t, err)
	assert.False(t, ok)

	keys := storeTestKeys(t, s)
	assert.Subset(t, keys, []string{"j1", "k1", "k10", "k2"})
	assert.NotContains(t, keys, "k3")
	assert.True(t, sort.StringsAreSorted(keys))

	// goka's semantics: an empty limit means "keys with start as prefix".
	it, err := s.IteratorWithRange([]byte("k1"), nil)
	require.NoError(t, err)
	var got []string
	for it.Next() {
		val, err := it.Value()
		require.NoError(t, err)
		got = append(got, string(it.Key())+"="+string(val))
	}
	it.Release()
	assert.Equal(t, []string{"k1=v-k1-new", "k10=v-k10"}, got)

	it, err = s.IteratorWithRange([]byte("j"), []byte("k10"))
	require.NoError(t, err)
	got = nil
	for it.Next() {
		got = append(got, string(it.Key()))
	}
	it.Release()
	assert.Equal(t, []string{"j1", "k1"}, got)

	// Seek positions on the first key >= the given one, like LevelDB's.
	it, err = s.Iterator()
	require.NoError(t, err)
	require.True(t, it.Seek([]byte("k10")))
	assert.Equal(t, "k10", string(it.Key()))
	require.True(t, it.Next())
	assert.Equal(t, "k2", string(it.Key()))
	assert.False(t, it.Seek([]byte("z")))
	it.Release()

	kvs, err := s.Scan("k1", 2)
	require.NoError(t, err)
	assert.Equal(t, []KV{{"k10", []byte("v-k10")}, {"k2", []byte("v-k2")}}, kvs)
}

func TestStore_GivenEmptyKey_ThenItIsStoredAndScannedFirst(t *testing.T) {
	e := storeTestEngine(t, t.TempDir())
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.Set("", []byte("empty")))
	require.NoError(t, s.Set("a", []byte("a")))
	kvs, err := s.Scan("", 0)
	require.NoError(t, err)
	assert.Equal(t, []KV{{"", []byte("empty")}, {"a", []byte("a")}}, kvs)
	assert.Equal(t, []string{"", "a"}, storeTestKeys(t, s))
}

func TestStore_GivenIndexes_WhenSetOverwriteDelete_ThenLookupFollows(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", storeTestColor), WithIndex("t", storeTestTags))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	require.NoError(t, s.Set("a", []byte("color=red;tags=x,y")))
	require.NoError(t, s.Set("b", []byte("color=red")))
	require.NoError(t, s.Set("c", []byte("color=blue;tags=y")))
	storeTestLookup(t, s, "color", "red", "a", "b")
	storeTestLookup(t, s, "tags", "y", "a", "c")

	require.NoError(t, s.Set("a", []byte("color=blue;tags=y,z")))
	storeTestLookup(t, s, "color", "red", "b")
	storeTestLookup(t, s, "color", "blue", "a", "c")
	storeTestLookup(t, s, "tags", "x")
	storeTestLookup(t, s, "tags", "z", "a")

	require.NoError(t, s.Delete("c"))
	storeTestLookup(t, s, "color", "blue", "a")
	storeTestLookup(t, s, "tags", "y", "a")
	storeTestCheckIndexes(t, s)

	// Paging: keys after a cursor, at most limit of them.
	for _, k := range []string{"r1", "r2", "r3", "r4"} {
		require.NoError(t, s.Set(k, []byte("color=red")))
	}
	page, err := s.Lookup("color", "red", "", 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "r1"}, page)
	page, err = s.Lookup("color", "red", "r1", 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"r2", "r3"}, page)
	n, err := s.Count("color", "red")
	require.NoError(t, err)
	assert.Equal(t, 5, n)

	_, err = s.Lookup("size", "xl", "", 0)
	assert.ErrorIs(t, err, ErrUnknownIndex)
	_, err = s.Count("color", "a\x00b")
	assert.ErrorIs(t, err, ErrInvalidTerm)
}

func storeTestLookup(t *testing.T, s *Store, index, term string, want ...string) {
	t.Helper()
	got, err := s.Lookup(index, term, "", 0)
	require.NoError(t, err)
	if len(want) == 0 {
		want = nil
	}
	assert.Equal(t, want, got, "%s=%s", index, term)
}

func TestStore_GivenIndexes_WhenRestoredInBatches_ThenIndexesMatchData(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", storeTestColor), WithIndex("t", storeTestTags), WithBatchSize(7))
	s := storeTestOpen(t, e, "t", 0)

	colors := []string{"red", "green", "blue"}
	var off int64
	for round := range 5 {
		for i := range 20 {
			k := fmt.Sprintf("k%02d", i)
			if (i+round)%4 == 0 {
				require.NoError(t, s.Delete(k))
			} else {
				v := fmt.Sprintf("color=%s;tags=t%d,t%d", colors[(i+round)%3], i%3, round)
				require.NoError(t, s.Set(k, []byte(v)))
			}
			require.NoError(t, s.SetOffset(off))
			off++
		}
	}
	require.NoError(t, s.MarkRecovered())
	storeTestCheckIndexes(t, s)

	got, err := s.Lookup("tags", "t4", "", 0)
	require.NoError(t, err)
	assert.Len(t, got, 15, "the last round's tag, on every key not deleted in it")
	o, err := s.GetOffset(-1)
	require.NoError(t, err)
	assert.Equal(t, off-1, o)
}

func TestStore_GivenIndexes_WhenAValueIsReplacedOrDeleted_ThenItsOldTermsComeFromItsRecordNotFromDecodingIt(t *testing.T) {
	// Given an index that counts the values it derives terms from
	var mu sync.Mutex
	calls := map[string]int{}
	counted := Index{Name: "color", Terms: func(k string, v []byte) []string {
		mu.Lock()
		calls[string(v)]++
		mu.Unlock()
		return storeTestField(v, "color")
	}}
	dir := t.TempDir()
	e := storeTestEngine(t, dir, WithIndex("t", counted), WithIndex("t", storeTestTags), WithBatchSize(2))
	s := storeTestOpen(t, e, "t", 0)

	// When values are restored in batches, replaced live, and the store is
	// reopened before its values are replaced and deleted
	require.NoError(t, s.Set("a", []byte("color=red;tags=x")))
	require.NoError(t, s.Set("b", []byte("color=red")))
	require.NoError(t, s.Set("c", []byte("color=green;tags=y")))
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.Set("a", []byte("color=blue;tags=x,z")))
	storeTestLookup(t, s, "color", "red", "b")
	storeTestLookup(t, s, "color", "blue", "a")
	require.NoError(t, s.Close())

	e2 := storeTestEngine(t, dir, WithIndex("t", counted), WithIndex("t", storeTestTags))
	s = storeTestOpen(t, e2, "t", 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.Set("a", []byte("color=red")))
	require.NoError(t, s.Delete("b"))
	require.NoError(t, s.Delete("c"))

	// Then every index entry of an old value is gone, the new ones are
	// there, the values read back without their terms, and each value was
	// decoded once: when it was written.
	storeTestLookup(t, s, "color", "red", "a")
	storeTestLookup(t, s, "color", "blue")
	storeTestLookup(t, s, "color", "green")
	storeTestLookup(t, s, "tags", "x")
	storeTestLookup(t, s, "tags", "z")
	storeTestLookup(t, s, "tags", "y")
	storeTestCheckIndexes(t, s)
	v, err := s.Get("a")
	require.NoError(t, err)
	assert.Equal(t, "color=red", string(v))
	mu.Lock()
	defer mu.Unlock()
	for value, n := range calls {
		if value == "color=red" {
			// Two writes of this value: b, then a. storeTestCheckIndexes
			// calls it once more.
			assert.Equal(t, 3, n, value)
			continue
		}
		assert.Equal(t, 1, n, value)
	}
}

func TestStore_GivenReadersGettingTheKeysTheWriterReplaces_ThenNoIndexEntryIsLeftStale(t *testing.T) {
	// Given a writer that reads each key before replacing it, as a
	// processor does, while readers keep reading the same keys
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", storeTestColor))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	keys := []string{"a", "b", "c"}
	colors := []string{"red", "green", "blue", "black"}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.Get(keys[i%len(keys)])
				assert.NoError(t, err)
			}
		}()
	}

	// When the writer replaces and deletes them many times
	for i := range 3000 {
		k := keys[i%len(keys)]
		_, err := s.Get(keys[(i+i/7)%len(keys)])
		require.NoError(t, err)
		if i%11 == 0 {
			require.NoError(t, s.Delete(k))
			continue
		}
		require.NoError(t, s.Set(k, []byte("color="+colors[(i/3+i/5)%len(colors)])))
	}
	close(stop)
	readers.Wait()

	// Then the index holds exactly the terms of the values stored.
	storeTestCheckIndexes(t, s)
}

func TestStore_GivenADataRecordThatDoesNotParse_WhenReadOrReplaced_ThenTheStoreIsBroken(t *testing.T) {
	// Given a store whose record of a key is damaged in a way LevelDB's
	// checksums do not see (a terms length past the record's end)
	dir := t.TempDir()
	e := storeTestEngine(t, dir, WithIndex("t", storeTestColor))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, s.Set("k", []byte("color=red")))
	require.NoError(t, s.Close())
	storeTestPut(t, filepath.Join(dir, "t.0"), storeDataKey(nil, "k"), []byte{42, 'x'})

	for name, use := range map[string]func(s *Store) error{
		"get":  func(s *Store) error { _, err := s.Get("k"); return err },
		"scan": func(s *Store) error { _, err := s.Scan("", 0); return err },
		"set":  func(s *Store) error { return s.Set("k", []byte("color=blue")) },
	} {
		t.Run(name, func(t *testing.T) {
			e := storeTestEngine(t, dir, WithIndex("t", storeTestColor))
			s := storeTestOpen(t, e, "t", 0)
			require.NoError(t, s.MarkRecovered())

			// When it is read or replaced, then that fails as corruption
			// and takes the store out of service until it is rebuilt.
			assert.ErrorIs(t, use(s), ErrStoreBroken)
			assert.True(t, s.Broken())
			require.NoError(t, s.Close())
			require.NoError(t, os.Remove(filepath.Join(dir, "t.0", storeBrokenMarker)))
		})
	}
}

func TestStore_GivenIndexTermsThatPanicOrHoldNUL_ThenRecordIsStoredWithoutThoseTerms(t *testing.T) {
	var log storeTestLog
	bad := Index{Name: "bad", Terms: func(k string, _ []byte) []string {
		if k == "boom" {
			panic("bad record")
		}
		return []string{"ok", "not\x00ok"}
	}}
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", bad), WithLogger(log.logger()))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	require.NoError(t, s.Set("boom", []byte("x")))
	require.NoError(t, s.Set("fine", []byte("x")))
	v, err := s.Get("boom")
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), v)
	storeTestLookup(t, s, "bad", "ok", "fine")
	assert.Contains(t, log.String(), "index terms failed")
	assert.Contains(t, log.String(), "NUL byte")
}

func TestStore_GivenProcessing_WhenCrashedWithoutClose_ThenOffsetLagsAtMostOneWriteAndNeverLeads(t *testing.T) {
	dir := t.TempDir()
	e := storeTestEngine(t, dir)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	for i := range 10 {
		require.NoError(t, s.Set(fmt.Sprintf("k%d", i), []byte("v")))
		// goka records the offset once the changelog write is acknowledged,
		// after the Set; the next Set carries it.
		require.NoError(t, s.SetOffset(int64(100+i)))
	}
	storeTestCrash(t, s)

	e2 := storeTestEngine(t, dir)
	s2 := storeTestOpen(t, e2, "t", 0)
	off, err := s2.GetOffset(-1)
	require.NoError(t, err)
	assert.Equal(t, int64(108), off, "written with the last Set, one record behind")
	for i := range 10 {
		ok, err := s2.Has(fmt.Sprintf("k%d", i))
		require.NoError(t, err)
		assert.True(t, ok, "every write up to the stored offset is there")
	}

	// Close persists the latest offset.
	require.NoError(t, s2.MarkRecovered())
	require.NoError(t, s2.SetOffset(109))
	require.NoError(t, s2.SetOffset(105), "offsets never move backwards")
	require.NoError(t, s2.Close())
	s3 := storeTestOpen(t, e2, "t", 0)
	off, err = s3.GetOffset(-1)
	require.NoError(t, err)
	assert.Equal(t, int64(109), off)
}

func TestStore_GivenRestoreKilledHalfway_WhenReopened_ThenResumesFromLastCommittedBatch(t *testing.T) {
	for _, crash := range []string{"copy", "drop-handle"} {
		t.Run(crash, func(t *testing.T) {
			dir := t.TempDir()
			e := storeTestEngine(t, dir, WithBatchSize(100))
			s := storeTestOpen(t, e, "t", 3)
			off, err := s.GetOffset(-3)
			require.NoError(t, err)
			require.Equal(t, int64(-3), off, "no offset yet: def")

			for i := range 250 {
				require.NoError(t, s.Set(fmt.Sprintf("k%03d", i), []byte(fmt.Sprint(i))))
				require.NoError(t, s.SetOffset(int64(i)))
			}
			off, err = s.GetOffset(-3)
			require.NoError(t, err)
			require.Equal(t, int64(249), off, "GetOffset includes staged writes")

			// Let the batch in flight land, so that the crash point is known.
			storeTestSettle(t, s)
			reopenDir := dir
			if crash == "copy" {
				reopenDir = t.TempDir()
				storeTestCopyDir(t, dir, reopenDir)
			} else {
				storeTestCrash(t, s)
			}

			e2 := storeTestEngine(t, reopenDir, WithBatchSize(100))
			s2 := storeTestOpen(t, e2, "t", 3)
			off, err = s2.GetOffset(-3)
			require.NoError(t, err)
			assert.Equal(t, int64(199), off, "two batches of 100 committed")
			keys := storeTestKeys(t, s2)
			require.Len(t, keys, 200)
			assert.Equal(t, "k199", keys[199])
			assert.Equal(t, int64(200), s2.Progress().StartOffset)

			// goka resumes at off+1.
			for i := off + 1; i < 250; i++ {
				require.NoError(t, s2.Set(fmt.Sprintf("k%03d", i), []byte(fmt.Sprint(i))))
				require.NoError(t, s2.SetOffset(i))
			}
			require.NoError(t, s2.MarkRecovered())
			assert.Len(t, storeTestKeys(t, s2), 250)
			p := s2.Progress()
			assert.True(t, p.Recovered)
			assert.Equal(t, int64(50), p.Records)
			assert.Equal(t, int64(249), p.Offset)
		})
	}
}

func TestStore_GivenRestoring_WhenClosed_ThenStagedWritesAndOffsetAreCommitted(t *testing.T) {
	dir := t.TempDir()
	e := storeTestEngine(t, dir)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.Set("a", []byte("1")))
	require.NoError(t, s.SetOffset(41))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "closing twice is harmless")
	assert.ErrorIs(t, s.Set("b", nil), ErrStoreClosed)
	_, ok := e.Store("t", 0)
	assert.False(t, ok)

	s2 := storeTestOpen(t, e, "t", 0)
	off, err := s2.GetOffset(-1)
	require.NoError(t, err)
	assert.Equal(t, int64(41), off)
	assert.Equal(t, []string{"a"}, storeTestKeys(t, s2))
}

type storeTestWatermarks struct {
	oldest, hwm int64
	err         error
}

func (w storeTestWatermarks) Watermarks(string, int32) (int64, int64, error) {
	return w.oldest, w.hwm, w.err
}

// storeTestWithOffset leaves a store in dir holding key "a" at offset off.
func storeTestWithOffset(t *testing.T, dir string, off int64) {
	t.Helper()
	e, err := NewEngine(dir)
	require.NoError(t, err)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.Set("a", []byte("1")))
	require.NoError(t, s.SetOffset(off))
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, e.Close())
}

func TestStore_GivenLocalStateAheadOfChangelog_WhenOpened_ThenWipesAndWarns(t *testing.T) {
	cases := map[string]storeTestWatermarks{
		"offset beyond hwm":   {oldest: 0, hwm: 3},
		"offset at hwm":       {oldest: 0, hwm: 99},
		"changelog empty":     {oldest: 0, hwm: 0},
		"changelog truncated": {oldest: 500, hwm: 500},
	}
	for name, wm := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			storeTestWithOffset(t, dir, 99)

			var log storeTestLog
			e := storeTestEngine(t, dir, WithWatermarks(wm), WithLogger(log.logger()))
			s := storeTestOpen(t, e, "t", 0)
			off, err := s.GetOffset(-3)
			require.NoError(t, err)
			assert.Equal(t, int64(-3), off)
			assert.Empty(t, storeTestKeys(t, s))
			out := log.String()
			assert.Contains(t, out, "level=WARN")
			assert.Contains(t, out, "local state ahead of changelog; rebuilding from changelog")
			assert.Contains(t, out, "topic=t partition=0 local_offset=99")
			assert.Contains(t, out, fmt.Sprintf("hwm=%d", wm.hwm))
		})
	}
}

func TestStore_GivenLocalStateBehindChangelog_WhenOpened_ThenKeepsIt(t *testing.T) {
	cases := map[string]struct {
		wm        storeTestWatermarks
		wantStart int64
	}{
		"behind":                {storeTestWatermarks{oldest: 0, hwm: 200}, 100},
		"caught up":             {storeTestWatermarks{oldest: 0, hwm: 100}, 100},
		"compacted past offset": {storeTestWatermarks{oldest: 150, hwm: 200}, 150},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			storeTestWithOffset(t, dir, 99)

			var log storeTestLog
			e := storeTestEngine(t, dir, WithWatermarks(c.wm), WithLogger(log.logger()))
			s := storeTestOpen(t, e, "t", 0)
			off, err := s.GetOffset(-3)
			require.NoError(t, err)
			assert.Equal(t, int64(99), off)
			assert.Equal(t, []string{"a"}, storeTestKeys(t, s))
			assert.NotContains(t, log.String(), "level=WARN")
			p := s.Progress()
			assert.Equal(t, c.wantStart, p.StartOffset)
			assert.Equal(t, c.wm.hwm, p.HighWatermark)
		})
	}
}

func TestStore_GivenWatermarksFail_WhenOpened_ThenOpenFailsAndStoreIsNotRegistered(t *testing.T) {
	boom := errors.New("broker down")
	e := storeTestEngine(t, t.TempDir(), WithWatermarks(storeTestWatermarks{err: boom}))
	st, err := e.Builder()("t", 0)
	require.NoError(t, err)
	err = st.Open()
	assert.ErrorIs(t, err, boom)
	require.NoError(t, st.Close(), "goka closes a store whose Open failed")
	assert.Empty(t, e.Stores("t"))
}

func TestStore_GivenDirectoryOfAnotherLayout_WhenOpened_ThenRebuildsEmpty(t *testing.T) {
	dir := t.TempDir()
	// goka's default storage: raw keys and "__offset".
	db, err := leveldb.OpenFile(filepath.Join(dir, "t.0"), nil)
	require.NoError(t, err)
	require.NoError(t, db.Put([]byte("__offset"), []byte("12"), nil))
	require.NoError(t, db.Put([]byte("key"), []byte("value"), nil))
	require.NoError(t, db.Close())

	var log storeTestLog
	e := storeTestEngine(t, dir, WithLogger(log.logger()))
	s := storeTestOpen(t, e, "t", 0)
	assert.Empty(t, storeTestKeys(t, s))
	off, err := s.GetOffset(-3)
	require.NoError(t, err)
	assert.Equal(t, int64(-3), off)
	assert.Contains(t, log.String(), "unknown layout")
}

func TestStore_GivenRestore_ThenLogsProgressAndCompletion(t *testing.T) {
	var log storeTestLog
	e := storeTestEngine(t, t.TempDir(), WithLogger(log.logger()),
		WithWatermarks(storeTestWatermarks{oldest: 0, hwm: 1000}), WithProgressInterval(time.Millisecond))
	s := storeTestOpen(t, e, "t", 0)
	for i := range 400 {
		require.NoError(t, s.Set(fmt.Sprint(i), []byte("v")))
		require.NoError(t, s.SetOffset(int64(i)))
	}
	p := s.Progress()
	assert.Equal(t, Progress{Topic: "t", Partition: 0, StartOffset: 0, Offset: 399, HighWatermark: 1000, Records: 400, RatePerSec: p.RatePerSec}, p)
	assert.Positive(t, p.RatePerSec)

	storeTestEventually(t, func() bool { return strings.Contains(log.String(), "done=400") }, "progress log line")
	line := log.String()
	for _, want := range []string{`msg="restoring table"`, "topic=t", "partition=0", "done=400", "total=1000", "rate=", "eta="} {
		assert.Contains(t, line, want)
	}

	require.NoError(t, s.MarkRecovered())
	assert.True(t, s.Recovered())
	assert.True(t, s.Progress().Recovered)
	assert.Contains(t, log.String(), `msg="table restored" topic=t partition=0 records=400`)
}

func TestEngine_GivenStores_ThenTracksOpenOnesAndClosesThem(t *testing.T) {
	e := storeTestEngine(t, t.TempDir())
	s2 := storeTestOpen(t, e, "t", 2)
	s0 := storeTestOpen(t, e, "t", 0)
	other := storeTestOpen(t, e, "u", 0)
	assert.Equal(t, []*Store{s0, s2}, e.Stores("t"))
	assert.Equal(t, "t", s2.Topic())
	assert.Equal(t, int32(2), s2.Partition())

	dup, err := e.Builder()("t", 0)
	require.NoError(t, err)
	assert.ErrorIs(t, dup.Open(), ErrStoreOpen)

	require.NoError(t, e.Close())
	assert.Empty(t, e.Stores("t"))
	_, err = other.Get("x")
	assert.Error(t, err)
	_, err = e.Builder()("t", 1)
	assert.ErrorIs(t, err, ErrEngineClosed)

	var unopened Store
	_, err = unopened.Get("x")
	assert.ErrorIs(t, err, ErrStoreNotOpen)
}

func TestEngine_GivenBadOptions_ThenNewEngineFails(t *testing.T) {
	_, err := NewEngine("")
	assert.Error(t, err)
	_, err = NewEngine(t.TempDir(), WithBatchSize(0))
	assert.Error(t, err)
	_, err = NewEngine(t.TempDir(), WithIndex("t", Index{Name: "a\x00b", Terms: storeTestColor.Terms}))
	assert.Error(t, err)
	_, err = NewEngine(t.TempDir(), WithIndex("t", Index{Name: "x"}))
	assert.Error(t, err)
	_, err = NewEngine(t.TempDir(), WithIndex("t", storeTestColor), WithIndex("t", storeTestColor))
	assert.Error(t, err)
	e := storeTestEngine(t, t.TempDir())
	_, err = e.Builder()("../escape", 0)
	assert.Error(t, err)
}

// One writer restores then processes, another goroutine records offsets,
// readers read throughout; -race checks the rest. Every value a reader sees
// must be one the writer wrote for that key.
func TestStore_GivenOneWriterAndConcurrentReaders_ThenReadsAreConsistent(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", storeTestColor), WithBatchSize(50))
	s := storeTestOpen(t, e, "t", 0)

	const keys, writes = 64, 3000
	valueOf := func(k, n int) []byte { return []byte(fmt.Sprintf("color=c%d;n=%d;k=%d", n%3, n, k)) }
	checkValue := func(key string, v []byte) error {
		if v == nil {
			return nil
		}
		var k int
		if _, err := fmt.Sscanf(key, "k%d", &k); err != nil {
			return err
		}
		if !strings.HasSuffix(string(v), fmt.Sprintf(";k=%d", k)) {
			return fmt.Errorf("key %s has value %q", key, v)
		}
		return nil
	}

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		errMu   sync.Mutex
		readErr error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if readErr == nil {
			readErr = err
		}
	}
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("k%d", (i+r)%keys)
				v, err := s.Get(key)
				if err != nil {
					fail(err)
					return
				}
				if err := checkValue(key, v); err != nil {
					fail(err)
					return
				}
				if _, err := s.Has(key); err != nil {
					fail(err)
					return
				}
				switch i % 50 {
				case 0:
					kvs, err := s.Scan("", 0)
					if err != nil {
						fail(err)
						return
					}
					for _, kv := range kvs {
						if err := checkValue(kv.Key, kv.Value); err != nil {
							fail(err)
							return
						}
					}
				case 1:
					if _, err := s.Lookup("color", "c1", "", 10); err != nil {
						fail(err)
						return
					}
				case 2:
					_ = s.Progress()
					if _, err := s.GetOffset(-1); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
	}

	offsets := make(chan int64, writes)
	wg.Add(1)
	go func() { // goka's producer callback goroutine
		defer wg.Done()
		for off := range offsets {
			if err := s.SetOffset(off); err != nil {
				fail(err)
				return
			}
		}
	}()

	for n := range writes {
		k := n % keys
		key := fmt.Sprintf("k%d", k)
		if n%7 == 0 {
			require.NoError(t, s.Delete(key))
		} else {
			require.NoError(t, s.Set(key, valueOf(k, n)))
		}
		switch {
		case n < writes/2:
			require.NoError(t, s.SetOffset(int64(n)))
		case n == writes/2:
			require.NoError(t, s.MarkRecovered())
			fallthrough
		default:
			offsets <- int64(n)
		}
	}
	close(offsets)
	stop.Store(true)
	wg.Wait()
	require.NoError(t, readErr)
	storeTestCheckIndexes(t, s)
}

func TestStore_GivenRestoreBatchFailsToCommit_ThenLaterWritesFail(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithBatchSize(10))
	s := storeTestOpen(t, e, "t", 0)
	for i := range 10 {
		require.NoError(t, s.Set(fmt.Sprint(i), []byte("v")))
		require.NoError(t, s.SetOffset(int64(i)))
	}
	// The disk goes away under the store.
	require.NoError(t, s.db.Load().Close())

	var err error
	for i := 10; i < 30 && err == nil; i++ {
		err = s.Set(fmt.Sprint(i), []byte("v"))
	}
	require.ErrorIs(t, err, leveldb.ErrClosed, "the failed commit surfaces at the next hand-off")
	assert.ErrorIs(t, s.Set("x", []byte("v")), leveldb.ErrClosed, "and stays: later batches would skip the lost one")
	assert.Error(t, s.MarkRecovered())
	assert.False(t, s.Recovered())
}
