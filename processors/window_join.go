package processors

import (
	"fmt"
	"slices"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// StreamJoin configures a join of two streams within a time window
// (JoinStreams): a left and a right record with the same key whose event
// times are at most Within apart form a pair.
type StreamJoin[L, R, O any] struct {
	Left  tables.Stream[L]
	Right tables.Stream[R]
	// Within is the largest distance in event time between partners; Grace
	// how long after that records still arrive out of order. A record
	// whose window (its time ± Within, plus Grace) stream time has passed
	// is late: sent to <group>-late, not joined.
	Within, Grace time.Duration
	// LeftTime and RightTime are the inputs' event times; nil: a
	// CloudEvent's time, else the Kafka record's timestamp.
	LeftTime  TimeOf[L]
	RightTime TimeOf[R]
	// LeftWhere and RightWhere, if set, pick the records of each side that
	// take part (the others are skipped, not buffered): a filter before the
	// join.
	LeftWhere  func(key string, l L) bool
	RightWhere func(key string, r R) bool
	// Join makes the output of a pair; r is nil for a left record without
	// a partner in a LeftJoin. It must be a pure function.
	Join JoinFunc[L, R, O]
	// Out receives the outputs, under the records' key.
	Out tables.Stream[O]
}

// joinBuffer is a join's state per key: the records of each side still
// within their window, in arrival order.
type joinBuffer struct {
	Left  []bufferedRecord `json:"left,omitempty"`
	Right []bufferedRecord `json:"right,omitempty"`
}

type bufferedRecord struct {
	Time    int64             `json:"time"` // event time, unix ms
	ID      string            `json:"id,omitempty"`
	Value   []byte            `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
	Matched bool              `json:"matched,omitempty"`
}

// joinMeta is a join's bookkeeping: the offsets applied and what the last
// step emitted, sent again when its record is read again after a crash.
type joinMeta struct {
	timeMeta
	Offsets map[string]int64 `json:"offsets,omitempty"`
	Emits   [][]byte         `json:"emits,omitempty"`
}

// JoinStreams makes g join two co-partitioned streams by key within a time
// window (inner; with LeftJoin() a left record without a partner is
// emitted with r == nil once its window has closed), buffering each side's records in the group's table
// (<group>-table) until their window closes on stream time; expired records
// leave the buffer by a timer, and a LeftJoin then emits the left records
// that found no partner. A record whose CloudEvents id is already buffered
// on its side (a producer's re-send) joins nothing again; a record read
// again after a crash sends what its step sent, again.
func JoinStreams[L, R, O any](g *Group, j StreamJoin[L, R, O], opts ...JoinOption) {
	table := GroupTable[joinBuffer](g.name)
	if j.Join == nil || j.Within < 0 || j.Grace < 0 {
		g.errs = append(g.errs, fmt.Errorf("group %s: a stream join needs Join and a window that is not negative", g.name))
	}
	if g.table != nil {
		g.errs = append(g.errs, fmt.Errorf("group %s: a stream join keeps the group's table; it already has %s", g.name, g.table.Spec().Name))
	}
	g.setTable(table, nil)
	g.late = true
	Output(g, j.Out)
	sj := &streamJoin[L, R, O]{g: g, j: j, table: table, left: joinOptions(opts).left}
	g.addInput(j.Left, func(r *recordCtx) error { return sj.handle(r, true) })
	g.addInput(j.Right, func(r *recordCtx) error { return sj.handle(r, false) })
	g.timers = append(g.timers, sj.fire)
}

type streamJoin[L, R, O any] struct {
	g     *Group
	j     StreamJoin[L, R, O]
	table tables.Table[joinBuffer]
	left  bool // a left join
}

func (s *streamJoin[L, R, O]) handle(r *recordCtx, left bool) error {
	if r.value == nil {
		return nil
	}
	key, g := r.gctx.Key(), s.g
	var t time.Time
	var id string
	if left {
		l, err := decodeKeyedInput(r, s.j.Left)
		if err != nil {
			return err
		}
		if s.j.LeftWhere != nil && !s.j.LeftWhere(key, l) {
			return nil
		}
		t, id = eventTime(s.j.LeftTime, l, r.gctx.Timestamp()), idOf(l)
	} else {
		rv, err := decodeKeyedInput(r, s.j.Right)
		if err != nil {
			return err
		}
		if s.j.RightWhere != nil && !s.j.RightWhere(key, rv) {
			return nil
		}
		t, id = eventTime(s.j.RightTime, rv, r.gctx.Timestamp()), idOf(rv)
	}
	prevRaw, _ := r.gctx.Value().([]byte)
	state, m, err := decodeWithMeta[joinBuffer, joinMeta](s.table.Codec, prevRaw)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("stored join buffer of %q: %w", key, err))
	}
	topic, offset := r.topic(), r.gctx.Offset()
	if last, ok := m.Offsets[topic]; ok && offset <= last {
		r.stats.duplicates.Add(1)
		s.send(r, m.Emits)
		if prevRaw != nil {
			r.gctx.SetValue(prevRaw)
		}
		return nil
	}
	buf := joinBuffer{}
	if state != nil {
		buf = *state
		buf.Left, buf.Right = slices.Clone(state.Left), slices.Clone(state.Right)
	}
	own, other := &buf.Left, &buf.Right
	if !left {
		own, other = &buf.Right, &buf.Left
	}
	if id != "" && slices.ContainsFunc(*own, func(b bufferedRecord) bool { return b.ID == id }) {
		r.stats.duplicates.Add(1)
		return nil
	}
	ms := t.UnixMilli()
	stream := g.streamTime(r.gctx.Partition(), t)
	if ms+s.closeAfter() <= stream {
		return g.sendLate(r, ms, stream)
	}
	rec := bufferedRecord{Time: ms, ID: id, Value: r.value, Headers: headerStrings(r.headers)}
	var emits [][]byte
	for i := range *other {
		o := &(*other)[i]
		if abs(o.Time-ms) > s.j.Within.Milliseconds() || o.Time+s.closeAfter() <= stream {
			continue
		}
		lb, rb := rec, *o
		if !left {
			lb, rb = *o, rec
		}
		out, err := s.pair(key, lb, &rb)
		if err != nil {
			return err
		}
		emits = append(emits, out)
		o.Matched, rec.Matched = true, true
	}
	*own = append(*own, rec)
	expired, err := s.expire(key, &buf, stream)
	if err != nil {
		return err
	}
	emits = append(emits, expired...)
	m.Emits = emits
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[topic] = offset
	if err := s.store(r, &buf, &m, stream); err != nil {
		return err
	}
	r.stats.applied.Add(1)
	s.send(r, emits)
	return nil
}

// closeAfter is how long after its event time a buffered record's window
// closes.
func (s *streamJoin[L, R, O]) closeAfter() int64 { return (s.j.Within + s.j.Grace).Milliseconds() }

// pair decodes a left and (if any) right record and joins them.
func (s *streamJoin[L, R, O]) pair(key string, lb bufferedRecord, rb *bufferedRecord) ([]byte, error) {
	l, err := decodeBuffered(lb, s.j.Left)
	if err != nil {
		return nil, err
	}
	var rp *R
	if rb != nil {
		rv, err := decodeBuffered(*rb, s.j.Right)
		if err != nil {
			return nil, err
		}
		rp = &rv
	}
	var out O
	if err := safely(func() (err error) { out, err = s.j.Join(key, l, rp); return err }); err != nil {
		return nil, err
	}
	b, err := s.j.Out.Codec.Encode(out)
	if err != nil {
		return nil, fail(ClassHandler, fmt.Errorf("encode join output: %w", err))
	}
	return b, nil
}

// expire drops the buffered records whose window stream time has closed,
// returning the outputs of a LeftJoin's unmatched left records.
func (s *streamJoin[L, R, O]) expire(key string, buf *joinBuffer, stream int64) ([][]byte, error) {
	var emits [][]byte
	closed := func(b bufferedRecord) bool { return b.Time+s.closeAfter() <= stream }
	for _, b := range buf.Left {
		if closed(b) && !b.Matched && s.left {
			out, err := s.pair(key, b, nil)
			if err != nil {
				return nil, err
			}
			emits = append(emits, out)
		}
	}
	buf.Left = slices.DeleteFunc(buf.Left, closed)
	buf.Right = slices.DeleteFunc(buf.Right, closed)
	return emits, nil
}

func (s *streamJoin[L, R, O]) store(r *recordCtx, buf *joinBuffer, m *joinMeta, stream int64) error {
	if len(buf.Left) == 0 && len(buf.Right) == 0 {
		if prev, _ := r.gctx.Value().([]byte); prev != nil {
			r.gctx.Delete()
		}
		return nil
	}
	m.StreamTime, m.Due = stream, 0
	for _, b := range slices.Concat(buf.Left, buf.Right) {
		if at := b.Time + s.closeAfter(); m.Due == 0 || at < m.Due {
			m.Due = at
		}
	}
	b, err := encodeWithMeta(s.table.Codec, *buf, m)
	if err != nil {
		return err
	}
	r.gctx.SetValue(b)
	return nil
}

// fire expires what stream time has closed for the key.
func (s *streamJoin[L, R, O]) fire(r *recordCtx) error {
	prevRaw, _ := r.gctx.Value().([]byte)
	if prevRaw == nil {
		return nil
	}
	state, m, err := decodeWithMeta[joinBuffer, joinMeta](s.table.Codec, prevRaw)
	if err != nil || state == nil {
		return err
	}
	topic, offset := r.topic(), r.gctx.Offset()
	if last, ok := m.Offsets[topic]; ok && offset <= last {
		s.send(r, m.Emits)
		r.gctx.SetValue(prevRaw)
		return nil
	}
	stream := s.g.streamTime(r.gctx.Partition(), time.Time{})
	buf := joinBuffer{Left: slices.Clone(state.Left), Right: slices.Clone(state.Right)}
	emits, err := s.expire(r.gctx.Key(), &buf, stream)
	if err != nil {
		return err
	}
	if len(buf.Left) == len(state.Left) && len(buf.Right) == len(state.Right) {
		return nil // nothing due
	}
	m.Emits = emits
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[topic] = offset
	if err := s.store(r, &buf, &m, stream); err != nil {
		return err
	}
	s.send(r, emits)
	return nil
}

func (s *streamJoin[L, R, O]) send(r *recordCtx, emits [][]byte) {
	if !s.g.live(r) {
		r.stats.suppressed.Add(int64(len(emits))) // a bootstrap group catching up
		return
	}
	for _, b := range emits {
		r.gctx.Emit(goka.Stream(s.j.Out.Name), r.gctx.Key(), b)
	}
}

func decodeBuffered[V any](b bufferedRecord, s tables.Stream[V]) (V, error) {
	var v V
	if _, isEvent := any(v).(codecs.Event); isEvent {
		var hs []codecs.Header
		for k, val := range b.Headers {
			hs = append(hs, codecs.Header{Key: k, Value: []byte(val)})
		}
		ev, err := codecs.DecodeEvent(b.Value, hs)
		return any(ev).(V), err
	}
	return s.Codec.Decode(b.Value)
}

// idOf is a CloudEvent's id, the identity of a re-sent record; other
// values have none.
func idOf[V any](v V) string {
	if ev, ok := any(v).(codecs.Event); ok {
		return ev.ID
	}
	return ""
}

func abs(d int64) int64 {
	if d < 0 {
		return -d
	}
	return d
}
