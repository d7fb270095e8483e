package processors

import (
	"time"

	"github.com/streamfold/streamfold/tables"
)

// Timers. A block that needs to act at a time rather than on a record (a
// window that closes, a session that expires) keeps the time in its key's
// bookkeeping (timeMeta: Due in stream time, WallDue in wall-clock time),
// so a timer is written, changelogged and restored with the state it belongs
// to, and fires wherever the key's partition is owned: after a restart or a
// rebalance, on the new owner.
//
// The runtime finds due timers through timeIndex (DueKeys, every
// Policy.TimerInterval) and sends the key a timer request through the
// group's loop topic; the group handles it on the key's partition like any
// record (g.timers), so firing is ordered with the key's records and its
// effects are written with its state. A request that finds nothing due (sent
// twice, or ahead of the store) does nothing.

// DefaultTimerInterval is how often the runtime looks for due timers when
// Policy.TimerInterval is zero.
const DefaultTimerInterval = time.Second

func (g *Group) timerInterval() time.Duration {
	if g.policy.TimerInterval > 0 {
		return g.policy.TimerInterval
	}
	return DefaultTimerInterval
}

// dueTimers returns up to limit timers of s that are due, each as its
// key and its term (which says when it is due, and in which time): in
// stream time (the partition's, as the store knows it) or in wall-clock
// time now.
func dueTimers(s *tables.Store, now time.Time, limit int) ([]tables.TermKey, error) {
	stream, err := storedStreamTime(s)
	if err != nil {
		return nil, err
	}
	var due []tables.TermKey
	if stream > 0 {
		if due, err = s.Terms(timeIndex.Name, "s", msTerm('s', stream+1), limit); err != nil {
			return nil, err
		}
	}
	wall, err := s.Terms(timeIndex.Name, "w", msTerm('w', now.UnixMilli()+1), limit)
	return append(due, wall...), err
}
