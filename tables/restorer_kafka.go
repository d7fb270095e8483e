package tables

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// kafkaRestoreFetchBytes bounds a fetch of the restoring partition;
	// franz-go fetches the next one while the last is applied. Against
	// kfake, 1 MiB fetches cost less CPU than 4 MiB ones, and those less
	// than 32 MiB ones (the broker copies every response). Over a network
	// with latency larger fetches may pay: NewKafkaRestorer takes
	// kgo.FetchMaxPartitionBytes.
	kafkaRestoreFetchBytes = 1 << 20
	// kafkaRestoreApplyRecords bounds the records passed to apply at once:
	// the store holds its lock while applying, and readers wait for it.
	kafkaRestoreApplyRecords = 4096
)

// KafkaRestorer is the Restorer reading changelogs from Kafka with a
// franz-go client of its own per restore, which consumes the one partition
// directly (no consumer group) from the exact offset.
//
// Restore may be called concurrently; each call has its own client.
type KafkaRestorer struct {
	brokers  []string
	clientID string
	opts     []kgo.Opt
}

// NewKafkaRestorer returns a restorer reading from the cluster at brokers
// as clientID. opts are added to (and may override) the client options, for
// TLS, SASL or a logger.
func NewKafkaRestorer(brokers []string, clientID string, opts ...kgo.Opt) *KafkaRestorer {
	return &KafkaRestorer{brokers: slices.Clone(brokers), clientID: clientID, opts: slices.Clone(opts)}
}

// Restore reads topic/partition from offset from up to, not including, to.
// Transaction markers are read to see the range end but not applied; an
// offset below the log start continues at the log start. Like goka's
// recovery, it stops once it has read offset to-1: a log that lost that
// offset (truncated or recreated since to was taken) keeps it waiting until
// ctx is cancelled.
func (r *KafkaRestorer) Restore(ctx context.Context, topic string, partition int32, from, to int64, apply func([]Record) error) error {
	if from >= to {
		return nil
	}
	if len(r.brokers) == 0 {
		return errors.New("kafka restorer: no brokers")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.brokers...),
		kgo.ClientID(r.clientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxPartitionBytes(kafkaRestoreFetchBytes),
		kgo.KeepControlRecords(),
		// A changelog written by a transactional producer restores only
		// what its transactions committed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, r.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka restorer: %w", err)
	}
	defer cl.Close()

	batch := make([]Record, 0, kafkaRestoreApplyRecords)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := apply(batch)
		batch = batch[:0]
		return err
	}
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			// The log start moved past the offset asked for (compaction,
			// retention): what is gone holds nothing to restore.
			var loss *kgo.ErrDataLoss
			if !errors.As(err, &loss) {
				errs = append(errs, fmt.Errorf("fetch %s/%d: %w", t, p, err))
			}
		})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("kafka restorer: %w", err)
		}
		done := false
		for it := fetches.RecordIter(); !it.Done() && !done; {
			rec := it.Next()
			if rec.Topic != topic || rec.Partition != partition {
				continue
			}
			if rec.Offset >= to {
				done = true
				break
			}
			done = rec.Offset == to-1
			if rec.Attrs.IsControl() {
				continue
			}
			batch = append(batch, Record{Key: rec.Key, Value: rec.Value, Offset: rec.Offset})
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
