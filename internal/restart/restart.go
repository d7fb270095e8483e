// Package restart runs a goka processor or view again after a storage fault
// of its stores, with backoff, instead of letting the fault end the runtime.
//
// The local state is a cache of the changelog, and reopening it is the
// repair: restarting closes the stores and opens them again, which rebuilds a
// broken store from its changelog and retries a failed one. A store fault
// cancels the run at once (Slot.Fault), even when no record arrives for the
// partition, so the rebuild never waits for traffic; Guard keeps a callback
// that touches the state after the fault from letting goka commit its record.
package restart

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
)

const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// running is a processor's or view's run in progress: a storage fault cancels
// it and marks it faulted.
type running struct {
	cancel  context.CancelFunc
	faulted atomic.Bool
}

// Slot holds the run in progress of one processor or view. Its methods are
// safe for concurrent use and never block: Fault is called from the storage
// engine's fault handler, Guard's check from goka's callbacks.
type Slot struct{ p atomic.Pointer[running] }

// Fault stops the run in progress, if any, as faulted: Supervise then
// restarts it.
func (s *Slot) Fault() {
	if r := s.p.Load(); r != nil {
		r.faulted.Store(true)
		r.cancel()
	}
}

func (s *Slot) faulted() bool {
	r := s.p.Load()
	return r != nil && r.faulted.Load()
}

// Supervise calls run until ctx ends or run fails for a reason other than a
// storage fault (which Fault on slot reports). After a storage fault it calls
// stopped, waits a second (doubling up to 30 s while the faults go on), calls
// rebuild and runs again. what names the runner in logs ("processor"),
// errPrefix in errors ("group carts"); attrs are added to every log record.
func Supervise(ctx context.Context, slot *Slot, log *slog.Logger, what, errPrefix string, attrs []any,
	run func(context.Context) error, stopped func(), rebuild func() error,
) error {
	backoff := backoffMin
	// The first start and the clean stop are routine (one line per group
	// at start-up): debug. A start after a fault is news: info.
	startLevel := slog.LevelDebug
	for {
		runCtx, cancel := context.WithCancel(ctx)
		r := &running{cancel: cancel}
		slot.p.Store(r)
		started := time.Now()
		log.Log(ctx, startLevel, what+" starting", attrs...)
		startLevel = slog.LevelInfo
		err := run(runCtx)
		cancel()
		faulted := r.faulted.Load()
		slot.p.CompareAndSwap(r, nil)

		switch {
		case !faulted && err != nil:
			return fmt.Errorf("%s: %w", errPrefix, err)
		case !faulted || ctx.Err() != nil:
			log.Debug(what+" stopped", attrs...)
			return nil
		}
		stopped()
		if time.Since(started) > backoffMax {
			backoff = backoffMin // it ran well for a while: a new fault
		}
		log.Warn(what+" stopped by a storage fault; restarting",
			slices.Concat(attrs, []any{"error", err, "backoff", backoff.String()})...)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
		if err := rebuild(); err != nil {
			return fmt.Errorf("%s: restart: %w", errPrefix, err)
		}
	}
}

// Guard wraps the goka context of every callback of group's processor so
// that a callback touching the group's state after a storage fault panics,
// which goka turns into a processor error without committing the record.
//
// Without it a record could be lost: once the run's context is cancelled,
// goka's Fail (called by Value or SetValue when the store refuses) records
// the error and returns instead of panicking, the callback carries on
// without the state it asked for, and goka commits the record as processed.
func Guard(slot *Slot, group string) goka.ProcessorOption {
	return goka.WithContextWrapper(func(ctx goka.Context) goka.Context {
		return faultGuard{gokaContext: ctx, slot: slot, group: group}
	})
}

type faultGuard struct {
	gokaContext
	slot  *Slot
	group string
}

// gokaContext names the embedded goka.Context apart from its Context method.
type gokaContext = goka.Context

// check panics when a storage fault stopped the group's run.
func (g faultGuard) check() {
	if g.slot.faulted() {
		panic(fmt.Errorf("group %s: storage fault; record left for the restarted processor", g.group))
	}
}

func (g faultGuard) Value() any {
	v := g.gokaContext.Value()
	g.check()
	return v
}

func (g faultGuard) SetValue(value any, opts ...goka.ContextOption) {
	g.gokaContext.SetValue(value, opts...)
	g.check()
}

func (g faultGuard) Delete(opts ...goka.ContextOption) {
	g.gokaContext.Delete(opts...)
	g.check()
}

// Emit refuses after a fault: a dead letter or output of a record whose
// state could not be written must not go out before the record is handled
// again.
func (g faultGuard) Emit(topic goka.Stream, key string, value any, opts ...goka.ContextOption) {
	g.check()
	g.gokaContext.Emit(topic, key, value, opts...)
}

func (g faultGuard) Join(topic goka.Table) any {
	v := g.gokaContext.Join(topic)
	g.check()
	return v
}

func (g faultGuard) Lookup(topic goka.Table, key string) any {
	v := g.gokaContext.Lookup(topic, key)
	g.check()
	return v
}
