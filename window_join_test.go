package streamfold_test

import (
	"fmt"
	"slices"
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

var (
	placed   = tables.NewStream[codecs.Event]("placed", codecs.CloudEvents{})
	paid     = tables.NewStream[codecs.Event]("paid", codecs.CloudEvents{})
	paidOrds = tables.NewStream[paidOrder]("paid-orders", codecs.JSON[paidOrder]{})
)

type paidOrder struct {
	Order   string `json:"order"`
	Payment string `json:"payment,omitempty"`
}

func eventAt(t *testing.T, s tables.Stream[codecs.Event], key, id string, when time.Time) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", "Happened", key, map[string]string{})
	require.NoError(t, err)
	ev.ID, ev.Time = id, when
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: s.Name, Key: []byte(key), Value: b}
}

// keysOnOnePartition returns n keys that share a partition of 2, so that
// one stream time rules them all.
func keysOnOnePartition(n int) []string {
	keys := []string{"o-0"}
	for i := 1; len(keys) < n; i++ {
		k := fmt.Sprintf("o-%d", i)
		if tables.PartitionFor(k, 2) == tables.PartitionFor(keys[0], 2) {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestJoinStreams_GivenOrdersAndPayments_WhenJoinedWithinTenMinutes_ThenPairsAndForALeftJoinTheUnpaidOnceTheirWindowCloses(t *testing.T) {
	for _, left := range []bool{false, true} {
		t.Run(map[bool]string{false: "inner", true: "left"}[left], func(t *testing.T) {
			broker := startBroker(t)
			policy := processors.DefaultPolicy()
			policy.TimerInterval = 20 * time.Millisecond
			g := processors.NewGroup("payment-join", processors.WithPolicy(policy))
			var opts []processors.JoinOption
			if left {
				opts = append(opts, processors.LeftJoin())
			}
			processors.JoinStreams(g, processors.StreamJoin[codecs.Event, codecs.Event, paidOrder]{
				Left: placed, Right: paid, Within: 10 * time.Minute,
				Join: func(_ string, o codecs.Event, p *codecs.Event) (paidOrder, error) {
					out := paidOrder{Order: o.ID}
					if p != nil {
						out.Payment = p.ID
					}
					return out, nil
				},
				Out: paidOrds,
			}, opts...)
			rt, _ := startJoins(t, broker, streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(placed, "test").WrittenBy(paid, "test"), t.TempDir())

			// Records of the two topics are taken in no set order: each step
			// is applied before the next is sent.
			sent := 0
			step := func(recs ...*kgo.Record) {
				produceAll(t, broker.Addrs(), recs...)
				sent += len(recs)
				require.Eventually(t, func() bool { return rt.Stats()["payment-join"].Processed == int64(sent) }, wait, time.Millisecond)
			}
			k := keysOnOnePartition(5)
			step(eventAt(t, placed, k[0], "order-0", at(t, "0s")), eventAt(t, placed, k[1], "order-1", at(t, "0s")))
			step(eventAt(t, paid, k[2], "pay-2", at(t, "1m")))
			step(eventAt(t, paid, k[0], "pay-0", at(t, "5m")))     // within 10 minutes of order-0: a pair
			step(eventAt(t, paid, k[0], "pay-0", at(t, "5m")))     // a re-sent payment: no second pair
			step(eventAt(t, placed, k[2], "order-2", at(t, "9m"))) // 8 minutes after its payment: a pair
			step(eventAt(t, placed, k[3], "order-3", at(t, "31m")))
			step(eventAt(t, paid, k[1], "pay-1", at(t, "1m"))) // late: order-1's window closed at 10m
			// order-3's window closes at 41m: after order-5, every output
			// due before it has been sent.
			step(eventAt(t, placed, k[4], "order-5", at(t, "42m")))
			step(eventAt(t, paid, k[4], "pay-5", at(t, "42m")))
			want := []paidOrder{{Order: "order-0", Payment: "pay-0"}, {Order: "order-2", Payment: "pay-2"}, {Order: "order-5", Payment: "pay-5"}}
			if left {
				want = append(want, paidOrder{Order: "order-1"}, paidOrder{Order: "order-3"})
			}
			got := readPaid(t, broker.Addrs(), func(ps []paidOrder) bool {
				return slices.Contains(ps, paidOrder{Order: "order-5", Payment: "pay-5"}) && len(ps) >= len(want)
			})
			assert.ElementsMatch(t, want, got)
			assert.Equal(t, int64(1), rt.Stats()["payment-join"].Counters["late"])
		})
	}
}

func readPaid(t *testing.T, brokers []string, until func([]paidOrder) bool) []paidOrder {
	t.Helper()
	var got []paidOrder
	consumeUntil(t, brokers, paidOrds.Name, func(recs []*kgo.Record) bool {
		got = got[:0]
		for _, r := range recs {
			p, err := paidOrds.Codec.Decode(r.Value)
			require.NoError(t, err)
			got = append(got, p)
		}
		return until(got)
	})
	return got
}
