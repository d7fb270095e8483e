package tables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/lovoo/goka/storage"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Iterator returns an iterator over a snapshot of the committed data.
func (s *Store) Iterator() (storage.Iterator, error) {
	return s.IteratorWithRange(nil, nil)
}

// IteratorWithRange returns an iterator over a snapshot of the committed
// data with keys in [start, limit); with an empty limit it iterates the keys
// that have start as prefix, like goka's LevelDB storage.
func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	var r *util.Range
	if len(limit) > 0 {
		r = &util.Range{Start: storeDataKey(nil, string(start)), Limit: storeDataKey(nil, string(limit))}
	} else {
		r = util.BytesPrefix(storeDataKey(nil, string(start)))
	}
	return &storeIterator{it: db.NewIterator(r, nil), s: s}, nil
}

// Scan returns up to limit (all if limit <= 0) keys greater than after with
// their values, in key order, from the committed data. An empty after
// starts at the first key.
func (s *Store) Scan(after string, limit int) ([]KV, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	it := db.NewIterator(util.BytesPrefix([]byte{storePrefixData}), nil)
	defer it.Release()
	var out []KV
	for ok := it.Seek(storeDataKey(nil, after)); ok; ok = it.Next() {
		k := it.Key()[1:]
		if after != "" && string(k) == after {
			continue
		}
		_, v, err := storeSplitRecord(it.Value())
		if err != nil {
			return nil, fmt.Errorf("scan %s/%d: %w", s.topic, s.partition, s.readErr(err))
		}
		out = append(out, KV{Key: string(k), Value: append([]byte{}, v...)})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("scan %s/%d: %w", s.topic, s.partition, s.readErr(err))
	}
	return out, nil
}

// Lookup returns up to limit (all if limit <= 0) keys greater than after
// that index holds under term, in key order, from the committed data. An
// empty after starts at the first key.
func (s *Store) Lookup(index, term, after string, limit int) ([]string, error) {
	var out []string
	err := s.eachIndexed(index, term, after, func(key []byte) bool {
		out = append(out, string(key))
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// Count returns how many keys index holds under term.
func (s *Store) Count(index, term string) (int, error) {
	n := 0
	err := s.eachIndexed(index, term, "", func([]byte) bool { n++; return true })
	return n, err
}

func (s *Store) eachIndexed(index, term, after string, fn func(key []byte) bool) error {
	db, err := s.handle()
	if err != nil {
		return err
	}
	known := false
	for _, idx := range s.indexes {
		known = known || idx.Name == index
	}
	if !known {
		return fmt.Errorf("lookup %q in %s/%d: %w", index, s.topic, s.partition, ErrUnknownIndex)
	}
	if strings.IndexByte(term, 0) >= 0 {
		return fmt.Errorf("lookup %q in %s/%d: %w", index, s.topic, s.partition, ErrInvalidTerm)
	}
	prefix := storeIndexKey(nil, index, term, "")
	it := db.NewIterator(util.BytesPrefix(prefix), nil)
	defer it.Release()
	for ok := it.Seek(storeIndexKey(nil, index, term, after)); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if after != "" && string(k) == after {
			continue
		}
		if !fn(k) {
			break
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("lookup %q in %s/%d: %w", index, s.topic, s.partition, s.readErr(err))
	}
	return nil
}

func storeDataKey(dst []byte, key string) []byte {
	dst = append(dst, storePrefixData)
	return append(dst, key...)
}

// storeAppendRecord appends a data record: the value's encoded index terms
// (storeAppendTerms), then the value.
func storeAppendRecord(dst, terms, value []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(terms)))
	dst = append(dst, terms...)
	return append(dst, value...)
}

// errStoreRecord is a data record that does not parse: damage LevelDB's
// checksums did not catch, so the store is broken like on corruption.
var errStoreRecord = &lerrors.ErrCorrupted{Err: errors.New("malformed data record")}

// storeSplitRecord returns a data record's encoded terms and its value.
func storeSplitRecord(rec []byte) (terms, value []byte, err error) {
	n, k := binary.Uvarint(rec)
	if k <= 0 || n > uint64(len(rec)-k) {
		return nil, nil, errStoreRecord
	}
	return rec[k : k+int(n)], rec[k+int(n):], nil
}

// storeAppendTerms appends one index's terms to a record's encoded terms:
//
//	uvarint(len(index)) index uvarint(len(terms)) (uvarint(len(term)) term)...
func storeAppendTerms(dst []byte, index string, terms []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(index)))
	dst = append(dst, index...)
	dst = binary.AppendUvarint(dst, uint64(len(terms)))
	for _, t := range terms {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// storeTermsOf appends to dst the terms a record's encoded terms hold for
// index, as slices of enc. found is false when enc has no entry for index
// (the record was written before the index was declared).
func storeTermsOf(dst [][]byte, enc []byte, index string) (terms [][]byte, found bool, err error) {
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(enc)
		if k <= 0 || n > uint64(len(enc)-k) {
			return nil, false
		}
		b := enc[k : k+int(n)]
		enc = enc[k+int(n):]
		return b, true
	}
	for len(enc) > 0 {
		name, ok := next()
		if !ok {
			return dst, false, errStoreRecord
		}
		count, k := binary.Uvarint(enc)
		if k <= 0 || count > uint64(len(enc)) {
			return dst, false, errStoreRecord
		}
		enc = enc[k:]
		match := string(name) == index
		for range count {
			t, ok := next()
			if !ok {
				return dst, false, errStoreRecord
			}
			if match {
				dst = append(dst, t)
			}
		}
		if match {
			return dst, true, nil
		}
	}
	return dst, false, nil
}

func storeIndexKey(dst []byte, index, term, key string) []byte {
	dst = append(dst, storePrefixIndex)
	dst = append(dst, index...)
	dst = append(dst, 0)
	dst = append(dst, term...)
	dst = append(dst, 0)
	return append(dst, key...)
}

// storeIterator exposes the data keys of a LevelDB iterator without their
// prefix. Like LevelDB's, Key and Value are valid right after a successful
// Seek, and the caller must not keep or modify them.
type storeIterator struct {
	it iterator.Iterator
	s  *Store
}

func (i *storeIterator) Next() bool { return i.it.Next() }

func (i *storeIterator) Err() error {
	if err := i.it.Error(); err != nil {
		return i.s.readErr(err)
	}
	return nil
}

func (i *storeIterator) Key() []byte {
	k := i.it.Key()
	if len(k) == 0 {
		return nil
	}
	return k[1:]
}

func (i *storeIterator) Value() ([]byte, error) {
	_, v, err := storeSplitRecord(i.it.Value())
	if err != nil {
		return nil, i.s.readErr(err)
	}
	return v, nil
}

func (i *storeIterator) Release() { i.it.Release() }

func (i *storeIterator) Seek(key []byte) bool {
	return i.it.Seek(storeDataKey(nil, string(key)))
}
