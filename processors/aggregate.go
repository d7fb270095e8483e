package processors

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// Command is the envelope of a command to an aggregate: JSON
// {commandId, type, expectedVersion?, data}. The record key is the aggregate id.
type Command[C any] struct {
	ID              string `json:"commandId"`
	Type            string `json:"type"`
	ExpectedVersion *int64 `json:"expectedVersion,omitempty"`
	Data            C      `json:"data"`
}

// Reply statuses.
const (
	ReplyAccepted = "accepted" // events appended (or none needed)
	ReplyRejected = "rejected" // a business rule refused the command; nothing appended
	ReplyConflict = "conflict" // expectedVersion did not match; nothing appended
	ReplyFailed   = "failed"   // the command could not be handled (dead-lettered)
)

// Reply answers one command, keyed by its command id on the reply topic.
type Reply struct {
	CommandID   string         `json:"commandId"`
	AggregateID string         `json:"aggregateId"`
	Status      string         `json:"status"`
	Version     int64          `json:"version"`
	Events      []codecs.Event `json:"events,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	// Duplicate is true when the command id was seen before and this is the
	// original reply sent again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// NewEvent is what a decider returns: the framework fills in the CloudEvents
// attributes (a deterministic id derived from the command, subject = aggregate
// id, source, time).
type NewEvent struct {
	Type string
	Data any
}

// RejectedError is a business rule refusing a command. Deciders return it (via
// Reject); any other error is a failure and is dead-lettered.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "rejected: " + e.Reason }

// Reject returns a *RejectedError.
func Reject(format string, args ...any) error {
	return &RejectedError{Reason: fmt.Sprintf(format, args...)}
}

// Decide turns a command into events given the current state (nil when the
// aggregate does not exist yet). It must not have side effects: it runs once
// per command, but its result is what is stored and replayed.
type Decide[S, C any] func(dc *DecideContext, state *S, cmd Command[C]) ([]NewEvent, error)

// Aggregate configures an event-sourced aggregate on a group: a single writer
// per partition that validates each command against the aggregate's snapshot.
type Aggregate[S, C any] struct {
	Commands tables.Stream[Command[C]]
	Events   tables.Stream[codecs.Event]
	Replies  tables.Stream[Reply]
	// Table holds the snapshots. Leave it zero for the group's own JSON
	// table (<group>-table); a handle declared ahead (GroupTable) must be
	// that table and encode S as a JSON object.
	Table  tables.Table[S]
	Decide Decide[S, C]
	// Evolve folds one event into the state, as a projection would.
	Evolve Apply[S]
	// Final reports a state that is finished: the snapshot is tombstoned after
	// its events are appended (the events stay in the event topic).
	Final func(*S) bool
	// Source is the CloudEvents source of the appended events.
	Source string
	// Clock returns the events' time; nil means time.Now.
	Clock func() time.Time
}

// rememberedCommands bounds the per-aggregate idempotency memory.
const rememberedCommands = 16

// commandRecord is what a snapshot remembers of a handled command: its reply,
// with the events it appended, to answer a duplicate and re-append them. It
// leaves out what the aggregate gives back (the command and aggregate ids;
// the events' ids, source and subject): every command reads the snapshot,
// and the remembered replies are most of it. Topic and Offset locate the
// command record that was handled, telling a re-read after a crash (same
// record) from a client's retry (a new one). Events holds the appended
// events as []recordedEvent JSON, decoded only when the reply is sent;
// Reply is the whole reply, as snapshots written before the compact form
// remember it. Its bytes are internal/envelope's.
type commandRecord = envelope.Command

// recordedEvent is an appended event without what its aggregate gives back.
type recordedEvent struct {
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
}

// newCommandRecord is what a snapshot remembers of rep, the reply to command
// id read at topic/offset.
func newCommandRecord(id, topic string, offset int64, rep Reply) (commandRecord, error) {
	c := commandRecord{ID: id, Topic: topic, Offset: offset, Status: rep.Status, Version: rep.Version, Reason: rep.Reason}
	if len(rep.Events) > 0 {
		evs := make([]recordedEvent, len(rep.Events))
		for i, ev := range rep.Events {
			evs[i] = recordedEvent{Type: ev.Type, Time: ev.Time, Data: ev.Data}
		}
		b, err := json.Marshal(evs)
		if err != nil {
			return commandRecord{}, fail(ClassHandler, fmt.Errorf("encode events of %s: %w", id, err))
		}
		c.Events = b
	}
	return c, nil
}

// rememberedReply is the reply c remembers, as first sent, for the aggregate
// key whose events come from source.
func rememberedReply(c commandRecord, key, source string) (Reply, error) {
	if len(c.Reply) > 0 {
		var r Reply
		if err := json.Unmarshal(c.Reply, &r); err != nil {
			return Reply{}, fmt.Errorf("remembered reply to %s: %w", c.ID, err)
		}
		return r, nil
	}
	r := Reply{CommandID: c.ID, AggregateID: key, Status: c.Status, Version: c.Version, Reason: c.Reason}
	if len(c.Events) > 0 {
		var evs []recordedEvent
		if err := json.Unmarshal(c.Events, &evs); err != nil {
			return Reply{}, fmt.Errorf("remembered events of %s: %w", c.ID, err)
		}
		r.Events = make([]codecs.Event, len(evs))
		for i, e := range evs {
			r.Events[i] = codecs.Event{
				SpecVersion:     codecs.SpecVersion,
				ID:              eventID(key, c.ID, i),
				Source:          source,
				Type:            e.Type,
				Subject:         key,
				Time:            e.Time,
				DataContentType: codecs.ContentTypeJSON,
				Data:            e.Data,
			}
		}
	}
	return r, nil
}

// aggMeta is an aggregate snapshot's bookkeeping: the version, the command
// whose decision the write records (Last: the one the relay sends), the
// offset of the last command record decided (a record at or below it was
// decided before, is read again after a crash with a state that already
// reflects later commands, and is never decided again) and the remembered
// commands. Its bytes are internal/envelope's.
type aggMeta envelope.Aggregate

func (m *aggMeta) command(id string) (commandRecord, bool) {
	for _, c := range m.Commands {
		if c.ID == id {
			return c, true
		}
	}
	return commandRecord{}, false
}

func (m *aggMeta) remember(id, topic string, offset int64, r Reply) error {
	c, err := newCommandRecord(id, topic, offset, r)
	if err != nil {
		return err
	}
	m.Commands = append(m.Commands, c)
	if len(m.Commands) > rememberedCommands {
		m.Commands = slices.Delete(m.Commands, 0, len(m.Commands)-rememberedCommands)
	}
	return nil
}

// Versioned is implemented by states that want to show their version (the
// number of events applied); the framework sets it before storing.
type Versioned interface{ SetVersion(int64) }

// DecideContext gives a decider the aggregate's id and read access to lookup
// tables. It is valid only during the Decide call.
type DecideContext struct {
	gctx goka.Context
}

// Key is the aggregate id.
func (dc *DecideContext) Key() string { return dc.gctx.Key() }

// LookupValue reads key from a lookup table declared with Lookup; nil when
// absent (or, in a group table, holding parked records only).
func LookupValue[V any](dc *DecideContext, t tables.Table[V], key string) (*V, error) {
	return lookupValue(dc.gctx, t, key)
}

// HandleCommands makes g an aggregate's single writer: per command it loads the
// snapshot, checks the expected version, decides, and stores the new snapshot
// together with the decision (its events and its reply). It returns the
// handle of the snapshot table. A relay group, <group>-relay, comes with g
// into every topology g is added to: it reads the snapshot changelog,
// appends each decision's events and sends its reply.
//
// The changelog is the outbox. Events and replies leave only once the snapshot
// recording them is in Kafka, so a crash can never leave events of a decision
// that the snapshot lost (a re-run may decide differently, e.g. after a lookup
// table changed). A command record read again after a crash re-stores the same
// snapshot and the relay re-sends the same events with the same ids (consumers
// drop ids they have applied): a command is never applied twice and its events
// are never lost. A command id seen before (the last 16 per aggregate) gets its
// original reply again and appends nothing.
func HandleCommands[S, C any](g *Group, a Aggregate[S, C], opts ...TableOption) tables.Table[S] {
	if a.Clock == nil {
		a.Clock = time.Now
	}
	if a.Table.Name != "" {
		opts = append([]TableOption{Into(a.Table)}, opts...)
	}
	a.Table = groupTable[S](g, opts)
	Output(g, a.Replies)
	g.addInput(a.Commands, func(r *recordCtx) error {
		key := r.gctx.Key()
		if r.value == nil {
			return fail(ClassDecode, errors.New("null command"))
		}
		cmd, err := a.Commands.Codec.Decode(r.value)
		if err != nil {
			return err
		}
		if cmd.ID == "" || cmd.Type == "" {
			return fail(ClassDecode, errors.New("command needs commandId and type"))
		}
		prevRaw, _ := r.gctx.Value().([]byte)
		state, m, err := decodeWithMeta[S, aggMeta](a.Table.Codec, prevRaw)
		if err != nil {
			return fail(ClassDecode, fmt.Errorf("stored state of %q: %w", key, err))
		}
		// reply sends at once what no snapshot records (nothing was decided).
		reply := func(rep Reply) error {
			b, err := a.Replies.Codec.Encode(rep)
			if err != nil {
				return fail(ClassHandler, fmt.Errorf("encode reply: %w", err))
			}
			r.gctx.Emit(goka.Stream(a.Replies.Name), rep.CommandID, b)
			return nil
		}
		if rec, ok := m.command(cmd.ID); ok {
			r.stats.duplicates.Add(1)
			if rec.Topic == r.topic() && rec.Offset == r.gctx.Offset() {
				// The same record read again: we crashed after handling it and
				// before committing. Store the snapshot again (its changelog
				// write may be what was lost), marking this command as the
				// decision to relay: its events and reply go out again.
				m.Last = cmd.ID
				b, err := encodeWithMeta(a.Table.Codec, *state, m)
				if err != nil {
					return err
				}
				r.gctx.SetValue(b)
				return nil
			}
			// A client's retry appends nothing and gets the original answer.
			rep, err := rememberedReply(rec, key, a.Source)
			if err != nil {
				return fail(ClassDecode, err)
			}
			rep.Duplicate = true
			return reply(rep)
		}
		if m.Offset != nil && r.gctx.Offset() <= *m.Offset {
			// Decided before and forgotten (rejected before the aggregate
			// existed, or beyond the remembered commands): its answer went out
			// then; deciding it now, against a later state, would contradict it.
			r.stats.duplicates.Add(1)
			return nil
		}
		// record stores the decision with the snapshot; the relay sends it.
		record := func(next *S, rep Reply, final bool) error {
			if next == nil { // nothing to remember it in
				return reply(rep)
			}
			if err := m.remember(cmd.ID, r.topic(), r.gctx.Offset(), rep); err != nil {
				return err
			}
			m.Last = cmd.ID
			off := r.gctx.Offset()
			m.Offset = &off
			b, err := encodeWithMeta(a.Table.Codec, *next, m)
			if err != nil {
				return err
			}
			r.gctx.SetValue(b)
			if final {
				r.gctx.Delete()
				r.stats.deleted.Add(1)
			}
			return nil
		}
		base := Reply{CommandID: cmd.ID, AggregateID: key, Version: m.Version}
		if cmd.ExpectedVersion != nil && *cmd.ExpectedVersion != m.Version {
			base.Status = ReplyConflict
			base.Reason = fmt.Sprintf("expected version %d, current version %d", *cmd.ExpectedVersion, m.Version)
			return record(state, base, false)
		}
		var news []NewEvent
		err = safely(func() (err error) {
			news, err = a.Decide(&DecideContext{gctx: r.gctx}, state, cmd)
			return err
		})
		if rej, ok := errors.AsType[*RejectedError](err); ok {
			base.Status = ReplyRejected
			base.Reason = rej.Reason
			return record(state, base, false)
		}
		if err != nil {
			switch classify(err) {
			case ClassTransient, ClassRetry, ClassMissingDependency:
				return err // it will be tried again: no answer yet
			}
			base.Status, base.Reason = ReplyFailed, err.Error()
			if rerr := reply(base); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		evs := make([]codecs.Event, 0, len(news))
		next := state
		for i, ne := range news {
			ev, err := codecs.NewEvent(a.Source, ne.Type, key, ne.Data)
			if err != nil {
				return fail(ClassHandler, fmt.Errorf("event %s: %w", ne.Type, err))
			}
			ev.ID = eventID(key, cmd.ID, i)
			ev.Time = a.Clock().UTC()
			if err := safely(func() (err error) { next, err = a.Evolve(next, ev); return err }); err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		if next == nil {
			return fail(ClassHandler, fmt.Errorf("command %s: evolve left no state to record the decision in", cmd.ID))
		}
		m.Version += int64(len(evs))
		if v, ok := any(next).(Versioned); ok {
			v.SetVersion(m.Version)
		}
		rep := base
		rep.Status, rep.Version, rep.Events = ReplyAccepted, m.Version, evs
		r.stats.applied.Add(1)
		return record(next, rep, a.Final != nil && a.Final(next))
	})

	relay := NewGroup(g.name+"-relay", WithLogger(g.log), WithPolicy(g.policy), WithClock(g.now))
	Output(relay, a.Events)
	Output(relay, a.Replies)
	relay.addInput(a.Table, func(r *recordCtx) error {
		if r.value == nil {
			return nil // a tombstone: its decision was relayed from the record before it
		}
		var m aggMeta
		if err := envelope.DecodeMeta(r.value, (*envelope.Aggregate)(&m)); err != nil {
			return fail(ClassDecode, fmt.Errorf("snapshot meta: %w", err))
		}
		rec, ok := m.command(m.Last)
		if !ok {
			return nil
		}
		rep, err := rememberedReply(rec, r.gctx.Key(), a.Source)
		if err != nil {
			return fail(ClassDecode, err)
		}
		if err := emitEvents(r, a.Events, rep.Events); err != nil {
			return err
		}
		b, err := a.Replies.Codec.Encode(rep)
		if err != nil {
			return fail(ClassHandler, fmt.Errorf("encode reply: %w", err))
		}
		r.gctx.Emit(goka.Stream(a.Replies.Name), rep.CommandID, b)
		r.stats.applied.Add(1)
		return nil
	})
	g.needs = append(g.needs, relay)
	return a.Table
}

func emitEvents(r *recordCtx, s tables.Stream[codecs.Event], evs []codecs.Event) error {
	for _, ev := range evs {
		b, err := s.Codec.Encode(ev)
		if err != nil {
			return fail(ClassHandler, fmt.Errorf("encode event: %w", err))
		}
		r.gctx.Emit(goka.Stream(s.Name), ev.Subject, b)
	}
	return nil
}

// eventID derives an event's id from its aggregate, command and position, so
// the same decision always yields the same ids (a name-based, version 5 style
// UUID over SHA-1).
func eventID(aggregate, command string, i int) string {
	h := sha1.Sum(fmt.Appendf(nil, "%s\x00%s\x00%d", aggregate, command, i))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
