package processors

import (
	"fmt"

	"github.com/streamfold/streamfold/codecs"
)

// MirrorRows is the Apply that keeps a table equal to a database table
// through its Debezium change events (a stream with the codecs.DebeziumEvents
// codec): a created, updated or snapshot-read row becomes the key's state, a
// deleted row removes the key, and a truncate leaves the key as it is (a
// truncate carries no key; Debezium skips truncates unless skipped.operations
// says otherwise). Any other event is an error, so it is dead-lettered.
//
//	processors.Project(g, customers, processors.MirrorRows[Customer])
func MirrorRows[S any](state *S, ev codecs.Event) (*S, error) {
	op, ok := codecs.DebeziumOp(ev)
	if !ok {
		return nil, fmt.Errorf("event %s of type %q is not a debezium change event", ev.ID, ev.Type)
	}
	switch op {
	case codecs.OpDelete:
		return nil, nil
	case codecs.OpTruncate:
		return state, nil
	}
	next := new(S)
	if err := ev.DataAs(next); err != nil {
		return nil, err
	}
	return next, nil
}
