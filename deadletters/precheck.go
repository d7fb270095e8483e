package deadletters

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/processors"
)

// precheck refuses, before anything goes out, the re-drives of the batch
// whose key was deleted since the original offset: the newest record of the
// key on the original partition after that offset is a tombstone. The group
// cannot see that (a deleted key has no snapshot, so no applied offsets), and
// applying the record would bring the key back. Keys that still have state
// are the group's to judge, exactly, from the offsets it applied. Exempt: a
// tombstone dead letter (deleting an absent key changes nothing) and a forced
// re-drive. Refusals are recorded as stale, with the deleting offset.
//
// It reads each original partition from the batch's oldest original offset
// to its end: the price of knowing, paid by the operator's call, not the
// group.
func (r *redrive) precheck(ctx context.Context) error {
	if r.force {
		return nil
	}
	type where struct {
		topic     string
		partition int32
	}
	from := map[where]int64{}
	keys := map[where]map[string]bool{}
	for _, p := range r.batch {
		if p.dl.Value == nil {
			continue
		}
		w := where{p.dl.OriginalTopic, p.dl.OriginalPartition}
		if o, ok := from[w]; !ok || p.dl.OriginalOffset < o {
			from[w] = p.dl.OriginalOffset
		}
		if keys[w] == nil {
			keys[w] = map[string]bool{}
		}
		keys[w][p.key] = true
	}
	type write struct {
		offset    int64
		tombstone bool
	}
	last := map[where]map[string]write{}
	for w, start := range from {
		parts, err := r.c.partitions(w.topic)
		if err != nil {
			return err
		}
		if !slices.Contains(parts, w.partition) {
			continue
		}
		ends, err := r.c.bounds(w.topic, []int32{w.partition})
		if err != nil {
			return err
		}
		b := ends[w.partition]
		writes := map[string]write{}
		last[w] = writes
		err = read(ctx, r.consumer, w.topic, []span{{w.partition, max(start+1, b.oldest), b.newest}}, func(m *sarama.ConsumerMessage) bool {
			if k := string(m.Key); keys[w][k] {
				writes[k] = write{m.Offset, m.Value == nil}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("check newer writes: %w", err)
		}
	}
	kept := r.batch[:0]
	var stale []pending
	now := time.Now().UTC()
	for _, p := range r.batch {
		w := where{p.dl.OriginalTopic, p.dl.OriginalPartition}
		lw, ok := last[w][p.key]
		if p.dl.Value == nil || !ok || !lw.tombstone || lw.offset <= p.dl.OriginalOffset {
			kept = append(kept, p)
			continue
		}
		reason := fmt.Sprintf("key %q was deleted at %s, after the original offset %d", p.key,
			processors.Coordinates(w.topic, w.partition, lw.offset), p.dl.OriginalOffset)
		p.state = RedriveState{Status: processors.RedriveStale, At: now, Attempts: p.attempts - 1, From: p.dl.Coordinates(),
			Reason: reason, AppliedOffset: &lw.offset}
		stale = append(stale, p)
		r.res.Skipped = append(r.res.Skipped, Skipped{From: p.from, Reason: "stale: " + reason + "; force to bring it back",
			Status: processors.RedriveStale, done: true})
	}
	r.batch = kept
	return r.setStates(func(p pending) *RedriveState { return &p.state }, stale)
}
