package tables

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Parts keeps a table's values in parts: a key's value in the table is
// small (bookkeeping, an index of its parts and what its write changed),
// and each part (a window of a windowed aggregation) is an entry of its own
// in a side range of the store, keyed by (key, sub). A write then costs what
// it changed, not everything the key holds.
//
// The value says what it changed: Changes returns the parts it puts and
// deletes, and the store applies them in the same LevelDB batch as the
// value, on every Set — a processor's writes, restores from the changelog,
// read replicas and standbys following it. A Delete (a tombstone) drops
// every part of the key.
//
// The changelog is compacted: the values it keeps say only what their own
// writes changed. So the writer also sends parts to Topic (records keyed by
// PartRecordKey, a tombstone for a deleted part; cleanup.policy
// compact,delete, partitioned by the table key: header HeaderPartitionKey),
// each part's value at the latest once its key's last value no longer
// carries it, and a store that opens without its parts (new, wiped,
// rebuilt) reads its partition of Topic first, one record per live part
// after compaction, and then the changelog, whose changes are applied on
// top.
type Parts struct {
	// Changes returns the parts a value written under key puts and the subs
	// of those it deletes. It is called by the store's writer for every
	// Set, must be a pure function of its arguments and may return slices
	// of value (the store copies what it keeps).
	Changes func(key string, value []byte) (puts []Part, dels [][]byte)
	// Join composes a value with its parts, in sub order, for readers of
	// the whole value (Store.Read); nil: readers get the value alone.
	Join func(key string, value []byte, parts []Part) ([]byte, error)
	// Topic is the parts topic; empty: parts live only in the local store,
	// and a store rebuilt from the changelog lacks those of older writes.
	// It needs WithRestorer.
	Topic string
}

// Part is one part of a key's value: Sub names it under the key.
type Part struct {
	Sub   []byte
	Value []byte
}

// HeaderPartitionKey, on a record the framework produces, is the key that
// picks its partition instead of the record's key (murmur2, like every
// key): a part's record (key, sub) lands in the partition of its table key.
const HeaderPartitionKey = "streamfold-partition-key"

// PartRecordKey is the key of a part's record in Parts.Topic: the table key,
// a NUL byte, the sub. Compaction keeps the last record of each part.
func PartRecordKey(key string, sub []byte) []byte {
	b := make([]byte, 0, len(key)+1+len(sub))
	b = append(b, key...)
	b = append(b, 0)
	return append(b, sub...)
}

// SplitPartRecordKey is PartRecordKey's inverse; a table key holding a NUL
// byte cannot have parts.
func SplitPartRecordKey(rk []byte) (key string, sub []byte, ok bool) {
	i := bytes.IndexByte(rk, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(rk[:i]), rk[i+1:], true
}

// WithParts keeps the values of every store of topic in parts; see Parts.
// Give it to every engine that holds the table (its writer's, lookups,
// replicas): each applies the changes of the values it stores.
func WithParts(topic string, p Parts) EngineOption {
	return func(o *engineOptions) {
		if p.Changes == nil {
			o.errs = append(o.errs, fmt.Errorf("parts of topic %s: nil Changes", topic))
			return
		}
		if o.parts == nil {
			o.parts = make(map[string]*Parts)
		}
		o.parts[topic] = &p
	}
}

// Key layout of the parts (see store.go):
//
//	'w' uvarint(len(key)) key sub -> the part's value
const storePrefixPart = 'w'

// storeMetaPartsRestored marks a store whose parts are complete: restored
// from the parts topic, or written from the first record on.
var storeMetaPartsRestored = []byte("mparts")

func partPrefix(dst []byte, key string) []byte {
	dst = append(dst, storePrefixPart)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

func partKey(dst []byte, key string, sub []byte) []byte {
	return append(partPrefix(dst, key), sub...)
}

// stagedParts are the part changes of one key staged with a restore batch:
// drop deletes every part the store holds for the key first (a tombstone),
// subs are the puts (a nil value deletes) since.
type stagedParts struct {
	drop bool
	subs map[string][]byte
}

// changes returns the part changes of a value written under key, with a
// panic in Changes turned into none: one bad record must not stop a restore.
func (s *Store) partChanges(key string, value []byte) (puts []Part, dels [][]byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Warn("part changes failed; none applied", "key", key, "panic", fmt.Sprint(r))
			puts, dels = nil, nil
		}
	}()
	return s.parts.Changes(key, value)
}

// addParts adds the part changes of a write to w's batch: a delete drops
// every part of the key. s.mu is held.
func (s *Store) addParts(db *leveldb.DB, w *storeWriter, key string, value []byte, del bool) error {
	if del {
		return s.dropParts(db, w, key, nil)
	}
	puts, dels := s.partChanges(key, value)
	for _, sub := range dels {
		w.key = partKey(w.key[:0], key, sub)
		w.batch.Delete(w.key)
	}
	for _, p := range puts {
		w.key = partKey(w.key[:0], key, p.Sub)
		w.batch.Put(w.key, p.Value)
	}
	return nil
}

// dropParts adds the deletes of every committed part of key to w's batch,
// but those in keep.
func (s *Store) dropParts(db *leveldb.DB, w *storeWriter, key string, keep map[string][]byte) error {
	prefix := partPrefix(nil, key)
	it := db.NewIterator(util.BytesPrefix(prefix), nil)
	defer it.Release()
	for it.Next() {
		if _, ok := keep[string(it.Key()[len(prefix):])]; ok {
			continue
		}
		w.batch.Delete(it.Key())
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("drop parts of %q in %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	return nil
}

// stageParts stages the part changes of a restored write. s.mu is held.
func (s *Store) stageParts(b *storeBatch, key string, value []byte, del bool) {
	if b.parts == nil {
		b.parts = make(map[string]*stagedParts)
	}
	sp := b.parts[key]
	if sp == nil {
		sp = &stagedParts{subs: map[string][]byte{}}
		b.parts[key] = sp
		b.bytes += len(key)
	}
	if del {
		sp.drop = true
		clear(sp.subs)
		return
	}
	puts, dels := s.partChanges(key, value)
	for _, sub := range dels {
		sp.subs[string(sub)] = nil
		b.bytes += len(sub)
	}
	for _, p := range puts {
		sp.subs[string(p.Sub)] = slices.Clone(p.Value)
		b.bytes += len(p.Sub) + len(p.Value)
	}
}

// commitParts adds a restore batch's part changes to w's batch.
func (s *Store) commitParts(db *leveldb.DB, w *storeWriter, b *storeBatch) error {
	for key, sp := range b.parts {
		if sp.drop {
			if err := s.dropParts(db, w, key, sp.subs); err != nil {
				return err
			}
		}
		for sub, v := range sp.subs {
			w.key = partKey(w.key[:0], key, []byte(sub))
			if v == nil {
				w.batch.Delete(w.key)
			} else {
				w.batch.Put(w.key, v)
			}
		}
	}
	return nil
}

// Part returns the committed part sub of key, nil if there is none. It is
// for the table's writer (goka's partition goroutine), after the restore:
// a restoring store's staged parts are not seen.
func (s *Store) Part(key string, sub []byte) ([]byte, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	v, err := db.Get(partKey(nil, key, sub), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get part of %q from %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	return v, nil
}

// PartsOf returns the committed parts of key in sub order.
func (s *Store) PartsOf(key string) ([]Part, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	prefix := partPrefix(nil, key)
	it := db.NewIterator(util.BytesPrefix(prefix), nil)
	defer it.Release()
	var out []Part
	for it.Next() {
		out = append(out, Part{Sub: slices.Clone(it.Key()[len(prefix):]), Value: slices.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("get parts of %q from %s/%d: %w", key, s.topic, s.partition, s.readErr(err))
	}
	return out, nil
}

// Read returns the whole value of key for a reader: with Parts.Join, the
// value composed with its committed parts; else what Get returns. nil if
// the key is absent.
func (s *Store) Read(key string) ([]byte, error) {
	v, err := s.Get(key)
	if err != nil || v == nil || s.parts == nil || s.parts.Join == nil {
		return v, err
	}
	parts, err := s.PartsOf(key)
	if err != nil {
		return nil, err
	}
	out, err := s.parts.Join(key, v, parts)
	if err != nil {
		return nil, fmt.Errorf("join parts of %q in %s/%d: %w", key, s.topic, s.partition, err)
	}
	return out, nil
}

// PartCount returns how many parts the store holds: for tests and
// diagnostics.
func (s *Store) PartCount() (int, error) {
	db, err := s.handle()
	if err != nil {
		return 0, err
	}
	it := db.NewIterator(util.BytesPrefix([]byte{storePrefixPart}), nil)
	defer it.Release()
	n := 0
	for it.Next() {
		n++
	}
	return n, it.Error()
}

// partsMissing reports, in openDB, whether a store that holds data lacks
// its parts (it was written before the table kept them): it is rebuilt.
func (s *Store) partsMissing(db *leveldb.DB) (bool, error) {
	if s.parts == nil {
		return false, nil
	}
	ok, err := db.Has(storeMetaPartsRestored, nil)
	return !ok, err
}

// openParts runs in Open before the changelog is restored: a store without
// its parts reads them from the parts topic, from its start to its high
// watermark. The changelog's changes then come on top, in order, so each
// part ends as the last value that wrote it says — also when the crash of
// a writer lost a part's record but not its value: both records of a step
// are acknowledged before its input offset is committed, and a step read
// again after a crash writes its value and sends its parts again. The mark
// is written after the topic is read, so an interrupted open reads it again.
func (s *Store) openParts() error {
	if s.parts == nil {
		return nil
	}
	restored, ctx, err := s.sideRestore(storeMetaPartsRestored, "parts", s.parts.Topic != "" && s.engine.opts.restorer != nil)
	if err != nil || restored {
		return err
	}
	if ctx != nil {
		if err := s.restoreParts(ctx); err != nil {
			return fmt.Errorf("open store %s/%d: restore parts: %w", s.topic, s.partition, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, err)
	}
	if err := s.db.Load().Put(storeMetaPartsRestored, []byte(s.parts.Topic), nil); err != nil {
		return fmt.Errorf("open store %s/%d: write parts mark: %w", s.topic, s.partition, s.writeFault(err))
	}
	return nil
}

// sideRestore starts the open of a side range restored from a topic of its
// own (parts, applied ids): under the store's lock it reads whether mark
// says the range is restored and, when it is not and withTopic, arms a
// restore the store's Close can cancel. what names the range in errors.
func (s *Store) sideRestore(mark []byte, what string, withTopic bool) (restored bool, ctx context.Context, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return false, nil, fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, err)
	}
	restored, err = s.db.Load().Has(mark, nil)
	if err != nil {
		return false, nil, fmt.Errorf("open store %s/%d: read %s mark: %w", s.topic, s.partition, what, err)
	}
	if restored || !withTopic {
		return restored, nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	prev := s.cancelRestore
	s.cancelRestore = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	return false, ctx, nil
}

// restoreParts reads the store's partition of the parts topic from its
// start to its high watermark into the side range.
func (s *Store) restoreParts(ctx context.Context) error {
	o := s.engine.opts
	oldest, hwm, err := o.watermarks.Watermarks(s.parts.Topic, s.partition)
	if err != nil {
		return fmt.Errorf("watermarks of %s/%d: %w", s.parts.Topic, s.partition, err)
	}
	if hwm <= oldest {
		return nil
	}
	start := time.Now()
	n := 0
	var w storeWriter
	err = o.restorer.Restore(ctx, s.parts.Topic, s.partition, max(oldest, 0), hwm, func(batch []Record) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.writable(); err != nil {
			return err
		}
		w.batch.Reset()
		for _, r := range batch {
			key, sub, ok := SplitPartRecordKey(r.Key)
			if !ok {
				continue
			}
			w.key = partKey(w.key[:0], key, sub)
			if r.Value == nil {
				w.batch.Delete(w.key)
				continue
			}
			w.batch.Put(w.key, r.Value)
			n++
		}
		if err := s.db.Load().Write(&w.batch, nil); err != nil {
			return s.writeFault(err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("parts restored", "topic", s.parts.Topic, "parts", n, "records", hwm-oldest,
		"duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}
