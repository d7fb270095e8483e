package processors

import (
	"fmt"
	"strconv"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// More error classes (see ClassDecode and the others in record.go).
const (
	ClassTransient         = "transient"          // retried in place, then like ClassRetry
	ClassRetry             = "retry"              // moved to the retry topics
	ClassMissingDependency = "missing-dependency" // parked until the parent appears
	ClassRetriesExhausted  = "retries-exhausted"  // the last retry failed too
	ClassPermanent         = "permanent"          // straight to the dead letters
)

// Retry headers on records in <group>-retry-<n>.
const (
	HeaderRetryOrigin = "streamfold-retry-origin" // the input topic the record came from
	HeaderRetryDue    = "streamfold-retry-due"    // unix milliseconds before which it is not handled
)

// Transient marks err as passing (a timeout, an unavailable dependency): the
// record is retried in place with exponential backoff, then in the retry topics.
func Transient(err error) error { return fail(ClassTransient, err) }

// RetryLater moves the record to the group's retry topics, with growing delays.
func RetryLater(err error) error { return fail(ClassRetry, err) }

// Permanent sends the record to the dead letters at once.
func Permanent(err error) error { return fail(ClassPermanent, err) }

// MissingDependencyError says a record needs a parent that has not arrived
// (e.g. the customer a cart belongs to). A projection parks the record under
// the parent's key and re-drives it, in order, once the parent is applied.
type MissingDependencyError struct {
	Kind string // e.g. "customer"
	Key  string // the parent's key
}

func (e *MissingDependencyError) Error() string {
	return fmt.Sprintf("missing %s %q", e.Kind, e.Key)
}

// MissingDependency returns a *MissingDependencyError.
func MissingDependency(kind, key string) error {
	return &MissingDependencyError{Kind: kind, Key: key}
}

// Policy is a group's failure policy.
type Policy struct {
	// TransientAttempts is how many times a transient failure is retried in
	// place (the partition waits), backing off from TransientBackoff, doubling.
	TransientAttempts int
	TransientBackoff  time.Duration
	// RetryDelays are the delays of the retry topics <group>-retry-1..n.
	// Empty: no retry topics; a record to retry later is dead-lettered.
	RetryDelays []time.Duration
	// MaxWait is how long a parked record waits for its parent before it is
	// dead-lettered with class missing-dependency.
	MaxWait time.Duration
	// DedupHorizon is how long a projection remembers the event ids it
	// applied: within it an id never applies again, however old. It is also
	// the retention of the group's <group>-seen topic. Zero means
	// DefaultDedupHorizon.
	DedupHorizon time.Duration
	// TimerInterval is how often the runtime looks for due timers (windows
	// to close, sessions to expire); zero means DefaultTimerInterval. A
	// window closes on stream time; this only bounds how late its final
	// result follows.
	TimerInterval time.Duration
}

// DefaultDedupHorizon is the default Policy.DedupHorizon.
const DefaultDedupHorizon = 7 * 24 * time.Hour

// DefaultPolicy: 3 retries in place from 50 ms, retry topics after 1 s, 10 s
// and 1 min, parked records wait up to 7 days, applied event ids are
// remembered for 7 days.
func DefaultPolicy() Policy {
	return Policy{
		TransientAttempts: 3,
		TransientBackoff:  50 * time.Millisecond,
		RetryDelays:       []time.Duration{time.Second, 10 * time.Second, time.Minute},
		MaxWait:           7 * 24 * time.Hour,
		DedupHorizon:      DefaultDedupHorizon,
	}
}

// WithPolicy sets the group's failure policy (default DefaultPolicy()).
func WithPolicy(p Policy) GroupOption { return func(g *Group) { g.policy = p } }

// retryTopic is the handle of the n-th retry topic (1-based), partitioned
// like the group's inputs.
func (g *Group) retryTopic(n int) tables.Stream[[]byte] {
	return tables.Stream[[]byte]{Name: fmt.Sprintf("%s-retry-%d", g.name, n), Codec: codecs.Bytes{}, Partitions: g.declaredPartitions()}
}

// handleWithRetries runs h, retrying transient failures in place.
func (g *Group) handleWithRetries(r *recordCtx, h func(*recordCtx) error) error {
	err := h(r)
	backoff := g.policy.TransientBackoff
	for attempt := 1; err != nil && classify(err) == ClassTransient && attempt <= g.policy.TransientAttempts; attempt++ {
		r.stats.count("retried-in-place")
		g.log.Debug("transient failure; retrying in place", "topic", r.topic(), "partition", r.gctx.Partition(),
			"offset", r.gctx.Offset(), "key", r.gctx.Key(), "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-r.gctx.Context().Done():
			return err
		}
		backoff = min(2*backoff, 5*time.Second)
		err = h(r)
	}
	return err
}

// route sends a failed record where its class says.
func (g *Group) route(r *recordCtx, err error) {
	switch classify(err) {
	case ClassTransient, ClassRetry:
		g.retryLater(r, err)
	case ClassMissingDependency:
		// A parent the group cannot park the record for (a reactor's or a
		// join's lookup in another group's table, another key's parent):
		// a lookup table follows its writer a moment behind, so the record
		// goes through the retry topics first, then to the dead letters as
		// missing.
		if retryStage(r.topic(), g) < len(g.policy.RetryDelays) {
			g.retryLater(r, err)
			return
		}
		g.deadLetter(r, err)
	default:
		g.deadLetter(r, err)
	}
}

// retryLater writes the record to the next retry topic, due after that
// topic's delay; after the last one it is dead-lettered.
func (g *Group) retryLater(r *recordCtx, err error) {
	stage := retryStage(r.topic(), g)
	if stage >= len(g.policy.RetryDelays) {
		g.deadLetter(r, fail(ClassRetriesExhausted, err))
		return
	}
	next := g.retryTopic(stage + 1)
	h := headerMap(r.headers)
	if _, ok := h[HeaderRetryOrigin]; !ok {
		h[HeaderRetryOrigin] = []byte(r.topic())
		h[HeaderOriginalTopic] = []byte(r.topic())
		h[HeaderOriginalPartition] = []byte(strconv.Itoa(int(r.gctx.Partition())))
		h[HeaderOriginalOffset] = []byte(strconv.FormatInt(r.gctx.Offset(), 10))
		h[HeaderFirstFailure] = []byte(time.Now().UTC().Format(time.RFC3339Nano))
	}
	due := time.Now().Add(g.policy.RetryDelays[stage])
	h[HeaderRetryDue] = []byte(strconv.FormatInt((due.UnixNano()+int64(time.Millisecond)-1)/int64(time.Millisecond), 10)) // rounded up: never early
	h[HeaderAttempts] = []byte(strconv.Itoa(attempt(r.headers) + 1))
	h[HeaderExceptionMessage] = []byte(err.Error())
	r.stats.count("retried-later")
	g.log.Info("moving record to retry topic", "topic", r.topic(), "partition", r.gctx.Partition(),
		"offset", r.gctx.Offset(), "key", r.gctx.Key(), "retryTopic", next.Name, "err", err)
	r.gctx.Emit(goka.Stream(next.Name), r.gctx.Key(), valueOrNil(r.value), goka.WithCtxEmitHeaders(h))
}

// retryStage is 0 for an ordinary input, n for <group>-retry-n.
func retryStage(topic string, g *Group) int {
	for n := range g.policy.RetryDelays {
		if topic == g.retryTopic(n+1).Name {
			return n + 1
		}
	}
	return 0
}

// retryInput handles <group>-retry-n: it waits until the record is due (the
// partition waits; the rest of the group does not), then hands it to the
// handler of the input it came from.
func (g *Group) retryInput(n int) input {
	return input{topic: g.retryTopic(n), handle: func(r *recordCtx) error {
		h := headerMap(r.headers)
		origin := string(h[HeaderRetryOrigin])
		var target *input
		for i := range g.inputs {
			if g.inputs[i].topic.Spec().Name == origin {
				target = &g.inputs[i]
			}
		}
		if target == nil {
			return Permanent(fmt.Errorf("retry record from unknown input %q", origin))
		}
		due, _ := strconv.ParseInt(string(h[HeaderRetryDue]), 10, 64)
		if wait := time.Until(time.UnixMilli(due)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-r.gctx.Context().Done():
				// Shutting down before it is due: put it back, unchanged, so
				// committing this offset loses nothing.
				r.gctx.Emit(goka.Stream(r.topic()), r.gctx.Key(), valueOrNil(r.value), goka.WithCtxEmitHeaders(h))
				return nil
			}
		}
		return g.handleWithRetries(r, target.handle)
	}}
}

func headerMap(hs []codecs.Header) goka.Headers {
	h := goka.Headers{}
	for _, hd := range hs {
		h[hd.Key] = hd.Value
	}
	return h
}

// attempt is the number of this delivery of a record: 1 for the original,
// more for a retry or a re-driven dead letter (their HeaderAttempts).
func attempt(hs []codecs.Header) int {
	for _, h := range hs {
		if h.Key == HeaderAttempts {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}

func valueOrNil(v []byte) any {
	if v == nil {
		return nil
	}
	return v
}
