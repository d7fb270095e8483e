package serve

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// budgetContext is a routed request's context: the request's own, with the
// caller's time budget as its deadline. It is what context.WithDeadline
// gives, except that it starts a timer (and registers with the request's
// context) only once something waits on Done: a key served at once from
// local state — most queries — asks only Err, which reads the clock. That
// saves a timer and a cancellation hook on every such request.
//
// Safe for concurrent use, as any context; stop releases the timer, if one
// was started.
type budgetContext struct {
	context.Context // the request's
	deadline        time.Time

	// timed is context.WithDeadline(Context, deadline), made when Done is
	// first asked for; stopped is set by stop. Both are read without the
	// lock on the way of every request.
	timed   atomic.Pointer[context.Context]
	stopped atomic.Bool
	mu      sync.Mutex // makes timed
	cancel  context.CancelFunc
}

// withBudget returns ctx with a deadline of budget from now (or ctx's own,
// if sooner). Its stop releases it, as a context.CancelFunc does.
func withBudget(ctx context.Context, now time.Time, budget time.Duration) *budgetContext {
	c := &budgetContext{Context: ctx, deadline: now.Add(budget)}
	if dl, ok := ctx.Deadline(); ok && dl.Before(c.deadline) {
		c.deadline = dl
	}
	return c
}

func (c *budgetContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *budgetContext) Done() <-chan struct{} {
	if t := c.timed.Load(); t != nil {
		return (*t).Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.timed.Load(); t != nil {
		return (*t).Done()
	}
	timed, cancel := context.WithDeadline(c.Context, c.deadline)
	c.cancel = cancel
	if c.stopped.Load() {
		cancel()
	}
	c.timed.Store(&timed)
	return timed.Done()
}

// Err is what context.WithDeadline's would be: the request's error,
// context.Canceled once stopped, context.DeadlineExceeded once the deadline
// has passed (Done is then closed as soon as it is asked for).
func (c *budgetContext) Err() error {
	if t := c.timed.Load(); t != nil {
		return (*t).Err()
	}
	if c.stopped.Load() {
		return context.Canceled
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the timed context once there is one, so that
// context.Cause sees its deadline.
func (c *budgetContext) Value(key any) any {
	if t := c.timed.Load(); t != nil {
		return (*t).Value(key)
	}
	return c.Context.Value(key)
}

// stop releases the context: it is Canceled from then on.
func (c *budgetContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
}
