package topics

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Partitions are partitions by topic.
type Partitions map[string][]int32

// All is every partition of each topic, counted by partitions.
func All(topics []string, partitions map[string]int) Partitions {
	out := Partitions{}
	for _, t := range topics {
		if out[t] != nil {
			continue // named twice
		}
		for p := range partitions[t] {
			out[t] = append(out[t], int32(p))
		}
	}
	return out
}

// Offsets are offsets by topic and partition.
type Offsets map[string]map[int32]int64

// Of is the offset of topic's partition p, and whether there is one.
func (o Offsets) Of(topic string, p int32) (int64, bool) {
	v, ok := o[topic][p]
	return v, ok
}

func (o Offsets) set(topic string, p int32, v int64) {
	if o[topic] == nil {
		o[topic] = map[int32]int64{}
	}
	o[topic][p] = v
}

// Committed is the next offset group reads on each partition of want, -1
// where it committed none. A group the cluster has never seen has committed
// none: Kafka answers with no offsets, some brokers (kfake) with
// GroupIDNotFound.
func Committed(client sarama.Client, group string, want Partitions) (Offsets, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	// Closing admin would close the shared client; it holds nothing else.
	resp, err := admin.ListConsumerGroupOffsets(group, want)
	if errors.Is(err, sarama.ErrGroupIDNotFound) || (err == nil && errors.Is(resp.Err, sarama.ErrGroupIDNotFound)) {
		resp, err = &sarama.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	if !errors.Is(resp.Err, sarama.ErrNoError) {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, resp.Err)
	}
	out := Offsets{}
	for t, ps := range want {
		for _, p := range ps {
			off := int64(-1)
			if b := resp.GetBlock(t, p); b != nil && errors.Is(b.Err, sarama.ErrNoError) && b.Offset >= 0 {
				off = b.Offset
			}
			out.set(t, p, off)
		}
	}
	return out, nil
}

// LogOffsets asks each partition's leader for its newest (at
// sarama.OffsetNewest: the high watermark) or oldest offset, one request per
// broker.
func LogOffsets(client sarama.Client, want Partitions, at int64) (Offsets, error) {
	reqs := map[*sarama.Broker]*sarama.OffsetRequest{}
	for t, ps := range want {
		for _, p := range ps {
			b, err := client.Leader(t, p)
			if err != nil {
				return nil, fmt.Errorf("leader of %s/%d: %w", t, p, err)
			}
			r := reqs[b]
			if r == nil {
				r = &sarama.OffsetRequest{Version: 1}
				reqs[b] = r
			}
			r.AddBlock(t, p, at, 1)
		}
	}
	out := Offsets{}
	for b, r := range reqs {
		resp, err := b.GetAvailableOffsets(r)
		if err != nil {
			return nil, fmt.Errorf("offsets from broker %d: %w", b.ID(), err)
		}
		for t, ps := range want {
			for _, p := range ps {
				blk := resp.GetBlock(t, p)
				if blk == nil {
					continue // another broker's
				}
				if !errors.Is(blk.Err, sarama.ErrNoError) {
					return nil, fmt.Errorf("offset of %s/%d: %w", t, p, blk.Err)
				}
				out.set(t, p, blk.Offset)
			}
		}
	}
	return out, nil
}
