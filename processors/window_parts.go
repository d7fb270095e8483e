package processors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// windowState is the state of a windowed table's value as stored (after
// the bookkeeping, windowMeta): the key's windows listed, not their values,
// and what the write changed. Each window's value is a part of the key's
// value (tables.Parts): the stores apply Changed and Removed to their side
// range with every write, and <group>-windows holds the last of each.
// Readers get the whole Windowed[A] from the store (Store.Read, joined by
// windowAgg.join).
type windowState struct {
	Key string `json:"key"`
	// Index lists the windows, three numbers each: start, end (unix ms)
	// and 1 if closed, else 0: 30-odd bytes a window, whatever its value.
	Index []int64 `json:"index"`
	// Changed are the windows the write changed (without a store that
	// keeps them, goka's tester: all of them); Removed the starts of those
	// it removed (purged, or sessions merged away).
	Changed []windowPart `json:"changed,omitempty"`
	Removed []int64      `json:"removed,omitempty"`
	// Windows is a value of the earlier layout, all windows in the value
	// (and what Join gives readers): read as Index and Changed.
	Windows []json.RawMessage `json:"windows,omitempty"`

	list   []windowRef // Index, read
	legacy bool        // read from Windows
}

// windowRef is a window in a key's list: its start and end (unix ms) and
// whether it is closed.
type windowRef struct {
	Start, End int64
	Closed     bool
}

// refs reads the list of windows.
func (st *windowState) refs() ([]windowRef, error) {
	if len(st.Index)%3 != 0 {
		return nil, fmt.Errorf("window list of %d numbers, not triples", len(st.Index))
	}
	out := make([]windowRef, 0, len(st.Index)/3)
	for i := 0; i < len(st.Index); i += 3 {
		out = append(out, windowRef{Start: st.Index[i], End: st.Index[i+1], Closed: st.Index[i+2] != 0})
	}
	return out, nil
}

// flatIndex writes a list of windows as windowState.Index.
func flatIndex(refs []windowRef) []int64 {
	out := make([]int64, 0, 3*len(refs))
	for _, r := range refs {
		closed := int64(0)
		if r.Closed {
			closed = 1
		}
		out = append(out, r.Start, r.End, closed)
	}
	return out
}

// windowPart is a window as a part of its key's value: the window's value
// (A, as JSON); its start, end and state are in the key's list.
type windowPart struct {
	Start int64           `json:"s"`
	Value json.RawMessage `json:"v"`
}

// windowDelta is what a store reads of a value: its changes.
type windowDelta struct {
	Changed []windowPart      `json:"changed"`
	Removed []int64           `json:"removed"`
	Windows []json.RawMessage `json:"windows"`
}

var windowStateCodec = codecs.JSON[windowState]{}

// decodeWindowState reads a windowed table's value; nil bytes mean none.
func decodeWindowState(b []byte) (*windowState, windowMeta, error) {
	st, m, err := decodeWithMeta[windowState, windowMeta](windowStateCodec, b)
	if err != nil || st == nil {
		return st, m, err
	}
	if err := st.normalize(); err != nil {
		return nil, m, err
	}
	st.list, err = st.refs()
	return st, m, err
}

// normalize reads a value of the earlier layout (all windows in Windows) as
// a list and changes.
func (st *windowState) normalize() error {
	if st.Index != nil || len(st.Windows) == 0 {
		return nil
	}
	var refs []windowRef
	for _, raw := range st.Windows {
		var w struct {
			Start, End time.Time
			Value      json.RawMessage
			Closed     bool
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return fmt.Errorf("window: %w", err)
		}
		refs = append(refs, windowRef{Start: w.Start.UnixMilli(), End: w.End.UnixMilli(), Closed: w.Closed})
		st.Changed = append(st.Changed, windowPart{Start: w.Start.UnixMilli(), Value: w.Value})
	}
	st.Windows, st.legacy = nil, true
	slices.SortFunc(refs, func(x, y windowRef) int { return cmp.Compare(x.Start, y.Start) })
	st.Index = flatIndex(refs)
	return nil
}

// windowSub names a window under its key: its start, big endian with the
// sign bit flipped, so that the store keeps a key's windows in start order.
func windowSub(start int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(start)^(1<<63))
}

func windowStart(sub []byte) (int64, bool) {
	if len(sub) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(sub) ^ (1 << 63)), true
}

// windowChanges is the tables.Parts.Changes of a windowed table: the
// windows a value changed and removed.
func windowChanges(_ string, value []byte) (puts []tables.Part, dels [][]byte) {
	_, state, err := envelope.Split(value)
	if err != nil {
		return nil, nil
	}
	var d windowDelta
	if json.Unmarshal(state, &d) != nil {
		return nil, nil
	}
	if len(d.Windows) > 0 {
		st := windowState{Windows: d.Windows}
		if st.normalize() != nil {
			return nil, nil
		}
		d.Changed = st.Changed
	}
	for _, s := range d.Removed {
		dels = append(dels, windowSub(s))
	}
	for _, c := range d.Changed {
		puts = append(puts, tables.Part{Sub: windowSub(c.Start), Value: c.Value})
	}
	return puts, dels
}

// join is the tables.Parts.Join of a windowed table: the key's value with
// its windows, as a Windowed[A] (the bookkeeping kept in front). A window
// the list names but the store lacks (a stale read during a restore) is
// left out; a part the list does not name is no window of the key.
func (a *windowAgg[In, A]) join(_ string, value []byte, parts []tables.Part) ([]byte, error) {
	meta, state, err := envelope.Split(value)
	if err != nil {
		return nil, err
	}
	var st windowState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, err
	}
	if err := st.normalize(); err != nil {
		return nil, err
	}
	raw := make(map[int64][]byte, len(parts)+len(st.Changed))
	for _, p := range parts {
		if s, ok := windowStart(p.Sub); ok {
			raw[s] = p.Value
		}
	}
	for _, c := range st.Changed {
		raw[c.Start] = c.Value
	}
	refs, err := st.refs()
	if err != nil {
		return nil, err
	}
	w := Windowed[A]{Key: st.Key, Windows: make([]Window[A], 0, len(refs))}
	for _, ref := range refs {
		b := raw[ref.Start]
		if b == nil {
			continue
		}
		win, err := decodeWindow[A](b, ref)
		if err != nil {
			return nil, err
		}
		w.Windows = append(w.Windows, win)
	}
	body, err := a.table.Codec.Encode(w)
	if err != nil {
		return nil, err
	}
	if meta == nil {
		return body, nil
	}
	return envelope.Join(json.RawMessage(meta), body)
}

func encodeWindow[A any](w Window[A]) ([]byte, error) {
	b, err := json.Marshal(w.Value)
	if err != nil {
		return nil, fail(ClassHandler, fmt.Errorf("encode window: %w", err))
	}
	return b, nil
}

// decodeWindow reads a window's part; its start, end and state are the
// list's.
func decodeWindow[A any](b []byte, ref windowRef) (Window[A], error) {
	w := Window[A]{Start: time.UnixMilli(ref.Start).UTC(), End: time.UnixMilli(ref.End).UTC(), Closed: ref.Closed}
	if err := json.Unmarshal(b, &w.Value); err != nil {
		return w, fmt.Errorf("window at %d: %w", ref.Start, err)
	}
	return w, nil
}

// windowSet is a key's windows during one step: the list, the windows read
// or changed so far, and the starts removed. A window is read when the
// step needs it: from the previous value's changes, else from the store.
type windowSet[A any] struct {
	key     string
	index   []windowRef
	prev    map[int64][]byte // the previous value's changed windows
	store   *tables.Store    // where the other windows are; nil: in the value
	parted  bool
	values  map[int64]Window[A]
	changed map[int64]bool
	removed []int64
}

// windows is the key's windowSet for a step, over its stored state (nil:
// none).
func (a *windowAgg[In, A]) windows(r *recordCtx, key string, st *windowState) *windowSet[A] {
	ws := &windowSet[A]{key: key, values: map[int64]Window[A]{}, changed: map[int64]bool{}}
	if s, ok := a.g.store(r.gctx.Partition()); ok {
		ws.store, ws.parted = s, true
	}
	if st != nil {
		ws.index = st.list
		ws.prev = make(map[int64][]byte, len(st.Changed))
		for _, c := range st.Changed {
			ws.prev[c.Start] = c.Value
		}
		if st.legacy {
			// A value of the earlier layout: its windows are in no part
			// record yet. The step's write sends them all.
			for _, ref := range ws.index {
				if w, err := ws.load(ref.Start); err == nil {
					ws.put(w)
				}
			}
		}
	}
	return ws
}

func (ws *windowSet[A]) find(start int64) (int, bool) {
	return slices.BinarySearchFunc(ws.index, start, func(r windowRef, s int64) int { return cmp.Compare(r.Start, s) })
}

// raw returns the bytes of the window at start as stored (nil: missing).
func (ws *windowSet[A]) raw(start int64) ([]byte, error) {
	if ws.changed[start] {
		return encodeWindow(ws.values[start])
	}
	if b, ok := ws.prev[start]; ok {
		return b, nil
	}
	if ws.store == nil {
		return nil, nil
	}
	b, err := ws.store.Part(ws.key, windowSub(start))
	if err != nil {
		return nil, fmt.Errorf("window %d of %q: %w", start, ws.key, err)
	}
	return b, nil
}

// load returns the window at start, which the list holds.
func (ws *windowSet[A]) load(start int64) (Window[A], error) {
	if w, ok := ws.values[start]; ok {
		return w, nil
	}
	i, found := ws.find(start)
	if !found {
		return Window[A]{}, fmt.Errorf("window %d of %q: not in its list", start, ws.key)
	}
	b, err := ws.raw(start)
	if err != nil {
		return Window[A]{}, err
	}
	if b == nil || bytes.Equal(b, []byte("null")) {
		return Window[A]{}, fail(ClassDecode, fmt.Errorf("window %d of %q: listed but not stored", start, ws.key))
	}
	w, err := decodeWindow[A](b, ws.index[i])
	if err != nil {
		return w, fail(ClassDecode, err)
	}
	ws.values[start] = w
	return w, nil
}

// put records a window the step changed (its start is in the list).
func (ws *windowSet[A]) put(w Window[A]) {
	s := w.Start.UnixMilli()
	ws.values[s], ws.changed[s] = w, true
}

// remove takes the window at start off the list.
func (ws *windowSet[A]) remove(start int64) {
	if i, found := ws.find(start); found {
		ws.index = slices.Delete(ws.index, i, i+1)
	}
	delete(ws.values, start)
	delete(ws.changed, start)
	ws.removed = append(ws.removed, start)
}

// changedStarts are the starts of the windows the step changed, in order.
func (ws *windowSet[A]) changedStarts() []int64 {
	return slices.Sorted(maps.Keys(ws.changed))
}
