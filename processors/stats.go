package processors

import (
	"maps"
	"sync"
	"sync/atomic"
)

// stats are a group's counters. Safe for concurrent use.
type stats struct {
	processed  atomic.Int64
	applied    atomic.Int64
	duplicates atomic.Int64
	deleted    atomic.Int64
	suppressed atomic.Int64

	mu          sync.Mutex
	deadLetters map[string]int64
	counters    map[string]int64 // retried-in-place, retried-later, parked, released
}

func newStats() *stats { return &stats{deadLetters: map[string]int64{}, counters: map[string]int64{}} }

func (s *stats) count(name string) {
	s.mu.Lock()
	s.counters[name]++
	s.mu.Unlock()
}

func (s *stats) deadLetter(class string) {
	s.mu.Lock()
	s.deadLetters[class]++
	s.mu.Unlock()
}

// Snapshot is a point-in-time copy of a group's counters.
type Snapshot struct {
	Processed   int64            `json:"processed"`
	Applied     int64            `json:"applied"`
	Duplicates  int64            `json:"duplicates"`
	Deleted     int64            `json:"deleted"`
	Suppressed  int64            `json:"suppressed"`
	DeadLetters map[string]int64 `json:"deadLetters"`
	// Counters: retried-in-place, retried-later, parked, released.
	Counters map[string]int64 `json:"counters"`
}

// snapshot copies the counters.
func (s *stats) snapshot() Snapshot {
	s.mu.Lock()
	dl := maps.Clone(s.deadLetters)
	cs := maps.Clone(s.counters)
	s.mu.Unlock()
	return Snapshot{
		Processed:   s.processed.Load(),
		Applied:     s.applied.Load(),
		Duplicates:  s.duplicates.Load(),
		Deleted:     s.deleted.Load(),
		Suppressed:  s.suppressed.Load(),
		DeadLetters: dl,
		Counters:    cs,
	}
}
