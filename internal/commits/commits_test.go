package commits

import (
	"testing"

	"github.com/IBM/sarama"
)

// markSession records what reaches the inner session's MarkOffset.
type markSession struct {
	sarama.ConsumerGroupSession
	marked []int64
}

func (s *markSession) MarkOffset(_ string, _ int32, next int64, _ string) {
	s.marked = append(s.marked, next)
}

func TestInOrder_GivenRecordsCompletingOutOfOrder_ThenTheOffsetMovesOnlyPastContiguouslyCompletedOnes(t *testing.T) {
	inner := &markSession{}
	s := &orderedSession{ConsumerGroupSession: inner, parts: map[topicPartition]*inFlight{}}
	for off := int64(10); off < 13; off++ {
		s.deliver(&sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: off})
	}

	s.MarkOffset("t", 0, 12, "") // 11 completed before 10: nothing to commit yet
	if len(inner.marked) != 0 {
		t.Fatalf("committed %v before offset 10 completed", inner.marked)
	}
	s.MarkMessage(&sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: 10}, "")
	s.MarkOffset("t", 0, 13, "")

	want := []int64{12, 13}
	if len(inner.marked) != len(want) || inner.marked[0] != want[0] || inner.marked[1] != want[1] {
		t.Fatalf("committed %v, want %v", inner.marked, want)
	}
}

func TestInOrder_GivenAPartitionNeverDelivered_ThenMarksPassThrough(t *testing.T) {
	inner := &markSession{}
	s := &orderedSession{ConsumerGroupSession: inner, parts: map[topicPartition]*inFlight{}}
	s.MarkOffset("other", 3, 7, "")
	if len(inner.marked) != 1 || inner.marked[0] != 7 {
		t.Fatalf("committed %v, want [7]", inner.marked)
	}
}
