package processors

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// Apply folds one event into a state. state is nil when the key has none; a nil
// result removes the key (a tombstone in the table, gone from every view and
// index). Apply must be a pure function of its inputs: it runs again for the
// same event only if the table lost it.
type Apply[S any] func(state *S, ev codecs.Event) (*S, error)

// Project makes g fold a stream of CloudEvents into the group's table and
// returns the table's handle. Records decode with the stream's codec when it
// reads records (codecs.RecordDecoder: CloudEvents, DebeziumEvents for a
// Debezium change-event topic, DebeziumOutbox), else as CloudEvents in either
// content mode. Per record it:
//   - treats a Kafka tombstone (null value) on the input as "remove the key";
//   - dead-letters an undecodable event, an error or panic from apply, and an
//     event whose subject is not the record's key (class key-mismatch; a
//     missing subject takes the key; a record re-keyed by Repartition may
//     name its key before);
//   - skips an event already applied. The same input offset (a record
//     re-consumed after a crash before the offset commit) writes the
//     snapshot again, which is what puts it into the changelog when the crash
//     came before the changelog's acknowledgement. The same CloudEvents id at
//     another offset (a producer's retry), however old within the policy's
//     DedupHorizon, writes nothing: the ids are kept in the table's stores
//     beside the state (tables.WithSeen), written with each snapshot, and
//     sent to <group>-seen, from which a store that lost its disk gets them
//     back.
//
// The table is the group's: <group>-table, JSON-encoded, derived from the
// group's name and returned, so no table name is spelled twice. Options add
// secondary indexes (Indexed) or name a handle declared ahead of the
// topology (Into, for a handle other packages share). Projecting a second
// stream into the same group returns the same handle.
//
// A codec given with Into must encode S as a JSON object. The snapshot
// carries the framework's bookkeeping in a binary header in front of the
// state's bytes (internal/envelope): views read the state alone, and a
// consumer of the changelog outside the framework sees the header first.
func Project[S any](g *Group, in tables.Stream[codecs.Event], apply Apply[S], opts ...TableOption) tables.Table[S] {
	table := groupTable[S](g, opts)
	g.dedup = true
	p := projection[S]{g: g, table: table, apply: apply, seenTopic: goka.Stream(g.seenTopic()), decode: eventDecoder(in.Codec)}
	g.sweepers = append(g.sweepers, p.sweep)
	g.addInput(in, p.handle)
	return table
}

// GroupTable is the handle of the table a group named group keeps:
// <group>-table, JSON-encoded, with indexes. Declare it ahead of the
// topology (as a package variable other packages read) and hand it to
// Project or HandleCommands with Into.
func GroupTable[S any](group string, indexes ...tables.Index) tables.Table[S] {
	return tables.NewTable[S](tableTopic(group), codecs.JSON[S]{}, indexes...)
}

func tableTopic(group string) string { return string(goka.GroupTable(goka.Group(group))) }

// TableOption tunes the table a Project or HandleCommands declares.
type TableOption func(*tableDecl)

type tableDecl struct {
	handle  any // a tables.Table[S] given with Into
	indexes []tables.Index
}

// Indexed adds secondary indexes to the group's table.
func Indexed(indexes ...tables.Index) TableOption {
	return func(d *tableDecl) { d.indexes = append(d.indexes, indexes...) }
}

// Into uses a handle declared ahead of the topology (see GroupTable) as
// the group's table: its name must be the group's table name and its value
// type the fold's state, else the group does not validate.
func Into[S any](t tables.Table[S]) TableOption {
	return func(d *tableDecl) { d.handle = t }
}

// groupTable declares the group's table for a block over state S and
// returns its handle: the one given with Into, the one an earlier block
// declared, or a new JSON one. A mismatch is recorded for Validate.
func groupTable[S any](g *Group, opts []TableOption) tables.Table[S] {
	var d tableDecl
	for _, o := range opts {
		o(&d)
	}
	var table tables.Table[S]
	switch h := d.handle.(type) {
	case nil:
		table = GroupTable[S](g.name, d.indexes...)
		if prev, ok := g.table.(tables.Table[S]); ok {
			table = prev
			table.Indexes = append(slices.Clone(prev.Indexes), d.indexes...)
		}
	case tables.Table[S]:
		table = h
		table.Indexes = append(slices.Clone(h.Indexes), d.indexes...)
	default:
		g.errs = append(g.errs, fmt.Errorf("group %s: table %s does not hold the fold's state %s", g.name, h.(tables.Topic).Spec().Name, typeName[S]()))
		return GroupTable[S](g.name, d.indexes...)
	}
	if g.table != nil {
		if _, ok := g.table.(tables.Table[S]); !ok {
			g.errs = append(g.errs, fmt.Errorf("group %s: its table holds %s, not %s", g.name, g.table.Spec().ValueType, typeName[S]()))
		}
	}
	g.setTable(table, table.Indexes)
	return table
}

func typeName[S any]() string { return tables.Table[S]{}.Spec().ValueType }

// projection is one input of a Project group.
type projection[S any] struct {
	g     *Group
	table tables.Table[S]
	apply Apply[S]
	// seenTopic is <group>-seen, named once: sendSeen runs for every event.
	seenTopic goka.Stream
	// decode reads an input record (and a parked one) into its event.
	decode func(value []byte, headers []codecs.Header) (codecs.Event, error)
}

// eventDecoder is how records of an event stream with codec c decode: with
// the codec when it reads records (codecs.RecordDecoder: CloudEvents,
// DebeziumEvents, DebeziumOutbox), else as CloudEvents in either content
// mode, whatever the codec.
func eventDecoder(c codecs.Codec[codecs.Event]) func([]byte, []codecs.Header) (codecs.Event, error) {
	if rd, ok := c.(codecs.RecordDecoder[codecs.Event]); ok {
		return rd.DecodeRecord
	}
	return codecs.DecodeEvent
}

func (p projection[S]) handle(r *recordCtx) error {
	g := p.g
	prevRaw, _ := r.gctx.Value().([]byte)
	if g.refuseRedrive(r, prevRaw) {
		return nil
	}
	if r.value == nil {
		if prevRaw != nil {
			r.gctx.Delete()
			r.stats.deleted.Add(1)
		}
		return nil
	}
	ev, err := p.decode(r.value, r.headers)
	if err != nil {
		return err
	}
	if err := recordSubjectIsKey(r, &ev); err != nil {
		return err
	}
	prev, m, err := decodeSnapshot(p.table.Codec, prevRaw)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("stored state of %q: %w", r.gctx.Key(), err))
	}
	topic, offset := r.topic(), r.gctx.Offset()
	if m.appliedOffset(topic, offset) {
		r.stats.duplicates.Add(1)
		// Write the snapshot again: when a crash came between the local
		// write and the changelog's acknowledgement, this is what puts it
		// into the changelog. The same goes for the id's seen record.
		r.gctx.SetValue(prevRaw)
		return p.resendSeen(r, ev.ID)
	}
	if dup, err := p.seen(r, m, ev.ID); err != nil || dup {
		if dup {
			// A producer's re-send: nothing to write, nothing to send —
			// but for a key this event deleted. Its record may be the one
			// re-read after a crash that came between the local delete
			// and the changelog's acknowledgement of the tombstone (a
			// deleted key keeps no offsets to tell): the tombstone is
			// written again, so the changelog never keeps a snapshot the
			// store no longer has.
			r.stats.duplicates.Add(1)
			if prevRaw == nil {
				r.gctx.Delete()
			}
		}
		return err
	}
	m.IDs, m.At = nil, 0
	var next *S
	err = safely(func() (err error) { next, err = p.apply(prev, ev); return err })
	if md, ok := errors.AsType[*MissingDependencyError](err); ok && md.Key == r.gctx.Key() && g.policy.MaxWait > 0 {
		// Park it under its parent's key (this key): stored with the snapshot,
		// re-driven in order once the parent is applied here.
		// Its id is not applied yet: a re-send meanwhile is caught among the
		// parked records, and one dead-lettered after MaxWait can be re-driven.
		m.record(topic, offset)
		m.Parked = append(m.Parked, parkedRecord{
			Topic: topic, Partition: r.gctx.Partition(), Offset: offset, Timestamp: r.gctx.Timestamp(),
			Value: r.value, Headers: headerStrings(r.headers), Since: time.Now().UTC(), Kind: md.Kind, ID: ev.ID,
		})
		r.stats.count("parked")
		g.log.Info("parked record until its parent arrives", "topic", topic, "partition", r.gctx.Partition(),
			"offset", offset, "key", r.gctx.Key(), "waitsFor", md.Kind)
		return p.store(r, prev, m)
	}
	if err != nil {
		return err
	}
	m.record(topic, offset)
	m.applied(ev.ID, p.g.now())
	next, m = p.release(r, next, m)
	if next == nil && prev != nil && g.refuseRedrivenDelete(r, prevRaw) {
		return nil
	}
	if next == nil {
		if prev != nil || prevRaw != nil {
			r.gctx.Delete()
			r.stats.deleted.Add(1)
		}
		// The tombstone carries no ids: the store records them apart.
		if st, ok := g.store(r.gctx.Partition()); ok {
			if err := st.Remember(r.gctx.Key(), m.IDs, time.UnixMilli(m.At)); err != nil {
				return err
			}
		}
		p.sendSeen(r, m)
		return nil
	}
	if err := p.store(r, next, m); err != nil {
		return err
	}
	p.sendSeen(r, m)
	r.stats.applied.Add(1)
	return nil
}

// seen reports whether the event id was applied under this key within the
// horizon (asked of the store; a group without stores bound knows only the
// ids of the key's last write), or is parked here.
func (p projection[S]) seen(r *recordCtx, m meta, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	// The key's last write (also a store of before the ids were kept
	// apart, which holds the last few) and its parked records first: free.
	if slices.Contains(m.IDs, id) || slices.ContainsFunc(m.Parked, func(pr parkedRecord) bool { return pr.ID == id }) {
		return true, nil
	}
	st, ok := p.g.store(r.gctx.Partition())
	if !ok {
		return false, nil
	}
	dup, err := st.Seen(r.gctx.Key(), id)
	if err != nil {
		return false, fail(ClassTransient, err)
	}
	return dup, nil
}

// sendSeen sends the ids the write applied to <group>-seen, under the key.
// goka commits the input offset only after it is acknowledged.
func (p projection[S]) sendSeen(r *recordCtx, m meta) {
	if len(m.IDs) == 0 {
		return
	}
	r.gctx.Emit(p.seenTopic, r.gctx.Key(), tables.EncodeSeenRecord(m.IDs, time.UnixMilli(m.At)))
}

// resendSeen sends the seen record of a record read again after a crash,
// if the store says it was applied (it may have been parked or
// dead-lettered instead).
func (p projection[S]) resendSeen(r *recordCtx, id string) error {
	st, ok := p.g.store(r.gctx.Partition())
	if id == "" || !ok {
		return nil
	}
	applied, err := st.Seen(r.gctx.Key(), id)
	if err != nil || !applied {
		return err
	}
	p.sendSeen(r, meta{IDs: []string{id}, At: p.g.now().UnixMilli()})
	return nil
}

// store writes the snapshot; a nil state with parked records is kept as
// bookkeeping only (readers of the view see no state: Absent).
func (p projection[S]) store(r *recordCtx, s *S, m meta) error {
	var v S
	m.Absent = s == nil
	if s != nil {
		v = *s
	}
	b, err := encodeSnapshot(p.table.Codec, v, m)
	if err != nil {
		return err
	}
	r.gctx.SetValue(b)
	return nil
}

// release re-drives parked records in their order now that state has moved
// on; it stops at the first that still misses its parent. Parked records past
// the policy's MaxWait are dead-lettered.
func (p projection[S]) release(r *recordCtx, s *S, m meta) (*S, meta) {
	g := p.g
	m = p.expire(r, m)
	for len(m.Parked) > 0 {
		pr := m.Parked[0]
		ev, err := p.decode(pr.Value, parkedHeaders(pr))
		var next *S
		if err == nil {
			err = safely(func() (err error) { next, err = p.apply(s, ev); return err })
		}
		if _, missing := errors.AsType[*MissingDependencyError](err); missing {
			break
		}
		m.Parked = m.Parked[1:]
		if err != nil {
			g.deadLetterRecord(r.gctx, parkedDeadRecord(pr, r.gctx.Key()), err)
			continue
		}
		if ev.ID != "" {
			m.IDs = append(m.IDs, ev.ID)
		}
		s = next
		r.stats.count("released")
		g.log.Info("released parked record", "topic", pr.Topic, "partition", pr.Partition, "offset", pr.Offset, "key", r.gctx.Key())
	}
	return s, m
}

// expire dead-letters parked records that waited longer than MaxWait.
func (p projection[S]) expire(r *recordCtx, m meta) meta {
	kept := m.Parked[:0]
	for _, pr := range m.Parked {
		if time.Since(pr.Since) > p.g.policy.MaxWait {
			p.g.deadLetterRecord(r.gctx, parkedDeadRecord(pr, r.gctx.Key()),
				fail(ClassMissingDependency, fmt.Errorf("%s %q did not arrive within %s", pr.Kind, r.gctx.Key(), p.g.policy.MaxWait)))
			continue
		}
		kept = append(kept, pr)
	}
	m.Parked = kept
	return m
}

// sweep handles a sweep request for this key (sent by the runtime's sweeper
// through the group's loop topic): it expires what waited too long.
func (p projection[S]) sweep(r *recordCtx) error {
	prevRaw, _ := r.gctx.Value().([]byte)
	if prevRaw == nil {
		return nil
	}
	prev, m, err := decodeSnapshot(p.table.Codec, prevRaw)
	if err != nil || len(m.Parked) == 0 {
		return err
	}
	before := len(m.Parked)
	m = p.expire(r, m)
	if len(m.Parked) == before {
		return nil
	}
	if prev == nil && len(m.Parked) == 0 {
		r.gctx.Delete()
		return nil
	}
	return p.store(r, prev, m)
}

// parkedRecord is a record waiting for its parent, as it arrived.
type parkedRecord = envelope.Parked

func parkedHeaders(pr parkedRecord) []codecs.Header {
	hs := make([]codecs.Header, 0, len(pr.Headers))
	for k, v := range pr.Headers {
		hs = append(hs, codecs.Header{Key: k, Value: []byte(v)})
	}
	return hs
}

func parkedDeadRecord(pr parkedRecord, key string) deadRecord {
	return deadRecord{topic: pr.Topic, partition: pr.Partition, offset: pr.Offset, timestamp: pr.Timestamp,
		key: key, value: pr.Value, headers: parkedHeaders(pr)}
}

func headerStrings(hs []codecs.Header) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// meta is the framework's bookkeeping stored with every snapshot of a
// fold; its fields are envelope.Meta's, its methods what they mean here.
type meta envelope.Meta

// appliedOffset reports a record read again: its offset is not after the
// last one applied from its topic.
func (m *meta) appliedOffset(topic string, offset int64) bool {
	last, ok := m.Offsets[topic]
	return ok && offset <= last
}

func (m *meta) record(topic string, offset int64) {
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[topic] = offset
}

// applied makes id the one this write applied, at now.
func (m *meta) applied(id string, now time.Time) {
	m.IDs, m.At = nil, now.UnixMilli()
	if id != "" {
		m.IDs = []string{id}
	}
}

// appliedIDs reads the ids a snapshot's write applied and when, for the
// store (tables.Seen.IDs). A snapshot without a time (written before it was
// recorded) gives the zero time: the store then counts from now.
func appliedIDs(_ string, snapshot []byte) ([]string, time.Time) {
	return envelope.Applied(snapshot)
}

// encodeSnapshot writes the snapshot of a fold's state s with its bookkeeping.
func encodeSnapshot[S any](c codecs.Codec[S], s S, m meta) ([]byte, error) {
	return encodeWithMeta(c, s, m)
}

// decodeSnapshot reads a stored snapshot; nil bytes and a snapshot marked
// absent mean no state.
func decodeSnapshot[S any](c codecs.Codec[S], b []byte) (*S, meta, error) {
	var m meta
	state, err := envelope.Decode(b, (*envelope.Meta)(&m))
	if err != nil {
		return nil, meta{}, err
	}
	if b == nil || m.Absent {
		return nil, m, nil
	}
	return decodeState(c, state, m)
}
