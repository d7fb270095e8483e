package processors

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// Joins: a stream joined to a table (JoinTable), a stream re-keyed through an
// internal topic (Repartition), and two tables joined on a foreign key
// (JoinForeign). Each declares what it reads and writes on its groups, so the
// topology creates, describes and co-partition-checks their topics like any
// other group's.

// Counters of the joins (Snapshot.Counters).
const (
	// CounterJoinUnmatched counts left records of an inner JoinTable whose
	// right side was missing: nothing was emitted for them.
	CounterJoinUnmatched = "join-unmatched"
	// CounterRepartitionRefused counts records whose new key Repartition's
	// keyOf refused (they are dead-lettered).
	CounterRepartitionRefused = "repartition-refused"
	// CounterJoinStaleResponse counts right-side answers of a JoinForeign that
	// arrived for a foreign key the left row no longer has (dropped).
	CounterJoinStaleResponse = "join-stale-response"
)

// HeaderRepartitionedFrom is set by Repartition on every record it re-keys:
// the key the record had before. A CloudEvent whose subject is that key is
// not a key-mismatch where it arrives (Project, AddReactor): it was re-keyed
// on purpose.
const HeaderRepartitionedFrom = "streamfold-repartitioned-from"

// JoinOption tunes a join.
type JoinOption func(*joinConfig)

type joinConfig struct {
	left          bool
	coPartitioned bool
}

// LeftJoin makes a join keep the left records that have no right side: the
// join function gets r == nil for them. Without it a join is inner: a left
// record without a right side gives no output (JoinTable counts it as
// join-unmatched; JoinForeign keeps no row for it).
func LeftJoin() JoinOption { return func(c *joinConfig) { c.left = true } }

// CoPartitioned makes JoinTable read the right table partition by partition
// beside the left stream (goka's Join) instead of through a lookup of the
// whole table: each instance holds only the right table's partitions of the
// left stream's partitions it owns. The left stream and the right table must
// then have the same partition count (and the same keys' partitioning): the
// topology's validation refuses the group otherwise, naming both topics and
// their counts. JoinForeign ignores it (its groups are co-partitioned by
// construction).
func CoPartitioned() JoinOption { return func(c *joinConfig) { c.coPartitioned = true } }

func joinOptions(opts []JoinOption) joinConfig {
	var c joinConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// JoinFunc joins a left value to its right side (nil when there is none, in a
// left join only) into the output. It runs in the partition's goroutine and
// must not have side effects: a record read again after a crash joins again.
type JoinFunc[L, R, O any] func(key string, l L, r *R) (O, error)

// JoinTable makes g join every record of left to the value under the same key
// in right and emit the result to out under the record's key. The right side
// is read as the group handles the record: through goka's lookup of the whole
// table (each instance holds a copy; the table need not be co-partitioned),
// or, with CoPartitioned, of the same partition only. A group table's
// bookkeeping is skipped and a key holding parked records only is no right
// side, as LookupValue reads them.
//
// Inner by default: a record without a right side emits nothing and is counted
// (CounterJoinUnmatched); with LeftJoin, join gets r == nil. A tombstone on
// left is skipped. An undecodable record or right value, and an error or
// panic from join, dead-letter the left record with its coordinates.
//
// When O is a codecs.Event its id is derived from the left record's (the
// CloudEvents id of an event, else its original topic, partition and offset)
// and its subject defaults to the key, so a record delivered again yields the
// same event and consumers drop the repeat. Handle a left stream keyed by
// another key with Repartition first.
func JoinTable[L, R, O any](g *Group, left tables.Stream[L], right tables.Table[R], join JoinFunc[L, R, O], out tables.Stream[O], opts ...JoinOption) {
	c := joinOptions(opts)
	if c.coPartitioned {
		g.joins = append(g.joins, right)
	} else {
		Lookup(g, right)
	}
	Output(g, out)
	g.addInput(left, func(r *recordCtx) error {
		if r.value == nil {
			return nil
		}
		l, err := decodeInput(left.Codec, r)
		if err != nil {
			return err
		}
		key := r.gctx.Key()
		var raw []byte
		if c.coPartitioned {
			raw, _ = r.gctx.Join(goka.Table(right.Name)).([]byte)
		} else {
			raw, _ = r.gctx.Lookup(goka.Table(right.Name), key).([]byte)
		}
		rv, err := tableValue(right, key, raw)
		if err != nil {
			return err
		}
		if rv == nil && !c.left {
			r.stats.count(CounterJoinUnmatched)
			return nil
		}
		var o O
		if err := safely(func() (err error) { o, err = join(key, l, rv); return err }); err != nil {
			return err
		}
		if ev, ok := any(o).(codecs.Event); ok {
			ev.ID = eventID(sourceID(r, l), "join:"+out.Name, 0)
			if ev.Subject == "" {
				ev.Subject = key
			}
			o = any(ev).(O)
		}
		b, err := out.Codec.Encode(o)
		if err != nil {
			return fail(ClassHandler, fmt.Errorf("encode joined value: %w", err))
		}
		r.stats.applied.Add(1)
		if !g.live(r) {
			// A bootstrap group catching up on history: its outputs went
			// out when the history was live.
			r.stats.suppressed.Add(1)
			return nil
		}
		r.gctx.Emit(goka.Stream(out.Name), key, b)
		return nil
	})
}

// Repartition makes g re-key every record of in by keyOf and write it to the
// internal topic <group>-<name>-repartition, whose handle it returns: a later
// group reads it keyed (and so co-partitioned) by the new key, e.g. orders
// re-keyed by product to be joined with the inventory. The topic has in's
// partition count (the group's: a group's inputs are co-partitioned) and
// in's codec. Each record goes on as it arrived — its bytes, so a
// CloudEvent keeps its id, and its headers — with HeaderRepartitionedFrom
// naming its old key.
//
// What keyOf refuses (an error or an empty key) is counted
// (CounterRepartitionRefused) and dead-lettered with its coordinates, as any
// handler error is; a tombstone is skipped (it has no value to take a key
// from).
func Repartition[V any](g *Group, in tables.Stream[V], keyOf func(key string, v V) (string, error), name string) tables.Stream[V] {
	out := tables.Stream[V]{Name: g.name + "-" + name + "-repartition", Codec: in.Codec, Partitions: in.Partitions}
	Output(g, out)
	g.addInput(in, func(r *recordCtx) error {
		if r.value == nil {
			return nil
		}
		v, err := decodeInput(in.Codec, r)
		if err != nil {
			return err
		}
		key := r.gctx.Key()
		var next string
		err = safely(func() (err error) { next, err = keyOf(key, v); return err })
		if err == nil && next == "" {
			err = errors.New("empty key")
		}
		if err != nil {
			r.stats.count(CounterRepartitionRefused)
			return fmt.Errorf("repartition %s: new key of %q: %w", out.Name, key, err)
		}
		h := headerMap(r.headers)
		h[HeaderRepartitionedFrom] = []byte(key)
		r.gctx.Emit(goka.Stream(out.Name), next, r.value, goka.WithCtxEmitHeaders(h))
		r.stats.applied.Add(1)
		return nil
	})
	return out
}

// recordSubjectIsKey is subjectIsKey for a record that may have been re-keyed
// by Repartition: a subject naming the key before is accepted too.
func recordSubjectIsKey(r *recordCtx, ev *codecs.Event) error {
	if ev.Subject != "" && ev.Subject != r.gctx.Key() {
		for _, h := range r.headers {
			if h.Key == HeaderRepartitionedFrom && string(h.Value) == ev.Subject {
				return nil
			}
		}
	}
	return subjectIsKey(ev, r.gctx.Key())
}

// decodeInput decodes the record in flight: with its headers when the
// stream's codec reads them (codecs.RecordDecoder), a CloudEvent in either
// content mode, anything else with the stream's codec.
func decodeInput[V any](c codecs.Codec[V], r *recordCtx) (V, error) {
	var v V
	if rd, ok := c.(codecs.RecordDecoder[V]); ok {
		v, err := rd.DecodeRecord(r.value, r.headers)
		if err != nil {
			return v, fail(ClassDecode, err)
		}
		return v, nil
	}
	if _, isEvent := any(v).(codecs.Event); isEvent {
		ev, err := codecs.DecodeEvent(r.value, r.headers)
		if err != nil {
			return v, fail(ClassDecode, err)
		}
		return any(ev).(V), nil
	}
	v, err := c.Decode(r.value)
	if err != nil {
		return v, fail(ClassDecode, err)
	}
	return v, nil
}

// lookupValue reads key from a lookup table of the group in flight.
func lookupValue[V any](gctx goka.Context, t tables.Table[V], key string) (*V, error) {
	raw, _ := gctx.Lookup(goka.Table(t.Name), key).([]byte)
	return tableValue(t, key, raw)
}

// tableValue decodes a table value as read from goka: nil (and a value of
// bookkeeping only) is no value; a group table's bookkeeping is skipped.
func tableValue[V any](t tables.Table[V], key string, raw []byte) (*V, error) {
	state, ok, err := tableState(raw)
	if err != nil || !ok {
		if err != nil {
			err = fail(ClassDecode, fmt.Errorf("%s/%s: %w", t.Name, key, err))
		}
		return nil, err
	}
	v, err := t.Codec.Decode(state)
	if err != nil {
		return nil, fail(ClassDecode, fmt.Errorf("%s/%s: %w", t.Name, key, err))
	}
	return &v, nil
}

// tableState is the state document of a table value (false: none).
func tableState(raw []byte) ([]byte, bool, error) {
	if raw == nil || envelope.Absent(raw) {
		return nil, false, nil
	}
	_, state, err := envelope.Split(raw)
	if err != nil {
		return nil, false, err
	}
	return state, true, nil
}

// sourceID names the record in flight for the ids of what it causes: a
// CloudEvent's id, else where it was first delivered (a record from a retry
// topic or re-driven from the dead letters carries those coordinates).
func sourceID[V any](r *recordCtx, v V) string {
	if ev, ok := any(v).(codecs.Event); ok && ev.ID != "" {
		return ev.ID
	}
	h := headerMap(r.headers)
	if t, ok := h[HeaderOriginalTopic]; ok {
		return fmt.Sprintf("%s/%s/%s", t, h[HeaderOriginalPartition], h[HeaderOriginalOffset])
	}
	return fmt.Sprintf("%s/%d/%d", r.topic(), r.gctx.Partition(), r.gctx.Offset())
}

// Foreign-key join.

// fkSubscription is a left key subscribing to (or leaving) a right key, sent
// to <group>-subscriptions keyed by the right key.
type fkSubscription struct {
	Left      string `json:"left"`
	Subscribe bool   `json:"subscribe"`
}

// fkResponse is a right key's value sent to one subscribed left key, on
// <group>-responses keyed by the left key.
type fkResponse struct {
	FK       string `json:"fk"`
	Right    []byte `json:"right,omitempty"`
	HasRight bool   `json:"hasRight,omitempty"`
}

// fkRight is the state of the right-keyed group: the right value (its state
// document) and the left keys subscribed to it, sorted.
type fkRight struct {
	Right       []byte   `json:"right,omitempty"`
	HasRight    bool     `json:"hasRight,omitempty"`
	Subscribers []string `json:"subscribers,omitempty"`
	// Offset is that of the right changelog's record last applied.
	Offset *int64 `json:"offset,omitempty"`
}

// fkRow is the bookkeeping of a row of the joined table: the left value and
// the right value it was joined with, as their tables' codecs wrote them.
// Pending: the row's foreign key changed and the new right side has not
// answered yet (the row keeps its last joined value meanwhile). Absent: no
// joined value (an inner join without a right side); readers see no row.
type fkRow struct {
	FK       string `json:"fk,omitempty"`
	Left     []byte `json:"left"`
	Right    []byte `json:"right,omitempty"`
	HasRight bool   `json:"hasRight,omitempty"`
	Pending  bool   `json:"pending,omitempty"`
	Absent   bool   `json:"absent,omitempty"`
	// Offset is that of the left changelog's record last applied, and
	// Unsubscribed the foreign key that record left, if it changed it: what
	// is sent again when the record is read again after a crash.
	Offset       *int64 `json:"offset,omitempty"`
	Unsubscribed string `json:"unsubscribed,omitempty"`
}

// ForeignKey gives the key of the right row a left value refers to; "" for
// none (a left join then joins it with r == nil, an inner join keeps no row).
type ForeignKey[L any] func(key string, l L) (string, error)

// JoinForeign makes g keep the join of two tables on a foreign key: for each
// row of left (e.g. orders keyed by order id) the row of right its foreignKey
// names (the order's customer), joined by join into the table it returns —
// <group>-table, keyed like left, JSON-encoded (O must encode as a JSON
// object), readable with views; GroupTable[O](name) is the same handle, for
// a package that declares it ahead of the topology. Declare the join on a
// group of its own; adding g to a topology adds its partner group.
//
// The joined row follows both sides: a change of the left row joins it again
// (with the right value it has); a change of the right row reaches every left
// row referring to it; a left row whose foreign key changes leaves its old
// right row and joins the new one once that answers (keeping its last joined
// value meanwhile); a deleted left row deletes its joined row; a deleted
// right row joins its left rows with r == nil (LeftJoin) or removes them
// (inner).
//
// Like Kafka Streams' foreign-key join it runs as two groups talking through
// internal topics. The partner, <group>-fk, is keyed by the foreign key: it
// reads right's changelog and <group>-subscriptions and keeps, per right
// key, the right value and the left keys subscribed to it
// (<group>-fk-table); it answers each subscription, and sends each change of
// the right value to every subscriber, on <group>-responses. g is keyed by
// the left key: it reads left's changelog and <group>-responses and keeps,
// with each joined row, the left value and the right value it joined
// (answers for a foreign key the row no longer has are dropped:
// CounterJoinStaleResponse). Each group's topics take its side's partition
// count, so both are co-partitioned; both tables restore from their
// changelogs without running a handler.
//
// A record read again after a crash is handled again: both groups' handlers
// are idempotent, so the joined rows converge to the same values. A right
// row's subscribers are one table value, so this suits right rows referred
// to by a bounded number of left rows (a customer's orders), as History
// suits bounded timelines.
func JoinForeign[L, R, O any](g *Group, left tables.Table[L], right tables.Table[R], foreignKey ForeignKey[L], join JoinFunc[L, R, O], opts ...JoinOption) tables.Table[O] {
	c := joinOptions(opts)
	out := GroupTable[O](g.name)
	out.Partitions = left.Partitions
	g.setTable(out, nil)
	subs := tables.Stream[fkSubscription]{Name: g.name + "-subscriptions", Codec: codecs.JSON[fkSubscription]{}, Partitions: right.Partitions}
	resps := tables.Stream[fkResponse]{Name: g.name + "-responses", Codec: codecs.JSON[fkResponse]{}, Partitions: left.Partitions}
	j := &fkJoin[L, R, O]{g: g, left: left, right: right, out: out, subs: subs, resps: resps, foreignKey: foreignKey, join: join, inner: !c.left}

	Output(g, subs)
	g.addInput(left, j.leftChanged)
	g.addInput(resps, j.answered)

	fk := NewGroup(g.name+"-fk", WithLogger(g.log), WithPolicy(g.policy), WithClock(g.now))
	j.fk = fk
	fkTable := tables.Table[fkRight]{Name: tableTopic(fk.name), Codec: codecs.JSON[fkRight]{}, Partitions: right.Partitions}
	fk.setTable(fkTable, nil)
	Output(fk, resps)
	fk.addInput(right, j.rightChanged)
	fk.addInput(subs, j.subscribed)
	g.needs = append(g.needs, fk)
	return out
}

type fkJoin[L, R, O any] struct {
	g, fk      *Group
	left       tables.Table[L]
	right      tables.Table[R]
	out        tables.Table[O]
	subs       tables.Stream[fkSubscription]
	resps      tables.Stream[fkResponse]
	foreignKey ForeignKey[L]
	join       JoinFunc[L, R, O]
	inner      bool
}

// The left-keyed group.

// row reads the key's joined row: its bookkeeping and joined state.
func (j *fkJoin[L, R, O]) row(r *recordCtx) (fkRow, []byte, bool, error) {
	raw, _ := r.gctx.Value().([]byte)
	if raw == nil {
		return fkRow{}, nil, false, nil
	}
	var row fkRow
	state, err := envelope.Decode(raw, &row)
	if err != nil {
		return fkRow{}, nil, false, fail(ClassDecode, fmt.Errorf("stored row of %q: %w", r.gctx.Key(), err))
	}
	return row, state, true, nil
}

func (j *fkJoin[L, R, O]) subscribe(r *recordCtx, fk string, on bool) error {
	b, err := j.subs.Codec.Encode(fkSubscription{Left: r.gctx.Key(), Subscribe: on})
	if err != nil {
		return fail(ClassHandler, err)
	}
	r.gctx.Emit(goka.Stream(j.subs.Name), fk, b)
	return nil
}

// leftChanged handles a record of left's changelog.
func (j *fkJoin[L, R, O]) leftChanged(r *recordCtx) error {
	prev, prevState, had, err := j.row(r)
	if err != nil {
		return err
	}
	state, ok, err := tableState(r.value)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("%s/%s: %w", j.left.Name, r.gctx.Key(), err))
	}
	if !ok {
		// The left row is gone: so is the joined one. The tombstone is
		// written also for a row that is gone already: read again after a
		// crash, this record may be the one whose tombstone the changelog lost.
		if had && prev.FK != "" {
			if err := j.subscribe(r, prev.FK, false); err != nil {
				return err
			}
		}
		if had {
			r.stats.deleted.Add(1)
		}
		r.gctx.Delete()
		return nil
	}
	off := r.gctx.Offset()
	if had && prev.Offset != nil && off <= *prev.Offset {
		// Read again after a crash. The row is ahead of this record; the
		// record it applied last is sent on again (its subscription
		// messages and its write may be what the crash lost), an earlier
		// one changes nothing.
		r.stats.duplicates.Add(1)
		if off < *prev.Offset {
			return nil
		}
		if prev.Unsubscribed != "" {
			if err := j.subscribe(r, prev.Unsubscribed, false); err != nil {
				return err
			}
		}
		if prev.FK != "" {
			if err := j.subscribe(r, prev.FK, true); err != nil {
				return err
			}
		}
		raw, _ := r.gctx.Value().([]byte)
		r.gctx.SetValue(raw)
		return nil
	}
	l, err := j.left.Codec.Decode(state)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("%s/%s: %w", j.left.Name, r.gctx.Key(), err))
	}
	var fk string
	if err := safely(func() (err error) { fk, err = j.foreignKey(r.gctx.Key(), l); return err }); err != nil {
		return err
	}
	row := fkRow{FK: fk, Left: bytes.Clone(state), Offset: &off}
	switch {
	case had && prev.FK == fk && prev.Pending:
		// Still waiting for the right side: it answers with what it has.
		row.Pending = true
		return j.store(r, row, prev.Absent, prevState)
	case had && prev.FK == fk:
		row.Right, row.HasRight = prev.Right, prev.HasRight
		return j.joinAndStore(r, row, l)
	}
	if had && prev.FK != "" {
		if err := j.subscribe(r, prev.FK, false); err != nil {
			return err
		}
		row.Unsubscribed = prev.FK
	}
	if fk == "" {
		return j.joinAndStore(r, row, l)
	}
	if err := j.subscribe(r, fk, true); err != nil {
		return err
	}
	row.Pending = true
	if !had {
		return j.store(r, row, true, nil)
	}
	return j.store(r, row, prev.Absent, prevState)
}

// answered handles the right side's answer for a left key.
func (j *fkJoin[L, R, O]) answered(r *recordCtx) error {
	if r.value == nil {
		return nil
	}
	resp, err := j.resps.Codec.Decode(r.value)
	if err != nil {
		return fail(ClassDecode, err)
	}
	row, _, had, err := j.row(r)
	if err != nil || !had {
		return err // no left row (any more): nothing to join
	}
	if row.FK != resp.FK {
		r.stats.count(CounterJoinStaleResponse)
		return nil
	}
	row.Right, row.HasRight, row.Pending = resp.Right, resp.HasRight, false
	l, err := j.left.Codec.Decode(row.Left)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("stored left value of %q: %w", r.gctx.Key(), err))
	}
	return j.joinAndStore(r, row, l)
}

// joinAndStore joins the row's left value with its right value and stores it.
func (j *fkJoin[L, R, O]) joinAndStore(r *recordCtx, row fkRow, l L) error {
	var rv *R
	if row.HasRight {
		v, err := j.right.Codec.Decode(row.Right)
		if err != nil {
			return fail(ClassDecode, fmt.Errorf("%s/%s: %w", j.right.Name, row.FK, err))
		}
		rv = &v
	}
	if rv == nil && j.inner {
		return j.store(r, row, true, nil)
	}
	var o O
	if err := safely(func() (err error) { o, err = j.join(r.gctx.Key(), l, rv); return err }); err != nil {
		return err
	}
	state, err := j.out.Codec.Encode(o)
	if err != nil {
		return fail(ClassHandler, fmt.Errorf("encode joined value: %w", err))
	}
	r.stats.applied.Add(1)
	return j.store(r, row, false, state)
}

// store writes the row: its joined state, or none (absent).
func (j *fkJoin[L, R, O]) store(r *recordCtx, row fkRow, absent bool, state []byte) error {
	row.Absent = absent || state == nil
	if row.Absent {
		state = []byte("{}")
	}
	b, err := envelope.Join(row, state)
	if err != nil {
		return fail(ClassHandler, fmt.Errorf("joined row of %q: %w", r.gctx.Key(), err))
	}
	r.gctx.SetValue(b)
	return nil
}

// The right-keyed group.

// rightState reads the right key's state; false when it has none.
func (j *fkJoin[L, R, O]) rightState(r *recordCtx) (fkRight, bool, error) {
	raw, _ := r.gctx.Value().([]byte)
	if raw == nil {
		return fkRight{}, false, nil
	}
	st, err := codecs.JSON[fkRight]{}.Decode(raw)
	if err != nil {
		return fkRight{}, false, fail(ClassDecode, fmt.Errorf("stored subscriptions of %q: %w", r.gctx.Key(), err))
	}
	return st, true, nil
}

// storeRight writes the right key's state; one with neither a value nor
// subscribers is deleted (its tombstone written again if it is gone already:
// a record read again after a crash may be the one whose tombstone the
// changelog lost).
func (j *fkJoin[L, R, O]) storeRight(r *recordCtx, st fkRight) error {
	if !st.HasRight && len(st.Subscribers) == 0 {
		r.gctx.Delete()
		return nil
	}
	b, err := codecs.JSON[fkRight]{}.Encode(st)
	if err != nil {
		return fail(ClassHandler, err)
	}
	r.gctx.SetValue(b)
	return nil
}

func (j *fkJoin[L, R, O]) answer(r *recordCtx, st fkRight, leftKey string) error {
	b, err := j.resps.Codec.Encode(fkResponse{FK: r.gctx.Key(), Right: st.Right, HasRight: st.HasRight})
	if err != nil {
		return fail(ClassHandler, err)
	}
	r.gctx.Emit(goka.Stream(j.resps.Name), leftKey, b)
	return nil
}

// rightChanged handles a record of right's changelog: every subscriber hears
// of the new value.
func (j *fkJoin[L, R, O]) rightChanged(r *recordCtx) error {
	st, had, err := j.rightState(r)
	if err != nil {
		return err
	}
	state, ok, err := tableState(r.value)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("%s/%s: %w", j.right.Name, r.gctx.Key(), err))
	}
	off := r.gctx.Offset()
	if had && st.Offset != nil && *st.Offset != off && ok == st.HasRight && bytes.Equal(state, st.Right) {
		// Only the right row's bookkeeping changed: its joins stay. (The
		// record last applied, read again after a crash, is sent again:
		// its answers may be what the crash lost.)
		r.stats.duplicates.Add(1)
		return nil
	}
	st.Right, st.HasRight, st.Offset = bytes.Clone(state), ok, &off
	for _, sub := range st.Subscribers {
		if err := j.answer(r, st, sub); err != nil {
			return err
		}
	}
	r.stats.applied.Add(1)
	return j.storeRight(r, st)
}

// subscribed handles a left key joining or leaving this right key; one that
// joins is answered with the right value at once.
func (j *fkJoin[L, R, O]) subscribed(r *recordCtx) error {
	if r.value == nil {
		return nil
	}
	sub, err := j.subs.Codec.Decode(r.value)
	if err != nil {
		return fail(ClassDecode, err)
	}
	st, had, err := j.rightState(r)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(st.Subscribers, sub.Left)
	switch {
	case sub.Subscribe:
		if !found {
			st.Subscribers = slices.Insert(st.Subscribers, i, sub.Left)
		}
		if err := j.answer(r, st, sub.Left); err != nil {
			return err
		}
	case found:
		st.Subscribers = slices.Delete(st.Subscribers, i, i+1)
	default:
		if !had {
			r.gctx.Delete() // see storeRight
		}
		return nil
	}
	r.stats.applied.Add(1)
	return j.storeRight(r, st)
}
