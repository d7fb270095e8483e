package streamfold

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/streamfold/streamfold/tables"
)

// KafkaVersion is the protocol version we speak; both real Kafka 3.x+ and the
// embedded broker accept it.
var KafkaVersion = sarama.V3_6_0_0

// saramaConfig is the one sarama configuration of the framework. Every client
// gets its own copy (goka's builders mutate what they are given).
func saramaConfig(clientID string) *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = KafkaVersion
	c.ClientID = clientID
	// Event-sourced inputs start from the beginning; goka's default (newest)
	// silently skips history written before a group first starts. A committed
	// offset that fell out of the log resets to the earliest one too.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.ResetInvalidOffsets = true
	// A transactional producer's aborted records (and records of a
	// transaction still open) are never applied: every consumer of the
	// framework reads committed data only, as Kafka Streams does under
	// exactly-once.
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	// Idempotent producer: no duplicates from the producer's own retries.
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Compression = sarama.CompressionNone
	// Commits happen after emits are acknowledged; a short flush interval keeps
	// the table writes and replies of a request/reply path from idling 100 ms.
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Flush.Bytes = 256 * 1024
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(func() hash.Hash32 { return tables.NewHasher() })
	c.Metadata.RefreshFrequency = 30 * time.Second
	// A join blocks until the rebalance completes, at most the rebalance
	// timeout, but sarama reads its answer with the plain read timeout: a
	// rebalance that waits longer for a slow member than that makes every
	// other member's join fail. Give up on the slow member first.
	c.Consumer.Group.Rebalance.Timeout = c.Net.ReadTimeout * 2 / 3
	return c
}

func copyConfig(c *sarama.Config, clientID string) *sarama.Config {
	cp := *c
	cp.ClientID = clientID
	return &cp
}

// gokaOptions are the builders every goka processor and view is given: our
// sarama config, murmur2 everywhere, topics created by us with the configured
// replication (goka's topic manager would default to 2).
type gokaBuilders struct {
	base        *sarama.Config
	replication int
	log         *slog.Logger
}

func (b gokaBuilders) topicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = b.replication
	tmc.Stream.Replication = b.replication
	tmc.Stream.Retention = -1
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	return tmc
}

func (b gokaBuilders) topicManager(brokers []string) (goka.TopicManager, error) {
	return goka.NewTopicManager(brokers, copyConfig(b.base, b.base.ClientID+"-topics"), b.topicManagerConfig())
}

func (b gokaBuilders) producer(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
	c := copyConfig(b.base, clientID)
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(hasher)
	return goka.NewProducer(brokers, c)
}

func (b gokaBuilders) consumerGroup(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
	cg, err := sarama.NewConsumerGroup(brokers, group, copyConfig(b.base, clientID))
	if err != nil {
		return nil, err
	}
	return rejoining{ConsumerGroup: cg, group: group, log: b.log}, nil
}

// rejoining makes one Consume span sessions: when a rebalance ends a session,
// the member joins again at once. goka's processor would otherwise wait five
// seconds (hard-coded) before it rejoins, sending no heartbeats meanwhile:
// every rebalance would stop the group for 5 s, and with a session timeout
// under that the coordinator expels the waiting member, so that two
// instances take turns being thrown out of the group.
//
// It also rejoins after a failure of the group protocol itself (a
// coordinator that moved or went away, a join that timed out), which goka
// treats as fatal for the whole processor, for up to rejoinFor; a failure that
// lasts longer is returned.
type rejoining struct {
	sarama.ConsumerGroup
	group string
	log   *slog.Logger
}

const (
	// minSession paces a session that ends as soon as it began.
	minSession = 100 * time.Millisecond
	// rejoinFor is how long a member keeps rejoining after failures of the
	// group protocol before it gives up.
	rejoinFor = 2 * time.Minute
)

func (r rejoining) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	var failingSince time.Time
	backoff := minSession
	for {
		began := time.Now()
		err := r.ConsumerGroup.Consume(ctx, topics, &inOrder{h: h})
		if ctx.Err() != nil {
			return nil
		}
		wait := minSession - time.Since(began)
		switch {
		case err == nil:
			failingSince, backoff = time.Time{}, minSession
		case !retriable(err):
			return err
		default:
			if failingSince.IsZero() {
				failingSince = began
			}
			if time.Since(failingSince) > rejoinFor {
				return fmt.Errorf("group %s: rejoining for %s: %w", r.group, rejoinFor, err)
			}
			r.log.Warn("consumer group failed; rejoining", "group", r.group, "err", err, "backoff", backoff)
			wait, backoff = backoff, min(2*backoff, 5*time.Second)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// inOrder commits a partition's offsets only as far as every record
// delivered before has completed. goka marks each record's offset once the
// record's emits are acknowledged, and they are acknowledged in any order: a
// record whose emits (say, its events) were still in flight when a later one
// completed would be committed past, and lost if the process died then. A
// ConsumerGroupHandler is used by one Consume call; sarama calls its methods
// from several goroutines.
type inOrder struct {
	h sarama.ConsumerGroupHandler

	mu       sync.Mutex
	sessions map[sarama.ConsumerGroupSession]*orderedSession
}

func (o *inOrder) session(s sarama.ConsumerGroupSession) *orderedSession {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sessions == nil {
		o.sessions = map[sarama.ConsumerGroupSession]*orderedSession{}
	}
	os, ok := o.sessions[s]
	if !ok {
		os = &orderedSession{ConsumerGroupSession: s, parts: map[topicPartition]*inFlight{}}
		o.sessions[s] = os
	}
	return os
}

func (o *inOrder) Setup(s sarama.ConsumerGroupSession) error { return o.h.Setup(o.session(s)) }

func (o *inOrder) Cleanup(s sarama.ConsumerGroupSession) error {
	err := o.h.Cleanup(o.session(s))
	o.mu.Lock()
	delete(o.sessions, s)
	o.mu.Unlock()
	return err
}

func (o *inOrder) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	os := o.session(s)
	out := make(chan *sarama.ConsumerMessage)
	go func() {
		defer close(out)
		msgs := c.Messages()
		for msg := range msgs {
			os.deliver(msg)
			select {
			case out <- msg:
				continue
			case <-s.Context().Done():
			}
			break
		}
		for range msgs { // sarama closes the channel once the session ends
		}
	}()
	return o.h.ConsumeClaim(os, orderedClaim{ConsumerGroupClaim: c, msgs: out})
}

type orderedClaim struct {
	sarama.ConsumerGroupClaim
	msgs chan *sarama.ConsumerMessage
}

func (c orderedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

type topicPartition struct {
	topic     string
	partition int32
}

// inFlight are the offsets of a partition delivered and not committed yet,
// in delivery order, and those of them that completed.
type inFlight struct {
	delivered []int64
	done      map[int64]bool
}

type orderedSession struct {
	sarama.ConsumerGroupSession

	mu    sync.Mutex
	parts map[topicPartition]*inFlight
}

func (s *orderedSession) deliver(msg *sarama.ConsumerMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{msg.Topic, msg.Partition}
	f, ok := s.parts[tp]
	if !ok {
		f = &inFlight{done: map[int64]bool{}}
		s.parts[tp] = f
	}
	f.delivered = append(f.delivered, msg.Offset)
}

// MarkOffset records that the record before next completed, and marks the
// partition as far as the records delivered so far have all completed.
func (s *orderedSession) MarkOffset(topic string, partition int32, next int64, metadata string) {
	s.mu.Lock()
	f, ok := s.parts[topicPartition{topic, partition}]
	if !ok {
		s.mu.Unlock()
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
		return
	}
	f.done[next-1] = true
	last := int64(-1)
	for len(f.delivered) > 0 && f.done[f.delivered[0]] {
		last = f.delivered[0]
		delete(f.done, last)
		f.delivered = f.delivered[1:]
	}
	s.mu.Unlock()
	if last >= 0 {
		s.ConsumerGroupSession.MarkOffset(topic, partition, last+1, metadata)
	}
}

func (s *orderedSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}

// retriable reports a failure of the connection or of the group protocol,
// after which joining again is the cure.
func retriable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	for _, kerr := range []sarama.KError{
		sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrOffsetsLoadInProgress, sarama.ErrRebalanceInProgress, sarama.ErrUnknownMemberId,
		sarama.ErrIllegalGeneration, sarama.ErrRequestTimedOut, sarama.ErrNetworkException,
	} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected)
}

func (b gokaBuilders) consumer(brokers []string, clientID string) (sarama.Consumer, error) {
	return sarama.NewConsumer(brokers, copyConfig(b.base, clientID))
}

func (b gokaBuilders) processorOptions(storage goka.ProcessorOption) []goka.ProcessorOption {
	return []goka.ProcessorOption{
		storage,
		goka.WithHasher(func() hash.Hash32 { return tables.NewHasher() }),
		goka.WithTopicManagerBuilder(b.topicManager),
		goka.WithProducerBuilder(b.producer),
		goka.WithConsumerGroupBuilder(b.consumerGroup),
		goka.WithConsumerSaramaBuilder(b.consumer),
		goka.WithLogger(gokaLogger{b.log}),
		goka.WithNilHandling(goka.NilProcess),
	}
}

// viewOptions are processorOptions' counterpart for a goka view of a table
// (a read replica): our consumer and topic manager, murmur2, the stores of
// storage. A replica reconnects by itself after a broker failure rather than
// stopping the instance.
func (b gokaBuilders) viewOptions(storage storage.Builder) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewStorageBuilder(storage),
		goka.WithViewHasher(func() hash.Hash32 { return tables.NewHasher() }),
		goka.WithViewTopicManagerBuilder(b.topicManager),
		goka.WithViewConsumerSaramaBuilder(b.consumer),
		goka.WithViewLogger(gokaLogger{b.log}),
		goka.WithViewAutoReconnect(),
	}
}

// gokaLogger sends goka's chatter to slog at debug level.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)   { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Println(v ...any) { g.l.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Printf(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "component", "goka")
}
