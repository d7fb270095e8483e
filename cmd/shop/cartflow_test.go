package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/shop"
)

// cartFlow sends cart commands from one client per cart, as a careful user
// would while instances crash, stop and join: a command whose outcome is
// unknown (connection cut, 503, 504) is retried with the same id, through
// whichever instance the flow picks next, until the answer is definite —
// which is what makes retries safe. It remembers the events of every
// accepted command for checkCarts.
type cartFlow struct {
	carts []string

	mu       sync.Mutex
	accepted map[string][]codecs.Event // cart -> events of accepted commands, in reply order

	stop    chan struct{}
	clients sync.WaitGroup
}

// startCartFlow starts the clients. pick chooses the instance for each
// attempt and release is called when the attempt is over.
func startCartFlow(carts, products []string, seed uint64, pick func(*rand.Rand) string, release func(string)) *cartFlow {
	f := &cartFlow{carts: carts, accepted: map[string][]codecs.Event{}, stop: make(chan struct{})}
	for ci, cart := range carts {
		f.clients.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(ci), seed))
			held := map[string]bool{}
			for n := 0; ; n++ {
				select {
				case <-f.stop:
					return
				default:
				}
				prod := products[rng.IntN(len(products))]
				body := addItem(prod, 1+rng.IntN(5))
				if held[prod] {
					body = fmt.Sprintf(`{"type":"RemoveItem","data":{"productId":%q}}`, prod)
				}
				cmdID := fmt.Sprintf("%s-%d", cart, n)
				// Retried also after stop, so that every command ends
				// accepted or rejected.
				for {
					base := pick(rng)
					status, rep, err := sendCommand(base, cart, cmdID, body)
					release(base)
					if err == nil && status == http.StatusOK {
						f.mu.Lock()
						if !rep.Duplicate || !containsID(f.accepted[cart], rep.Events) {
							f.accepted[cart] = append(f.accepted[cart], rep.Events...)
						}
						f.mu.Unlock()
						held[prod] = !held[prod]
						break
					}
					if err == nil && status == http.StatusUnprocessableEntity {
						break // a rule said no: nothing appended
					}
					time.Sleep(20 * time.Millisecond) // pacing a retry, not synchronisation
				}
			}
		})
	}
	return f
}

// count is the number of accepted events so far.
func (f *cartFlow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, evs := range f.accepted {
		n += len(evs)
	}
	return n
}

// awaitAccepted waits until at least n more events were accepted.
func (f *cartFlow) awaitAccepted(t *testing.T, n int) {
	t.Helper()
	start := f.count()
	require.Eventually(t, func() bool { return f.count() >= start+n }, wait, 10*time.Millisecond, "commands stopped flowing")
}

// finish stops the clients once their commands in flight have definite answers.
func (f *cartFlow) finish() {
	close(f.stop)
	f.clients.Wait()
}

// checkCarts reads cart-events and checks, for every cart, that each accepted
// command's events are there, that every event belongs to an accepted
// command, that copies only ever repeat an id with the same content, and that
// the snapshot served by base is the fold of the distinct events. It returns
// the number of records and of re-appended copies.
func (f *cartFlow) checkCarts(t *testing.T, brokers []string, base string) (records, copies int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	events := f.readCartEvents(t, brokers)
	for _, cart := range f.carts {
		distinct := map[string]codecs.Event{}
		var order []codecs.Event
		for _, ev := range events[cart] {
			records++
			if prev, dup := distinct[ev.ID]; dup {
				copies++
				assert.Equal(t, prev.Type, ev.Type, "a re-appended copy differs from its original")
				assert.JSONEq(t, string(prev.Data), string(ev.Data))
				continue
			}
			distinct[ev.ID] = ev
			order = append(order, ev)
		}
		acceptedIDs := map[string]bool{}
		for _, ev := range f.accepted[cart] {
			acceptedIDs[ev.ID] = true
			_, ok := distinct[ev.ID]
			assert.True(t, ok, "accepted event %s of %s lost", ev.ID, cart)
		}
		for id, ev := range distinct {
			assert.True(t, acceptedIDs[id], "event %s (%s %s) of %s belongs to no accepted command", id, ev.Type, ev.Data, cart)
		}
		var folded *shop.Cart
		for _, ev := range order {
			var err error
			folded, err = shop.EvolveCart(folded, ev)
			require.NoError(t, err)
		}
		var got shop.Cart
		status := httpGetJSON(t, base+"/carts/"+cart+fmt.Sprintf("?minVersion=%d", len(order)), &got)
		require.Equal(t, http.StatusOK, status, "cart %s", cart)
		require.NotNil(t, folded)
		assert.Equal(t, int64(len(order)), got.Version, "cart %s: version is not the number of distinct events", cart)
		if !assert.Equal(t, folded.Items, got.Items, "cart %s: snapshot is not the fold of its events", cart) {
			for _, ev := range events[cart] {
				t.Logf("%s %s %s %s", cart, ev.ID[:8], ev.Type, ev.Data)
			}
		}
	}
	return records, copies
}

// containsID reports whether have holds any of evs' ids.
func containsID(have []codecs.Event, evs []codecs.Event) bool {
	for _, e := range evs {
		for _, h := range have {
			if h.ID == e.ID {
				return true
			}
		}
	}
	return false
}

// readCartEvents reads cart-events, by cart, until every accepted event is
// there (or for at most wait: what is missing then is lost). The last
// answers can come before their events are sent: a command retried after
// a 504 is answered from its snapshot, while the relay that sends the
// decision's events may still wait for a killed member's partitions.
func (f *cartFlow) readCartEvents(t *testing.T, brokers []string) map[string][]codecs.Event {
	t.Helper()
	want := map[string]bool{}
	for _, evs := range f.accepted {
		for _, ev := range evs {
			want[ev.ID] = true
		}
	}
	out := map[string][]codecs.Event{}
	read, began := 0, time.Now()
	recs, _ := pollUntil(t, brokers, shop.CartEvents.Name, func(recs []*kgo.Record) bool {
		for _, r := range recs[read:] {
			ev, err := codecs.DecodeEvent(r.Value, nil)
			require.NoError(t, err)
			out[string(r.Key)] = append(out[string(r.Key)], ev)
			delete(want, ev.ID)
		}
		read = len(recs)
		return len(want) == 0
	})
	t.Logf("cart-events: %d records read in %v, %d accepted events not there", len(recs), time.Since(began).Round(time.Millisecond), len(want))
	return out
}
