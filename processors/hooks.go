package processors

import (
	"time"

	"github.com/lovoo/goka"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/tables"
)

// The runtime reaches a group's hooks through groups.Of; hooks adapts the
// group's unexported methods to groups.Hooks.
func init() {
	groups.Register(func(g groups.Group) groups.Hooks { return hooks{g.(*Group)} })
}

type hooks struct{ g *Group }

var _ groups.Hooks = hooks{}

func (h hooks) Name() string         { return h.g.name }
func (h hooks) Validate() error      { return h.g.validate() }
func (h hooks) Edges() []groups.Edge { return h.g.edges() }
func (h hooks) Needs() []groups.Group {
	out := make([]groups.Group, len(h.g.needs))
	for i, n := range h.g.needs {
		out[i] = n
	}
	return out
}
func (h hooks) Table() (tables.Spec, []tables.Index, bool) { return h.g.tableSpec() }
func (h hooks) Graph() (*goka.GroupGraph, error)           { return h.g.graph() }
func (h hooks) Bind(partitions map[string]int)             { h.g.bind(partitions) }
func (h hooks) BindStores(stores func(string, int32) (*tables.Store, bool)) {
	h.g.bindStores(stores)
}
func (h hooks) Seen() (string, tables.Seen, bool) { return h.g.seenIDs() }
func (h hooks) Parts() (string, tables.Parts, bool) {
	if h.g.parts == nil || h.g.table == nil {
		return "", tables.Parts{}, false
	}
	return h.g.table.Spec().Name, *h.g.parts, true
}
func (h hooks) Stats() groups.Counts         { return groups.Counts(h.g.stats.snapshot()) }
func (h hooks) Sweeps() bool                 { return h.g.sweeps() }
func (h hooks) ParkingIndex() tables.Index   { return parkingIndex }
func (h hooks) MaxWait() time.Duration       { return h.g.policy.MaxWait }
func (h hooks) LoopTopic() string            { return h.g.loopTopic() }
func (h hooks) Timers() bool                 { return len(h.g.timers) > 0 }
func (h hooks) TimeIndex() tables.Index      { return timeIndex }
func (h hooks) TimerInterval() time.Duration { return h.g.timerInterval() }
func (h hooks) DueTimers(s *tables.Store, now time.Time, limit int) ([]tables.TermKey, error) {
	return dueTimers(s, now, limit)
}
func (h hooks) Trace(tp trace.TracerProvider) { h.g.setTracing(tp) }
func (h hooks) Bootstrap() bool               { return h.g.bootstrap }
func (h hooks) BootstrapTopic() string        { return h.g.bootstrapTopic().Name }
func (h hooks) CatchUp(targets map[string]map[int32]int64) error {
	return h.g.setCatchUp(targets)
}
