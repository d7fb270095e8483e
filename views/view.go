package views

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// ErrNotFound: the view is caught up and the key is absent.
var ErrNotFound = errors.New("not found")

// ErrNotReady: a partition the answer needs is not restored (or not held here).
var ErrNotReady = errors.New("not ready")

// NotFoundError names the key that is absent.
type NotFoundError struct{ Table, Key string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s: key %q not found", e.Table, e.Key) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// NotFound marks the error for HTTP layers that classify errors structurally.
func (e *NotFoundError) NotFound() bool { return true }

// NotReadyError says which partitions are missing, restoring or out of
// service (a store found corrupted and being rebuilt, a failed write).
type NotReadyError struct {
	Table   string
	Missing []int32
	Stores  []tables.Progress
	// Cause is the store fault that took a partition out of service, if any.
	Cause error
}

func (e *NotReadyError) Error() string {
	msg := fmt.Sprintf("%s: not ready (%d partitions not held here, %d restoring)", e.Table, len(e.Missing), e.restoring())
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}
func (e *NotReadyError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrNotReady}
	}
	return []error{ErrNotReady, e.Cause}
}

// RetryAfter is how long a caller should wait before asking again.
func (e *NotReadyError) RetryAfter() time.Duration { return time.Second }

// Progress is the restore progress to show the caller.
func (e *NotReadyError) Progress() any {
	return map[string]any{"table": e.Table, "missingPartitions": e.Missing, "partitions": e.Stores}
}

func (e *NotReadyError) restoring() int {
	n := 0
	for _, p := range e.Stores {
		if !p.Recovered || p.Fault != "" {
			n++
		}
	}
	return n
}

// Item is one entry of a listing. Raw is the value's state as its codec
// wrote it, without the framework's bookkeeping.
type Item[V any] struct {
	Key   string
	Value V
	Raw   []byte
}

// Stores finds the open local store of a table partition and knows how many
// partitions a topic has; *streamfold.Runtime is one.
type Stores interface {
	Store(topic string, partition int32) (*tables.Store, bool)
	PartitionsOf(topic string) int
}

// View reads one table from local stores. Safe for concurrent use.
type View[V any] struct {
	engine     Stores
	table      tables.Table[V]
	partitions int
}

// New returns a view of table over stores (the runtime).
func New[V any](stores Stores, table tables.Table[V]) *View[V] {
	return &View[V]{engine: stores, table: table, partitions: stores.PartitionsOf(table.Name)}
}

// Name is the table's name.
func (v *View[V]) Name() string { return v.table.Name }

// Ready reports whether every partition is held here and restored, with the
// stores' progress.
func (v *View[V]) Ready() (bool, []tables.Progress) {
	var ps []tables.Progress
	ready := true
	for p := range v.partitions {
		s, ok := v.engine.Store(v.table.Name, int32(p))
		if !ok {
			ready = false
			continue
		}
		pr := s.Progress()
		ps = append(ps, pr)
		ready = ready && pr.Recovered && pr.Fault == ""
	}
	return ready, ps
}

func (v *View[V]) notReady(cause error) error {
	e := &NotReadyError{Table: v.table.Name, Cause: cause}
	for p := range v.partitions {
		s, ok := v.engine.Store(v.table.Name, int32(p))
		if !ok {
			e.Missing = append(e.Missing, int32(p))
			continue
		}
		e.Stores = append(e.Stores, s.Progress())
	}
	return e
}

// store returns the restored store of partition p, or a NotReadyError. Under
// a context from WithStaleReads any open copy will do, and what was read is
// recorded there. A store at fault (corrupted, or its write failed) never
// answers: what it holds may be wrong.
func (v *View[V]) store(ctx context.Context, p int32) (*tables.Store, error) {
	s, ok := v.engine.Store(v.table.Name, p)
	if ok {
		if err := s.Fault(); err != nil {
			return nil, v.notReady(err)
		}
		if sr := staleFrom(ctx); sr != nil {
			sr.record(lagOf(v.engine, s), !s.Recovered())
			return s, nil
		}
	}
	if !ok || !s.Recovered() {
		return nil, v.notReady(nil)
	}
	return s, nil
}

// Lag is how many changelog records the store holding key has not applied
// yet (0: it has all the changelog held when asked), -1 when no watermark is
// known; a not-ready error while the store restores or is at fault. An
// absent key with lag 0 was never written or was deleted: a caller waiting
// for a version of it need not wait longer.
func (v *View[V]) Lag(ctx context.Context, key string) (int64, error) {
	s, err := v.store(ctx, tables.PartitionFor(key, v.partitions))
	if err != nil {
		return 0, err
	}
	return lagOf(v.engine, s), nil
}

// GetRaw returns the stored bytes of key: in a group table, the framework's
// bookkeeping and the state (internal/envelope); of a table kept in parts
// (a windowed aggregation's), the value joined with its parts
// (tables.Store.Read).
func (v *View[V]) GetRaw(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := v.store(ctx, tables.PartitionFor(key, v.partitions))
	if err != nil {
		return nil, err
	}
	b, err := s.Read(key)
	if err != nil {
		return nil, v.readErr(fmt.Errorf("%s: get %q: %w", v.table.Name, key, err))
	}
	if b == nil || envelope.Absent(b) {
		return nil, &NotFoundError{Table: v.table.Name, Key: key}
	}
	return b, nil
}

// Get returns the decoded value of key.
func (v *View[V]) Get(ctx context.Context, key string) (V, error) {
	var zero V
	b, err := v.GetRaw(ctx, key)
	if err != nil {
		return zero, err
	}
	_, val, err := v.decode(key, b)
	return val, err
}

// decode reads a stored value's state with the table's codec, returning
// the state's bytes too.
func (v *View[V]) decode(key string, b []byte) ([]byte, V, error) {
	var zero V
	_, state, err := envelope.Split(b)
	if err != nil {
		return nil, zero, fmt.Errorf("%s: decode %q: %w", v.table.Name, key, err)
	}
	val, err := v.table.Codec.Decode(state)
	if err != nil {
		return nil, zero, fmt.Errorf("%s: decode %q: %w", v.table.Name, key, err)
	}
	return state, val, nil
}

// GetJSON returns key's value as a JSON document without the framework's
// bookkeeping: what the query API serves (a *View is a queryapi.Reader).
// A JSON table's state is served as stored, neither decoded nor encoded
// again: the state's bytes in the stored value (a sub-slice of it), which
// in a value of the binary envelope the framework's JSON codec wrote and is
// not scanned again. A value of the older JSON envelope or of another
// producer is checked to be valid JSON first; one that is not, and a table
// of another codec, go through the codec.
func (v *View[V]) GetJSON(ctx context.Context, key string) (json.RawMessage, error) {
	b, err := v.GetRaw(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, ok := any(v.table.Codec).(codecs.JSON[V]); ok {
		if _, state, err := envelope.Split(b); err == nil && (envelope.Framed(b) || json.Valid(state)) {
			return state, nil
		}
	}
	_, val, err := v.decode(key, b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(val)
}

// Page is one page of a listing; Next is the cursor of the following page, empty at the end.
type Page[V any] struct {
	Items []Item[V]
	Next  string
}

// List pages through the keys whose index has term, in key order across all
// partitions, from the secondary index (no scan of the table). An empty index
// name lists every key. The cursor is opaque: pass back Page.Next.
func (v *View[V]) List(ctx context.Context, index, term, cursor string, limit int) (Page[V], error) {
	if limit <= 0 {
		return Page[V]{}, fmt.Errorf("limit must be positive, got %d", limit)
	}
	if index != "" && !v.hasIndex(index) {
		return Page[V]{}, fmt.Errorf("%s has no index %q", v.table.Name, index)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page[V]{}, err
	}
	stores := make([]*tables.Store, 0, v.partitions)
	for p := range v.partitions {
		s, err := v.store(ctx, int32(p))
		if err != nil {
			return Page[V]{}, err
		}
		stores = append(stores, s)
	}
	// Each partition contributes at most limit+1 keys after the cursor; the
	// merged first limit+1 tell us the page and whether there is more.
	var keys []string
	for _, s := range stores {
		if err := ctx.Err(); err != nil {
			return Page[V]{}, err
		}
		var ks []string
		if index == "" {
			kvs, err := s.Scan(after, limit+1)
			if err != nil {
				return Page[V]{}, v.readErr(err)
			}
			for _, kv := range kvs {
				ks = append(ks, kv.Key)
			}
		} else {
			ks, err = s.Lookup(index, term, after, limit+1)
			if err != nil {
				return Page[V]{}, v.readErr(err)
			}
		}
		keys = append(keys, ks...)
	}
	slices.Sort(keys)
	var page Page[V]
	if len(keys) > limit {
		keys = keys[:limit]
		page.Next = encodeCursor(keys[len(keys)-1])
	}
	for _, k := range keys {
		raw, err := stores[tables.PartitionFor(k, v.partitions)].Read(k)
		if err != nil {
			return Page[V]{}, v.readErr(err)
		}
		if raw == nil || envelope.Absent(raw) { // deleted since the index read, or bookkeeping only
			continue
		}
		state, val, err := v.decode(k, raw)
		if err != nil {
			return Page[V]{}, err
		}
		page.Items = append(page.Items, Item[V]{Key: k, Value: val, Raw: state})
	}
	return page, nil
}

// readErr turns a read that found its store broken (the read marked it so)
// into a NotReadyError: the partition is rebuilt, ask again.
func (v *View[V]) readErr(err error) error {
	if errors.Is(err, tables.ErrStoreBroken) {
		return v.notReady(err)
	}
	return err
}

func (v *View[V]) hasIndex(name string) bool {
	for _, i := range v.table.Indexes {
		if i.Name == name {
			return true
		}
	}
	return false
}

// ErrBadCursor is returned for a cursor this view did not hand out.
var ErrBadCursor = errors.New("bad cursor")

func encodeCursor(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	return string(b), nil
}
