package tables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// Key layout inside a store's LevelDB. User data, index entries and metadata
// live under distinct one-byte prefixes so that iterating one never meets the
// others:
//
//	'd' key                         -> uvarint(len(terms)) terms value
//	'i' index 0x00 term 0x00 key    -> empty
//	'm' name                        -> metadata (offset, format version)
//	'e', 'x'                        -> applied event ids (seen.go)
//	'w'                             -> a value's parts (parts.go)
//
// A data record carries, in front of the value, the index terms the value
// has (storeAppendTerms): a write then learns the terms to remove from the
// old record's few bytes instead of decoding the old value with every
// index's Terms, and the record it reads is the one the writer's Get of the
// same key has just brought into the caches. Readers skip them.
const (
	storePrefixData  = 'd'
	storePrefixIndex = 'i'

	// storeFormatVersion 2 put the index terms in front of each value; a
	// store of another version is rebuilt from its changelog.
	storeFormatVersion = 2

	// storeNoOffset marks "no offset recorded".
	storeNoOffset = math.MinInt64

	// storeArenaSize is the size of a buffer holding the values of a
	// restore batch: a batch's worth (engineBatchBytes) and as much again of
	// values overwritten in the batch before its live values move to the
	// spare arena.
	storeArenaSize = 2 * engineBatchBytes
)

var (
	storeMetaOffset  = []byte("moffset")
	storeMetaVersion = []byte("mversion")
)

// storeLevelDBOptions returns the LevelDB settings of a store. Writes are
// never synced: the changelog is the durable copy, and a store that lost its
// last writes replays them from the offset it did keep (the offset is in the
// same batch as the writes it covers, so the two are lost together). Syncing
// every write (opt.WriteOptions{Sync: true}; NoSync false alone syncs only
// manifests and table files) took the customers fold from 3,428 to 1,955
// events/s and its CPU from 124 to 348 µs per event (200,000 events, 2,000
// keys, ext4, shared 2-core VM; see docs/BENCHMARKS.md), for no durability
// the changelog does not already give.
//
// Strictness is what makes NoSync safe: LevelDB's default drops a damaged
// journal chunk or manifest record silently and opens with the data before
// it, which served stale values and let the next write persist a snapshot
// built on them. StrictAll makes a damaged journal, manifest or table block
// an error (IsCorrupted) instead, and the store is rebuilt from the
// changelog. A journal torn by a power loss is damage too: it costs a full
// restore of the partition, never a stale one. The bloom filter
// keeps reads of absent keys (index maintenance on new keys, Has on misses)
// off the tables. goleveldb allocates every memtable at its full write
// buffer size and fills a block cache per database, per partition: a
// process holds dozens of stores, so both come from the engine's memory
// budget (WithMemory) instead of goleveldb's 4+8 MiB defaults each.
func storeLevelDBOptions(m storeMemory) *opt.Options {
	return &opt.Options{
		WriteBuffer:            m.writeBuffer,
		BlockCacheCapacity:     m.blockCache,
		OpenFilesCacheCapacity: storeOpenFiles,
		CompactionTableSize:    4 << 20,
		Filter:                 filter.NewBloomFilter(10),
		NoSync:                 true,
		Strict:                 opt.StrictAll,
	}
}

// storeOpenFiles bounds the table files a store keeps open (goleveldb's
// default is 500 per database).
const storeOpenFiles = 64

// KV is a key with its value.
type KV struct {
	Key   string
	Value []byte
}

// Progress describes a store's restore from its changelog.
type Progress struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Recovered bool   `json:"recovered"`
	// The restore started at StartOffset (-1 while unknown), Offset is the
	// last changelog offset applied (-1 if none) and HighWatermark the target
	// taken when the store opened (-1 without Watermarks).
	StartOffset   int64 `json:"startOffset"`
	Offset        int64 `json:"offset"`
	HighWatermark int64 `json:"highWatermark"`
	// Records counts the writes (Set and Delete) applied since the store
	// opened; with goka's default update callback that is one per record.
	Records int64 `json:"records"`
	// RatePerSec is the restore rate in records per second: so far while
	// restoring, and of the whole restore once recovered.
	RatePerSec float64 `json:"ratePerSec"`
	// Fault is why the store is out of service (see Store.Fault), empty
	// while it is sound.
	Fault string `json:"fault,omitempty"`
}

// Store is one topic partition of a table, kept in its own LevelDB. It
// implements goka's storage.Storage; build it with Engine.Builder.
//
// Concurrency, following goka's contract:
//   - Open, Set, Delete, MarkRecovered and Close are the writer's: one
//     goroutine at a time (goka's partition goroutine). Close may also come
//     from Engine.Close; it is serialised with the writer.
//   - SetOffset may be called from any goroutine, concurrently with the
//     writer (goka calls it from the producer's callback goroutine).
//   - Get, Has, GetOffset, Iterator, IteratorWithRange, Scan, Lookup, Count,
//     Part, PartsOf, Read, PartCount,
//     Topic, Partition, Recovered, Progress, Fault and Broken may be called
//     by any number of goroutines at any time, concurrently with the writer.
//
// A store that meets corruption or a failed write goes out of service and
// stays so until it is closed and opened again (see ErrStoreBroken).
//
// Until MarkRecovered (the restore), writes are staged in memory and
// committed in batches, only the last write of each key, together with the
// offset they reach; a background goroutine commits one batch while the
// next is staged. Get and Has see staged writes (and may wait for a batch
// hand-off); iterators, Scan, Lookup and Count see committed batches only.
// After MarkRecovered every Set or
// Delete is one LevelDB write that also carries the latest offset recorded
// by SetOffset.
//
// With a Restorer (WithRestorer), Open restores the store the same way,
// batch by batch, before it returns; readers may use the store meanwhile,
// and Close stops the restore.
type Store struct {
	engine    *Engine
	topic     string
	partition int32
	path      string
	indexes   []Index
	seen      *Seen  // nil: no applied event ids
	parts     *Parts // nil: values are whole
	log       *slog.Logger

	db        atomic.Pointer[leveldb.DB]
	recovered atomic.Bool
	// fault is set when the store breaks or a write fails (see fault.go).
	fault atomic.Pointer[storeFault]
	// offset is the latest offset recorded by SetOffset or loaded at Open.
	offset atomic.Int64
	// written counts the writes of data records since the restore (it
	// moves after each one is in LevelDB), and lastRead is the record the
	// latest Get read, tagged with the count it started at: a writer
	// replacing that key finds the old record's terms there instead of
	// reading it again, as long as no write came in between (see
	// storeLastRead).
	written  atomic.Uint64
	lastRead atomic.Pointer[storeLastRead]

	// mu serialises the writer and guards the restore batches against
	// readers; readers take it only while the store is restoring.
	mu     sync.Mutex
	opened bool
	closed bool
	// failed is the error of a failed commit. The batch is lost, so the
	// store refuses further writes: committing later batches would store an
	// offset past the lost records.
	failed error
	// stored is the offset last written to LevelDB.
	stored int64
	// During the restore, staging receives the writes; committing is the
	// batch handed to the committer (in flight while commitDone is set,
	// already in LevelDB afterwards, until the next hand-off recycles it).
	staging    *storeBatch
	committing *storeBatch
	commitDone chan error
	// direct writes after the restore; commit writes restore batches.
	direct storeWriter
	commit storeWriter

	// cancelRestore stops the restore that Open runs, if any.
	cancelRestore context.CancelFunc
	// seenExpired is when the writer last deleted expired ids.
	seenExpired time.Time

	// progress
	openedAt     time.Time
	startOffset  atomic.Int64
	hwm          int64
	records      atomic.Int64
	restoredRecs atomic.Int64
	restoreNanos atomic.Int64
	stopProgress chan struct{}
	progressDone chan struct{}
}

var _ storage.Storage = (*Store)(nil)

// storeLastRead is a data record a Get read. A processor reads a key's
// value and then replaces it; the write needs the old record's terms, and
// finds them here when written has not moved since the Get started: the
// record was then still the committed one when the write began (a write
// moves written only after its batch is in LevelDB, so a Get that could
// have read the record before it carries an older count).
type storeLastRead struct {
	key     string
	written uint64
	found   bool
	terms   []byte
}

// storeBatch holds the writes of a restore batch, the last one per key.
// Values are copied into an arena that is reused from batch to batch;
// readers copy values out while holding Store.mu, so no slice of it escapes.
//
// While a batch stages, index finds a key's entry (the last write wins);
// at hand-off the entries are sorted by key, which is the order LevelDB
// takes them in, and readers of the committing batch search them instead.
// One entry per key in a slice, instead of a map the commit walks, sorts
// and looks up again, is what lets a batch of a million distinct keys
// stage and commit without a second pass over a map.
//
// A batch is full by what it will write (bytes: its keys, their last
// values, its seen ids), not by what it staged: a changelog that rewrites
// few keys stages many records per batch and commits each key once per
// batch. Overwritten values are dead bytes in the arena; when it runs out
// of room with half of it dead, the live values move to the spare arena,
// so the arenas stay within twice the batch's bytes.
type storeBatch struct {
	index   map[string]int
	entries []storeStaged
	sorted  bool
	// arena holds the values staged since the last compaction (older
	// arenas stay alive through the entries pointing into them); used and
	// dead count the value bytes staged into the arenas and those
	// overwritten since.
	arena, spare []byte
	used, dead   int
	records      int
	bytes        int
	offset       int64
	// seen are the ids applied by the staged writes, all of them: the
	// entries keep only each key's last write.
	seen []seenEntry
	// parts are the part changes of the staged writes, by key: every
	// write's, in order (see Parts).
	parts map[string]*stagedParts
}

type storeStaged struct {
	key     string
	value   []byte
	deleted bool
}

func newStoreBatch() *storeBatch {
	return &storeBatch{index: make(map[string]int)}
}

// storeBatchStage stages a write of key, given as a string or as bytes:
// an overwrite of a staged key copies nothing of the key. It returns the
// staged key.
func storeBatchStage[K string | []byte](b *storeBatch, key K, value []byte, del bool) string {
	b.records++
	var e *storeStaged
	// Looking a []byte key up as string(key) does not allocate.
	if i, ok := b.index[string(key)]; ok {
		e = &b.entries[i]
		b.bytes -= len(e.value)
		b.dead += len(e.value)
		e.value = nil // not live: a compaction below skips it
	} else {
		k := string(key)
		b.index[k] = len(b.entries)
		b.entries = append(b.entries, storeStaged{key: k})
		e = &b.entries[len(b.entries)-1]
		b.bytes += len(k)
	}
	if !del {
		e.value = b.copyValue(value)
		b.bytes += len(value)
	}
	e.deleted = del
	return e.key
}

// copyValue copies value into the arena.
func (b *storeBatch) copyValue(value []byte) []byte {
	if cap(b.arena)-len(b.arena) < len(value) {
		b.room(len(value))
	}
	n := len(b.arena)
	b.arena = append(b.arena, value...)
	b.used += len(value)
	return b.arena[n:len(b.arena):len(b.arena)]
}

// room makes room for need more bytes in the arena: a new arena while most
// staged bytes are live, else the live values moved to the spare one.
func (b *storeBatch) room(need int) {
	live := b.used - b.dead
	if b.dead < live {
		// The old arena stays alive through the entries pointing into it.
		b.arena = make([]byte, 0, max(storeArenaSize, need))
		return
	}
	size := max(storeArenaSize, 2*(live+need))
	next := b.spare[:0]
	if cap(next) < size {
		next = make([]byte, 0, size)
	}
	for i := range b.entries {
		e := &b.entries[i]
		if len(e.value) == 0 {
			continue
		}
		n := len(next)
		next = append(next, e.value...)
		e.value = next[n:len(next):len(next)]
	}
	// Nothing points into the old arena any more.
	b.spare, b.arena = b.arena, next
	b.used, b.dead = live, 0
}

// seal sorts the entries by key for the commit and the readers, and drops
// the index, which the sort invalidates.
func (b *storeBatch) seal() {
	slices.SortFunc(b.entries, func(x, y storeStaged) int { return strings.Compare(x.key, y.key) })
	clear(b.index)
	b.sorted = true
}

// lookup returns the staged write of key.
func (b *storeBatch) lookup(key string) (storeStaged, bool) {
	if !b.sorted {
		i, ok := b.index[key]
		if !ok {
			return storeStaged{}, false
		}
		return b.entries[i], true
	}
	i, ok := slices.BinarySearchFunc(b.entries, key, func(e storeStaged, k string) int { return strings.Compare(e.key, k) })
	if !ok {
		return storeStaged{}, false
	}
	return b.entries[i], true
}

func (b *storeBatch) reset() {
	clear(b.index)
	clear(b.entries)
	b.entries = b.entries[:0]
	b.sorted = false
	clear(b.seen)
	b.seen = b.seen[:0]
	clear(b.parts)
	b.arena = b.arena[:0]
	b.used, b.dead, b.records, b.bytes = 0, 0, 0, 0
}

// storeWriter is the scratch space of one writing goroutine.
type storeWriter struct {
	batch  leveldb.Batch
	key    []byte
	offset [8]byte
	// rec is a data record, terms its encoded terms and old the terms of
	// the record it replaces (slices of that record).
	rec   []byte
	terms []byte
	old   [][]byte
	// prev, when set, is the committed record of the key being written.
	prev *storeLastRead
}

// putOffset adds the offset to w's batch.
func (w *storeWriter) putOffset(off int64) {
	binary.BigEndian.PutUint64(w.offset[:], uint64(off))
	w.batch.Put(storeMetaOffset, w.offset[:])
}

// Topic returns the store's topic.
func (s *Store) Topic() string { return s.topic }

// Partition returns the store's partition.
func (s *Store) Partition() int32 { return s.partition }

// Recovered reports whether MarkRecovered has been called.
func (s *Store) Recovered() bool { return s.recovered.Load() }

// Open opens the store's LevelDB, rebuilding it empty when it is unreadable,
// of another format, or (with Watermarks) ahead of the changelog. With a
// Restorer it then restores the store up to the changelog's high watermark
// (see WithRestorer); the store is visible to Engine.Store meanwhile.
func (s *Store) Open() error {
	ctx, from, to, err := s.open()
	if err != nil {
		return err
	}
	// Parts first: the changelog's changes go on top of them.
	if err := s.openParts(); err != nil {
		return errors.Join(err, s.Close())
	}
	if ctx != nil {
		if err := s.restore(ctx, from, to); err != nil {
			return err
		}
	}
	if err := s.openSeen(); err != nil {
		return errors.Join(err, s.Close())
	}
	return nil
}

// open opens the store. It returns the context of the restore Open has to
// run, and its range, or a nil context when there is none.
func (s *Store) open() (context.Context, int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, 0, fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, ErrStoreClosed)
	}
	if s.opened {
		return nil, 0, 0, fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, ErrStoreOpen)
	}
	if err := s.engine.register(s); err != nil {
		return nil, 0, 0, fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, err)
	}
	db, stored, err := s.openDB()
	if err != nil {
		s.engine.unregister(s)
		return nil, 0, 0, fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, err)
	}
	s.opened = true
	s.db.Store(db)
	s.stored = stored
	s.offset.Store(stored)
	s.staging = newStoreBatch()
	s.openedAt = time.Now()
	s.stopProgress = make(chan struct{})
	s.progressDone = make(chan struct{})
	go s.logProgress(s.engine.opts.progressInterval)
	s.engine.publish(s)

	from, to := s.startOffset.Load(), s.hwm
	if s.engine.opts.restorer == nil || from < 0 || from >= to {
		return nil, 0, 0, nil
	}
	// Close stops the restore through this context.
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelRestore = cancel
	return ctx, from, to, nil
}

// openDB opens the LevelDB and decides where the restore starts.
//
// Every wipe logs a warning with its reason and counts in EngineStats.Rebuilt.
func (s *Store) openDB() (*leveldb.DB, int64, error) {
	var db *leveldb.DB
	var err error
	if reason := s.brokenReason(); reason != "" {
		db, err = s.rebuild(nil, "local state marked broken", errors.New(reason))
	} else {
		db, err = leveldb.OpenFile(s.path, storeLevelDBOptions(s.engine.opts.memory))
		if isCorrupted(err) {
			s.engine.broken.Add(1)
			db, err = s.rebuild(nil, "local state corrupted", err)
		}
	}
	if err != nil {
		return nil, 0, s.openFault(fmt.Errorf("open leveldb: %w", err))
	}

	stored, err := s.checkFormat(db)
	if err != nil {
		db, err = s.rebuild(db, "local state unreadable", err)
		if err != nil {
			return nil, 0, s.openFault(err)
		}
		stored = storeNoOffset
	}
	if stored != storeNoOffset {
		if missing, err := s.partsMissing(db); err != nil || missing {
			if err == nil {
				err = errors.New("the store's values are kept in parts now")
			}
			db, err = s.rebuild(db, "local state without parts", err)
			if err != nil {
				return nil, 0, s.openFault(err)
			}
			stored = storeNoOffset
		}
	}

	s.hwm = -1
	s.startOffset.Store(-1)
	if stored != storeNoOffset {
		s.startOffset.Store(stored + 1)
	}
	w := s.engine.opts.watermarks
	if w == nil {
		return db, stored, nil
	}
	oldest, hwm, err := w.Watermarks(s.topic, s.partition)
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("changelog watermarks: %w", err), db.Close())
	}
	s.hwm = hwm
	if stored != storeNoOffset && (stored >= hwm || hwm <= oldest) {
		db, err = s.rebuild(db, "local state ahead of changelog", errors.New("local offset not below the changelog's end"),
			"local_offset", stored, "oldest", oldest, "hwm", hwm)
		if err != nil {
			return nil, 0, s.openFault(err)
		}
		stored = storeNoOffset
	}
	if stored == storeNoOffset || stored+1 < oldest {
		// Nothing stored, or compaction removed the offsets after ours:
		// goka starts at the oldest offset.
		s.startOffset.Store(oldest)
	}
	return db, stored, nil
}

// checkFormat returns the stored offset, or an error when the database was
// written in another layout (another format version, goka's default store).
func (s *Store) checkFormat(db *leveldb.DB) (int64, error) {
	v, err := db.Get(storeMetaVersion, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		it := db.NewIterator(nil, nil)
		empty := !it.First()
		it.Release()
		if !empty {
			return 0, errors.New("unknown layout")
		}
		if err := db.Put(storeMetaVersion, binary.AppendUvarint(nil, storeFormatVersion), nil); err != nil {
			return 0, fmt.Errorf("write format version: %w", err)
		}
		return storeNoOffset, nil
	case err != nil:
		return 0, fmt.Errorf("read format version: %w", err)
	}
	if ver, n := binary.Uvarint(v); n <= 0 || ver != storeFormatVersion {
		return 0, fmt.Errorf("format version %d, want %d", ver, storeFormatVersion)
	}
	off, err := db.Get(storeMetaOffset, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return storeNoOffset, nil
	case err != nil:
		return 0, fmt.Errorf("read offset: %w", err)
	case len(off) != 8:
		return 0, fmt.Errorf("offset of %d bytes, want 8", len(off))
	}
	return int64(binary.BigEndian.Uint64(off)), nil
}

// rebuild logs why the local state is thrown away, counts it and wipes it.
func (s *Store) rebuild(db *leveldb.DB, what string, reason error, attrs ...any) (*leveldb.DB, error) {
	s.log.Warn(what+"; rebuilding from changelog", append(attrs, "reason", reason)...)
	s.engine.rebuilt.Add(1)
	return s.wipe(db)
}

// openFault tells the fault handler that Open failed for want of disk space
// or on an I/O error (while wiping or creating the database), so that the
// owner retries. Other failures (a store locked by another process, a
// permission) are configuration and stay Open's error alone. It returns err.
func (s *Store) openFault(err error) error {
	if fn := s.engine.opts.onFault; fn != nil && storeDiskFault(err) {
		fn(s.topic, s.partition, fmt.Errorf("%w: %w", ErrStoreFailed, err))
	}
	return err
}

// wipe closes db (if any), deletes the store's directory and opens it empty.
func (s *Store) wipe(db *leveldb.DB) (*leveldb.DB, error) {
	if db != nil {
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("close leveldb to rebuild: %w", err)
		}
	}
	if err := os.RemoveAll(s.path); err != nil {
		return nil, fmt.Errorf("remove local state: %w", err)
	}
	db, err := leveldb.OpenFile(s.path, storeLevelDBOptions(s.engine.opts.memory))
	if err != nil {
		return nil, fmt.Errorf("open leveldb: %w", err)
	}
	if err := db.Put(storeMetaVersion, binary.AppendUvarint(nil, storeFormatVersion), nil); err != nil {
		return nil, errors.Join(fmt.Errorf("write format version: %w", err), db.Close())
	}
	return db, nil
}

// Close commits staged restore writes and the latest offset, then closes the
// LevelDB. Closing a store that is not open does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.opened || s.closed {
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.cancelRestore != nil {
		s.cancelRestore()
	}
	db := s.db.Load()
	var errs []error
	off := s.offset.Load()
	switch {
	case s.fault.Load() != nil:
		// Nothing more goes into a store at fault.
	case !s.recovered.Load():
		errs = append(errs, s.flushLocked(db))
	case off != storeNoOffset && off != s.stored && s.failed == nil:
		errs = append(errs, db.Put(storeMetaOffset, binary.BigEndian.AppendUint64(nil, uint64(off)), nil))
	}
	s.mu.Unlock()

	close(s.stopProgress)
	<-s.progressDone
	errs = append(errs, db.Close())
	s.engine.unregister(s)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s/%d: %w", s.topic, s.partition, err)
	}
	return nil
}

// handle returns the open database.
func (s *Store) handle() (*leveldb.DB, error) {
	db := s.db.Load()
	if db == nil {
		return nil, fmt.Errorf("store %s/%d: %w", s.topic, s.partition, ErrStoreNotOpen)
	}
	if err := s.brokenErr(); err != nil {
		// What still reads may be as wrong as what does not.
		return nil, fmt.Errorf("store %s/%d: %w", s.topic, s.partition, err)
	}
	return db, nil
}

// staged looks key up in the restore batches. The caller holds s.mu.
func (s *Store) staged(key string) (storeStaged, bool) {
	if s.staging != nil {
		if p, ok := s.staging.lookup(key); ok {
			return p, true
		}
	}
	if s.committing != nil {
		if p, ok := s.committing.lookup(key); ok {
			return p, true
		}
	}
	return storeStaged{}, false
}

// Has reports whether key is stored.
func (s *Store) Has(key string) (bool, error) {
	db, err := s.handle()
	if err != nil {
		return false, err
	}
	if !s.recovered.Load() {
		s.mu.Lock()
		p, ok := s.staged(key)
		s.mu.Unlock()
		if ok {
			return !p.deleted, nil
		}
	}
	ok, err := db.Has(storeDataKey(nil, key), nil)
	if err != nil {
		return false, fmt.Errorf("has %q in %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	return ok, nil
}

// Get returns the value of key, nil if it is absent. The caller owns the
// returned slice.
func (s *Store) Get(key string) ([]byte, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	if !s.recovered.Load() {
		s.mu.Lock()
		p, ok := s.staged(key)
		var v []byte
		if ok && !p.deleted {
			v = append([]byte{}, p.value...)
		}
		s.mu.Unlock()
		if ok {
			return v, nil
		}
	}
	written := s.written.Load()
	recovered := s.recovered.Load()
	rec, err := db.Get(storeDataKey(nil, key), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		s.rememberRead(recovered, key, written, false, nil)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get %q from %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	terms, v, err := storeSplitRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("get %q from %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	s.rememberRead(recovered, key, written, true, terms)
	return v, nil
}

// rememberRead keeps the record a Get read for the writer (see
// storeLastRead), when the table has indexes and the read started after
// the restore and no write ended while it ran.
func (s *Store) rememberRead(recovered bool, key string, written uint64, found bool, terms []byte) {
	if len(s.indexes) == 0 || !recovered || s.written.Load() != written {
		return
	}
	s.lastRead.Store(&storeLastRead{key: key, written: written, found: found, terms: terms})
}

// Set stores value under key and updates the topic's indexes. The store
// does not keep value.
func (s *Store) Set(key string, value []byte) error {
	return s.write(key, value, false)
}

// Delete removes key from the data and from every index.
func (s *Store) Delete(key string) error {
	return s.write(key, nil, true)
}

func (s *Store) write(key string, value []byte, del bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return s.writeErr(key, del, err)
	}
	db := s.db.Load()
	s.records.Add(1)
	if !s.recovered.Load() {
		return s.stageLocked(db, key, value, del)
	}

	w := &s.direct
	w.batch.Reset()
	w.prev = nil
	if r := s.lastRead.Load(); r != nil && r.key == key && r.written == s.written.Load() {
		w.prev = r
	}
	// Whatever happens to this write, a record read before it is no longer
	// known to be the committed one.
	defer s.written.Add(1)
	if err := s.addWrite(db, w, key, value, del); err != nil {
		return err
	}
	if s.parts != nil {
		if err := s.addParts(db, w, key, value, del); err != nil {
			return err
		}
	}
	if s.seen != nil && !del {
		s.addSeen(w, key, value)
	}
	off := s.offset.Load()
	if off != storeNoOffset && off != s.stored {
		w.putOffset(off)
	}
	if err := db.Write(&w.batch, nil); err != nil {
		return s.writeErr(key, del, s.writeFault(err))
	}
	s.stored = off
	if err := s.maybeExpireSeenLocked(); err != nil {
		// The write is in; the store is not: a full disk or damage found
		// while expiring takes it out of service like a failed write.
		return s.writeErr(key, del, s.writeFault(err))
	}
	return nil
}

func (s *Store) writable() error {
	switch {
	case !s.opened:
		return ErrStoreNotOpen
	case s.closed:
		return ErrStoreClosed
	}
	if err := s.brokenErr(); err != nil {
		return err
	}
	return s.failed
}

func (s *Store) writeErr(key string, del bool, err error) error {
	op := "set"
	if del {
		op = "delete"
	}
	return fmt.Errorf("%s %q in %s/%d: %w", op, key, s.topic, s.partition, err)
}

// stageLocked stages a restore write. It hands the batch over first when
// it is full, so that a batch holds whole records and the offset recorded
// for the last one. s.mu is held.
func (s *Store) stageLocked(db *leveldb.DB, key string, value []byte, del bool) error {
	return storeStageLocked(s, db, key, value, del)
}

// storeStageLocked is stageLocked for a key as a string or as bytes (the
// restore's records): a key already staged is not copied again.
func storeStageLocked[K string | []byte](s *Store, db *leveldb.DB, key K, value []byte, del bool) error {
	if b := s.staging; b.records >= s.engine.opts.batchSize || b.bytes >= engineBatchBytes {
		if err := s.handOffLocked(db); err != nil {
			return err
		}
	}
	k := storeBatchStage(s.staging, key, value, del)
	if s.parts != nil {
		s.stageParts(s.staging, k, value, del)
	}
	if s.seen != nil && !del {
		ids, at := s.seen.extract(k, value)
		for _, id := range ids {
			s.staging.seen = append(s.staging.seen, seenEntry{key: k, id: id, at: at})
			s.staging.bytes += len(k) + len(id) + 8
		}
	}
	return nil
}

// handOffLocked hands the staged batch, with the latest recorded offset, to
// a background commit, after waiting for the previous one. s.mu is held.
func (s *Store) handOffLocked(db *leveldb.DB) error {
	if err := s.awaitCommitLocked(); err != nil {
		return err
	}
	b := s.staging
	b.offset = s.offset.Load()
	if len(b.entries) == 0 && len(b.seen) == 0 && len(b.parts) == 0 && (b.offset == storeNoOffset || b.offset == s.stored) {
		return nil
	}
	b.seal()
	next := s.committing
	if next == nil {
		next = newStoreBatch()
	}
	next.reset()
	s.committing, s.staging = b, next
	done := make(chan error, 1)
	s.commitDone = done
	go func() { done <- s.commitBatch(db, b) }()
	return nil
}

// awaitCommitLocked waits for the commit in flight, if any. s.mu is held;
// the commit does not take it.
func (s *Store) awaitCommitLocked() error {
	if s.failed != nil {
		return s.failed
	}
	if s.commitDone == nil {
		return nil
	}
	err := <-s.commitDone
	s.commitDone = nil
	if err != nil {
		err = s.writeFault(err)
		s.failed = err
		return err
	}
	s.stored = s.committing.offset
	return nil
}

// flushLocked commits the staged batch and waits for it. s.mu is held.
func (s *Store) flushLocked(db *leveldb.DB) error {
	if err := s.handOffLocked(db); err != nil {
		return err
	}
	return s.awaitCommitLocked()
}

// commitBatch writes a restore batch, only the last write per key, with its
// offset. Keys go in in order (handOffLocked sorted them), which makes
// LevelDB's memtable inserts cheaper than random order (measured). It runs
// on its own goroutine, one at a time, and reads b, which nobody modifies
// until it returns.
func (s *Store) commitBatch(db *leveldb.DB, b *storeBatch) error {
	w := &s.commit
	w.batch.Reset()
	for i := range b.entries {
		p := &b.entries[i]
		if err := s.addWrite(db, w, p.key, p.value, p.deleted); err != nil {
			return err
		}
	}
	if err := s.commitParts(db, w, b); err != nil {
		return err
	}
	for _, e := range b.seen {
		w.putSeen(e.key, e.id, e.at)
	}
	if b.offset != storeNoOffset {
		w.putOffset(b.offset)
	}
	if err := db.Write(&w.batch, nil); err != nil {
		return fmt.Errorf("commit restore batch of %s/%d at offset %d: %w", s.topic, s.partition, b.offset, err)
	}
	return nil
}

// addWrite adds one write and its index changes to w's batch. Index
// maintenance reads the committed record for the terms it loses, unless
// w.prev is that record.
func (s *Store) addWrite(db *leveldb.DB, w *storeWriter, key string, value []byte, del bool) error {
	w.terms = w.terms[:0]
	if len(s.indexes) > 0 {
		var oldTerms []byte
		hadOld := false
		if p := w.prev; p != nil && p.key == key {
			oldTerms, hadOld = p.terms, p.found
		} else {
			w.key = storeDataKey(w.key[:0], key)
			old, err := db.Get(w.key, nil)
			hadOld = err == nil
			if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
				return fmt.Errorf("read previous value of %q in %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
			}
			if hadOld {
				if oldTerms, _, err = storeSplitRecord(old); err != nil {
					return fmt.Errorf("read previous value of %q in %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
				}
			}
		}
		if err := s.indexChanges(w, key, oldTerms, hadOld, value, !del); err != nil {
			return fmt.Errorf("read previous value of %q in %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
		}
	}
	w.key = storeDataKey(w.key[:0], key)
	if del {
		w.batch.Delete(w.key)
	} else {
		w.rec = storeAppendRecord(w.rec[:0], w.terms, value)
		w.batch.Put(w.key, w.rec)
	}
	return nil
}

// indexChanges adds to w's batch the index entries to delete (terms only
// the old record has, encoded in oldEnc) and to put (terms only the new
// value has), and leaves the new value's encoded terms in w.terms. The old
// terms come from the old record itself: the old value is never decoded.
func (s *Store) indexChanges(w *storeWriter, key string, oldEnc []byte, hadOld bool, value []byte, hasNew bool) error {
	for _, idx := range s.indexes {
		var newTerms []string
		if hasNew {
			newTerms = s.terms(idx, key, value)
		}
		w.old = w.old[:0]
		if hadOld {
			// A record without an entry for the index was written before
			// the index was declared, and so was never indexed by it.
			var err error
			if w.old, _, err = storeTermsOf(w.old, oldEnc, idx.Name); err != nil {
				return err
			}
		}
		for _, t := range w.old {
			if !storeHasTerm(newTerms, string(t)) {
				w.key = storeIndexKey(w.key[:0], idx.Name, string(t), key)
				w.batch.Delete(w.key)
			}
		}
		for _, t := range newTerms {
			if !storeHadTerm(w.old, t) {
				w.key = storeIndexKey(w.key[:0], idx.Name, t, key)
				w.batch.Put(w.key, nil)
			}
		}
		if hasNew {
			w.terms = storeAppendTerms(w.terms, idx.Name, newTerms)
		}
	}
	return nil
}

// terms calls the index's Terms, dropping terms the key layout cannot hold
// and turning a panic into no terms: a bad record must not stop a restore.
func (s *Store) terms(idx Index, key string, value []byte) (terms []string) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Warn("index terms failed; record not indexed", "index", idx.Name, "key", key, "panic", fmt.Sprint(r))
			terms = nil
		}
	}()
	terms = idx.Terms(key, value)
	for i, t := range terms {
		if strings.IndexByte(t, 0) >= 0 {
			s.log.Warn("index term contains a NUL byte; term skipped", "index", idx.Name, "key", key)
			kept := append([]string(nil), terms[:i]...)
			for _, t := range terms[i+1:] {
				if strings.IndexByte(t, 0) < 0 {
					kept = append(kept, t)
				}
			}
			return kept
		}
	}
	return terms
}

func storeHasTerm(terms []string, t string) bool {
	for _, have := range terms {
		if have == t {
			return true
		}
	}
	return false
}

func storeHadTerm(terms [][]byte, t string) bool {
	for _, have := range terms {
		if string(have) == t {
			return true
		}
	}
	return false
}

// GetOffset returns the latest offset recorded (staged, written or loaded
// at Open), def if there is none.
func (s *Store) GetOffset(def int64) (int64, error) {
	if off := s.offset.Load(); off != storeNoOffset {
		return off, nil
	}
	return def, nil
}

// SetOffset records the changelog offset the store has reached. It only
// touches memory: the offset is written with the next restore batch, or
// after MarkRecovered with the next Set or Delete, and by Close. Offsets
// never move backwards.
func (s *Store) SetOffset(offset int64) error {
	for {
		cur := s.offset.Load()
		if cur != storeNoOffset && offset <= cur {
			break
		}
		if s.offset.CompareAndSwap(cur, offset) {
			break
		}
	}
	if !s.recovered.Load() {
		s.startOffset.CompareAndSwap(-1, offset)
	}
	return nil
}

// MarkRecovered commits the restore and switches the store to one write per
// record.
func (s *Store) MarkRecovered() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("mark %s/%d recovered: %w", s.topic, s.partition, err)
	}
	if s.recovered.Load() {
		return nil
	}
	if err := s.flushLocked(s.db.Load()); err != nil {
		return err
	}
	s.staging, s.committing = nil, nil
	d := time.Since(s.openedAt)
	n := s.records.Load()
	s.restoredRecs.Store(n)
	s.restoreNanos.Store(int64(d))
	s.written.Add(1)
	s.recovered.Store(true)
	// An empty changelog's "restored" is one line per partition of every
	// table at each start: detail, not news.
	level := slog.LevelInfo
	if n == 0 {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "table restored", "records", n, "duration", d.Round(time.Millisecond).String(), "rate", math.Round(storeRate(n, d)))
	return nil
}

func storeRate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Progress returns the store's restore progress.
func (s *Store) Progress() Progress {
	p := Progress{
		Topic:         s.topic,
		Partition:     s.partition,
		Recovered:     s.recovered.Load(),
		StartOffset:   s.startOffset.Load(),
		Offset:        s.offset.Load(),
		HighWatermark: s.hwm,
		Records:       s.records.Load(),
	}
	if p.Offset == storeNoOffset {
		p.Offset = -1
	}
	if err := s.Fault(); err != nil {
		p.Fault = err.Error()
	}
	if p.Recovered {
		p.RatePerSec = storeRate(s.restoredRecs.Load(), time.Duration(s.restoreNanos.Load()))
	} else if !s.openedAt.IsZero() {
		p.RatePerSec = storeRate(p.Records, time.Since(s.openedAt))
	}
	return p
}

// logProgress logs the restore's progress every interval until the store
// is recovered or closed.
func (s *Store) logProgress(interval time.Duration) {
	defer close(s.progressDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopProgress:
			return
		case <-t.C:
			if s.recovered.Load() {
				return
			}
			p := s.Progress()
			done := int64(0)
			if p.StartOffset >= 0 && p.Offset >= p.StartOffset {
				done = p.Offset + 1 - p.StartOffset
			}
			attrs := []any{"done", done, "records", p.Records, "rate", math.Round(p.RatePerSec)}
			if p.HighWatermark >= 0 && p.StartOffset >= 0 {
				total := max(p.HighWatermark-p.StartOffset, 0)
				attrs = append(attrs, "total", total)
				if elapsed := time.Since(s.openedAt); done > 0 && total >= done {
					eta := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
					attrs = append(attrs, "eta", eta.Round(time.Second).String())
				}
			}
			s.log.Info("restoring table", attrs...)
		}
	}
}
