package processors

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// HeaderCatchUp marks a loopback record sent while its group was catching up
// in bootstrap mode: its side effects are suppressed too.
const HeaderCatchUp = "streamfold-catch-up"

// rememberedEffects bounds the per-key memory of handled inputs.
const rememberedEffects = 16

// React handles one input of a reactor. It may change the key's state and
// performs side effects only through rc, which records them in the state before
// the input is acknowledged.
type React[S, In any] func(rc *ReactContext, state *S, in In) (*S, error)

// Reactor configures one input of a reactor group.
type Reactor[S, In any] struct {
	// Table holds the state and the record of effects; the group's table.
	Table tables.Table[S]
	// Input is the stream handled; Loop marks the group's own <group>-loop.
	Input tables.Stream[In]
	Loop  bool
	React React[S, In]
	// ID names an input for deduplication and is the seed of the ids of the
	// events it causes; default: a CloudEvent's id, else topic/partition/offset.
	ID func(In) string
	// Time is the input's event time, which moves the partition's stream
	// time (for timers set with SetStreamTimer); nil: a CloudEvent's time,
	// else the Kafka record's timestamp.
	Time TimeOf[In]
	// OnTimer handles the key's timers (ReactContext.SetTimer) when they
	// are due, like an input: it may change the state and perform effects
	// through rc. One reactor input of a group that sets timers gives it.
	OnTimer func(rc *ReactContext, state *S, t Timer) (*S, error)
}

// Timer is a timer a reactor set for its key: due At, in wall-clock time or
// (Stream) in the partition's stream time. It is kept in the key's state,
// so it survives restarts and rebalances and fires on the partition's owner,
// once: its effects are recorded like an input's.
type Timer struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Stream bool      `json:"stream,omitempty"`
}

// effectRecord is what a state remembers of one handled input.
type effectRecord struct {
	Input  string       `json:"input"`
	Topic  string       `json:"topic"`
	Offset int64        `json:"offset"`
	Emits  []emitRecord `json:"emits,omitempty"`
}

type emitRecord struct {
	Topic   string            `json:"topic"`
	Key     string            `json:"key"`
	Value   []byte            `json:"value"`
	Loop    bool              `json:"loop,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

type reactMeta struct {
	timeMeta
	Effects []effectRecord `json:"effects,omitempty"`
	// Timers are the key's pending timers (ReactContext.SetTimer).
	Timers []Timer `json:"timers,omitempty"`
	// Offsets is the last input offset handled per topic: a record at or below
	// it was handled before (read again after a crash, against a later state)
	// and is not handled again.
	Offsets map[string]int64 `json:"offsets,omitempty"`
}

func (m *reactMeta) find(id string) (effectRecord, bool) {
	for _, e := range m.Effects {
		if e.Input == id {
			return e, true
		}
	}
	return effectRecord{}, false
}

func (m *reactMeta) add(e effectRecord) {
	m.Effects = append(m.Effects, e)
	if len(m.Effects) > rememberedEffects {
		m.Effects = slices.Delete(m.Effects, 0, len(m.Effects)-rememberedEffects)
	}
}

// ReactContext performs a reactor's side effects. Valid only during React.
type ReactContext struct {
	r       *recordCtx
	inputID string
	live    bool
	source  string
	emits   []emitRecord
	n       int
	timers  []Timer // the key's timers, as set during this input
}

// SetTimer sets the key's timer name (replacing one of that name) to fire
// at at, wall-clock time; the group's Reactor.OnTimer handles it.
func (rc *ReactContext) SetTimer(name string, at time.Time) {
	rc.setTimer(Timer{Name: name, At: at.UTC()})
}

// SetStreamTimer sets the key's timer name to fire once the partition's
// stream time (the greatest event time seen on it) reaches at.
func (rc *ReactContext) SetStreamTimer(name string, at time.Time) {
	rc.setTimer(Timer{Name: name, At: at.UTC(), Stream: true})
}

// CancelTimer removes the key's timer name, if it has one.
func (rc *ReactContext) CancelTimer(name string) {
	rc.timers = slices.DeleteFunc(rc.timers, func(t Timer) bool { return t.Name == name })
}

func (rc *ReactContext) setTimer(t Timer) {
	rc.CancelTimer(t.Name)
	rc.timers = append(rc.timers, t)
}

// Key is the input record's key.
func (rc *ReactContext) Key() string { return rc.r.gctx.Key() }

// LookupFor reads key from a lookup table declared with Lookup, during a
// reactor's React or OnTimer; nil when absent (or, in a group table, holding
// parked records only).
func LookupFor[V any](rc *ReactContext, t tables.Table[V], key string) (*V, error) {
	return lookupValue(rc.r.gctx, t, key)
}

// Live is false while the group catches up in bootstrap mode: effects are then
// recorded as done but not performed.
func (rc *ReactContext) Live() bool { return rc.live }

// EffectID is a deterministic id for the effect name of this input: pass it as
// the idempotency key of an external call, so that the far side can drop the
// repeat that a crash between the call and the commit can cause.
func (rc *ReactContext) EffectID(name string) string {
	return eventID(rc.inputID, name, 0)
}

// Emit appends an event caused by this input to s. Its id is derived from the
// group's name and the input's id, so a re-sent copy carries the same id. While catching up it is
// recorded, not sent.
func (rc *ReactContext) Emit(s tables.Stream[codecs.Event], key, eventType, source string, data any) (codecs.Event, error) {
	ev, err := codecs.NewEvent(source, eventType, key, data)
	if err != nil {
		return ev, err
	}
	// The group takes part in the id: two groups that react to the same
	// input and emit to the same stream (two checks of one order) send
	// two events, not one id twice.
	ev.ID = eventID(rc.r.g.name+"\x00"+rc.inputID, s.Name, rc.n)
	rc.n++
	b, err := s.Codec.Encode(ev)
	if err != nil {
		return ev, err
	}
	rc.emits = append(rc.emits, emitRecord{Topic: s.Name, Key: key, Value: b})
	return ev, nil
}

// Loopback sends v to the group itself under key (a repartition step: the
// handler of the loop input sees it with key's state). It is always performed,
// also while catching up — it is how state is built — and carries the catch-up
// mark so that its own effects are suppressed as well.
func Loopback[V any](rc *ReactContext, loop tables.Stream[V], key string, v V) error {
	b, err := loop.Codec.Encode(v)
	if err != nil {
		return fmt.Errorf("encode loopback: %w", err)
	}
	e := emitRecord{Topic: loop.Name, Key: key, Value: b, Loop: true}
	if !rc.live {
		e.Headers = map[string]string{HeaderCatchUp: "1"}
	}
	rc.emits = append(rc.emits, e)
	return nil
}

// LoopStream is the handle of g's loopback topic carrying V.
func LoopStream[V any](g *Group, codec codecs.Codec[V]) tables.Stream[V] {
	return tables.Stream[V]{Name: g.loopTopic(), Codec: codec}
}

// AddReactor adds one input to a reactor group. Per record: an input id seen
// before at another offset (a duplicate) does nothing; the same record read
// again after a crash re-sends exactly what was recorded (same bytes, same event
// ids); otherwise React runs and its state and effects are stored before any
// emit is acknowledged and before the input offset is committed. A CloudEvent
// from an input other than the loop whose subject is not its record's key is
// dead-lettered (class key-mismatch); a missing subject takes the key.
func AddReactor[S, In any](g *Group, rt Reactor[S, In]) {
	g.setTable(rt.Table, rt.Table.Indexes)
	g.inputs = append(g.inputs, input{topic: rt.Input, loop: rt.Loop, handle: func(r *recordCtx) error {
		if r.value == nil {
			return nil
		}
		// Events on an input are keyed by their aggregate; on the loop, by
		// whichever key they were sent to.
		decode := decodeKeyedInput[In]
		if rt.Loop {
			decode = func(r *recordCtx, s tables.Stream[In]) (In, error) { return decodeInput(s.Codec, r) }
		}
		in, err := decode(r, rt.Input)
		if err != nil {
			return err
		}
		id := inputID(r, in, rt.ID)
		prevRaw, _ := r.gctx.Value().([]byte)
		state, m, err := decodeWithMeta[S, reactMeta](rt.Table.Codec, prevRaw)
		if err != nil {
			return fail(ClassDecode, fmt.Errorf("stored state of %q: %w", r.gctx.Key(), err))
		}
		if rec, ok := m.find(id); ok {
			r.stats.duplicates.Add(1)
			if rec.Topic == r.topic() && rec.Offset == r.gctx.Offset() {
				sendAll(r, rec.Emits)
				r.gctx.SetValue(prevRaw)
			}
			return nil
		}
		if last, ok := m.Offsets[r.topic()]; ok && r.gctx.Offset() <= last {
			r.stats.duplicates.Add(1)
			return nil
		}
		var stream int64
		if len(g.timers) > 0 {
			stream = g.streamTime(r.gctx.Partition(), eventTime(rt.Time, in, r.gctx.Timestamp()))
		}
		rc := &ReactContext{r: r, inputID: id, live: g.live(r), timers: slices.Clone(m.Timers)}
		var next *S
		if err := safely(func() (err error) { next, err = rt.React(rc, state, in); return err }); err != nil {
			return err
		}
		return storeReaction(r, rt.Table.Codec, next, m, rc, stream)
	}})
	if rt.OnTimer != nil {
		g.timers = append(g.timers, func(r *recordCtx) error { return fireReactorTimers(r, rt.Table.Codec, rt.OnTimer) })
	}
}

// storeReaction stores the state and record of effects after a reactor
// handled an input (or a timer) and performs the effects: the state and
// effects are written before any emit is acknowledged and before the input
// offset is committed.
func storeReaction[S any](r *recordCtx, codec codecs.Codec[S], next *S, m reactMeta, rc *ReactContext, stream int64) error {
	prevRaw, _ := r.gctx.Value().([]byte)
	if next == nil {
		if prevRaw != nil {
			r.gctx.Delete()
		}
		sendAll(r, rc.emits)
		return nil
	}
	m.add(effectRecord{Input: rc.inputID, Topic: r.topic(), Offset: r.gctx.Offset(), Emits: rc.emits})
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[r.topic()] = r.gctx.Offset()
	m.Timers = rc.timers
	m.StreamTime, m.Due, m.WallDue = stream, 0, 0
	for _, t := range m.Timers {
		due := &m.WallDue
		if t.Stream {
			due = &m.Due
		}
		if ms := t.At.UnixMilli(); *due == 0 || ms < *due {
			*due = max(ms, 1)
		}
	}
	b, err := encodeWithMeta(codec, *next, m)
	if err != nil {
		return err
	}
	r.gctx.SetValue(b)
	if rc.live {
		sendAll(r, rc.emits)
	} else {
		r.stats.suppressed.Add(int64(sendLoops(r, rc.emits)))
	}
	r.stats.applied.Add(1)
	return nil
}

// fireReactorTimers handles a timer request for the key: each due timer,
// earliest first, goes to onTimer as an input of its own (its id names the
// key, the timer and its time), its effects recorded with the state.
func fireReactorTimers[S any](r *recordCtx, codec codecs.Codec[S], onTimer func(*ReactContext, *S, Timer) (*S, error)) error {
	g := r.g
	prevRaw, _ := r.gctx.Value().([]byte)
	if prevRaw == nil {
		return nil
	}
	state, m, err := decodeWithMeta[S, reactMeta](codec, prevRaw)
	if err != nil {
		return err
	}
	if last, ok := m.Offsets[r.topic()]; ok && r.gctx.Offset() <= last {
		// Read again after a crash: send what the timers sent.
		for _, e := range m.Effects {
			if e.Topic == r.topic() && e.Offset == r.gctx.Offset() {
				sendAll(r, e.Emits)
			}
		}
		r.gctx.SetValue(prevRaw)
		return nil
	}
	stream := g.streamTime(r.gctx.Partition(), time.Time{})
	now := g.now().UnixMilli()
	due := slices.DeleteFunc(slices.Clone(m.Timers), func(t Timer) bool {
		if t.Stream {
			return t.At.UnixMilli() > stream
		}
		return t.At.UnixMilli() > now
	})
	if len(due) == 0 {
		return nil
	}
	slices.SortStableFunc(due, func(a, b Timer) int { return a.At.Compare(b.At) })
	t := due[0] // one per request: the next is found due again at once
	rc := &ReactContext{r: r, inputID: fmt.Sprintf("timer/%s/%s/%d", r.gctx.Key(), t.Name, t.At.UnixMilli()), live: g.live(r),
		timers: slices.DeleteFunc(slices.Clone(m.Timers), func(x Timer) bool { return x == t })}
	var next *S
	if err := safely(func() (err error) { next, err = onTimer(rc, state, t); return err }); err != nil {
		return err
	}
	r.stats.count("timers-fired")
	return storeReaction(r, codec, next, m, rc, stream)
}

func inputID[In any](r *recordCtx, in In, custom func(In) string) string {
	if custom != nil {
		return custom(in)
	}
	if ev, ok := any(in).(codecs.Event); ok && ev.ID != "" {
		return ev.ID
	}
	return fmt.Sprintf("%s/%d/%d", r.topic(), r.gctx.Partition(), r.gctx.Offset())
}

func sendAll(r *recordCtx, es []emitRecord) {
	for _, e := range es {
		send(r, e)
	}
}

// sendLoops sends only the loopbacks: while catching up, state is still built
// across keys, but nothing leaves the group. It returns how many emits it held back.
func sendLoops(r *recordCtx, es []emitRecord) (suppressed int) {
	for _, e := range es {
		if e.Loop {
			send(r, e)
		} else {
			suppressed++
		}
	}
	return suppressed
}

func send(r *recordCtx, e emitRecord) {
	var opts []goka.ContextOption
	if len(e.Headers) > 0 {
		h := goka.Headers{}
		for k, v := range e.Headers {
			h[k] = []byte(v)
		}
		opts = append(opts, goka.WithCtxEmitHeaders(h))
	}
	if e.Loop {
		r.gctx.Loopback(e.Key, e.Value, opts...)
		return
	}
	r.gctx.Emit(goka.Stream(e.Topic), e.Key, e.Value, opts...)
}

// Bootstrap mode.

// errNotBootstrapped is returned by setCatchUp for a group declared without WithBootstrap.
var errNotBootstrapped = errors.New("group is not in bootstrap mode")

// WithBootstrap declares that the group, when deployed fresh against existing
// history (no committed offsets and an empty table), folds its inputs up to the
// end offsets taken at its first start without performing side effects, then
// goes live. The targets are kept in Kafka by the runtime, so a restart during
// the catch-up resumes it instead of going live early. What is held back
// while catching up: a reactor's emits (its loopbacks still go, they build
// state), a JoinTable's and a JoinStreams' outputs and a windowed
// aggregation's results; state is built as if live.
func WithBootstrap() GroupOption { return func(g *Group) { g.bootstrap = true } }

// catchUp holds the bootstrap targets: per input topic and partition, the
// offset below which effects are suppressed.
type catchUp struct {
	mu        sync.Mutex
	targets   map[string]map[int32]int64
	remaining int
}

// setCatchUp sets the bootstrap targets (the runtime calls it before Run).
func (g *Group) setCatchUp(targets map[string]map[int32]int64) error {
	if !g.bootstrap {
		return errNotBootstrapped
	}
	cu := &catchUp{targets: map[string]map[int32]int64{}}
	var total int64
	for topic, parts := range targets {
		cu.targets[topic] = maps.Clone(parts)
		for _, off := range parts {
			if off > 0 {
				cu.remaining++
				total += off
			}
		}
	}
	g.catch = cu
	if cu.remaining == 0 {
		g.log.Debug("bootstrap: nothing to catch up; live")
		return nil
	}
	g.log.Info("bootstrap: catching up, side effects suppressed", "targets", targets, "records", total)
	return nil
}

// live reports whether r's effects are performed, and logs the switch to live.
func (g *Group) live(r *recordCtx) bool {
	cu := g.catch
	if cu == nil {
		return true
	}
	for _, h := range r.headers {
		if h.Key == HeaderCatchUp {
			return false
		}
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	target, ok := cu.targets[r.topic()][r.gctx.Partition()]
	if !ok || r.gctx.Offset() >= target {
		return true
	}
	if r.gctx.Offset() == target-1 {
		cu.remaining--
		if cu.remaining == 0 {
			g.log.Info("bootstrap: caught up; live")
		}
	}
	return false
}
