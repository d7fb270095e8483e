package deadletters

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

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
	force     bool
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

// Forced is s re-driving stale dead letters too, and ones re-driven before
// whose outcome is not known yet. The group then applies a stale record over
// the newer writes of its key, except a tombstone or a deletion: those never
// erase a newer write. Applied dead letters stay skipped.
func (s Selection) Forced() Selection {
	s.force = true
	return s
}

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
	if s.force {
		s.force = false
		return s.String() + " (forced)"
	}
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

// Redriven is one dead letter produced back to its original topic. Whether
// the group applied it shows later in the dead letter's Redrive state.
type Redriven struct {
	From     Position `json:"from"` // the dead letter
	To       Position `json:"to"`   // the new record on the original topic
	Key      string   `json:"key"`
	Attempts int      `json:"attempts"` // carried in streamfold-attempts
}

// Skipped is a selected dead letter that was not re-driven, and why. Status
// is its re-drive state's when that is the reason.
type Skipped struct {
	From   Position `json:"from"`
	Reason string   `json:"reason"`
	Status string   `json:"status,omitempty"`
	done   bool     // re-driven before, or the same record as another: not an error
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
// (one more than the dead letter's or its last re-drive's),
// streamfold-first-failure, streamfold-redriven-from, streamfold-redrive-of
// (the original coordinates, which the group checks the key's newer writes
// against) and, when forced, streamfold-redrive-force. Dead letters stay
// where they are.
//
// Each re-drive is recorded in <group>-dlq-state (status redriven) before the
// record goes out; the group records the outcome there: applied, stale
// (refused: the key was written since) or failed-again (the record is not
// dead-lettered a second time). So a dead letter is re-driven at most once
// per call and a re-drive never multiplies dead letters. Skipped, with the
// reason: applied dead letters, stale ones and ones with no outcome yet
// (unless forced), a second dead letter of the same original record, and
// dead letters that name no original topic or partition.
//
// Only dead letters present when the call starts are selected. A dead letter
// that cannot be re-driven, or one that does not exist, is the error for One.
// On an error the result says what was re-driven before it.
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
	stateTopic := processors.RedriveStates(group).Name
	if _, err := c.partitions(stateTopic); err != nil {
		return res, fmt.Errorf("%w (the group records no re-drive outcomes: run it with this version first)", err)
	}
	states, err := c.states(ctx, group)
	if err != nil {
		return res, err
	}
	consumer, err := sarama.NewConsumerFromClient(c.client)
	if err != nil {
		return res, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	rd := &redrive{c: c, group: group, res: &res, topics: map[string]error{}, consumer: consumer,
		force: sel.force, states: states, selected: map[string]Position{}}
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
		if len(res.Skipped) > 0 && res.Skipped[0].done {
			err = fmt.Errorf("%w: %s: %s", ErrSkipped, res.Skipped[0].From, res.Skipped[0].Reason)
		} else if len(res.Skipped) > 0 {
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

	consumer sarama.Consumer
	force    bool
	states   map[string]RedriveState // by original coordinates, as the call started
	selected map[string]Position     // original coordinates -> the dead letter re-driven for them
}

type pending struct {
	from     Position
	key      string
	attempts int
	msg      *sarama.ProducerMessage
	original string        // the original coordinates, the state's key
	prev     *RedriveState // the state before this re-drive; nil: none
	state    RedriveState  // the state this re-drive writes
	dl       DeadLetter
}

// add queues m, or records why it is skipped.
func (r *redrive) add(m *sarama.ConsumerMessage) {
	dl := decode(r.group, m)
	from := Position{m.Topic, m.Partition, m.Offset}
	if dl.OriginalTopic == "" {
		r.res.Skipped = append(r.res.Skipped, Skipped{From: from, Reason: "no " + processors.HeaderOriginalTopic + " header"})
		return
	}
	if dl.OriginalPartition < 0 || dl.OriginalOffset < 0 {
		r.res.Skipped = append(r.res.Skipped, Skipped{From: from, Reason: "no " + processors.HeaderOriginalPartition + " or " + processors.HeaderOriginalOffset + " header"})
		return
	}
	if err := r.topicExists(dl.OriginalTopic); err != nil {
		r.res.Skipped = append(r.res.Skipped, Skipped{From: from, Reason: err.Error()})
		return
	}
	original := dl.Original()
	if first, ok := r.selected[original]; ok {
		r.res.Skipped = append(r.res.Skipped, Skipped{From: from, Reason: fmt.Sprintf("the same record (%s) as dead letter %s, re-driven once", original, first), done: true})
		return
	}
	var prev *RedriveState
	if s, ok := r.states[original]; ok {
		prev = &s
		if reason := refusal(s, r.force); reason != "" {
			r.res.Skipped = append(r.res.Skipped, Skipped{From: from, Reason: reason, Status: s.Status, done: true})
			return
		}
	}
	r.selected[original] = from
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
	if prev != nil {
		attempts = max(dl.Attempts, prev.Attempts) + 1
	}
	msg.Headers = append(msg.Headers, header(processors.HeaderAttempts, strconv.Itoa(attempts)))
	if ff, ok := dl.Headers[processors.HeaderFirstFailure]; ok {
		msg.Headers = append(msg.Headers, header(processors.HeaderFirstFailure, ff))
	}
	msg.Headers = append(msg.Headers, header(HeaderRedrivenFrom, dl.Coordinates()), header(processors.HeaderRedriveOf, original), header(processors.HeaderRedriveGroup, r.group))
	if r.force {
		msg.Headers = append(msg.Headers, header(processors.HeaderRedriveForce, "true"))
	}
	now := time.Now().UTC()
	r.batch = append(r.batch, pending{from: from, key: dl.Key, attempts: attempts, msg: msg, original: original, prev: prev, dl: dl,
		state: RedriveState{Status: processors.RedriveSent, At: now, Attempts: attempts, Forced: r.force, From: dl.Coordinates(), RedrivenAt: now}})
}

// refusal is why a dead letter with state s is not re-driven, or "".
func refusal(s RedriveState, force bool) string {
	at := s.At.Format(time.RFC3339)
	switch {
	case s.Status == processors.RedriveApplied:
		return fmt.Sprintf("already re-driven and applied (%s, attempt %d)", at, s.Attempts)
	case force:
		return ""
	case s.Status == processors.RedriveSent:
		return fmt.Sprintf("re-driven at %s, no outcome yet; force to send it again", at)
	case s.Status == processors.RedriveStale:
		return fmt.Sprintf("stale: %s; force to apply it over the newer writes", s.Reason)
	}
	return ""
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
	if err := r.precheck(ctx); err != nil {
		r.batch = r.batch[:0]
		return err
	}
	if len(r.batch) == 0 {
		return nil
	}
	// The states first: the group's outcome, written once it has the record,
	// must come after them.
	if err := r.setStates(func(p pending) *RedriveState { return &p.state }, r.batch); err != nil {
		err = fmt.Errorf("record re-drive states: %w", err)
		err = errors.Join(err, r.restore(r.batch, err))
		r.batch = r.batch[:0]
		return err
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
		// Not knowing which records made it, claim none (and leave their
		// states saying redriven: their outcome will tell).
		r.batch = r.batch[:0]
		return fmt.Errorf("produce: %w", err)
	}
	var unsent []pending
	for _, p := range r.batch {
		if failed[p.msg] {
			unsent = append(unsent, p)
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
		err = fmt.Errorf("produce: %w", err)
		return errors.Join(err, r.restore(unsent, err))
	}
	return nil
}

// setStates writes the state of each of ps.
func (r *redrive) setStates(state func(pending) *RedriveState, ps []pending) error {
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]*sarama.ProducerMessage, 0, len(ps))
	for _, p := range ps {
		m, err := stateMessage(r.group, p.original, state(p))
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return r.producer.SendMessages(msgs)
}

// restore puts back the states of re-drives that did not go out; one that
// had none gets RedriveSendFailed. (Never a tombstone: compaction may drop
// one at the end of the log, and a read up to the end offset would wait for
// it.)
func (r *redrive) restore(ps []pending, cause error) error {
	now := time.Now().UTC()
	err := r.setStates(func(p pending) *RedriveState {
		if p.prev != nil {
			return p.prev
		}
		return &RedriveState{Status: processors.RedriveSendFailed, At: now, Attempts: p.attempts - 1, From: p.state.From, Reason: cause.Error()}
	}, ps)
	if err != nil {
		return fmt.Errorf("restore re-drive states: %w", err)
	}
	return nil
}

func (r *redrive) done(sel Selection, err error) error {
	// The pre-check skips at send time: put them in (partition, offset) order.
	slices.SortStableFunc(r.res.Skipped, func(a, b Skipped) int {
		return cmp.Or(cmp.Compare(a.From.Partition, b.From.Partition), cmp.Compare(a.From.Offset, b.From.Offset))
	})
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
