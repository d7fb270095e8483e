package tables

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Seen makes a table's stores remember, beside the data, the ids of the
// events its writes applied, for a horizon: a processor asks Store.Seen
// before applying an event, however old the id, instead of keeping a few ids
// in every value. The ids are extracted from each value written (Set, during
// restores too) and stored in the same LevelDB batch as the value; a Delete
// keeps them: ids expire by age only.
//
// The changelog is compacted and cannot keep every id, so the writer also
// sends each id to Topic (see EncodeSeenRecord), a delete-policy topic with
// the horizon as retention, partitioned like the table. A store that opens
// without its ids (new, wiped, rebuilt) reads its partition of Topic from
// the beginning; an intact store does not.
type Seen struct {
	// IDs returns the ids a value applied and when (the zero time: now). It
	// is called by the store's writer, must be a pure function of its
	// arguments and must not keep value.
	IDs func(key string, value []byte) (ids []string, at time.Time)
	// Horizon is how long an id is remembered; required.
	Horizon time.Duration
	// Topic is the ids topic, records encoded with EncodeSeenRecord; empty:
	// none (ids then live only in the local store). It needs WithRestorer.
	Topic string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// WithSeen keeps the applied event ids of every store of topic; see Seen.
func WithSeen(topic string, cfg Seen) EngineOption {
	return func(o *engineOptions) {
		switch {
		case cfg.IDs == nil:
			o.errs = append(o.errs, fmt.Errorf("seen ids of topic %s: nil IDs", topic))
			return
		case cfg.Horizon <= 0:
			o.errs = append(o.errs, fmt.Errorf("seen ids of topic %s: horizon %v must be positive", topic, cfg.Horizon))
			return
		}
		if cfg.Now == nil {
			cfg.Now = time.Now
		}
		if o.seen == nil {
			o.seen = make(map[string]*Seen)
		}
		o.seen[topic] = &cfg
	}
}

// seenRecord is the value of a record of the ids topic. JSON, so that kcat
// users can read it: {"at":<unix ms>,"ids":["..."]}.
type seenRecord struct {
	At  int64    `json:"at"`
	IDs []string `json:"ids"`
}

// EncodeSeenRecord is the value of a record of a Seen.Topic: the ids applied
// under the record's key at time at. Its key is the table's key.
//
// A fold sends one per event, so the usual record (ids of printable ASCII
// that JSON writes as they are) is appended by hand: encoding/json's
// reflection was about a third of the cost of sending it. The bytes are
// encoding/json's; any other id takes encoding/json itself.
func EncodeSeenRecord(ids []string, at time.Time) []byte {
	n := len(`{"at":-9223372036854775808,"ids":[]}`)
	for _, id := range ids {
		if !seenPlainID(id) {
			b, _ := json.Marshal(seenRecord{At: at.UnixMilli(), IDs: ids})
			return b
		}
		n += len(id) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, `{"at":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	if ids == nil {
		return append(b, `,"ids":null}`...)
	}
	b = append(b, `,"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, id...)
		b = append(b, '"')
	}
	return append(b, "]}"...)
}

// seenPlainID reports whether encoding/json writes id as it is between its
// quotes: printable ASCII but for the quote, the backslash and the
// characters it escapes for HTML.
func seenPlainID(id string) bool {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// seenExpireEvery bounds how often the writer deletes expired ids.
const seenExpireEvery = time.Hour

// seenExpireBatch bounds the deletes of one expiry batch.
const seenExpireBatch = 10000

var storeMetaSeenRestored = []byte("mseen")

// Key layout of the ids (see store.go): the key is length-prefixed so that
// any key and id can be told apart.
//
//	'e' uvarint(len(key)) key id         -> unix ms (8 bytes, big endian)
//	'x' unix ms (8 bytes) uvarint(len(key)) key id -> empty, in expiry order
const (
	storePrefixSeen       = 'e'
	storePrefixSeenExpiry = 'x'
)

func seenSuffix(dst []byte, key, id string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, id...)
}

func seenKey(dst []byte, key, id string) []byte {
	return seenSuffix(append(dst, storePrefixSeen), key, id)
}

func seenExpiryKey(dst []byte, at int64, key, id string) []byte {
	dst = append(dst, storePrefixSeenExpiry)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	return seenSuffix(dst, key, id)
}

// seenEntry is an id staged with a restore batch.
type seenEntry struct {
	key, id string
	at      int64
}

// cutoff is the oldest unix ms still within the horizon.
func (c *Seen) cutoff() int64 { return c.Now().Add(-c.Horizon).UnixMilli() }

// extract returns the ids value applied, with their time in unix ms, or
// nothing when they are already past the horizon.
func (c *Seen) extract(key string, value []byte) ([]string, int64) {
	ids, at := c.IDs(key, value)
	if len(ids) == 0 {
		return nil, 0
	}
	if at.IsZero() {
		at = c.Now()
	}
	ms := at.UnixMilli()
	if ms < c.cutoff() {
		return nil, 0
	}
	return ids, ms
}

// putSeen adds an id to w's batch.
func (w *storeWriter) putSeen(key, id string, at int64) {
	binary.BigEndian.PutUint64(w.offset[:], uint64(at))
	w.key = seenKey(w.key[:0], key, id)
	w.batch.Put(w.key, w.offset[:])
	w.key = seenExpiryKey(w.key[:0], at, key, id)
	w.batch.Put(w.key, nil)
}

// addSeen adds the ids value applied to w's batch. s.mu is held.
func (s *Store) addSeen(w *storeWriter, key string, value []byte) {
	ids, at := s.seen.extract(key, value)
	for _, id := range ids {
		w.putSeen(key, id, at)
	}
}

// Seen reports whether the event id was applied under key within the
// horizon. It is for the table's writer (goka's partition goroutine) and
// needs WithSeen for the store's topic.
func (s *Store) Seen(key, id string) (bool, error) {
	if s.seen == nil {
		return false, fmt.Errorf("seen ids of %s/%d: not configured", s.topic, s.partition)
	}
	db, err := s.handle()
	if err != nil {
		return false, err
	}
	cutoff := s.seen.cutoff()
	if !s.recovered.Load() {
		s.mu.Lock()
		found := false
		for _, b := range []*storeBatch{s.staging, s.committing} {
			if b == nil {
				continue
			}
			for _, e := range b.seen {
				found = found || (e.key == key && e.id == id && e.at >= cutoff)
			}
		}
		s.mu.Unlock()
		if found {
			return true, nil
		}
	}
	v, err := db.Get(seenKey(nil, key, id), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("seen %q of %q in %s/%d: %w", id, key, s.topic, s.partition, err)
	case len(v) != 8:
		return false, nil
	}
	return int64(binary.BigEndian.Uint64(v)) >= cutoff, nil
}

// Remember records ids as applied under key at time at without a value:
// for a write that deleted the key, whose tombstone carries none. Like Set
// it is the writer's.
func (s *Store) Remember(key string, ids []string, at time.Time) error {
	if s.seen == nil || len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("remember ids of %q in %s/%d: %w", key, s.topic, s.partition, err)
	}
	ms := at.UnixMilli()
	if !s.recovered.Load() {
		for _, id := range ids {
			s.staging.seen = append(s.staging.seen, seenEntry{key: key, id: id, at: ms})
		}
		return nil
	}
	w := &s.direct
	w.batch.Reset()
	for _, id := range ids {
		w.putSeen(key, id, ms)
	}
	if err := s.db.Load().Write(&w.batch, nil); err != nil {
		return fmt.Errorf("remember ids of %q in %s/%d: %w", key, s.topic, s.partition, s.writeFault(err))
	}
	return nil
}

// SeenCount returns how many ids the store holds, expired ones not yet
// deleted included: for tests and diagnostics.
func (s *Store) SeenCount() (int, error) {
	db, err := s.handle()
	if err != nil {
		return 0, err
	}
	it := db.NewIterator(util.BytesPrefix([]byte{storePrefixSeen}), nil)
	defer it.Release()
	n := 0
	for it.Next() {
		n++
	}
	return n, it.Error()
}

// ExpireSeen deletes the ids past the horizon now, as the writer does at
// open and then about hourly. It is serialised with the writer.
func (s *Store) ExpireSeen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	return s.expireSeenLocked()
}

// maybeExpireSeenLocked expires ids when the last expiry is old enough.
// s.mu is held.
func (s *Store) maybeExpireSeenLocked() error {
	if s.seen == nil {
		return nil
	}
	now := s.seen.Now()
	if now.Sub(s.seenExpired) < min(seenExpireEvery, s.seen.Horizon/4) {
		return nil
	}
	return s.expireSeenLocked()
}

// expireSeenLocked deletes the ids older than the horizon: it walks the
// expiry order up to the cutoff. An id written again later with another
// time keeps its newer entry. s.mu is held.
func (s *Store) expireSeenLocked() error {
	if s.seen == nil {
		return nil
	}
	db := s.db.Load()
	s.seenExpired = s.seen.Now()
	cutoff := s.seen.cutoff()
	limit := append([]byte{storePrefixSeenExpiry}, binary.BigEndian.AppendUint64(nil, uint64(cutoff))...)
	for {
		it := db.NewIterator(&util.Range{Start: []byte{storePrefixSeenExpiry}, Limit: limit}, nil)
		var b leveldb.Batch
		n := 0
		for n < seenExpireBatch && it.Next() {
			k := it.Key()
			if len(k) < 9 {
				b.Delete(k)
				n++
				continue
			}
			at := k[1:9]
			ek := append([]byte{storePrefixSeen}, k[9:]...)
			if v, err := db.Get(ek, nil); err == nil && string(v) == string(at) {
				b.Delete(ek)
			}
			b.Delete(k)
			n++
		}
		err := it.Error()
		it.Release()
		if err != nil {
			return fmt.Errorf("expire ids of %s/%d: %w", s.topic, s.partition, err)
		}
		if n == 0 {
			return nil
		}
		if err := db.Write(&b, nil); err != nil {
			return fmt.Errorf("expire ids of %s/%d: %w", s.topic, s.partition, err)
		}
		if n < seenExpireBatch {
			return nil
		}
	}
}

// openSeen runs after the store opened (and restored its changelog): a
// store without its ids reads them from the ids topic, then expired ones are
// deleted. The mark that the ids are restored is written last, so an
// interrupted open reads the topic again.
func (s *Store) openSeen() error {
	if s.seen == nil {
		return nil
	}
	restored, ctx, err := s.sideRestore(storeMetaSeenRestored, "seen", s.seen.Topic != "")
	if err != nil {
		return err
	}
	mark := !restored
	if ctx != nil {
		if err := s.restoreSeen(ctx); err != nil {
			if errors.Is(err, ErrStoreClosed) {
				return fmt.Errorf("open store %s/%d: restore ids: %w", s.topic, s.partition, err)
			}
			// The ids of events applied before the disk was lost are missing
			// until the next open reads the topic again.
			s.log.Warn("restore of applied event ids failed; retried at the next open", "topic", s.seen.Topic, "error", err)
			mark = false
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("open store %s/%d: %w", s.topic, s.partition, err)
	}
	if mark {
		if err := s.db.Load().Put(storeMetaSeenRestored, []byte(s.seen.Topic), nil); err != nil {
			return fmt.Errorf("open store %s/%d: write seen mark: %w", s.topic, s.partition, err)
		}
	}
	return s.expireSeenLocked()
}

// restoreSeen reads the store's partition of the ids topic from its start
// to its high watermark into the ids, skipping the expired ones.
func (s *Store) restoreSeen(ctx context.Context) error {
	defer func() {
		s.mu.Lock()
		s.cancelRestore()
		s.mu.Unlock()
	}()
	o := s.engine.opts
	oldest, hwm, err := o.watermarks.Watermarks(s.seen.Topic, s.partition)
	if err != nil {
		return fmt.Errorf("watermarks of %s/%d: %w", s.seen.Topic, s.partition, err)
	}
	start := time.Now()
	n := 0
	var w storeWriter
	err = o.restorer.Restore(ctx, s.seen.Topic, s.partition, max(oldest, 0), hwm, func(batch []Record) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.writable(); err != nil {
			return err
		}
		cutoff := s.seen.cutoff()
		w.batch.Reset()
		for _, r := range batch {
			var rec seenRecord
			if r.Value == nil || json.Unmarshal(r.Value, &rec) != nil {
				continue
			}
			if rec.At < cutoff {
				continue
			}
			for _, id := range rec.IDs {
				w.putSeen(string(r.Key), id, rec.At)
				n++
			}
		}
		return s.db.Load().Write(&w.batch, nil)
	})
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if n == 0 {
		level = slog.LevelDebug // nothing to restore: detail, not news
	}
	s.log.Log(ctx, level, "applied event ids restored", "topic", s.seen.Topic, "ids", n, "records", max(hwm-oldest, 0),
		"duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}
