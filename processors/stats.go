package processors

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/streamfold/streamfold/internal/groups"
)

// stats are a group's counters, kept per input partition. Safe for
// concurrent use.
//
// The fold's hot path must not pay for the breakdown: a callback finds its
// topic's counters once, when the graph is built, and a record finds its
// partition's by an index into a slice loaded with one atomic read (see
// topicStats.part); the counters themselves are atomics.
type stats struct {
	mu     sync.Mutex
	topics map[string]*topicStats
}

func newStats() *stats { return &stats{topics: map[string]*topicStats{}} }

// topic returns the counters of topic's partitions, made on first use.
func (s *stats) topic(name string) *topicStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.topics[name]
	if ts == nil {
		ts = &topicStats{name: name}
		s.topics[name] = ts
	}
	return ts
}

// part returns the counters of one partition, for the few counts made
// outside a record's callback (a dead letter of a parked record).
func (s *stats) part(topic string, partition int32) *partStats {
	return s.topic(topic).part(partition)
}

// topicStats are one topic's partitions' counters, indexed by partition.
// The slice is replaced (copied, one longer) when a partition is first
// seen, so readers never lock.
type topicStats struct {
	name  string
	mu    sync.Mutex // serialises growth
	parts atomic.Pointer[[]*partStats]
}

func (t *topicStats) part(p int32) *partStats {
	if ps := t.parts.Load(); ps != nil && int(p) < len(*ps) && p >= 0 {
		if c := (*ps)[p]; c != nil {
			return c
		}
	}
	return t.grow(p)
}

func (t *topicStats) grow(p int32) *partStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur []*partStats
	if ps := t.parts.Load(); ps != nil {
		cur = *ps
	}
	if p < 0 { // never from Kafka; kept apart rather than lost
		p = 0
	}
	if int(p) < len(cur) && cur[p] != nil {
		return cur[p]
	}
	next := make([]*partStats, max(len(cur), int(p)+1))
	copy(next, cur)
	next[p] = &partStats{topic: t.name, partition: p}
	t.parts.Store(&next)
	return next[p]
}

// partStats are the counters of one partition of one of a group's inputs.
// The partition's goroutine adds to them; scrapes read them concurrently.
type partStats struct {
	topic     string
	partition int32

	processed  atomic.Int64
	applied    atomic.Int64
	duplicates atomic.Int64
	deleted    atomic.Int64
	suppressed atomic.Int64

	mu          sync.Mutex
	deadLetters map[string]int64
	counters    map[string]int64 // retried-in-place, retried-later, parked, released, …
}

func (p *partStats) count(name string) {
	p.mu.Lock()
	if p.counters == nil {
		p.counters = map[string]int64{}
	}
	p.counters[name]++
	p.mu.Unlock()
}

func (p *partStats) deadLetter(class string) {
	p.mu.Lock()
	if p.deadLetters == nil {
		p.deadLetters = map[string]int64{}
	}
	p.deadLetters[class]++
	p.mu.Unlock()
}

// Snapshot is a point-in-time copy of a group's counters: its totals, and
// the same counters by input topic and partition.
type Snapshot struct {
	Processed   int64            `json:"processed"`
	Applied     int64            `json:"applied"`
	Duplicates  int64            `json:"duplicates"`
	Deleted     int64            `json:"deleted"`
	Suppressed  int64            `json:"suppressed"`
	DeadLetters map[string]int64 `json:"deadLetters"`
	// Counters: retried-in-place, retried-later, parked, released.
	Counters map[string]int64 `json:"counters"`
	// Partitions are the counters of each input partition the group has
	// seen a record of, sorted by topic and partition; the totals above are
	// their sums (plus, in Counters, what the runtime adds of the group's
	// stores). Left out of JSON: /metrics serves them, and /readyz stays
	// short.
	Partitions []PartitionSnapshot `json:"-"`
}

// PartitionSnapshot is a point-in-time copy of a group's counters of one
// partition of one of its inputs (an input topic, a retry topic, its loop).
type PartitionSnapshot = groups.PartitionCounts

// snapshot copies the counters.
func (s *stats) snapshot() Snapshot {
	s.mu.Lock()
	topics := slices.Collect(maps.Values(s.topics))
	s.mu.Unlock()
	slices.SortFunc(topics, func(a, b *topicStats) int { return cmp.Compare(a.name, b.name) })

	out := Snapshot{DeadLetters: map[string]int64{}, Counters: map[string]int64{}}
	for _, t := range topics {
		ps := t.parts.Load()
		if ps == nil {
			continue
		}
		for _, p := range *ps {
			if p == nil {
				continue
			}
			p.mu.Lock()
			ps := PartitionSnapshot{
				Topic: p.topic, Partition: p.partition,
				DeadLetters: maps.Clone(p.deadLetters), Counters: maps.Clone(p.counters),
			}
			p.mu.Unlock()
			ps.Processed = p.processed.Load()
			ps.Applied = p.applied.Load()
			ps.Duplicates = p.duplicates.Load()
			ps.Deleted = p.deleted.Load()
			ps.Suppressed = p.suppressed.Load()

			out.Processed += ps.Processed
			out.Applied += ps.Applied
			out.Duplicates += ps.Duplicates
			out.Deleted += ps.Deleted
			out.Suppressed += ps.Suppressed
			for k, v := range ps.DeadLetters {
				out.DeadLetters[k] += v
			}
			for k, v := range ps.Counters {
				out.Counters[k] += v
			}
			out.Partitions = append(out.Partitions, ps)
		}
	}
	return out
}
