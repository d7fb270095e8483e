package processors

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/tables"
)

// ErrInvalidGroup wraps what would stop a group from running; streamfold
// Topology.Validate (and Open) return it inside ErrInvalidTopology.
var ErrInvalidGroup = errors.New("invalid group")

// Group declares one processor group. Declare it completely (Project, Output,
// Lookup) before handing it to a topology; after that it is read-only, and the
// handlers it runs are called by goka, one goroutine per partition.
type Group struct {
	name    string
	log     *slog.Logger
	table   tables.Topic
	indexes []tables.Index
	inputs  []input
	outputs []tables.Topic
	lookups []tables.Topic
	joins   []tables.Topic // co-partitioned tables read by partition (join.go)
	errs    []error

	mu         sync.Mutex
	partitions map[string]int // partition count per input topic, bound before running
	stores     storeLookup    // the group's own stores, bound before running

	now   func() time.Time
	dedup bool // a projection: applied event ids are kept in the stores

	stats *stats

	bootstrap bool
	catch     *catchUp // nil: live

	policy   Policy
	sweepers []func(*recordCtx) error // expire parked records of a key

	timers []func(*recordCtx) error // fire a key's due timers (windows, sessions, users' timers)
	times  map[int32]*partitionTime // stream time per partition, guarded by mu
	late   bool                     // a block sends records later than their grace to <group>-late
	// parts, when set, keeps the table's values in parts (a windowed
	// aggregation's windows), sent to partsTopic too.
	parts      *tables.Parts
	partsTopic tables.Stream[[]byte]

	needs []*Group // groups that run wherever this one runs (an aggregate's relay)

	tracer trace.Tracer // nil: tracing off (set by the runtime before it runs the group)
}

type input struct {
	topic  tables.Topic
	handle func(r *recordCtx) error
	loop   bool // the group's own <group>-loop topic
}

// GroupOption configures a Group.
type GroupOption func(*Group)

// WithLogger sets the group's logger; nil discards.
func WithLogger(l *slog.Logger) GroupOption {
	return func(g *Group) { g.log = l }
}

// WithClock sets the group's clock (default time.Now): the time recorded
// for applied event ids, which expire after Policy.DedupHorizon.
func WithClock(now func() time.Time) GroupOption {
	return func(g *Group) { g.now = now }
}

// NewGroup declares a processor group named name. Its table topic, if it has
// one, is <name>-table; its dead-letter topic is <name>-dlq.
func NewGroup(name string, opts ...GroupOption) *Group {
	g := &Group{name: name, stats: newStats(), policy: DefaultPolicy(), now: time.Now}
	for _, o := range opts {
		o(g)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("group", name)
	return g
}

// Name is the group's (and its consumer group's) name.
func (g *Group) Name() string { return g.name }

// TableTopic is the group's changelog topic, <group>-table.
func (g *Group) TableTopic() string { return tableTopic(g.name) }

// parkingIndex is the internal index over a group table's keys that have
// parked records; the runtime's sweeper reads it.
var parkingIndex = tables.Index{Name: "_parked", Terms: func(_ string, v []byte) []string {
	if envelope.HasParked(v) {
		return []string{"1"}
	}
	return nil
}}

// sweeps reports whether the group parks records (and so needs the sweeper).
func (g *Group) sweeps() bool { return len(g.sweepers) > 0 && g.policy.MaxWait > 0 }

// controlLoop: the group needs a loop topic of its own for sweep and timer
// requests.
func (g *Group) controlLoop() bool {
	if !g.sweeps() && len(g.timers) == 0 {
		return false
	}
	for _, in := range g.inputs {
		if in.loop {
			return false
		}
	}
	return true
}

// loopTopic is the group's loopback topic, <group>-loop: records the group
// sends to itself under another key (a repartition step).
func (g *Group) loopTopic() string { return g.name + "-loop" }

// bootstrapTopic keeps a bootstrap group's catch-up targets: one compacted
// record written at the group's first start.
func (g *Group) bootstrapTopic() tables.Table[[]byte] {
	return tables.Table[[]byte]{Name: g.name + "-bootstrap", Partitions: 1}
}

// DLQTopic is the group's dead-letter topic, <group>-dlq.
func (g *Group) DLQTopic() string { return g.name + "-dlq" }

// dlq is the dead-letter stream's handle: raw bytes, exactly as they arrived.
func (g *Group) dlq() tables.Stream[[]byte] {
	return tables.Stream[[]byte]{Name: g.DLQTopic()}
}

// Output declares a stream the group's handlers emit to.
func Output[V any](g *Group, s tables.Stream[V]) {
	g.outputs = append(g.outputs, s)
}

// Lookup declares a table the group's handlers read by key (need not be
// co-partitioned).
func Lookup[V any](g *Group, t tables.Table[V]) {
	g.lookups = append(g.lookups, t)
}

func (g *Group) setTable(t tables.Topic, indexes []tables.Index) {
	if g.table != nil && g.table.Spec().Name != t.Spec().Name {
		g.errs = append(g.errs, fmt.Errorf("group %s: two tables %s and %s", g.name, g.table.Spec().Name, t.Spec().Name))
		return
	}
	g.table, g.indexes = t, indexes
}

func (g *Group) addInput(t tables.Topic, h func(*recordCtx) error) {
	g.inputs = append(g.inputs, input{topic: t, handle: h})
}

// tableSpec is the group's table spec and its indexes, or false for a stateless
// group. The indexes' Terms see the state as the application's codec wrote
// it, without the framework's bookkeeping.
func (g *Group) tableSpec() (tables.Spec, []tables.Index, bool) {
	if g.table == nil {
		return tables.Spec{}, nil, false
	}
	return g.table.Spec(), stateIndexes(g.indexes), true
}

// edges lists every topic the group touches, with its role.
func (g *Group) edges() []groups.Edge {
	var es []groups.Edge
	for _, in := range g.inputs {
		role := groups.RoleInput
		if in.loop {
			role = groups.RoleLoop
		}
		es = append(es, groups.Edge{Role: role, Spec: in.topic.Spec()})
	}
	if g.table != nil {
		es = append(es, groups.Edge{Role: groups.RoleTable, Spec: g.table.Spec()})
	}
	for _, o := range g.outputs {
		es = append(es, groups.Edge{Role: groups.RoleOutput, Spec: o.Spec()})
	}
	for _, l := range g.lookups {
		es = append(es, groups.Edge{Role: groups.RoleLookup, Spec: l.Spec()})
	}
	for _, j := range g.joins {
		es = append(es, groups.Edge{Role: groups.RoleJoin, Spec: j.Spec()})
	}
	es = append(es, groups.Edge{Role: groups.RoleDLQ, Spec: g.dlq().Spec()}, groups.Edge{Role: groups.RoleOutput, Spec: RedriveStates(g.name).Spec()})
	if g.bootstrap {
		es = append(es, groups.Edge{Role: groups.RoleOutput, Spec: g.bootstrapTopic().Spec()})
	}
	for n := range g.policy.RetryDelays {
		es = append(es, groups.Edge{Role: groups.RoleRetry, Spec: g.retryTopic(n + 1).Spec()})
	}
	if g.controlLoop() {
		es = append(es, groups.Edge{Role: groups.RoleLoop, Spec: tables.Stream[[]byte]{Name: g.loopTopic(), Partitions: g.declaredPartitions()}.Spec()})
	}
	if g.dedup {
		es = append(es, groups.Edge{Role: groups.RoleSeen, Spec: g.seenStream().Spec()})
	}
	if g.late {
		es = append(es, groups.Edge{Role: groups.RoleOutput, Spec: g.lateStream().Spec()})
	}
	if g.parts != nil {
		es = append(es, groups.Edge{Role: groups.RoleParts, Spec: g.partsTopic.Spec()})
	}
	return es
}

// declaredPartitions is the partition count declared for the group's inputs
// (or its table), which the topics the group keeps for itself (retry, loop)
// take so that they are co-partitioned with them; 0 is the topology's
// default.
func (g *Group) declaredPartitions() int {
	for _, in := range g.inputs {
		if n := in.topic.Spec().Partitions; n > 0 && !in.loop {
			return n
		}
	}
	if g.table != nil {
		return g.table.Spec().Partitions
	}
	return 0
}

// validate reports what would stop the group from running.
func (g *Group) validate() error {
	errs := slices.Clone(g.errs)
	if g.name == "" {
		errs = append(errs, errors.New("group has no name"))
	}
	if len(g.inputs) == 0 {
		errs = append(errs, fmt.Errorf("group %s has no inputs", g.name))
	}
	for _, in := range g.inputs {
		if in.loop && in.topic.Spec().Name != g.loopTopic() {
			errs = append(errs, fmt.Errorf("group %s: loop topic must be named %s", g.name, g.loopTopic()))
		}
	}
	if g.table != nil && g.table.Spec().Name != g.TableTopic() {
		errs = append(errs, fmt.Errorf("group %s: table must be named %s, not %s", g.name, g.TableTopic(), g.table.Spec().Name))
	}
	seen := map[string]bool{}
	for _, in := range g.inputs {
		n := in.topic.Spec().Name
		if seen[n] {
			errs = append(errs, fmt.Errorf("group %s reads %s twice", g.name, n))
		}
		seen[n] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidGroup, errors.Join(errs...))
}

// bind records each input topic's partition count, used to detect records
// produced to the wrong partition for their key. The topology calls it after it
// has created or checked the topics.
func (g *Group) bind(partitions map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.partitions = maps.Clone(partitions)
}

func (g *Group) partitionsOf(topic string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.partitions[topic]
}

// graph builds the goka group graph. Every edge uses raw bytes: decoding happens
// in our adapter so a poison record is dead-lettered instead of stopping goka.
func (g *Group) graph() (*goka.GroupGraph, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	raw := new(codec.Bytes)
	var edges []goka.Edge
	for _, in := range g.inputs {
		if in.loop {
			edges = append(edges, goka.Loop(raw, g.callback(in)))
			continue
		}
		edges = append(edges, goka.Input(goka.Stream(in.topic.Spec().Name), raw, g.callback(in)))
	}
	if g.table != nil {
		edges = append(edges, goka.Persist(raw))
	}
	for _, o := range g.outputs {
		edges = append(edges, goka.Output(goka.Stream(o.Spec().Name), raw))
	}
	for _, l := range g.lookups {
		edges = append(edges, goka.Lookup(goka.Table(l.Spec().Name), raw))
	}
	for _, j := range g.joins {
		edges = append(edges, goka.Join(goka.Table(j.Spec().Name), raw))
	}
	for n := range g.policy.RetryDelays {
		in := g.retryInput(n + 1)
		edges = append(edges, goka.Input(goka.Stream(in.topic.Spec().Name), raw, g.callback(in)),
			goka.Output(goka.Stream(in.topic.Spec().Name), raw))
	}
	if g.controlLoop() {
		edges = append(edges, goka.Loop(raw, g.callback(input{topic: tables.Stream[[]byte]{Name: g.loopTopic()}, loop: true,
			handle: func(*recordCtx) error { return nil }})))
	}
	if g.dedup {
		edges = append(edges, goka.Output(goka.Stream(g.seenTopic()), raw))
	}
	if g.late {
		edges = append(edges, goka.Output(goka.Stream(g.LateTopic()), raw))
	}
	if g.parts != nil {
		edges = append(edges, goka.Output(goka.Stream(g.partsTopic.Name), raw))
	}
	edges = append(edges, goka.Output(goka.Stream(g.DLQTopic()), raw), goka.Output(goka.Stream(RedriveStates(g.name).Name), raw))
	gg := goka.DefineGroup(goka.Group(g.name), edges...)
	if err := gg.Validate(); err != nil {
		return nil, fmt.Errorf("group %s: %w", g.name, err)
	}
	return gg, nil
}

// storeLookup finds the open local store of a table partition.
type storeLookup func(topic string, partition int32) (*tables.Store, bool)

// bindStores gives the group its own stores (the runtime's engine of the
// group), where a projection asks whether an event id was applied. A group
// that is not bound remembers only the ids of each key's last write.
func (g *Group) bindStores(stores storeLookup) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stores = stores
}

func (g *Group) store(partition int32) (*tables.Store, bool) {
	g.mu.Lock()
	stores := g.stores
	g.mu.Unlock()
	if stores == nil || g.table == nil {
		return nil, false
	}
	return stores(g.TableTopic(), partition)
}

// seenTopic is the group's topic of applied event ids, <group>-seen.
func (g *Group) seenTopic() string { return g.name + "-seen" }

// seenStream is the handle of <group>-seen: records of tables.EncodeSeenRecord
// under the table's keys, partitioned like the table, kept for the dedup
// horizon.
func (g *Group) seenStream() tables.Stream[[]byte] {
	s := tables.Stream[[]byte]{Name: g.seenTopic(), Codec: codecs.Bytes{}, Configs: map[string]string{
		"cleanup.policy": "delete",
		"retention.ms":   strconv.FormatInt(g.dedupHorizon().Milliseconds(), 10),
	}}
	if g.table != nil {
		s.Partitions = g.table.Spec().Partitions
	}
	return s
}

func (g *Group) dedupHorizon() time.Duration {
	if g.policy.DedupHorizon > 0 {
		return g.policy.DedupHorizon
	}
	return DefaultDedupHorizon
}

// seenIDs is how the storage engine keeps the group's applied event ids beside
// its table (tables.WithSeen for the table topic), or false for a group that
// keeps none: only projections do. Give it to the group's own engine only.
func (g *Group) seenIDs() (string, tables.Seen, bool) {
	if !g.dedup || g.table == nil {
		return "", tables.Seen{}, false
	}
	return g.table.Spec().Name, tables.Seen{
		IDs: appliedIDs, Horizon: g.dedupHorizon(), Topic: g.seenTopic(), Now: g.now,
	}, true
}
