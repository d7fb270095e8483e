package deadletters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/processors"
)

// redriveBatch is how many records one produce call carries.
const redriveBatch = 500

// Selection says which dead letters to re-drive; make one with One, Range or
// All. The zero Selection selects nothing and is rejected.
type Selection struct {
	kind      selectionKind
	partition int32
	from, to  int64
}

type selectionKind int

const (
	selectNone selectionKind = iota
	selectOne
	selectRange
	selectAll
)

// One selects the dead letter at partition and offset.
func One(partition int32, offset int64) Selection {
	return Selection{kind: selectOne, partition: partition, from: offset, to: offset}
}

// Range selects the dead letters at offsets from through to (both included)
// of partition; offsets outside the log are ignored.
func Range(partition int32, from, to int64) Selection {
	return Selection{kind: selectRange, partition: partition, from: from, to: to}
}

// All selects every dead letter in the topic when the re-drive starts.
func All() Selection { return Selection{kind: selectAll} }

// Validate reports a selection that cannot select anything sensible.
func (s Selection) Validate() error {
	switch {
	case s.kind == selectNone:
		return fmt.Errorf("%w: empty (use One, Range or All)", ErrBadSelection)
	case s.kind == selectAll:
		return nil
	case s.partition < 0:
		return fmt.Errorf("%w: partition %d is negative", ErrBadSelection, s.partition)
	case s.from < 0:
		return fmt.Errorf("%w: offset %d is negative", ErrBadSelection, s.from)
	case s.from > s.to:
		return fmt.Errorf("%w: from %d is after to %d", ErrBadSelection, s.from, s.to)
	}
	return nil
}

func (s Selection) String() string {
	switch s.kind {
	case selectOne:
		return fmt.Sprintf("partition %d offset %d", s.partition, s.from)
	case selectRange:
		return fmt.Sprintf("partition %d offsets %d..%d", s.partition, s.from, s.to)
	case selectAll:
		return "all"
	}
	return "nothing"
}

// Position is where a record is: topic, partition, offset.
type Position struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func (p Position) String() string { return fmt.Sprintf("%s/%d/%d", p.Topic, p.Partition, p.Offset) }

// Redriven is one dead letter produced back to its original topic.
type Redriven struct {
	From     Position `json:"from"` // the dead letter
	To       Position `json:"to"`   // the new record on the original topic
	Key      string   `json:"key"`
	Attempts int      `json:"attempts"` // carried in streamfold-attempts
}

// Skipped is a selected dead letter that was not re-driven, and why.
type Skipped struct {
	From   Position `json:"from"`
	Reason string   `json:"reason"`
}

// Result is what a re-drive did, in (partition, offset) order of the dead
// letters.
type Result struct {
	Count    int        `json:"count"`
	Redriven []Redriven `json:"redriven"`
	Skipped  []Skipped  `json:"skipped,omitempty"`
}

// Redrive produces the selected dead letters of group back to their original
// topics: original key, value and headers (without the diagnostic kafka_dlt-*
// and streamfold-* ones), murmur2-partitioned by key, plus streamfold-attempts
// (the dead letter's attempts + 1), the dead letter's streamfold-first-failure
// and streamfold-redriven-from. Dead letters stay where they are.
//
// Only dead letters present when the call starts are selected, so re-driving
// all of them while they fail again ends. A dead letter that names no
// original topic, or one that does not exist, is skipped (and, for One, is
// the error). On an error the result says what was re-driven before it.
func (c *Client) Redrive(ctx context.Context, group string, sel Selection) (Result, error) {
	res := Result{Redriven: []Redriven{}}
	if err := sel.Validate(); err != nil {
		return res, err
	}
	topic := Topic(group)
	parts, err := c.partitions(topic)
	if err != nil {
		return res, err
	}
	if sel.kind != selectAll {
		if !slices.Contains(parts, sel.partition) {
			return res, fmt.Errorf("%w: %s has no partition %d", ErrNotFound, topic, sel.partition)
		}
		parts = []int32{sel.partition}
	}
	ends, err := c.bounds(topic, parts)
	if err != nil {
		return res, err
	}
	if sel.kind == selectOne {
		if b := ends[sel.partition]; sel.from < b.oldest || sel.from >= b.newest {
			return res, fmt.Errorf("%w: %s/%d/%d", ErrNotFound, topic, sel.partition, sel.from)
		}
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return res, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	rd := &redrive{c: c, group: group, res: &res, topics: map[string]error{}}
	defer rd.close()

	spans := make([]span, 0, len(parts))
	for _, p := range parts {
		from, to := ends[p].oldest, ends[p].newest
		if sel.kind != selectAll {
			from, to = max(from, sel.from), min(to, sel.to+1)
		}
		spans = append(spans, span{p, from, to})
	}
	var sendErr error
	err = read(ctx, consumer, topic, spans, func(m *sarama.ConsumerMessage) bool {
		rd.add(m)
		if len(rd.batch) >= redriveBatch {
			sendErr = rd.send(ctx)
		}
		return sendErr == nil
	})
	if err = errors.Join(sendErr, err); err != nil {
		return res, rd.done(sel, errors.Join(err, rd.send(ctx)))
	}
	err = rd.send(ctx)
	if sel.kind == selectOne && err == nil && res.Count == 0 {
		if len(res.Skipped) > 0 {
			err = fmt.Errorf("%w: %s: %s", ErrNotRedrivable, res.Skipped[0].From, res.Skipped[0].Reason)
		} else {
			err = fmt.Errorf("%w: %s/%d/%d", ErrNotFound, topic, sel.partition, sel.from)
		}
	}
	return res, rd.done(sel, err)
}

// redrive is one Redrive call's producer and batch.
type redrive struct {
	c        *Client
	group    string
	res      *Result
	producer sarama.SyncProducer
	batch    []pending
	topics   map[string]error // original topic -> nil if it exists
}

type pending struct {
	from     Position
	key      string
	attempts int
	msg      *sarama.ProducerMessage
}

// add queues m, or records why it is skipped.
func (r *redrive) add(m *sarama.ConsumerMessage) {
	dl := decode(r.group, m)
	from := Position{m.Topic, m.Partition, m.Offset}
	if dl.OriginalTopic == "" {
		r.res.Skipped = append(r.res.Skipped, Skipped{from, "no " + processors.HeaderOriginalTopic + " header"})
		return
	}
	if err := r.topicExists(dl.OriginalTopic); err != nil {
		r.res.Skipped = append(r.res.Skipped, Skipped{from, err.Error()})
		return
	}
	msg := &sarama.ProducerMessage{Topic: dl.OriginalTopic}
	if len(m.Key) > 0 {
		msg.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		msg.Value = sarama.ByteEncoder(m.Value)
	}
	for _, h := range m.Headers {
		if h != nil && !diagnostic(string(h.Key)) {
			msg.Headers = append(msg.Headers, *h)
		}
	}
	attempts := dl.Attempts + 1
	msg.Headers = append(msg.Headers, header(processors.HeaderAttempts, strconv.Itoa(attempts)))
	if ff, ok := dl.Headers[processors.HeaderFirstFailure]; ok {
		msg.Headers = append(msg.Headers, header(processors.HeaderFirstFailure, ff))
	}
	msg.Headers = append(msg.Headers, header(HeaderRedrivenFrom, dl.Coordinates()))
	r.batch = append(r.batch, pending{from: from, key: dl.Key, attempts: attempts, msg: msg})
}

func header(k, v string) sarama.RecordHeader {
	return sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
}

func (r *redrive) topicExists(topic string) error {
	err, ok := r.topics[topic]
	if !ok {
		if _, perr := r.c.client.Partitions(topic); perr != nil {
			err = fmt.Errorf("original topic %s: %w", topic, perr)
		}
		r.topics[topic] = err
	}
	return err
}

// send produces the batch and records where each record went.
func (r *redrive) send(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.producer == nil {
		p, err := sarama.NewSyncProducerFromClient(r.c.client)
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		r.producer = p
	}
	msgs := make([]*sarama.ProducerMessage, len(r.batch))
	for i, p := range r.batch {
		msgs[i] = p.msg
	}
	err := r.producer.SendMessages(msgs)
	failed := map[*sarama.ProducerMessage]bool{}
	if perrs, ok := errors.AsType[sarama.ProducerErrors](err); ok {
		for _, pe := range perrs {
			failed[pe.Msg] = true
		}
	} else if err != nil {
		// Not knowing which records made it, claim none.
		r.batch = r.batch[:0]
		return fmt.Errorf("produce: %w", err)
	}
	for _, p := range r.batch {
		if failed[p.msg] {
			continue
		}
		r.res.Redriven = append(r.res.Redriven, Redriven{
			From: p.from, Key: p.key, Attempts: p.attempts,
			To: Position{p.msg.Topic, p.msg.Partition, p.msg.Offset},
		})
		r.res.Count++
	}
	r.batch = r.batch[:0]
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

func (r *redrive) done(sel Selection, err error) error {
	log := r.c.log.With("group", r.group, "selection", sel.String(), "count", r.res.Count, "skipped", len(r.res.Skipped))
	if err != nil {
		log.Warn("re-drive stopped", "err", err)
		return err
	}
	log.Info("re-drove dead letters")
	return nil
}

func (r *redrive) close() {
	if r.producer != nil {
		_ = r.producer.Close()
	}
}
