package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// fakeRuntime is a Runtime without Kafka: placements come from place, the
// rest from its fields. Safe for concurrent use once built.
type fakeRuntime struct {
	self      streamfold.Member
	place     func(table, key string) streamfold.Placement
	run       func(ctx context.Context) error
	recovered atomic.Bool
	stats     map[string]processors.Snapshot
	progress  map[string][]tables.Progress
	lag       func(ctx context.Context) ([]streamfold.PartitionLag, error)
	parked    map[string][]streamfold.ParkedRecord
	refreshes atomic.Int64
	topics    []streamfold.TopicInfo
}

func (f *fakeRuntime) Run(ctx context.Context) error {
	if f.run != nil {
		return f.run(ctx)
	}
	<-ctx.Done()
	return nil
}

func (f *fakeRuntime) Place(table, key string) (streamfold.Placement, error) {
	if f.place == nil {
		return streamfold.Placement{}, fmt.Errorf("%w: %q", streamfold.ErrUnknownTable, table)
	}
	pl := f.place(table, key)
	pl.Table, pl.Key = table, key
	return pl, nil
}

func (f *fakeRuntime) Self() streamfold.Member { return f.self }
func (f *fakeRuntime) Membership() []streamfold.GroupState {
	return []streamfold.GroupState{{Group: "g", State: "Stable", Members: []streamfold.Member{f.self}}}
}
func (f *fakeRuntime) RefreshMembership(context.Context) error { f.refreshes.Add(1); return nil }
func (f *fakeRuntime) Recovered() bool                         { return f.recovered.Load() }
func (f *fakeRuntime) Progress() map[string][]tables.Progress {
	if f.progress == nil {
		return map[string][]tables.Progress{}
	}
	return f.progress
}
func (f *fakeRuntime) Lag(ctx context.Context) ([]streamfold.PartitionLag, error) {
	if f.lag == nil {
		return nil, nil
	}
	return f.lag(ctx)
}
func (f *fakeRuntime) Stats() map[string]processors.Snapshot { return f.stats }
func (f *fakeRuntime) Parked(group string) ([]streamfold.ParkedRecord, error) {
	ps, ok := f.parked[group]
	if !ok {
		return nil, fmt.Errorf("%w %q", streamfold.ErrUnknownGroup, group)
	}
	return ps, nil
}
func (f *fakeRuntime) GroupNames() []string           { return []string{"g"} }
func (f *fakeRuntime) Brokers() []string              { return nil }
func (f *fakeRuntime) Security() streamfold.Security  { return streamfold.Security{} }
func (f *fakeRuntime) Topics() []streamfold.TopicInfo { return f.topics }

// fakeReader serves every key of one table as {"table":..,"key":..}, and
// counts the reads.
type fakeReader struct {
	table string
	mu    sync.Mutex
	reads []string
}

func (r *fakeReader) Name() string { return r.table }
func (r *fakeReader) GetJSON(ctx context.Context, key string) (json.RawMessage, error) {
	r.mu.Lock()
	r.reads = append(r.reads, key)
	r.mu.Unlock()
	if key == "absent" {
		return nil, &views.NotFoundError{Table: r.table, Key: key}
	}
	return json.Marshal(map[string]string{"table": r.table, "key": key})
}

// listen is a loopback listener closed with the test.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
