package streamfold

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/tables"
)

// sweepLoop finds parked records that waited longer than their group's MaxWait
// and asks the group, through its loop topic, to dead-letter them. A parked
// record is otherwise looked at only when another record for its key arrives,
// which for a parent that never comes is never.
func (rt *Runtime) sweepLoop(ctx context.Context, running func(group string) bool) error {
	var sweeping []groups.Hooks
	interval := time.Minute
	for _, g := range rt.topo.hooks() {
		if g.Sweeps() && running(g.Name()) {
			sweeping = append(sweeping, g)
			interval = min(interval, max(g.MaxWait()/4, 100*time.Millisecond))
		}
	}
	if len(sweeping) == 0 {
		return nil
	}
	rt.everyTick(ctx, interval, func(time.Time) {
		for _, g := range sweeping {
			rt.sweepGroup(ctx, g)
		}
	})
	return nil
}

func (rt *Runtime) sweepGroup(ctx context.Context, g groups.Hooks) {
	for _, s := range rt.recoveredStores(g) {
		keys, err := s.Lookup(g.ParkingIndex().Name, "1", "", 10000)
		if err != nil {
			rt.log.Warn("sweep: parked keys", "group", g.Name(), "err", err)
			continue
		}
		for _, k := range keys {
			if !rt.expired(s, k, g.MaxWait()) {
				continue
			}
			if err := rt.requestControl(ctx, g, k, "sweep"); err != nil {
				rt.log.Warn("sweep: request", "group", g.Name(), "key", k, "err", err)
			}
		}
	}
}

// everyTick calls each every interval until ctx ends: the loop of the
// runtime's sweeper and timers.
func (rt *Runtime) everyTick(ctx context.Context, interval time.Duration, each func(now time.Time)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			each(now)
		}
	}
}

// recoveredStores are the stores of g's table this instance holds and has
// restored.
func (rt *Runtime) recoveredStores(g groups.Hooks) []*tables.Store {
	spec, _, ok := g.Table()
	if !ok {
		return nil
	}
	var out []*tables.Store
	for _, s := range rt.engines[g.Name()].Stores(spec.Name) {
		if s.Recovered() {
			out = append(out, s)
		}
	}
	return out
}

// requestControl asks g, through its loop topic, to do what kind names
// (HeaderControl: "sweep", "timer") for key, on the key's partition.
func (rt *Runtime) requestControl(ctx context.Context, g groups.Hooks, key, kind string) error {
	_, err := rt.produce(ctx, g.LoopTopic(), key, []byte("{}"), []codecs.Header{{Key: groups.HeaderControl, Value: []byte(kind)}})
	return err
}

// expired reports whether key has a parked record older than maxWait.
func (rt *Runtime) expired(s *tables.Store, key string, maxWait time.Duration) bool {
	b, err := s.Get(key)
	if err != nil || b == nil {
		return false
	}
	parked, err := envelope.ParkedOf(b)
	if err != nil {
		return false
	}
	for _, p := range parked {
		if time.Since(p.Since) > maxWait {
			return true
		}
	}
	return false
}

// ParkedRecord is a record a group holds until its parent arrives.
type ParkedRecord struct {
	Key       string    `json:"key"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	WaitsFor  string    `json:"waitsFor"`
	Since     time.Time `json:"since"`
}

// Parked lists the records parked in a group's local stores, by key.
func (rt *Runtime) Parked(group string) ([]ParkedRecord, error) {
	var g groups.Hooks
	for _, gr := range rt.topo.hooks() {
		if gr.Name() == group {
			g = gr
		}
	}
	if g == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	spec, _, ok := g.Table()
	if !ok || !g.Sweeps() {
		return nil, nil
	}
	var out []ParkedRecord
	for _, s := range rt.engines[g.Name()].Stores(spec.Name) {
		keys, err := s.Lookup(g.ParkingIndex().Name, "1", "", 10000)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			b, err := s.Get(k)
			if err != nil || b == nil {
				continue
			}
			parked, err := envelope.ParkedOf(b)
			if err != nil {
				continue
			}
			for _, p := range parked {
				out = append(out, ParkedRecord{Key: k, Topic: p.Topic, Partition: p.Partition, Offset: p.Offset,
					WaitsFor: p.Kind + " " + k, Since: p.Since})
			}
		}
	}
	return out, nil
}

// ErrUnknownGroup: a group name the topology does not have.
var ErrUnknownGroup = errors.New("unknown group")
