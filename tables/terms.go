package tables

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// TermKey is one entry of an index: a term and a key filed under it.
type TermKey struct {
	Term, Key string
}

// Terms returns up to limit (all if limit <= 0) entries of index whose term
// t is in [from, to), in term order and, within a term, in key order, from
// the committed data. An empty to means no upper bound. Terms of a fixed
// width (zero-padded numbers, say) make it a range query over what they
// encode: the processors' timers are found this way.
func (s *Store) Terms(index, from, to string, limit int) ([]TermKey, error) {
	it, prefix, err := s.termIterator(index, from, to)
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var out []TermKey
	for ok := it.First(); ok; ok = it.Next() {
		term, key, found := bytes.Cut(it.Key()[len(prefix):], []byte{0})
		if !found {
			continue
		}
		out = append(out, TermKey{Term: string(term), Key: string(key)})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("terms %q in %s/%d: %w", index, s.topic, s.partition, s.readErr(err))
	}
	return out, nil
}

// LastTerm returns the greatest term of index in [from, to) (an empty to:
// no upper bound) and whether there is one, from the committed data.
func (s *Store) LastTerm(index, from, to string) (string, bool, error) {
	it, prefix, err := s.termIterator(index, from, to)
	if err != nil {
		return "", false, err
	}
	defer it.Release()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return "", false, fmt.Errorf("terms %q in %s/%d: %w", index, s.topic, s.partition, s.readErr(err))
		}
		return "", false, nil
	}
	term, _, _ := bytes.Cut(it.Key()[len(prefix):], []byte{0})
	return string(term), true, nil
}

type termIter interface {
	First() bool
	Last() bool
	Next() bool
	Key() []byte
	Error() error
	Release()
}

func (s *Store) termIterator(index, from, to string) (termIter, []byte, error) {
	db, err := s.handle()
	if err != nil {
		return nil, nil, err
	}
	known := false
	for _, idx := range s.indexes {
		known = known || idx.Name == index
	}
	if !known {
		return nil, nil, fmt.Errorf("terms %q in %s/%d: %w", index, s.topic, s.partition, ErrUnknownIndex)
	}
	if strings.IndexByte(from, 0) >= 0 || strings.IndexByte(to, 0) >= 0 {
		return nil, nil, fmt.Errorf("terms %q in %s/%d: %w", index, s.topic, s.partition, ErrInvalidTerm)
	}
	prefix := storeIndexKey(nil, index, "", "")
	prefix = prefix[:len(prefix)-1] // 'i' index 0
	r := util.BytesPrefix(prefix)
	r.Start = append(append([]byte{}, prefix...), from...)
	if to != "" {
		// A term equal to to sorts as to\0key, after to: excluded.
		r.Limit = append(append([]byte{}, prefix...), to...)
	}
	return db.NewIterator(r, nil), prefix, nil
}
