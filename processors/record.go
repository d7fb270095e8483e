package processors

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/lovoo/goka"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/tables"
)

// Error classes, as written to a dead letter's kafka_dlt-exception-fqcn header
// and counted in the group's Snapshot.DeadLetters.
const (
	ClassDecode         = "decode"          // the record (or the stored state) could not be decoded
	ClassWrongPartition = "wrong-partition" // the key does not hash to the partition it arrived on
	ClassMissingKey     = "missing-key"     // a keyed topic got a record without a key
	ClassHandler        = "handler"         // the handler returned an error
	ClassPanic          = "panic"           // the handler panicked
	ClassKeyMismatch    = "key-mismatch"    // a CloudEvent's subject is not its record's key
)

// Dead-letter headers. The names are Spring Kafka's (DeadLetterPublishingRecoverer),
// so tooling that reads those reads ours; values are UTF-8 text (decimal numbers,
// RFC 3339 times) so that kcat and humans can read them too.
const (
	HeaderOriginalTopic     = "kafka_dlt-original-topic"
	HeaderOriginalPartition = "kafka_dlt-original-partition"
	HeaderOriginalOffset    = "kafka_dlt-original-offset"
	HeaderOriginalTimestamp = "kafka_dlt-original-timestamp"
	HeaderOriginalGroup     = "kafka_dlt-original-consumer-group"
	HeaderOriginalKey       = "kafka_dlt-original-key"
	HeaderExceptionClass    = "kafka_dlt-exception-fqcn"
	HeaderExceptionMessage  = "kafka_dlt-exception-message"
	HeaderAttempts          = "streamfold-attempts"
	HeaderFirstFailure      = "streamfold-first-failure"
)

// recordCtx is one record in flight: the goka context plus the raw bytes goka
// handed over. Only the partition's goroutine touches it.
type recordCtx struct {
	g       *Group
	gctx    goka.Context
	value   []byte // nil for a Kafka tombstone
	headers []codecs.Header
	stats   *partStats // the counters of the record's topic and partition

	redriveSettled bool // a re-drive's outcome is recorded already (refused)

	span trace.Span // the record's consumer span; nil when tracing is off
}

func (r *recordCtx) topic() string { return string(r.gctx.Topic()) }

// failure is an error with the class it is dead-lettered under.
type failure struct {
	class string
	err   error
}

func (f *failure) Error() string { return f.class + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(class string, err error) error { return &failure{class: class, err: err} }

func classify(err error) string {
	if f, ok := errors.AsType[*failure](err); ok {
		return f.class
	}
	if _, ok := errors.AsType[*MissingDependencyError](err); ok {
		return ClassMissingDependency
	}
	if _, ok := errors.AsType[*codecs.DecodeError](err); ok {
		return ClassDecode
	}
	return ClassHandler
}

// callback adapts one input's untyped handler to goka. It never lets a record
// stop the partition: every failure becomes a dead letter.
func (g *Group) callback(in input) goka.ProcessCallback {
	topic := in.topic.Spec().Name
	counts := g.stats.topic(topic)
	if in.loop {
		counts = g.stats.topic(g.loopTopic())
	}
	return func(gctx goka.Context, msg any) {
		value, _ := msg.([]byte)
		r := &recordCtx{g: g, gctx: gctx, value: value, headers: toHeaders(gctx.Headers()), stats: counts.part(gctx.Partition())}
		switch string(gctx.Headers()[groups.HeaderControl]) {
		case "sweep":
			for _, sw := range g.sweepers {
				if err := sw(r); err != nil {
					g.log.Warn("sweep failed", "key", gctx.Key(), "err", err)
				}
			}
			return
		case "timer":
			for _, fire := range g.timers {
				if err := fire(r); err != nil {
					g.log.Warn("timer failed", "key", gctx.Key(), "err", err)
				}
			}
			return
		}
		if g.tracer != nil {
			defer g.traceRecord(r)()
		}
		if g.foreignRedrive(r) {
			return
		}
		r.stats.processed.Add(1)
		key := gctx.Key()
		if key == "" {
			g.deadLetter(r, fail(ClassMissingKey, errors.New("record has no key")))
			return
		}
		if n := g.partitionsOf(topic); n > 0 {
			if want := tables.PartitionFor(key, n); want != gctx.Partition() {
				g.deadLetter(r, fail(ClassWrongPartition, fmt.Errorf("key %q belongs on partition %d of %d (murmur2), arrived on %d", key, want, n, gctx.Partition())))
				return
			}
		}
		if err := g.handleWithRetries(r, in.handle); err != nil {
			r.spanFailed(err)
			g.route(r, err)
		} else {
			g.redriveApplied(r)
		}
	}
}

// deadLetter writes the record, as it arrived, to <group>-dlq with headers
// naming where it came from and why. goka commits the input offset only after
// this emit is acknowledged, so a crash in between repeats the dead letter
// rather than losing it.
func (g *Group) deadLetter(r *recordCtx, err error) {
	r.spanDeadLettered(err)
	gctx := r.gctx
	g.deadLetterRecord(gctx, deadRecord{
		topic: r.topic(), partition: gctx.Partition(), offset: gctx.Offset(), timestamp: gctx.Timestamp(),
		key: gctx.Key(), value: r.value, headers: r.headers,
	}, err)
}

// deadRecord is a record to dead-letter: the one in flight, or a parked one.
type deadRecord struct {
	topic     string
	partition int32
	offset    int64
	timestamp time.Time
	key       string
	value     []byte
	headers   []codecs.Header
}

func (g *Group) deadLetterRecord(gctx goka.Context, d deadRecord, err error) {
	if g.redriveFailed(gctx, d, err) {
		return
	}
	class := classify(err)
	g.stats.part(string(gctx.Topic()), gctx.Partition()).deadLetter(class)
	h := headerMap(d.headers)
	if _, fromRetry := h[HeaderRetryOrigin]; !fromRetry {
		// A record from a retry topic keeps the coordinates of its first delivery.
		h[HeaderOriginalTopic] = []byte(d.topic)
		h[HeaderOriginalPartition] = []byte(strconv.Itoa(int(d.partition)))
		h[HeaderOriginalOffset] = []byte(strconv.FormatInt(d.offset, 10))
	}
	delete(h, HeaderRetryOrigin)
	delete(h, HeaderRetryDue)
	h[HeaderOriginalTimestamp] = []byte(d.timestamp.UTC().Format(time.RFC3339Nano))
	h[HeaderOriginalGroup] = []byte(g.name)
	h[HeaderOriginalKey] = []byte(d.key)
	h[HeaderExceptionClass] = []byte(class)
	h[HeaderExceptionMessage] = []byte(err.Error())
	h[HeaderAttempts] = []byte(strconv.Itoa(attempt(d.headers)))
	if _, ok := h[HeaderFirstFailure]; !ok {
		h[HeaderFirstFailure] = []byte(time.Now().UTC().Format(time.RFC3339Nano))
	}
	g.log.Warn("dead-lettered record",
		"topic", d.topic, "partition", d.partition, "offset", d.offset,
		"key", d.key, "class", class, "err", err)
	gctx.Emit(goka.Stream(g.DLQTopic()), d.key, valueOrNil(d.value), goka.WithCtxEmitHeaders(h))
}

// subjectIsKey makes an event agree with the key it arrived under: a
// missing subject takes the key, another one is a key-mismatch (the event
// would be folded into an aggregate it is not about).
func subjectIsKey(ev *codecs.Event, key string) error {
	switch ev.Subject {
	case key:
		return nil
	case "":
		ev.Subject = key
		return nil
	}
	return fail(ClassKeyMismatch, fmt.Errorf("event %s has subject %q but record key %q", ev.ID, ev.Subject, key))
}

// safely runs user code, turning a panic into an error of class panic.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fail(ClassPanic, fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack()))
		}
	}()
	return fn()
}

func toHeaders(h goka.Headers) []codecs.Header {
	if len(h) == 0 {
		return nil
	}
	out := make([]codecs.Header, 0, len(h))
	for k, v := range h {
		out = append(out, codecs.Header{Key: k, Value: v})
	}
	return out
}
