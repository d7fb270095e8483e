// Package groups is the one seam between a processors.Group and the runtime
// that runs it: what the runtime (and the topology's description) needs of a
// group — its goka graph, its topics and their roles, its stores, its
// counters, its sweeping and bootstrap needs — without those hooks being
// part of the Group a user sees.
//
// processors imports this package, so this package cannot name
// *processors.Group. Instead processors registers, in an init function, a
// function from a group to its Hooks (an adapter of unexported type whose
// methods call the group's unexported ones):
//
//	h := groups.Of(g) // g is a *processors.Group
//	gg, err := h.Graph()
//
// Of takes a Group — anything with a Name — and panics for a value that is
// not a *processors.Group; the Hooks it returns are checked at compile time
// on both sides (processors asserts its adapter implements Hooks, and the
// runtime calls Hooks only).
package groups

import (
	"time"

	"github.com/lovoo/goka"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/tables"
)

// Hooks are what the runtime calls on a group. Safe for concurrent use as
// far as the group's own methods are; the runtime calls Bind, BindStores and
// CatchUp before it runs the group.
type Hooks interface {
	// Name is the group's (and its consumer group's) name.
	Name() string
	// Validate reports what would stop the group from running.
	Validate() error
	// Edges lists every topic the group touches, with its role.
	Edges() []Edge
	// Needs are the groups that run wherever this one runs (an aggregate's
	// relay), each a *processors.Group: a topology adds them with it.
	Needs() []Group
	// Table is the group's table spec and its indexes, or false for a
	// stateless group. The indexes' Terms see the state as the
	// application's codec wrote it, without the framework's bookkeeping.
	Table() (tables.Spec, []tables.Index, bool)
	// Graph builds the goka group graph; every edge uses raw bytes.
	Graph() (*goka.GroupGraph, error)
	// Bind records each topic's real partition count, used to detect
	// records produced to the wrong partition for their key.
	Bind(partitions map[string]int)
	// BindStores gives the group its own stores (the runtime's engine of the
	// group), where a projection asks whether an event id was applied.
	BindStores(stores func(topic string, partition int32) (*tables.Store, bool))
	// Seen is how the storage engine keeps the group's applied event ids
	// beside its table (tables.WithSeen for topic), or false for a group
	// that keeps none. Give it to the group's own engine only.
	Seen() (topic string, seen tables.Seen, ok bool)
	// Parts is how every storage engine holding the group's table keeps its
	// values in parts (tables.WithParts for topic: windows keyed by key and
	// start), or false. Give it to every engine that holds the table.
	Parts() (topic string, parts tables.Parts, ok bool)
	// Stats copies the group's counters.
	Stats() Counts

	// Sweeps reports whether the group parks records and so needs the
	// runtime's sweeper, which finds them by ParkingIndex and, for those
	// that waited longer than MaxWait, sends a sweep request (HeaderControl
	// "sweep") to LoopTopic.
	Sweeps() bool
	ParkingIndex() tables.Index
	MaxWait() time.Duration
	LoopTopic() string

	// Timers reports whether the group keeps timers (windows that close on
	// stream time). The runtime keeps TimeIndex on the group's table and,
	// every TimerInterval, asks DueTimers of each of its recovered stores
	// (each a key and a term naming when it is due) and sends each key a
	// timer request (HeaderControl "timer") to LoopTopic.
	Timers() bool
	TimeIndex() tables.Index
	TimerInterval() time.Duration
	DueTimers(s *tables.Store, now time.Time, limit int) ([]tables.TermKey, error)

	// Trace makes the group start a span for every record it handles, a
	// child of the trace context in the record's headers, and put that
	// span's context on every record it emits meanwhile; nil (the default)
	// traces nothing. Call it before the group runs.
	Trace(tp trace.TracerProvider)

	// Bootstrap reports whether the group was declared WithBootstrap; its
	// catch-up targets are kept in BootstrapTopic (one partition) and given
	// to it with CatchUp before it runs (nil: live at once).
	Bootstrap() bool
	BootstrapTopic() string
	CatchUp(targets map[string]map[int32]int64) error
}

// HeaderControl marks a record on <group>-loop as a request to the framework
// ("sweep": dead-letter what waited too long under its key; "timer": fire
// the key's due timers), not data.
const HeaderControl = "streamfold-control"

// Group is a *processors.Group, named by what every group has.
type Group interface{ Name() string }

var of func(Group) Hooks

// Register sets what Of returns; processors calls it in an init function.
func Register(f func(Group) Hooks) { of = f }

// Of returns g's hooks. g must be a *processors.Group.
func Of(g Group) Hooks { return of(g) }

// Role says how a group uses a topic.
type Role string

const (
	RoleInput  Role = "input"
	RoleTable  Role = "table"
	RoleOutput Role = "output"
	RoleLookup Role = "lookup"
	// RoleJoin is a table the group reads partition by partition beside
	// its inputs (goka's Join): it must be co-partitioned with them.
	RoleJoin  Role = "join"
	RoleDLQ   Role = "dlq"
	RoleLoop  Role = "loop"
	RoleRetry Role = "retry" // read and written by the group
	// RoleSeen is the group's <group>-seen topic: written by the group,
	// read back by its stores when they open without their ids.
	RoleSeen Role = "seen"
	// RoleParts is the group's <group>-windows topic: the parts of its
	// table's values, written by the group, read back by the stores of
	// the table when they open without them.
	RoleParts Role = "parts"
)

// Edge is one topic a group reads or writes, for the topology's description.
type Edge struct {
	Role Role
	Spec tables.Spec
}

// Inputs are the topics of h's RoleInput edges.
func Inputs(h Hooks) []string {
	var in []string
	for _, e := range h.Edges() {
		if e.Role == RoleInput {
			in = append(in, e.Spec.Name)
		}
	}
	return in
}

// Counts are a group's counters; the same fields as processors.Snapshot,
// which converts to and from it.
type Counts struct {
	Processed   int64
	Applied     int64
	Duplicates  int64
	Deleted     int64
	Suppressed  int64
	DeadLetters map[string]int64
	Counters    map[string]int64
	Partitions  []PartitionCounts
}

// PartitionCounts are a group's counters of one partition of one of its
// inputs; processors.PartitionSnapshot is this type.
type PartitionCounts struct {
	Topic       string           `json:"topic"`
	Partition   int32            `json:"partition"`
	Processed   int64            `json:"processed"`
	Applied     int64            `json:"applied"`
	Duplicates  int64            `json:"duplicates"`
	Deleted     int64            `json:"deleted"`
	Suppressed  int64            `json:"suppressed"`
	DeadLetters map[string]int64 `json:"deadLetters,omitempty"`
	Counters    map[string]int64 `json:"counters,omitempty"`
}
