package streamfold_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/internal/testclock"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

func TestDedup_GivenIDsOlderAndYoungerThanTheHorizon_WhenReSent_ThenOnlyTheOlderAppliesAgain(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	policy := processors.DefaultPolicy()
	policy.DedupHorizon = time.Hour
	g := processors.NewGroup("counter", processors.WithClock(clock.Now), processors.WithPolicy(policy))
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) { return add(s, ev) })
	rt, broker := run(t, g)
	await := func(n, sum int) {
		t.Helper()
		require.Eventually(t, func() bool { c, _ := readCounter(t, rt, "k"); return c.N == n && c.Sum == sum }, wait, 10*time.Millisecond)
	}

	// Given a applied at 12:00, b and then c at 12:30.
	a := numberRecord(t, "k", 1)
	produceAll(t, broker.Addrs(), a)
	await(1, 1)
	clock.Advance(30 * time.Minute)
	b := numberRecord(t, "k", 10)
	produceAll(t, broker.Addrs(), b, numberRecord(t, "k", 100))
	await(3, 111)

	// When, at 13:15, b (45 minutes old) and then a (75 minutes old) are re-sent.
	clock.Advance(45 * time.Minute)
	resend := func(r *kgo.Record) *kgo.Record { return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value} }
	produceAll(t, broker.Addrs(), resend(b), resend(a))

	// Then a, past the one-hour horizon, applies again; b is dropped.
	await(4, 112)
	assert.Equal(t, int64(1), rt.Stats()["counter"].Duplicates)
}

func TestDedup_GivenAKeyItsEventDeleted_WhenThatEventIsReadAgain_ThenItsTombstoneIsWrittenAgainAndNothingElse(t *testing.T) {
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) {
		var d struct{ N int }
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		if d.N == 0 {
			return nil, nil // deletes the key
		}
		return add(s, ev)
	})
	rt, broker := run(t, g)

	// Given k created, then deleted by an event.
	produceAll(t, broker.Addrs(), numberRecord(t, "k", 1))
	require.Eventually(t, func() bool { c, ok := readCounter(t, rt, "k"); return ok && c.N == 1 }, wait, 10*time.Millisecond)
	del := numberRecord(t, "k", 0)
	produceAll(t, broker.Addrs(), del)
	require.Eventually(t, func() bool { _, ok := readCounter(t, rt, "k"); return !ok }, wait, 10*time.Millisecond)
	// (the store answers first; the changelog holds the snapshot and the
	// tombstone once both are acknowledged)
	var before []*kgo.Record
	require.Eventually(t, func() bool {
		before = changelog(t, broker.Addrs(), counterTable.Name)
		return len(before) == 2
	}, wait, 10*time.Millisecond)
	require.Nil(t, before[1].Value)

	// When the deleting event is read again (as after a crash that lost its
	// tombstone on the way to the changelog)
	produceAll(t, broker.Addrs(), &kgo.Record{Topic: del.Topic, Key: del.Key, Value: del.Value})
	require.Eventually(t, func() bool { return rt.Stats()["counter"].Duplicates == 1 }, wait, 10*time.Millisecond)

	// Then the changelog gets the tombstone again, and nothing else: k stays deleted.
	var after []*kgo.Record
	require.Eventually(t, func() bool {
		after = changelog(t, broker.Addrs(), counterTable.Name)
		return len(after) > len(before)
	}, wait, 10*time.Millisecond)
	require.Len(t, after, len(before)+1)
	last := after[len(after)-1]
	assert.Equal(t, "k", string(last.Key))
	assert.Nil(t, last.Value, "a tombstone")
	_, ok := readCounter(t, rt, "k")
	assert.False(t, ok)
}

// changelog reads every record of a table's changelog, in offset order per
// partition.
func changelog(t *testing.T, brokers []string, table string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(table), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	sc, err := sarama.NewClient(brokers, sarama.NewConfig())
	require.NoError(t, err)
	defer sc.Close()
	parts, err := sc.Partitions(table)
	require.NoError(t, err)
	want := int64(0)
	for _, p := range parts {
		end, err := sc.GetOffset(table, p, sarama.OffsetNewest)
		require.NoError(t, err)
		want += end
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}
