package streamfold

import (
	"context"
	"time"

	"github.com/streamfold/streamfold/internal/groups"
)

// timerLoop fires the timers of the groups that keep them (windows that close
// on stream time): every group's TimerInterval it asks each of the group's
// recovered stores for the keys with a timer due and sends each a timer
// request through the group's loop topic. The group handles the request on
// the key's partition, like a record: a timer fires on whichever instance
// owns the partition, after a restart or a rebalance too.
func (rt *Runtime) timerLoop(ctx context.Context, running func(group string) bool) error {
	var timed []groups.Hooks
	interval := time.Minute
	for _, g := range rt.topo.hooks() {
		if g.Timers() && running(g.Name()) {
			timed = append(timed, g)
			interval = min(interval, g.TimerInterval())
		}
	}
	if len(timed) == 0 {
		return nil
	}
	// A request in flight is not sent again until it had time to arrive,
	// also behind a backlog of the loop topic: a request is not lost (a
	// partition that moves is asked again by its new owner's runtime), so
	// sending it again is only for one that found nothing due, because its
	// group's stream time was behind the store's.
	sent := map[string]time.Time{}
	resendAfter := max(60*interval, time.Minute)
	rt.everyTick(ctx, interval, func(now time.Time) {
		for id, at := range sent {
			if now.Sub(at) > resendAfter {
				delete(sent, id)
			}
		}
		for _, g := range timed {
			rt.fireDue(ctx, g, now, sent)
		}
	})
	return nil
}

func (rt *Runtime) fireDue(ctx context.Context, g groups.Hooks, now time.Time, sent map[string]time.Time) {
	for _, s := range rt.recoveredStores(g) {
		due, err := g.DueTimers(s, now, 10000)
		if err != nil {
			rt.log.Warn("timers: due", "group", g.Name(), "partition", s.Partition(), "err", err)
			continue
		}
		for _, tk := range due {
			// One request per timer: a key's next timer gets its own.
			id := g.Name() + "\x00" + tk.Term + "\x00" + tk.Key
			if _, ok := sent[id]; ok {
				continue
			}
			if err := rt.requestControl(ctx, g, tk.Key, "timer"); err != nil {
				rt.log.Warn("timers: request", "group", g.Name(), "key", tk.Key, "err", err)
				continue
			}
			sent[id] = now
		}
	}
}
