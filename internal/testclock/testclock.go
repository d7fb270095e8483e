// Package testclock is a settable clock for tests that pass a clock to the
// framework (processors.WithClock, tables' Seen.Now) and move time on by
// hand instead of waiting.
package testclock

import (
	"sync"
	"time"
)

// Clock is a clock that stands still until Advance. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock reading now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
