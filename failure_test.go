package streamfold_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

const wait = 30 * time.Second

type counter struct {
	Sum int `json:"sum"`
	N   int `json:"n"`
}

var (
	numbers      = tables.NewStream[codecs.Event]("numbers", codecs.CloudEvents{})
	counterTable = tables.NewTable[counter]("counter-table", codecs.JSON[counter]{})
)

// run starts a topology with one group on a fresh embedded broker and returns
// the runtime and the broker; everything stops with the test.
func run(t *testing.T, g *processors.Group) (*streamfold.Runtime, *embedded.Broker) {
	t.Helper()
	return tracedRun(t, g, nil)
}

func numberRecord(t *testing.T, key string, n int) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", "Number", key, map[string]int{"n": n})
	require.NoError(t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: numbers.Name, Key: []byte(key), Value: b}
}

func produceAll(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

func add(s *counter, ev codecs.Event) (*counter, error) {
	var d struct{ N int }
	if err := ev.DataAs(&d); err != nil {
		return nil, err
	}
	next := counter{}
	if s != nil {
		next = *s
	}
	next.Sum += d.N
	next.N++
	return &next, nil
}

func readCounter(t *testing.T, rt *streamfold.Runtime, key string) (counter, bool) {
	t.Helper()
	s, ok := rt.Store(counterTable.Name, tables.PartitionFor(key, rt.PartitionsOf(counterTable.Name)))
	if !ok {
		return counter{}, false
	}
	b, err := s.Get(key)
	require.NoError(t, err)
	if b == nil {
		return counter{}, false
	}
	_, state, err := envelope.Split(b)
	require.NoError(t, err)
	c, err := counterTable.Codec.Decode(state)
	require.NoError(t, err)
	return c, true
}

func dlqRecords(t *testing.T, brokers []string, group string, n int) []*kgo.Record {
	t.Helper()
	return readRecords(t, brokers, group+"-dlq", n)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestFailures_GivenPoisonAndAPanicAmongManyRecords_ThenExactlyThoseDeadLetteredAndTheRestFolded(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) {
		var d struct{ N int }
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		if d.N == -1 {
			panic("the panicking record")
		}
		return add(s, ev)
	})
	rt, broker := run(t, g)

	keys := 50
	want := map[string]counter{}
	recs := make([]*kgo.Record, 0, total)
	poison := map[int]bool{}
	for i := range 10 {
		poison[(i+1)*total/11] = true
	}
	for i := range total {
		key := "k" + strconv.Itoa(i%keys)
		switch {
		case poison[i]:
			recs = append(recs, &kgo.Record{Topic: numbers.Name, Key: []byte(key), Value: []byte("{not json")})
		case i == total/2:
			recs = append(recs, numberRecord(t, key, -1))
		default:
			recs = append(recs, numberRecord(t, key, i))
			c := want[key]
			c.Sum += i
			c.N++
			want[key] = c
		}
	}
	produceAll(t, broker.Addrs(), recs...)

	// A bound for a stuck fold, not a speed test: 100,000 records take about
	// a minute under -race on two shared cores.
	require.Eventually(t, func() bool { return rt.Stats()["counter"].Processed >= int64(total) }, 5*wait, 20*time.Millisecond)
	dl := dlqRecords(t, broker.Addrs(), "counter", 11)
	assert.Len(t, dl, 11)
	classes := map[string]int{}
	for _, r := range dl {
		classes[header(r, processors.HeaderExceptionClass)]++
		assert.Equal(t, numbers.Name, header(r, processors.HeaderOriginalTopic))
		assert.NotEmpty(t, header(r, processors.HeaderOriginalOffset))
		assert.Equal(t, "counter", header(r, processors.HeaderOriginalGroup))
	}
	assert.Equal(t, map[string]int{processors.ClassDecode: 10, processors.ClassPanic: 1}, classes)
	for key, c := range want {
		got, ok := readCounter(t, rt, key)
		require.True(t, ok, key)
		assert.Equal(t, c, got, key)
	}
}

func TestFailures_GivenTransientFailuresThreeTimes_ThenFourthAttemptSucceedsWithoutDeadLetter(t *testing.T) {
	var calls atomic.Int32
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) {
		if calls.Add(1) <= 3 {
			return nil, processors.Transient(errors.New("dependency unavailable"))
		}
		return add(s, ev)
	})
	rt, broker := run(t, g)
	produceAll(t, broker.Addrs(), numberRecord(t, "a", 5))
	require.Eventually(t, func() bool { c, ok := readCounter(t, rt, "a"); return ok && c.Sum == 5 }, wait, 10*time.Millisecond)
	assert.Equal(t, int32(4), calls.Load())
	s := rt.Stats()["counter"]
	assert.Empty(t, s.DeadLetters)
	assert.Equal(t, int64(3), s.Counters["retried-in-place"])
}

func TestFailures_GivenRetryLater_ThenNotHandledBeforeDueAndDeadLetteredAfterTheLastRetry(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	delays := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
	g := processors.NewGroup("counter", processors.WithPolicy(processors.Policy{RetryDelays: delays, MaxWait: time.Hour}))
	processors.Project(g, numbers, func(s *counter, ev codecs.Event) (*counter, error) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		n := len(attempts)
		mu.Unlock()
		if ev.Subject == "ok-on-2nd" && n == 2 {
			return add(s, ev)
		}
		return nil, processors.RetryLater(fmt.Errorf("not yet (attempt %d)", n))
	})
	rt, broker := run(t, g)

	produceAll(t, broker.Addrs(), numberRecord(t, "ok-on-2nd", 7))
	require.Eventually(t, func() bool { c, ok := readCounter(t, rt, "ok-on-2nd"); return ok && c.Sum == 7 }, wait, 10*time.Millisecond)
	mu.Lock()
	require.Len(t, attempts, 2)
	assert.GreaterOrEqual(t, attempts[1].Sub(attempts[0]), delays[0], "a retry-topic record was handled before it was due")
	attempts = nil
	mu.Unlock()

	produceAll(t, broker.Addrs(), numberRecord(t, "never", 1))
	dl := dlqRecords(t, broker.Addrs(), "counter", 1)
	assert.Equal(t, processors.ClassRetriesExhausted, header(dl[0], processors.HeaderExceptionClass))
	assert.Equal(t, "3", header(dl[0], processors.HeaderAttempts))
	assert.Equal(t, numbers.Name, header(dl[0], processors.HeaderOriginalTopic))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, attempts, 3)
	assert.GreaterOrEqual(t, attempts[1].Sub(attempts[0]), delays[0])
	assert.GreaterOrEqual(t, attempts[2].Sub(attempts[1]), delays[1])
}
