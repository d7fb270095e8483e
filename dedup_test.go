package streamfold_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// dedupClock is a settable clock for a group.
type dedupClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *dedupClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *dedupClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDedup_GivenIDsOlderAndYoungerThanTheHorizon_WhenReSent_ThenOnlyTheOlderAppliesAgain(t *testing.T) {
	clock := &dedupClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	policy := processors.DefaultPolicy()
	policy.DedupHorizon = time.Hour
	g := processors.NewGroup("counter", processors.WithClock(clock.Now), processors.WithPolicy(policy))
	processors.Project(g, counterTable, numbers, func(s *counter, ev codecs.Event) (*counter, error) { return add(s, ev) })
	rt, broker := run(t, g)
	await := func(n, sum int) {
		t.Helper()
		require.Eventually(t, func() bool { c, _ := readCounter(t, rt, "k"); return c.N == n && c.Sum == sum }, wait, 10*time.Millisecond)
	}

	// Given a applied at 12:00, b and then c at 12:30.
	a := numberRecord(t, "k", 1)
	produceAll(t, broker.Addrs(), a)
	await(1, 1)
	clock.advance(30 * time.Minute)
	b := numberRecord(t, "k", 10)
	produceAll(t, broker.Addrs(), b, numberRecord(t, "k", 100))
	await(3, 111)

	// When, at 13:15, b (45 minutes old) and then a (75 minutes old) are re-sent.
	clock.advance(45 * time.Minute)
	resend := func(r *kgo.Record) *kgo.Record { return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value} }
	produceAll(t, broker.Addrs(), resend(b), resend(a))

	// Then a, past the one-hour horizon, applies again; b is dropped.
	await(4, 112)
	assert.Equal(t, int64(1), rt.Stats()["counter"].Duplicates)
}
