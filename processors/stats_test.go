package processors

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStats_GivenCountsOnManyPartitionsAtOnce_ThenTheSnapshotHasEachPartitionAndTheirSums(t *testing.T) {
	s := newStats()
	in, retry := s.topic("in"), s.topic("g-retry-1")
	var wg sync.WaitGroup
	for p := range int32(8) {
		wg.Go(func() { // a partition's goroutine, as goka runs them
			for range 100 {
				ps := in.part(7 - p) // the highest first: growth copies what is there
				ps.processed.Add(1)
				ps.applied.Add(1)
			}
			in.part(7 - p).count("parked")
		})
	}
	wg.Go(func() {
		ps := retry.part(3)
		ps.processed.Add(1)
		ps.deadLetter(ClassHandler)
	})
	wg.Wait()

	snap := s.snapshot()
	assert.Equal(t, int64(801), snap.Processed)
	assert.Equal(t, int64(800), snap.Applied)
	assert.Equal(t, map[string]int64{"parked": 8}, snap.Counters)
	assert.Equal(t, map[string]int64{ClassHandler: 1}, snap.DeadLetters)
	if assert.Len(t, snap.Partitions, 9) {
		assert.Equal(t, PartitionSnapshot{Topic: "g-retry-1", Partition: 3, Processed: 1, DeadLetters: map[string]int64{ClassHandler: 1}}, snap.Partitions[0], "sorted by topic")
		for p, ps := range snap.Partitions[1:] {
			assert.Equal(t, PartitionSnapshot{Topic: "in", Partition: int32(p), Processed: 100, Applied: 100, Counters: map[string]int64{"parked": 1}}, ps)
		}
	}
	assert.Same(t, in.part(5), s.part("in", 5), "one counter per partition, however found")
}

// BenchmarkStats_PerRecord is what counting costs a record: finding its
// partition's counters and adding to two of them (processed, applied), as
// the callback and a fold do; "group-only" is the same two adds on one
// group-wide set of atomics, as the counters were before they were kept per
// partition.
func BenchmarkStats_PerRecord(b *testing.B) {
	b.Run("group-only", func(b *testing.B) {
		var processed, applied atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				processed.Add(1)
				applied.Add(1)
			}
		})
	})
	b.Run("per-partition", func(b *testing.B) {
		ts := newStats().topic("in")
		var next atomic.Int32
		b.RunParallel(func(pb *testing.PB) {
			p := next.Add(1) % 8 // a goroutine per partition, as goka runs them
			for pb.Next() {
				ps := ts.part(p)
				ps.processed.Add(1)
				ps.applied.Add(1)
			}
		})
	})
}
