package views

import (
	"context"
	"sync"

	"github.com/streamfold/streamfold/tables"
)

// HighWatermarks is what a Stores may also implement so that stale reads
// report their lag against the changelog's current end rather than the end
// seen when the store opened.
type HighWatermarks interface {
	HighWatermark(topic string, partition int32) (int64, error)
}

// StaleReads records what the views read under a context from
// WithStaleReads. Safe for concurrent use.
type StaleReads struct {
	mu     sync.Mutex
	reads  int
	lag    int64 // the largest lag in records of the copies read; -1 unknown
	behind bool  // a copy read was still restoring
}

type staleKey struct{}

// WithStaleReads returns a context under which views answer from any local
// copy of a partition — a hot standby, a replica, or a store still restoring
// — instead of answering ErrNotReady, and record in the returned StaleReads
// how far behind the changelog the copies they read were. A partition with
// no local copy at all still answers ErrNotReady.
func WithStaleReads(ctx context.Context) (context.Context, *StaleReads) {
	s := &StaleReads{}
	return context.WithValue(ctx, staleKey{}, s), s
}

func staleFrom(ctx context.Context) *StaleReads {
	s, _ := ctx.Value(staleKey{}).(*StaleReads)
	return s
}

// Lag returns the largest lag, in changelog records, of the copies read (-1
// when a watermark could not be read), whether any of them was still
// restoring, and whether anything was read at all.
func (s *StaleReads) Lag() (records int64, restoring, read bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lag, s.behind, s.reads > 0
}

func (s *StaleReads) record(lag int64, restoring bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.reads == 0, lag < 0:
		s.lag = lag
	case s.lag >= 0 && lag > s.lag:
		s.lag = lag
	}
	s.behind = s.behind || restoring
	s.reads++
}

// lagOf is how many changelog records the store has not applied yet, -1 when
// no watermark is known.
func lagOf(stores Stores, s *tables.Store) int64 {
	p := s.Progress()
	hwm := p.HighWatermark
	if hw, ok := stores.(HighWatermarks); ok {
		if h, err := hw.HighWatermark(p.Topic, p.Partition); err == nil {
			hwm = h
		}
	}
	if hwm < 0 {
		return -1
	}
	return max(hwm-p.Offset-1, 0)
}
