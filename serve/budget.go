package serve

import (
	"context"
	"sync"
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

	mu      sync.Mutex
	timed   context.Context // context.WithDeadline(Context, deadline), once Done was asked
	cancel  context.CancelFunc
	stopped bool
}

// withBudget returns ctx with a deadline of budget from now (or ctx's own,
// if sooner), and the function that releases it, as a context.CancelFunc
// does.
func withBudget(ctx context.Context, now time.Time, budget time.Duration) (*budgetContext, func()) {
	c := &budgetContext{Context: ctx, deadline: now.Add(budget)}
	if dl, ok := ctx.Deadline(); ok && dl.Before(c.deadline) {
		c.deadline = dl
	}
	return c, c.stop
}

func (c *budgetContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *budgetContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.stopped {
			c.cancel()
		}
	}
	return c.timed.Done()
}

// Err is what context.WithDeadline's would be: the request's error,
// context.Canceled once stopped, context.DeadlineExceeded once the deadline
// has passed (Done is then closed as soon as it is asked for).
func (c *budgetContext) Err() error {
	c.mu.Lock()
	timed, stopped := c.timed, c.stopped
	c.mu.Unlock()
	switch {
	case timed != nil:
		return timed.Err()
	case stopped:
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
	c.mu.Lock()
	timed := c.timed
	c.mu.Unlock()
	if timed != nil {
		return timed.Value(key)
	}
	return c.Context.Value(key)
}

func (c *budgetContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.cancel != nil {
		c.cancel()
	}
}
