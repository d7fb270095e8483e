package processors

import (
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// Timeline is one aggregate's events in the order they were appended.
type Timeline struct {
	Events []codecs.Event `json:"events"`
}

// History makes g keep, per key, the ordered events of in: an aggregate's
// history read with one lookup instead of a scan of the topic. An event whose id
// is already in the timeline (a re-appended duplicate) is dropped. The whole
// timeline is one table value, so it suits aggregates with a bounded number of
// events (a cart, an order), not unbounded streams. It returns the handle of
// the group's table, as Project does.
func History(g *Group, in tables.Stream[codecs.Event], opts ...TableOption) tables.Table[Timeline] {
	return Project(g, in, func(t *Timeline, ev codecs.Event) (*Timeline, error) {
		if t == nil {
			t = &Timeline{}
		}
		for _, e := range t.Events {
			if e.ID == ev.ID {
				return t, nil
			}
		}
		t.Events = append(t.Events, ev)
		return t, nil
	}, opts...)
}
