package tables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Record is a changelog record read by a Restorer. A nil Value is a
// tombstone; an empty one is an empty value.
type Record struct {
	Key    []byte
	Value  []byte
	Offset int64
}

// Restorer reads a changelog partition for a store that restores itself.
//
// Restore reads the records of topic/partition with offsets in [from, to),
// in offset order, and passes them to apply in batches; it returns nil once
// it has passed every record of the range that the log still holds
// (compaction and control records leave gaps), or the first error, apply's
// included. It stops early, with an error, when ctx is cancelled. apply
// does not keep the batch or its slices, so a Restorer may reuse them after
// apply returns.
//
// Stores of different partitions restore concurrently: implementations must
// be safe for concurrent use.
type Restorer interface {
	Restore(ctx context.Context, topic string, partition int32, from, to int64, apply func(batch []Record) error) error
}

// RestorerFunc adapts a function to the Restorer interface.
type RestorerFunc func(ctx context.Context, topic string, partition int32, from, to int64, apply func(batch []Record) error) error

// Restore calls f.
func (f RestorerFunc) Restore(ctx context.Context, topic string, partition int32, from, to int64, apply func([]Record) error) error {
	return f(ctx, topic, partition, from, to, apply)
}

// WithRestorer lets every store restore itself when it opens: Open reads the
// changelog through r from the offset after the stored one to the high
// watermark taken at Open, applies it in batches like goka's recovery would
// (same staging, indexes, tombstones, and offsets committed with every
// batch), and returns with the offset hwm-1 stored, so that goka's own
// recovery only reads what arrived since. It needs WithWatermarks.
//
// A restore that fails leaves what it applied in place, logs a warning and
// lets Open succeed: goka's recovery continues from there. Closing the store
// (or the engine) stops a restore in progress, and Open then fails.
//
// goka cannot interrupt Open: a processor or view stopping (a rebalance, a
// shutdown) waits for the restores running in Open.
//
// The restore applies the records as goka's default update callback does
// (a nil value deletes, anything else sets); do not combine it with a custom
// goka update callback.
func WithRestorer(r Restorer) EngineOption {
	return func(o *engineOptions) { o.restorer = r }
}

// restore reads the changelog range [from, to) into the store through the
// engine's Restorer; see WithRestorer. It runs in Open, after open.
func (s *Store) restore(ctx context.Context, from, to int64) error {
	start := time.Now()
	s.log.Info("restoring table from changelog", "from", from, "hwm", to)
	err := s.engine.opts.restorer.Restore(ctx, s.topic, s.partition, from, to, s.applyRestored)

	s.mu.Lock()
	s.cancelRestore()
	werr := s.writable()
	if werr == nil && err == nil {
		// Everything up to the high watermark is applied; a gap at its
		// end (compaction, a transaction marker) holds nothing to apply.
		_ = s.SetOffset(to - 1)
		werr = s.flushLocked(s.db.Load())
	}
	s.mu.Unlock()

	switch {
	case errors.Is(werr, ErrStoreClosed):
		return fmt.Errorf("open store %s/%d: restore from changelog: %w", s.topic, s.partition, werr)
	case werr != nil:
		// A batch failed to commit: the store refuses writes.
		return errors.Join(fmt.Errorf("open store %s/%d: restore from changelog: %w", s.topic, s.partition, werr), s.Close())
	case err != nil:
		s.log.Warn("restore from changelog failed; goka's recovery continues from the last record applied",
			"offset", s.offset.Load(), "records", s.records.Load(), "error", err)
		return nil
	}
	d := time.Since(start)
	n := s.records.Load()
	s.log.Info("changelog restored", "records", n, "offset", to-1, "duration", d.Round(time.Millisecond).String(), "rate", math.Round(storeRate(n, d)))
	return nil
}

// applyRestored stages a batch of changelog records, as Set or Delete
// followed by SetOffset would, under one lock.
func (s *Store) applyRestored(batch []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("restore %s/%d: %w", s.topic, s.partition, err)
	}
	db := s.db.Load()
	n := int64(0)
	defer func() { s.records.Add(n) }()
	for i := range batch {
		r := &batch[i]
		if cur := s.offset.Load(); cur != storeNoOffset && r.Offset <= cur {
			return fmt.Errorf("restore %s/%d: offset %d after %d: records out of order", s.topic, s.partition, r.Offset, cur)
		}
		if err := storeStageLocked(s, db, r.Key, r.Value, r.Value == nil); err != nil {
			return err
		}
		n++
		s.offset.Store(r.Offset)
	}
	return nil
}
