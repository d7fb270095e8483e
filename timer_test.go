package streamfold_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

var cancellations = tables.NewStream[codecs.Event]("cancellations", codecs.CloudEvents{})

type orderWatch struct {
	Placed bool `json:"placed"`
	Paid   bool `json:"paid"`
}

// unpaidCanceller cancels an order left unpaid for 15 minutes of stream
// time, or (wall) after 50 ms of wall-clock time.
func unpaidCanceller(wall bool) *processors.Group {
	policy := processors.DefaultPolicy()
	policy.TimerInterval = 20 * time.Millisecond
	g := processors.NewGroup("canceller", processors.WithPolicy(policy))
	table := processors.GroupTable[orderWatch]("canceller")
	processors.Output(g, cancellations)
	processors.AddReactor(g, processors.Reactor[orderWatch, codecs.Event]{
		Table: table, Input: placed,
		React: func(rc *processors.ReactContext, s *orderWatch, ev codecs.Event) (*orderWatch, error) {
			if wall {
				rc.SetTimer("unpaid", time.Now().Add(50*time.Millisecond))
			} else {
				rc.SetStreamTimer("unpaid", ev.Time.Add(15*time.Minute))
			}
			return &orderWatch{Placed: true}, nil
		},
		OnTimer: func(rc *processors.ReactContext, s *orderWatch, t processors.Timer) (*orderWatch, error) {
			if _, err := rc.Emit(cancellations, rc.Key(), "OrderCancelled", "urn:test", map[string]string{"timer": t.Name}); err != nil {
				return nil, err
			}
			return s, nil
		},
	})
	processors.AddReactor(g, processors.Reactor[orderWatch, codecs.Event]{
		Table: table, Input: paid,
		React: func(rc *processors.ReactContext, s *orderWatch, ev codecs.Event) (*orderWatch, error) {
			rc.CancelTimer("unpaid")
			next := orderWatch{Paid: true}
			if s != nil {
				next.Placed = s.Placed
			}
			return &next, nil
		},
	})
	return g
}

func runCanceller(t *testing.T, g *processors.Group) (*streamfold.Runtime, []string) {
	t.Helper()
	broker := startBroker(t)
	rt, _ := startJoins(t, broker, streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(placed, "test").WrittenBy(paid, "test"), t.TempDir())
	return rt, broker.Addrs()
}

func cancelled(t *testing.T, brokers []string, until func([]string) bool) []string {
	t.Helper()
	var keys []string
	consumeUntil(t, brokers, cancellations.Name, func(recs []*kgo.Record) bool {
		keys = keys[:0]
		for _, r := range recs {
			keys = append(keys, string(r.Key))
		}
		return until(keys)
	})
	return keys
}

func TestTimers_GivenAStreamTimeTimer_WhenStreamTimePassesIt_ThenItFiresOnceAndACancelledOneNever(t *testing.T) {
	rt, brokers := runCanceller(t, unpaidCanceller(false))
	k := keysOnOnePartition(4)
	sent := 0
	step := func(recs ...*kgo.Record) {
		produceAll(t, brokers, recs...)
		sent += len(recs)
		require.Eventually(t, func() bool { return rt.Stats()["canceller"].Processed == int64(sent) }, wait, time.Millisecond)
	}
	step(eventAt(t, placed, k[0], "order-0", at(t, "0s")), eventAt(t, placed, k[1], "order-1", at(t, "1m")))
	step(eventAt(t, paid, k[0], "pay-0", at(t, "5m")))
	step(eventAt(t, placed, k[2], "order-2", at(t, "20m"))) // stream time 12:20: order-1's timer (12:16) is due
	step(eventAt(t, placed, k[3], "order-3", at(t, "40m"))) // order-2's (12:35) too
	got := cancelled(t, brokers, func(ks []string) bool { return len(ks) >= 2 })
	assert.Equal(t, []string{k[1], k[2]}, got, "the unpaid orders, each once; the paid one never")
	assert.Equal(t, int64(2), rt.Stats()["canceller"].Counters["timers-fired"])
}

func TestTimers_GivenAWallClockTimer_WhenItIsDue_ThenItFiresWithoutAnyRecord(t *testing.T) {
	rt, brokers := runCanceller(t, unpaidCanceller(true))
	produceAll(t, brokers, eventAt(t, placed, "o-1", "order-1", at(t, "0s")))
	got := cancelled(t, brokers, func(ks []string) bool { return len(ks) >= 1 })
	assert.Equal(t, []string{"o-1"}, got)
	assert.Equal(t, int64(1), rt.Stats()["canceller"].Counters["timers-fired"])
}
