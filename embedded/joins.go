package embedded

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinKeeper makes the embedded broker keep a consumer-group member alive
// while it waits in a JoinGroup, as Kafka does.
//
// Kafka lets a member that has sent JoinGroup wait until the rebalance
// timeout for the others to rejoin. kfake only counts heartbeats, commits and
// answers as signs of life: a member whose join waits longer than its session
// timeout (because another member is slow to rejoin) is removed from the group
// and its join is never answered, so the client hangs until its own read
// timeout (30 s in sarama), then starts over. With several instances of a
// processor that is a 30 s stall of the whole group, hit now and then by any
// rebalance.
//
// The keeper watches group requests through kfake's controls. When a known
// member (one that has already synced once) sends JoinGroup, it heartbeats
// for that member, with the member's last generation, every third of its
// session timeout, for as long as the broker answers "rebalance in
// progress": that is, until the join is answered (a new generation), the
// member leaves or is removed, or the broker closes.
type joinKeeper struct {
	cluster *kfake.Cluster
	addrs   []string

	ctx    context.Context // ends at close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	client  *kgo.Client           // the keeper's own connection, made on first need
	members map[groupMember]*kept // by group and member id
}

type groupMember struct{ group, member string }

// kept is what the keeper knows of one member.
type kept struct {
	generation int32         // from its last SyncGroup, Heartbeat or OffsetCommit
	seen       time.Time     // when it last spoke with a generation
	stop       chan struct{} // non-nil while heartbeating for it; closed to stop
}

// keepJoinersAlive installs the keeper's controls on c.
func keepJoinersAlive(c *kfake.Cluster, addrs []string) *joinKeeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &joinKeeper{cluster: c, addrs: addrs, ctx: ctx, cancel: cancel, members: map[groupMember]*kept{}}
	// Controls run in kfake's request loop: they only note what they see,
	// start or stop a heartbeat goroutine, and let kfake handle the request.
	watch := func(key kmsg.Key, see func(kmsg.Request)) {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			see(req)
			return nil, nil, false
		})
	}
	watch(kmsg.JoinGroup, func(r kmsg.Request) {
		req := r.(*kmsg.JoinGroupRequest)
		k.joining(req.Group, req.MemberID, time.Duration(req.SessionTimeoutMillis)*time.Millisecond)
	})
	watch(kmsg.SyncGroup, func(r kmsg.Request) {
		req := r.(*kmsg.SyncGroupRequest)
		k.alive(req.Group, req.MemberID, req.Generation)
	})
	watch(kmsg.Heartbeat, func(r kmsg.Request) {
		req := r.(*kmsg.HeartbeatRequest)
		k.alive(req.Group, req.MemberID, req.Generation)
	})
	watch(kmsg.OffsetCommit, func(r kmsg.Request) {
		req := r.(*kmsg.OffsetCommitRequest)
		k.alive(req.Group, req.MemberID, req.Generation)
	})
	watch(kmsg.LeaveGroup, func(r kmsg.Request) {
		req := r.(*kmsg.LeaveGroupRequest)
		ids := []string{req.MemberID}
		for _, m := range req.Members {
			ids = append(ids, m.MemberID)
		}
		for _, id := range ids {
			k.forget(req.Group, id)
		}
	})
	return k
}

// alive notes a member's generation. A member that speaks with a new
// generation is no longer waiting in a join. (The keeper's own heartbeats
// come through here too, with the generation it is keeping.)
func (k *joinKeeper) alive(group, member string, generation int32) {
	if member == "" || generation < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.members[groupMember{group, member}]
	if m == nil {
		k.forgetSilent()
		m = &kept{}
		k.members[groupMember{group, member}] = m
	}
	m.seen = time.Now()
	if generation < m.generation || m.stop != nil && generation == m.generation {
		return // a late request of an older generation, or the keeper's own
	}
	m.generation = generation
	m.stopHeartbeats()
}

// joining starts heartbeats for a known member that waits in a join.
func (k *joinKeeper) joining(group, member string, session time.Duration) {
	if member == "" || session <= 0 {
		return // a new member: kfake gives it no session timer until it is answered
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return
	}
	m := k.members[groupMember{group, member}]
	if m == nil || m.stop != nil {
		return
	}
	stop := make(chan struct{})
	m.stop = stop
	gen := m.generation
	k.wg.Go(func() {
		k.heartbeat(group, member, gen, session, stop)
		k.mu.Lock()
		defer k.mu.Unlock()
		if m.stop == stop {
			m.stop = nil
		}
	})
}

// Members that die without leaving are never told of; the keeper forgets
// those silent for longer than any session once it knows many members.
const (
	keptMembers = 1024
	keptSilence = 10 * time.Minute
)

// forgetSilent drops members silent for keptSilence once there are
// keptMembers of them. k.mu must be held.
func (k *joinKeeper) forgetSilent() {
	if len(k.members) < keptMembers {
		return
	}
	for id, m := range k.members {
		if m.stop == nil && time.Since(m.seen) > keptSilence {
			delete(k.members, id)
		}
	}
}

// forget drops a member that left.
func (k *joinKeeper) forget(group, member string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if m := k.members[groupMember{group, member}]; m != nil {
		m.stopHeartbeats()
		delete(k.members, groupMember{group, member})
	}
}

func (m *kept) stopHeartbeats() {
	if m.stop != nil {
		close(m.stop)
		m.stop = nil
	}
}

// heartbeat keeps member alive while the broker says its group is
// rebalancing; anything else means the join is over one way or another.
func (k *joinKeeper) heartbeat(group, member string, generation int32, session time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(max(session/3, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		default:
		}
		cl := k.kafkaClient()
		if cl == nil {
			return
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = group, member, generation
		ctx, cancel := context.WithTimeout(k.ctx, session)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		if err == nil && resp.ErrorCode != kerr.RebalanceInProgress.Code {
			return
		}
		select {
		case <-stop:
			return
		case <-k.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// kafkaClient is the keeper's client, nil once closed.
func (k *joinKeeper) kafkaClient() *kgo.Client {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return nil
	}
	if k.client == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.ClientID("streamfold-embedded-join-keeper"))
		if err != nil {
			return nil
		}
		k.client = cl
	}
	return k.client
}

// close stops every heartbeat; call it before closing the cluster.
func (k *joinKeeper) close() {
	k.mu.Lock()
	k.cancel()
	cl := k.client
	k.client = nil
	k.mu.Unlock()
	k.wg.Wait()
	if cl != nil {
		cl.Close()
	}
}
