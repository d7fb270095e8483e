package embedded_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamfold/streamfold/embedded"
)

// member speaks the classic group protocol by hand, each on its own
// connection (a join in flight holds its connection).
type member struct {
	t     *testing.T
	cl    *kgo.Client
	id    string
	gen   int32
	group string
}

const (
	joinSession   = time.Second
	joinRebalance = 15 * time.Second
)

func newMember(t *testing.T, b *embedded.Broker, group string) *member {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &member{t: t, cl: cl, group: group}
}

func (m *member) joinRequest() *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.ProtocolType = m.group, m.id, "consumer"
	req.SessionTimeoutMillis = int32(joinSession / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(joinRebalance / time.Millisecond)
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	req.Protocols = append(req.Protocols, p)
	return req
}

// join sends JoinGroup (twice for a new member: the broker first hands out
// its id) and returns the answer, or an error if none came within ctx.
func (m *member) join(ctx context.Context) (*kmsg.JoinGroupResponse, error) {
	resp, err := m.joinRequest().RequestWith(ctx, m.cl)
	if err == nil && resp.ErrorCode == kerr.MemberIDRequired.Code {
		m.id = resp.MemberID
		resp, err = m.joinRequest().RequestWith(ctx, m.cl)
	}
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	m.gen = resp.Generation
	return resp, nil
}

func (m *member) sync(ctx context.Context) {
	m.t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = m.group, m.id, m.gen
	resp, err := req.RequestWith(ctx, m.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		m.t.Fatalf("sync %s: %v", m.id, err)
	}
}

func (m *member) heartbeat(ctx context.Context) {
	m.t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = m.group, m.id, m.gen
	resp, err := req.RequestWith(ctx, m.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		m.t.Fatalf("heartbeat %s: %v", m.id, err)
	}
}

// Kafka keeps a member that waits in a join until the rebalance timeout;
// kfake alone expires it a session timeout after its last heartbeat and
// never answers the join. Here a waits in its join for b, which has gone
// silent: b's session ends, the rebalance completes without it, and a's
// join is answered.
func TestGivenAMemberWaitingInAJoinLongerThanItsSession_WhenTheSilentMemberExpires_ThenTheJoinIsAnswered(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0", MinSessionTimeout: joinSession})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	a, c := newMember(t, b, "g"), newMember(t, b, "g")
	if _, err := a.join(ctx); err != nil {
		t.Fatal(err)
	}
	a.sync(ctx)
	// c's join starts a rebalance that waits for a to rejoin.
	cJoined := make(chan error, 1)
	go func() {
		_, err := c.join(ctx)
		cJoined <- err
	}()
	awaitGroupState(t, ctx, a.cl, "g", "PreparingRebalance")
	if _, err := a.join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cJoined; err != nil {
		t.Fatal(err)
	}
	a.sync(ctx)
	c.sync(ctx)

	// Both are alive at a's last heartbeat; c's is later, so a's session
	// would end first.
	a.heartbeat(ctx)
	c.heartbeat(ctx)
	// a rejoins and waits for c, which says nothing more.
	joinCtx, cancelJoin := context.WithTimeout(ctx, joinRebalance/2)
	defer cancelJoin()
	resp, err := a.join(joinCtx)
	if err != nil {
		t.Fatalf("a's join was not answered: %v", err)
	}
	if len(resp.Members) != 1 || resp.LeaderID != a.id {
		t.Fatalf("the new generation has members %v led by %s, want only %s", resp.Members, resp.LeaderID, a.id)
	}
}

// awaitGroupState polls until the group is in state.
func awaitGroupState(t *testing.T, ctx context.Context, cl *kgo.Client, group, state string) {
	t.Helper()
	last := ""
	for {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Groups) == 1 {
			if last = resp.Groups[0].State; last == state {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s never reached %s (last %q, %v)", group, state, last, err)
		case <-time.After(5 * time.Millisecond): // polling interval
		}
	}
}
