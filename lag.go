package streamfold

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/singleflight"

	"github.com/streamfold/streamfold/internal/groups"
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
	admin, err := sarama.NewClusterAdminFromClient(rt.client)
	if err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	// Closing admin would close the shared client; it holds nothing else.
	var out []PartitionLag
	want := map[string]map[int32]bool{} // topic -> partitions, for the end offsets
	for _, g := range rt.topo.hooks() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lag: %w", err)
		}
		topics := consumedTopics(g)
		req := map[string][]int32{}
		for _, t := range topics {
			for p := range int32(rt.partitions[t]) {
				req[t] = append(req[t], p)
			}
		}
		resp, err := admin.ListConsumerGroupOffsets(g.Name(), req)
		// A group that never committed is unknown to some brokers (kfake);
		// Kafka answers with no offsets. Both mean: nothing committed.
		if errors.Is(err, sarama.ErrGroupIDNotFound) || (err == nil && errors.Is(resp.Err, sarama.ErrGroupIDNotFound)) {
			resp, err = &sarama.OffsetFetchResponse{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("lag: offsets of group %s: %w", g.Name(), err)
		}
		if !errors.Is(resp.Err, sarama.ErrNoError) {
			return nil, fmt.Errorf("lag: offsets of group %s: %w", g.Name(), resp.Err)
		}
		for _, t := range topics {
			if want[t] == nil {
				want[t] = map[int32]bool{}
			}
			for _, p := range req[t] {
				want[t][p] = true
				committed := int64(-1)
				if b := resp.GetBlock(t, p); b != nil && errors.Is(b.Err, sarama.ErrNoError) {
					committed = b.Offset
				}
				out = append(out, PartitionLag{Group: g.Name(), Topic: t, Partition: p, Committed: committed})
			}
		}
	}
	ends, err := rt.offsets(want, sarama.OffsetNewest)
	if err != nil {
		return nil, err
	}
	var starts map[topicPartition]int64
	for i := range out {
		l := &out[i]
		tp := topicPartition{l.Topic, l.Partition}
		l.End = ends[tp]
		if l.Committed < 0 {
			if starts == nil {
				if starts, err = rt.offsets(want, sarama.OffsetOldest); err != nil {
					return nil, err
				}
			}
			l.Lag = max(l.End-starts[tp], 0)
			continue
		}
		l.Lag = max(l.End-l.Committed, 0)
	}
	slices.SortFunc(out, func(a, b PartitionLag) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

type topicPartition struct {
	topic     string
	partition int32
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

// offsets asks each partition's leader for its newest or oldest offset, one
// request per broker.
func (rt *Runtime) offsets(want map[string]map[int32]bool, at int64) (map[topicPartition]int64, error) {
	reqs := map[*sarama.Broker]*sarama.OffsetRequest{}
	for t, ps := range want {
		for p := range ps {
			b, err := rt.client.Leader(t, p)
			if err != nil {
				return nil, fmt.Errorf("lag: leader of %s/%d: %w", t, p, err)
			}
			r := reqs[b]
			if r == nil {
				r = &sarama.OffsetRequest{Version: 1}
				reqs[b] = r
			}
			r.AddBlock(t, p, at, 1)
		}
	}
	out := map[topicPartition]int64{}
	for b, r := range reqs {
		resp, err := b.GetAvailableOffsets(r)
		if err != nil {
			return nil, fmt.Errorf("lag: offsets from broker %d: %w", b.ID(), err)
		}
		for t, ps := range want {
			for p := range ps {
				blk := resp.GetBlock(t, p)
				if blk == nil {
					continue
				}
				if !errors.Is(blk.Err, sarama.ErrNoError) {
					return nil, fmt.Errorf("lag: offset of %s/%d: %w", t, p, blk.Err)
				}
				out[topicPartition{t, p}] = blk.Offset
			}
		}
	}
	return out, nil
}
