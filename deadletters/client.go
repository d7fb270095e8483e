package deadletters

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/tables"
)

var (
	// ErrNoTopic: the group has no dead-letter topic (unknown group, or one
	// that never ran against this cluster).
	ErrNoTopic = errors.New("no dead-letter topic")
	// ErrNotFound: no dead letter at that partition and offset.
	ErrNotFound = errors.New("no such dead letter")
	// ErrBadCursor: a cursor this package did not hand out.
	ErrBadCursor = errors.New("bad cursor")
	// ErrBadLimit: a page size below 1.
	ErrBadLimit = errors.New("bad limit")
	// ErrBadSelection: a re-drive selection that selects nothing sensible.
	ErrBadSelection = errors.New("bad selection")
	// ErrSkipped: the one dead letter selected was not re-driven because of
	// its re-drive state (applied, stale, or awaiting its outcome; see
	// Selection.Forced).
	ErrSkipped = errors.New("dead letter not re-driven")
	// ErrNotRedrivable: a dead letter without an original topic header.
	ErrNotRedrivable = errors.New("dead letter names no original topic")
)

// Option configures New.
type Option func(*options)

type options struct {
	version  sarama.KafkaVersion
	clientID string
	log      *slog.Logger
	sarama   []func(*sarama.Config)
}

// WithKafkaVersion sets the protocol version spoken; default sarama's
// DefaultVersion (2.1, which every Kafka since and the embedded broker speak).
func WithKafkaVersion(v sarama.KafkaVersion) Option { return func(o *options) { o.version = v } }

// WithClientID sets the Kafka client id; default "streamfold-deadletters".
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithSarama lets configure change the client's sarama settings before it
// connects: TLS and SASL for a secured cluster (streamfold.Security's
// ApplySarama).
func WithSarama(configure func(*sarama.Config)) Option {
	return func(o *options) { o.sarama = append(o.sarama, configure) }
}

// WithLogger sets the logger re-drives are reported to; nil discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Client reads and re-drives dead letters. Its methods are safe for
// concurrent use; each call opens its own consumer (and producer, for
// Redrive) over one shared connection. Close it once every call returned.
type Client struct {
	client sarama.Client
	log    *slog.Logger
}

// New connects to the brokers.
func New(brokers []string, opts ...Option) (*Client, error) {
	o := options{version: sarama.DefaultVersion, clientID: "streamfold-deadletters"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if len(brokers) == 0 {
		return nil, errors.New("deadletters: no brokers")
	}
	c := sarama.NewConfig()
	c.Version = o.version
	c.ClientID = o.clientID
	// Looking at a mistyped group must not create <typo>-dlq.
	c.Metadata.AllowAutoTopicCreation = false
	c.Metadata.Full = false
	c.Consumer.Return.Errors = true
	// Never show a dead letter or a state whose transaction was aborted.
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	// Reads stop at end offsets known in advance: a fetch that finds nothing
	// new need not wait for more (and, with one request in flight per
	// connection for the idempotent producer, must not hold the line).
	c.Consumer.MaxWaitTime = 10 * time.Millisecond
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	// Re-driven records go where Java clients, Kafka Streams and our groups
	// look: murmur2 by key; one idempotent producer per re-drive.
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(func() hash.Hash32 { return tables.NewHasher() })
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 10
	c.Net.MaxOpenRequests = 1
	for _, configure := range o.sarama {
		configure(c)
	}
	cl, err := sarama.NewClient(brokers, c)
	if err != nil {
		return nil, fmt.Errorf("deadletters: connect to %v: %w", brokers, err)
	}
	return &Client{client: cl, log: o.log}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.client.Close() }

// Page is one page of a listing. Next is empty on the last page.
type Page struct {
	Items []DeadLetter `json:"items"`
	Next  string       `json:"next,omitempty"`
}

// List returns up to limit dead letters of group in (partition, offset)
// order, starting at cursor ("" for the beginning; otherwise the Next of the
// previous page). It reads up to the end offsets taken when it starts, so it
// never waits for new dead letters; Next is empty when nothing is left up to
// those offsets.
func (c *Client) List(ctx context.Context, group, cursor string, limit int) (Page, error) {
	if limit < 1 {
		return Page{}, fmt.Errorf("%w: %d, must be at least 1", ErrBadLimit, limit)
	}
	start := position{}
	if cursor != "" {
		var err error
		if start, err = decodeCursor(cursor); err != nil {
			return Page{}, err
		}
	}
	topic := Topic(group)
	parts, err := c.partitions(topic)
	if err != nil {
		return Page{}, err
	}
	parts = slices.DeleteFunc(parts, func(p int32) bool { return p < start.partition })
	ends, err := c.bounds(topic, parts)
	if err != nil {
		return Page{}, err
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return Page{}, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()

	spans := make([]span, 0, len(parts))
	for _, p := range parts {
		from := ends[p].oldest
		if p == start.partition {
			from = max(from, start.offset)
		}
		spans = append(spans, span{p, from, ends[p].newest})
	}
	page := Page{Items: []DeadLetter{}}
	last := position{partition: -1}
	err = read(ctx, consumer, topic, spans, func(m *sarama.ConsumerMessage) bool {
		page.Items = append(page.Items, decode(group, m))
		last = position{m.Partition, m.Offset}
		return len(page.Items) < limit
	})
	if err != nil {
		return Page{}, err
	}
	states, err := c.states(ctx, group)
	if err != nil {
		return Page{}, err
	}
	withStates(page.Items, states)
	if len(page.Items) == limit && more(last, parts, ends) {
		page.Next = encodeCursor(position{last.partition, last.offset + 1})
	}
	return page, nil
}

// more reports whether any record lies after pos, up to the end offsets.
func more(pos position, parts []int32, ends map[int32]bounds) bool {
	for _, p := range parts {
		switch {
		case p == pos.partition && pos.offset+1 < ends[p].newest:
			return true
		case p > pos.partition && ends[p].oldest < ends[p].newest:
			return true
		}
	}
	return false
}

// Get reads the dead letter at partition and offset of group's topic.
func (c *Client) Get(ctx context.Context, group string, partition int32, offset int64) (DeadLetter, error) {
	topic := Topic(group)
	m, err := c.one(ctx, topic, partition, offset)
	if err != nil {
		return DeadLetter{}, err
	}
	states, err := c.states(ctx, group)
	if err != nil {
		return DeadLetter{}, err
	}
	d := []DeadLetter{decode(group, m)}
	withStates(d, states)
	return d[0], nil
}

// one reads the record at partition/offset of topic, or ErrNotFound.
func (c *Client) one(ctx context.Context, topic string, partition int32, offset int64) (*sarama.ConsumerMessage, error) {
	notFound := fmt.Errorf("%w: %s/%d/%d", ErrNotFound, topic, partition, offset)
	parts, err := c.partitions(topic)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(parts, partition) {
		return nil, notFound
	}
	ends, err := c.bounds(topic, []int32{partition})
	if err != nil {
		return nil, err
	}
	if offset < ends[partition].oldest || offset >= ends[partition].newest {
		return nil, notFound
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	var found *sarama.ConsumerMessage
	err = read(ctx, consumer, topic, []span{{partition, offset, offset + 1}}, func(m *sarama.ConsumerMessage) bool {
		if m.Offset == offset {
			found = m
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, notFound
	}
	return found, nil
}

// partitions lists topic's partitions in order, or ErrNoTopic.
func (c *Client) partitions(topic string) ([]int32, error) {
	parts, err := c.client.Partitions(topic)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) || err == nil && len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoTopic, topic)
	}
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	parts = slices.Clone(parts)
	slices.Sort(parts)
	return parts, nil
}

// bounds is a partition's log: records live at [oldest, newest).
type bounds struct{ oldest, newest int64 }

func (c *Client) bounds(topic string, parts []int32) (map[int32]bounds, error) {
	out := make(map[int32]bounds, len(parts))
	for _, p := range parts {
		oldest, err := c.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("earliest offset of %s/%d: %w", topic, p, err)
		}
		newest, err := c.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
		}
		out[p] = bounds{oldest, newest}
	}
	return out, nil
}

// span is the records of one partition at offsets [from, to).
type span struct {
	partition int32
	from, to  int64
}

// read calls fn for each record of the spans of topic, span by span, in
// offset order, until fn returns false. The records are in the log already,
// so it returns as soon as it has seen them; it gives up when ctx ends. Every
// partition is subscribed at once: sarama gathers new subscriptions for up to
// 100 ms before fetching.
func read(ctx context.Context, consumer sarama.Consumer, topic string, spans []span, fn func(*sarama.ConsumerMessage) bool) error {
	pcs := make([]sarama.PartitionConsumer, len(spans))
	defer func() {
		for _, pc := range pcs {
			if pc != nil {
				pc.AsyncClose()
			}
		}
		for _, pc := range pcs {
			if pc != nil {
				_ = pc.Close()
			}
		}
	}()
	for i, s := range spans {
		if s.from >= s.to {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, s.partition, s.from)
		if err != nil {
			return fmt.Errorf("read %s/%d from %d: %w", topic, s.partition, s.from, err)
		}
		pcs[i] = pc
	}
	for i, s := range spans {
		if pcs[i] == nil {
			continue
		}
		more, err := readSpan(ctx, pcs[i], topic, s, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// readSpan reads one span; more is false when fn asked to stop.
func readSpan(ctx context.Context, pc sarama.PartitionConsumer, topic string, s span, fn func(*sarama.ConsumerMessage) bool) (more bool, err error) {
	errs := pc.Errors()
	for {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("read %s/%d: %w", topic, s.partition, ctx.Err())
		case m, ok := <-pc.Messages():
			switch {
			case !ok:
				return false, fmt.Errorf("read %s/%d: consumer closed", topic, s.partition)
			case m.Offset >= s.to:
				return true, nil
			case !fn(m):
				return false, nil
			case m.Offset+1 >= s.to:
				return true, nil
			}
		case cerr, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			return false, fmt.Errorf("read %s/%d: %w", topic, s.partition, cerr.Err)
		}
	}
}

// position is a place in a dead-letter topic; a cursor is the next one to read.
type position struct {
	partition int32
	offset    int64
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", p.partition, p.offset))
}

func decodeCursor(s string) (position, error) {
	bad := fmt.Errorf("%w: %q", ErrBadCursor, s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return position{}, bad
	}
	ps, os, ok := strings.Cut(string(b), ":")
	if !ok {
		return position{}, bad
	}
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return position{}, bad
	}
	return position{int32(p), o}, nil
}
