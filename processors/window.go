package processors

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// Windows says how a windowed aggregation groups records by event time:
// tumbling, hopping or session windows, with a grace period for records
// that arrive out of order. Build one with Tumbling, Hopping or Sessions.
//
// A window closes when the partition's stream time (the greatest event time
// seen on it) passes its end plus the grace period: a record for a closed
// window is late. It is not applied; it is counted (counter "late") and sent
// as it arrived to <group>-late with its coordinates. A closed window stays
// readable for its retention (Retain) and is then purged from the store and,
// once its key holds no window, from the changelog (a tombstone).
type Windows struct {
	kind                windowKind
	size, advance, gap  time.Duration
	grace, retain       time.Duration
	retainSet, graceSet bool
}

type windowKind uint8

const (
	windowTumbling windowKind = iota + 1
	windowHopping
	windowSession
)

// Tumbling windows: fixed-size, adjacent, not overlapping, aligned to the
// Unix epoch ([0, size), [size, 2·size), ...). A record falls in one.
func Tumbling(size time.Duration) Windows {
	return Windows{kind: windowTumbling, size: size, advance: size}
}

// Hopping windows: fixed-size windows starting every advance (aligned to the
// Unix epoch); with advance < size they overlap and a record falls in
// size/advance of them.
func Hopping(size, advance time.Duration) Windows {
	return Windows{kind: windowHopping, size: size, advance: advance}
}

// Sessions: per key, records closer than gap to each other in event time
// form one session; a record that bridges two sessions merges them. A
// session's window runs from its first record's time to its last's (both
// included) and closes gap after its last record (plus grace).
func Sessions(gap time.Duration) Windows {
	return Windows{kind: windowSession, gap: gap}
}

// Grace is how long after a window's end records are still applied to it
// (default 0: a record older than the window's end by the time stream time
// passed it is late).
func (w Windows) Grace(d time.Duration) Windows { w.grace, w.graceSet = d, true; return w }

// Retain is how long a closed window stays readable before it is purged
// (default: its size; a session's: its gap).
func (w Windows) Retain(d time.Duration) Windows { w.retain, w.retainSet = d, true; return w }

func (w Windows) validate() error {
	switch {
	case w.kind == 0:
		return errors.New("windows: use Tumbling, Hopping or Sessions")
	case w.kind == windowSession && w.gap <= 0:
		return fmt.Errorf("session windows: gap %v must be positive", w.gap)
	case w.kind != windowSession && (w.size <= 0 || w.advance <= 0 || w.advance > w.size):
		return fmt.Errorf("windows: size %v and advance %v must be positive, advance at most size", w.size, w.advance)
	case w.grace < 0 || w.retain < 0:
		return fmt.Errorf("windows: grace %v and retention %v must not be negative", w.grace, w.retain)
	}
	return nil
}

// closeAfter is how long after a window's End it closes.
func (w Windows) closeAfter() int64 {
	if w.kind == windowSession {
		return (w.gap + w.grace).Milliseconds()
	}
	return w.grace.Milliseconds()
}

// keepAfter is how long after closing a closed window is kept.
func (w Windows) keepAfter() int64 {
	switch {
	case w.retainSet:
		return w.retain.Milliseconds()
	case w.kind == windowSession:
		return w.gap.Milliseconds()
	}
	return w.size.Milliseconds()
}

// changelogRetention is the retention of a windowed table's changelog
// (cleanup.policy compact,delete): a key's last write is older than its
// newest window's life by then. A day more, as Kafka Streams adds, for
// stream time that lags the wall clock.
func (w Windows) changelogRetention() time.Duration {
	life := w.size + w.gap + w.grace + time.Duration(w.keepAfter())*time.Millisecond
	return life + 24*time.Hour
}

// starts returns the starts of the fixed windows that contain t (ms).
func (w Windows) starts(t int64) []int64 {
	size, adv := w.size.Milliseconds(), w.advance.Milliseconds()
	last := t - mod(t, adv)
	var out []int64
	for s := last; s > t-size; s -= adv {
		out = append(out, s)
	}
	slices.Reverse(out)
	return out
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Window is one window of a key: [Start, End) for tumbling and hopping
// windows; for a session, the times of its first and last records.
type Window[A any] struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value A         `json:"value"`
	// Closed: stream time has passed the window's end and grace; its value
	// is final.
	Closed bool `json:"closed,omitempty"`
}

// Windowed is the value of a windowed table as readers get it (views,
// tables.Store.Read): a key's windows, in start order.
type Windowed[A any] struct {
	Key     string      `json:"key"`
	Windows []Window[A] `json:"windows"`
}

// Between returns the windows that overlap [from, to); a zero from or to
// leaves that side open.
func (w Windowed[A]) Between(from, to time.Time) []Window[A] {
	out := []Window[A]{}
	for _, win := range w.Windows {
		if (!to.IsZero() && !win.Start.Before(to)) || (!from.IsZero() && !win.End.After(from) && !win.Start.Equal(from)) {
			continue
		}
		out = append(out, win)
	}
	return out
}

// WindowResult is a window's aggregate as a windowed aggregation emits it,
// keyed by the record key: on every update, or once when the window closes
// (Final). Removed marks a session that was merged into another (its key
// and start no longer hold a window).
type WindowResult[A any] struct {
	Key     string    `json:"key"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Value   A         `json:"value"`
	Final   bool      `json:"final,omitempty"`
	Removed bool      `json:"removed,omitempty"`
}

// WindowedAggregation configures a windowed aggregation (AggregateWindows).
type WindowedAggregation[In, A any] struct {
	Input   tables.Stream[In]
	Windows Windows
	// Time is the input's event time; nil: a CloudEvent's time, else the
	// Kafka record's timestamp.
	Time TimeOf[In]
	// Where, if set, picks the records that take part (the others are
	// skipped: no window, no stream time): a filter before the aggregation.
	Where func(key string, in In) bool
	// Init is a new window's value before its first record; nil: A's zero.
	Init func(key string) A
	// Add applies one record to a window's value. It must be a pure
	// function: the framework decides when it runs, and never runs it on a
	// restore.
	Add func(key string, agg A, in In) (A, error)
	// Merge combines two sessions' values when a record bridges them
	// (earlier session first); required for Sessions.
	Merge func(key string, a, b A) (A, error)
	// Results, if set, receives the windows' values: on every update (a
	// window's last update is its final value; nothing more is sent when it
	// closes), or with FinalOnly only once per window, when it closes
	// (Kafka Streams' suppress until the window closes), marked Final.
	Results   tables.Stream[WindowResult[A]]
	FinalOnly bool
}

// windowMeta is a windowed value's bookkeeping.
type windowMeta struct {
	timeMeta
	// Offsets is the last input offset applied per topic (the loop's:
	// the last timer request handled).
	Offsets map[string]int64 `json:"offsets,omitempty"`
	// Steps are what the key's last rememberedWindowSteps steps sent, as
	// sent: a record read again after a crash sends its step's results
	// again, byte for byte — not the windows' values now, which a later
	// step of the key may have changed (a session's last order).
	Steps []windowStep `json:"steps,omitempty"`
	// IDs are the CloudEvents ids of the key's last rememberedWindowIDs
	// records: a producer's re-send among them is not added twice.
	IDs []string `json:"ids,omitempty"`
}

// windowStep is what one step of a key sent: the results of the record (or
// timer request) at Topic/Offset.
type windowStep struct {
	Topic  string   `json:"topic"`
	Offset int64    `json:"offset"`
	Emits  [][]byte `json:"emits,omitempty"`
}

// rememberedWindowSteps bounds a windowed key's memory of what it sent.
const rememberedWindowSteps = 16

// record remembers what the step at topic/offset sent.
func (m *windowMeta) record(topic string, offset int64, emits [][]byte) {
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[topic] = offset
	m.Steps = append(m.Steps, windowStep{Topic: topic, Offset: offset, Emits: emits})
	if len(m.Steps) > rememberedWindowSteps {
		m.Steps = slices.Delete(m.Steps, 0, len(m.Steps)-rememberedWindowSteps)
	}
}

// sendAgain sends what the step at topic/offset sent, if the key still
// remembers it.
func (a *windowAgg[In, A]) sendAgain(r *recordCtx, m windowMeta, topic string, offset int64) {
	for _, st := range m.Steps {
		if st.Topic == topic && st.Offset == offset {
			a.send(r, st.Emits)
		}
	}
}

// rememberedWindowIDs bounds a windowed key's memory of applied event ids.
const rememberedWindowIDs = 32

// AggregateWindows makes g aggregate its input per key and window into the
// group's table, <group>-table, whose value per key reads as a Windowed[A]
// (through views; restored from the changelogs without running Add).
// Per record: its event time picks its windows; a late record goes to
// <group>-late; a record read again after a crash (its offset applied
// already) sends its step's results and the key's windows again and changes
// nothing; a CloudEvent re-sent by its producer (an id among the key's last
// 32) is not added again. Windows close on stream time: when a record moves
// it past their end and grace, or when the runtime finds their timer due
// (see Policy.TimerInterval); closing sends the final result with FinalOnly.
//
// Each window is an entry of its own, keyed by (key, window start): in the
// table's stores a part of the key's value (tables.Parts), and in Kafka a
// record of <group>-windows whose value is the window's value (A as JSON),
// keyed by key, NUL, start (unix ms, 8 bytes big endian, sign bit flipped:
// tables.PartRecordKey), compacted and deleted after the table's retention,
// in the partition of its key. The key's value in <group>-table holds the
// bookkeeping, the list of its windows (start, end, closed) and the windows
// its step changed or removed: a step writes what it changed, however many
// windows the key keeps (see windowState), and a window is sent to
// <group>-windows once a later step of its key no longer changes it (see
// store).
func AggregateWindows[In, A any](g *Group, wa WindowedAggregation[In, A]) tables.Table[Windowed[A]] {
	table := GroupTable[Windowed[A]](g.name)
	retention := strconv.FormatInt(wa.Windows.changelogRetention().Milliseconds(), 10)
	table.Configs = map[string]string{"cleanup.policy": "compact,delete", "retention.ms": retention}
	if err := wa.Windows.validate(); err != nil {
		g.errs = append(g.errs, fmt.Errorf("group %s: %w", g.name, err))
	}
	if wa.Add == nil || (wa.Windows.kind == windowSession && wa.Merge == nil) {
		g.errs = append(g.errs, fmt.Errorf("group %s: a windowed aggregation needs Add (and Merge for sessions)", g.name))
	}
	if g.table != nil {
		g.errs = append(g.errs, fmt.Errorf("group %s: a windowed aggregation keeps the group's table; it already has %s", g.name, g.table.Spec().Name))
	}
	g.setTable(table, nil)
	g.late = true
	if wa.Results.Name != "" {
		Output(g, wa.Results)
	}
	agg := &windowAgg[In, A]{g: g, wa: wa, table: table}
	g.partsTopic = tables.Stream[[]byte]{Name: g.WindowsTopic(), Codec: codecs.Bytes{}, Partitions: g.declaredPartitions(),
		Configs: map[string]string{"cleanup.policy": "compact,delete", "retention.ms": retention}}
	g.parts = &tables.Parts{Changes: windowChanges, Join: agg.join, Topic: g.WindowsTopic()}
	g.addInput(wa.Input, agg.handle)
	g.timers = append(g.timers, agg.fire)
	return table
}

// WindowsTopic is the topic of a windowed aggregation's windows,
// <group>-windows: one record per key and window, a tombstone once the
// window is purged.
func (g *Group) WindowsTopic() string { return g.name + "-windows" }

type windowAgg[In, A any] struct {
	g     *Group
	wa    WindowedAggregation[In, A]
	table tables.Table[Windowed[A]]
}

func (a *windowAgg[In, A]) handle(r *recordCtx) error {
	if r.value == nil {
		return nil // a tombstone on a stream: nothing to aggregate
	}
	in, err := decodeKeyedInput(r, a.wa.Input)
	if err != nil {
		return err
	}
	key, g := r.gctx.Key(), a.g
	if a.wa.Where != nil && !a.wa.Where(key, in) {
		return nil
	}
	prevRaw, _ := r.gctx.Value().([]byte)
	state, m, err := decodeWindowState(prevRaw)
	if err != nil {
		return fail(ClassDecode, fmt.Errorf("stored windows of %q: %w", key, err))
	}
	topic, offset := r.topic(), r.gctx.Offset()
	if last, ok := m.Offsets[topic]; ok && offset <= last {
		r.stats.duplicates.Add(1)
		return a.again(r, state, prevRaw, m, topic, offset)
	}
	id := idOf(in)
	if id != "" && slices.Contains(m.IDs, id) {
		r.stats.duplicates.Add(1)
		return nil
	}
	t := eventTime(a.wa.Time, in, r.gctx.Timestamp()).UnixMilli()
	stream := g.streamTime(r.gctx.Partition(), time.UnixMilli(t))
	ws := a.windows(r, key, state)
	var sent, removed []int64
	if a.wa.Windows.kind == windowSession {
		sent, removed, err = a.addSession(ws, key, in, t, stream)
	} else {
		sent, err = a.addFixed(ws, key, in, t, stream)
	}
	if err != nil {
		return err
	}
	if len(sent) == 0 {
		return a.g.sendLate(r, t, stream)
	}
	closed := a.closeDue(ws, stream)
	if a.wa.FinalOnly {
		sent, removed = closed, nil
	}
	emits, err := a.results(r, ws, sent, removed)
	if err != nil {
		return err
	}
	m.record(topic, offset, emits)
	if id != "" {
		m.IDs = append(m.IDs, id)
		if len(m.IDs) > rememberedWindowIDs {
			m.IDs = slices.Delete(m.IDs, 0, len(m.IDs)-rememberedWindowIDs)
		}
	}
	if err := a.store(r, ws, &m, stream); err != nil {
		return err
	}
	r.stats.applied.Add(1)
	a.send(r, emits)
	return nil
}

// again handles a record (or timer request) read again after a crash: its
// step's results are sent again as sent, the key's value is written again
// and so are its windows, every one of them (and the removals of its last
// step): whatever of the step's records the crash lost is in Kafka again,
// and a window a lost record of an earlier step had changed too.
func (a *windowAgg[In, A]) again(r *recordCtx, state *windowState, prevRaw []byte, m windowMeta, topic string, offset int64) error {
	a.sendAgain(r, m, topic, offset)
	if prevRaw == nil {
		return nil
	}
	r.gctx.SetValue(prevRaw)
	key := r.gctx.Key()
	ws := a.windows(r, key, state)
	for _, ref := range ws.index {
		b, err := ws.raw(ref.Start)
		if err != nil {
			return err
		}
		if b != nil {
			a.emitPart(r, key, ref.Start, b)
		}
	}
	for _, s := range state.Removed {
		a.emitPart(r, key, s, nil)
	}
	return nil
}

// addFixed applies in to the tumbling or hopping windows that contain t and
// are still open, and returns their starts (none: the record is late).
func (a *windowAgg[In, A]) addFixed(ws *windowSet[A], key string, in In, t, stream int64) ([]int64, error) {
	var sent []int64
	size := a.wa.Windows.size.Milliseconds()
	for _, s := range a.wa.Windows.starts(t) {
		if s+size+a.wa.Windows.closeAfter() <= stream {
			continue // closed: late for this window
		}
		i, found := ws.find(s)
		if found && ws.index[i].Closed {
			continue
		}
		var win Window[A]
		if found {
			var err error
			if win, err = ws.load(s); err != nil {
				return nil, err
			}
		} else {
			ws.index = slices.Insert(ws.index, i, windowRef{Start: s, End: s + size})
			win = Window[A]{Start: time.UnixMilli(s).UTC(), End: time.UnixMilli(s + size).UTC(), Value: a.init(key)}
		}
		v, err := a.add(key, win.Value, in)
		if err != nil {
			return nil, err
		}
		win.Value = v
		ws.put(win)
		sent = append(sent, s)
	}
	return sent, nil
}

// addSession applies in to its session: a new one, or the open sessions
// within gap of t merged into one. It returns the session's start and the
// starts of the sessions merged away (none sent: the record is late).
func (a *windowAgg[In, A]) addSession(ws *windowSet[A], key string, in In, t, stream int64) (sent, removed []int64, err error) {
	gap := a.wa.Windows.gap.Milliseconds()
	merged := windowRef{Start: t, End: t}
	var parts []windowRef
	for _, ref := range ws.index {
		if !ref.Closed && ref.Start-gap <= t && t <= ref.End+gap {
			parts = append(parts, ref)
			merged.Start, merged.End = min(merged.Start, ref.Start), max(merged.End, ref.End)
		}
	}
	if merged.End+a.wa.Windows.closeAfter() <= stream {
		return nil, nil, nil // untouched: the record is late
	}
	value := a.init(key)
	for i, p := range parts {
		win, err := ws.load(p.Start)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			value = win.Value
			continue
		}
		err = safely(func() (err error) { value, err = a.wa.Merge(key, value, win.Value); return err })
		if err != nil {
			return nil, nil, err
		}
	}
	if value, err = a.add(key, value, in); err != nil {
		return nil, nil, err
	}
	for _, p := range parts {
		if p.Start != merged.Start {
			ws.remove(p.Start)
			removed = append(removed, p.Start)
		}
	}
	i, found := ws.find(merged.Start)
	if found {
		ws.index[i] = merged
	} else {
		ws.index = slices.Insert(ws.index, i, merged)
	}
	ws.put(Window[A]{Start: time.UnixMilli(merged.Start).UTC(), End: time.UnixMilli(merged.End).UTC(), Value: value})
	return []int64{merged.Start}, removed, nil
}

func (a *windowAgg[In, A]) init(key string) A {
	if a.wa.Init == nil {
		var zero A
		return zero
	}
	return a.wa.Init(key)
}

func (a *windowAgg[In, A]) add(key string, agg A, in In) (A, error) {
	var out A
	err := safely(func() (err error) { out, err = a.wa.Add(key, agg, in); return err })
	return out, err
}

// closeDue closes the windows whose end and grace stream time has passed
// and purges those whose retention is over. It returns the starts of the
// windows it closed. With FinalOnly a window is never closed and purged in
// the same step, so the step that sends its final result leaves it readable
// (and a request read again after a crash can send it again); without, a
// close sends nothing and the two may come together. Neither reads a
// window's value: closing marks the key's list of windows.
func (a *windowAgg[In, A]) closeDue(ws *windowSet[A], stream int64) (closed []int64) {
	w := a.wa.Windows
	for _, ref := range slices.Clone(ws.index) {
		closeAt := ref.End + w.closeAfter()
		purgeAt := closeAt + w.keepAfter()
		switch {
		case purgeAt <= stream && (ref.Closed || !a.wa.FinalOnly):
			ws.remove(ref.Start)
		case !ref.Closed && closeAt <= stream:
			i, _ := ws.find(ref.Start)
			ws.index[i].Closed = true
			closed = append(closed, ref.Start)
		}
	}
	return closed
}

// nextDue is the stream time at which the key's windows next need a timer
// (0: none). With FinalOnly: the earliest close of an open window, which
// sends its final result; once all are closed, the last purge. Without:
// only the last purge, when the key's windows are all past their retention
// — closing and purging on the way happen on the key's next records, so an
// idle key costs one timer, not one per window.
func (a *windowAgg[In, A]) nextDue(index []windowRef) int64 {
	w := a.wa.Windows
	var firstClose, lastPurge int64
	for _, ref := range index {
		closeAt := ref.End + w.closeAfter()
		lastPurge = max(lastPurge, closeAt+w.keepAfter())
		if !ref.Closed && (firstClose == 0 || closeAt < firstClose) {
			firstClose = closeAt
		}
	}
	if a.wa.FinalOnly && firstClose != 0 {
		return firstClose
	}
	return lastPurge
}

// store writes the key's value — its bookkeeping, its list of windows and
// the windows the step changed or removed — or a tombstone when no window
// is left.
//
// <group>-windows gets the windows the previous step changed and this one
// did not, with the value the key's value no longer carries, and a
// tombstone for each window removed. A window the step changed is in the
// key's value, which compaction keeps (the key's last): it is sent once a
// later step leaves it, so a window its key updates many times in a row
// costs one record, not one per update (Kafka Streams' record cache does
// the like). A store restoring from both topics gets each window from the
// key's last value or, if that value did not change it, from
// <group>-windows.
func (a *windowAgg[In, A]) store(r *recordCtx, ws *windowSet[A], m *windowMeta, stream int64) error {
	key := r.gctx.Key()
	st := windowState{Key: key, Index: flatIndex(ws.index), Removed: ws.removed}
	var sent []windowPart
	for _, s := range ws.changedStarts() {
		b, err := encodeWindow(ws.values[s])
		if err != nil {
			return err
		}
		sent = append(sent, windowPart{Start: s, Value: b})
	}
	st.Changed = sent
	if !ws.parted {
		// No store keeps the windows (goka's tester): the value carries
		// all of them.
		st.Changed = nil
		for _, ref := range ws.index {
			b, err := ws.raw(ref.Start)
			if err != nil {
				return err
			}
			st.Changed = append(st.Changed, windowPart{Start: ref.Start, Value: b})
		}
	}
	if len(ws.index) == 0 {
		if prev, _ := r.gctx.Value().([]byte); prev != nil {
			r.gctx.Delete()
		}
	} else {
		m.StreamTime, m.Due = stream, a.nextDue(ws.index)
		b, err := encodeWithMeta(windowStateCodec, st, m)
		if err != nil {
			return err
		}
		r.gctx.SetValue(b)
	}
	flush := sent
	if ws.parted {
		flush = nil
		for _, s := range slices.Sorted(maps.Keys(ws.prev)) {
			if _, found := ws.find(s); found && !ws.changed[s] {
				flush = append(flush, windowPart{Start: s, Value: ws.prev[s]})
			}
		}
	}
	for _, p := range flush {
		a.emitPart(r, key, p.Start, p.Value)
	}
	for _, s := range ws.removed {
		a.emitPart(r, key, s, nil)
	}
	return nil
}

// emitPart sends window start of key to <group>-windows (nil: a
// tombstone), partitioned by key. Always, also while a bootstrap group
// catches up: it is the table's state, not a result.
func (a *windowAgg[In, A]) emitPart(r *recordCtx, key string, start int64, b []byte) {
	var v any
	if b != nil {
		v = b
	}
	r.gctx.Emit(goka.Stream(a.g.partsTopic.Name), string(tables.PartRecordKey(key, windowSub(start))), v,
		goka.WithCtxEmitHeaders(goka.Headers{tables.HeaderPartitionKey: []byte(key)}))
}

// fire handles a timer request for the key: closes and purges what stream
// time has made due, sending the final results.
func (a *windowAgg[In, A]) fire(r *recordCtx) error {
	prevRaw, _ := r.gctx.Value().([]byte)
	if prevRaw == nil {
		return nil
	}
	state, m, err := decodeWindowState(prevRaw)
	if err != nil || state == nil {
		return err
	}
	topic, offset := r.topic(), r.gctx.Offset()
	if last, ok := m.Offsets[topic]; ok && offset <= last {
		return a.again(r, state, prevRaw, m, topic, offset)
	}
	stream := a.g.streamTime(r.gctx.Partition(), time.Time{})
	ws := a.windows(r, r.gctx.Key(), state)
	closed := a.closeDue(ws, stream)
	if len(closed) == 0 && len(ws.removed) == 0 {
		return nil // not due (yet): a request sent twice, or stream time read ahead of the store
	}
	var finals []int64
	if a.wa.FinalOnly {
		finals = closed
	}
	emits, err := a.results(r, ws, finals, nil)
	if err != nil {
		return err
	}
	m.record(topic, offset, emits)
	if err := a.store(r, ws, &m, stream); err != nil {
		return err
	}
	r.stats.count("windows-closed")
	a.send(r, emits)
	return nil
}

// results encodes the step's results: the value of each window started at
// sent (with FinalOnly only closed ones, marked Final) and a removal for
// each session merged away.
func (a *windowAgg[In, A]) results(r *recordCtx, ws *windowSet[A], sent, removed []int64) ([][]byte, error) {
	if a.wa.Results.Name == "" {
		return nil, nil
	}
	key := r.gctx.Key()
	var out [][]byte
	add := func(res WindowResult[A]) {
		b, err := a.wa.Results.Codec.Encode(res)
		if err != nil {
			a.g.log.Warn("window result: encode", "key", key, "err", err)
			return
		}
		out = append(out, b)
	}
	for _, s := range sent {
		i, found := ws.find(s)
		if !found || (a.wa.FinalOnly && !ws.index[i].Closed) {
			continue
		}
		win, err := ws.load(s)
		if err != nil {
			return nil, err
		}
		ref := ws.index[i]
		add(WindowResult[A]{Key: key, Start: time.UnixMilli(ref.Start).UTC(), End: time.UnixMilli(ref.End).UTC(), Value: win.Value, Final: ref.Closed})
	}
	for _, s := range removed {
		add(WindowResult[A]{Key: key, Start: time.UnixMilli(s).UTC(), Removed: true})
	}
	return out, nil
}

// send sends a step's results under the key (nothing while a bootstrap
// group catches up).
func (a *windowAgg[In, A]) send(r *recordCtx, emits [][]byte) {
	if !a.g.live(r) {
		r.stats.suppressed.Add(int64(len(emits)))
		return
	}
	for _, b := range emits {
		r.gctx.Emit(goka.Stream(a.wa.Results.Name), r.gctx.Key(), b)
	}
}

// Late records.

// Headers of a record sent to <group>-late, beside the dead-letter
// coordinate headers (kafka_dlt-original-*).
const (
	HeaderEventTime  = "streamfold-event-time"  // the record's event time, RFC 3339
	HeaderStreamTime = "streamfold-stream-time" // the partition's stream time when it arrived
)

// LateTopic is the topic a group sends records that came later than their
// windows' grace: <group>-late.
func (g *Group) LateTopic() string { return g.name + "-late" }

// sendLate sends r, which came later than its grace (event time t, the
// partition's stream time stream), to <group>-late as it arrived, with its
// coordinates and both times in headers, and counts it.
func (g *Group) sendLate(r *recordCtx, t, stream int64) error {
	r.stats.count("late")
	h := headerMap(r.headers)
	h[HeaderOriginalTopic] = []byte(r.topic())
	h[HeaderOriginalPartition] = []byte(strconv.Itoa(int(r.gctx.Partition())))
	h[HeaderOriginalOffset] = []byte(strconv.FormatInt(r.gctx.Offset(), 10))
	h[HeaderOriginalGroup] = []byte(g.name)
	h[HeaderOriginalKey] = []byte(r.gctx.Key())
	h[HeaderEventTime] = []byte(time.UnixMilli(t).UTC().Format(time.RFC3339Nano))
	h[HeaderStreamTime] = []byte(time.UnixMilli(stream).UTC().Format(time.RFC3339Nano))
	g.log.Info("late record: past its window and grace", "topic", r.topic(), "partition", r.gctx.Partition(),
		"offset", r.gctx.Offset(), "key", r.gctx.Key(), "eventTime", time.UnixMilli(t).UTC(), "streamTime", time.UnixMilli(stream).UTC())
	r.gctx.Emit(goka.Stream(g.LateTopic()), r.gctx.Key(), r.value, goka.WithCtxEmitHeaders(h))
	return nil
}

// lateStream is the handle of <group>-late: raw records, as they arrived.
func (g *Group) lateStream() tables.Stream[[]byte] {
	return tables.Stream[[]byte]{Name: g.LateTopic(), Codec: codecs.Bytes{}}
}

// decodeKeyedInput decodes a record of stream s; a CloudEvent must be about
// its record's key (a missing subject takes it; a repartitioned one keeps
// its old key).
func decodeKeyedInput[In any](r *recordCtx, s tables.Stream[In]) (In, error) {
	in, err := decodeInput(s.Codec, r)
	if err != nil {
		return in, err
	}
	if ev, ok := any(in).(codecs.Event); ok {
		if err := recordSubjectIsKey(r, &ev); err != nil {
			return in, err
		}
		in = any(ev).(In)
	}
	return in, nil
}
