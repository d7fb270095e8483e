package streamfold_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/processors"
)

// produceInTransaction writes recs in one transaction of a transactional
// producer and commits it, or aborts it after the records reached the log.
func produceInTransaction(t *testing.T, cl *kgo.Client, commit bool, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, cl.BeginTransaction())
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	require.NoError(t, cl.EndTransaction(ctx, end))
}

func TestReadCommitted_GivenATransactionalProducerThatCommitsAndAborts_ThenOnlyCommittedRecordsAreFolded(t *testing.T) {
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	rt, broker := run(t, g)

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.TransactionalID("test-txn-producer"),
		kgo.ProducerLinger(time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()

	// Two committed, one aborted (it is in the log, between markers), then a
	// committed one that tells us the aborted record's offset has been passed.
	produceInTransaction(t, cl, true, numberRecord(t, "a", 1), numberRecord(t, "a", 2))
	produceInTransaction(t, cl, false, numberRecord(t, "a", 100))
	produceInTransaction(t, cl, true, numberRecord(t, "a", 4))

	require.Eventually(t, func() bool { c, ok := readCounter(t, rt, "a"); return ok && c.N >= 3 }, wait, 10*time.Millisecond)
	c, _ := readCounter(t, rt, "a")
	assert.Equal(t, counter{Sum: 7, N: 3}, c, "the aborted record (100) must not be applied")
	assert.Empty(t, rt.Stats()["counter"].DeadLetters, "an aborted record is not a bad record either")
}
