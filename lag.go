package streamfold

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/singleflight"

	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/internal/topics"
)

// PartitionLag is how far one group's committed position is behind the end
// of one of the partitions it consumes, as `kafka-consumer-groups
// --describe` shows it.
type PartitionLag struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the next offset the group reads; -1 before its first
	// commit on the partition.
	Committed int64 `json:"committed"`
	// End is the partition's high watermark. On a topic written in Kafka
	// transactions it counts the commit markers too, so a group that read
	// everything can show a lag of the last marker.
	End int64 `json:"end"`
	// Lag is End - Committed; before the first commit, every record still
	// in the log (End - its first offset).
	Lag int64 `json:"lag"`
}

// lagFresh is how old an answer of Lag may be: every scrape of /metrics and
// every open dashboard asks for it, and each new answer costs a request to
// every group coordinator and partition leader.
const lagFresh = time.Second

// lagCache is Lag's last answer; concurrent callers share one request.
type lagCache struct {
	flight singleflight.Group
	mu     sync.Mutex
	at     time.Time
	lags   []PartitionLag
}

// Lag is the consumer lag of every group of the topology, whichever
// instance runs it, on every partition it consumes (its inputs, loop and
// retry topics), sorted by group, topic and partition. It asks the group
// coordinators and the partition leaders; it does not read the groups' own
// progress, so it is the same on every instance. An answer is at most a
// second old, and concurrent callers share one request.
func (rt *Runtime) Lag(ctx context.Context) ([]PartitionLag, error) {
	c := &rt.lags
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < lagFresh {
		lags := slices.Clone(c.lags)
		c.mu.Unlock()
		return lags, nil
	}
	c.mu.Unlock()
	v, err, _ := c.flight.Do("lag", func() (any, error) {
		lags, err := rt.askLag(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.at, c.lags = time.Now(), lags
		c.mu.Unlock()
		return lags, nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.([]PartitionLag)), nil
}

// askLag asks the coordinators and the leaders for every group's lag.
func (rt *Runtime) askLag(ctx context.Context) ([]PartitionLag, error) {
	var out []PartitionLag
	all := topics.Partitions{} // every consumed partition, for the log's offsets
	for _, g := range rt.topo.hooks() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lag: %w", err)
		}
		consumed := consumedTopics(g)
		want := topics.All(consumed, rt.partitions)
		committed, err := topics.Committed(rt.client, g.Name(), want)
		if err != nil {
			return nil, fmt.Errorf("lag: %w", err)
		}
		for _, t := range consumed {
			all[t] = want[t]
			for _, p := range want[t] {
				c, _ := committed.Of(t, p)
				out = append(out, PartitionLag{Group: g.Name(), Topic: t, Partition: p, Committed: c})
			}
		}
	}
	ends, err := topics.LogOffsets(rt.client, all, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	var starts topics.Offsets
	for i := range out {
		l := &out[i]
		l.End, _ = ends.Of(l.Topic, l.Partition)
		if l.Committed < 0 {
			if starts == nil {
				if starts, err = topics.LogOffsets(rt.client, all, sarama.OffsetOldest); err != nil {
					return nil, fmt.Errorf("lag: %w", err)
				}
			}
			start, _ := starts.Of(l.Topic, l.Partition)
			l.Lag = max(l.End-start, 0)
			continue
		}
		l.Lag = max(l.End-l.Committed, 0)
	}
	slices.SortFunc(out, func(a, b PartitionLag) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// consumedTopics are the topics a group's consumer reads: its inputs, its
// loop and its retry topics, sorted.
func consumedTopics(g groups.Hooks) []string {
	set := map[string]bool{}
	for _, e := range g.Edges() {
		switch e.Role {
		case groups.RoleInput, groups.RoleLoop, groups.RoleRetry:
			set[e.Spec.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
