package streamfold

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Membership timing.
const (
	// MembershipRefresh is how often every instance re-reads which member
	// owns which partition of each group.
	MembershipRefresh = 2 * time.Second
	// membershipFresh: an on-demand refresh within this long of the last one
	// reuses its answer, so that a burst of lookup misses costs one request.
	membershipFresh = 100 * time.Millisecond
)

// Member is one instance of the application in a processor group, as it
// advertised itself in its consumer-group member metadata (sarama's
// Consumer.Group.Member.UserData).
type Member struct {
	// Instance identifies one run of a Runtime; it is new at every Open.
	Instance string `json:"instance"`
	// Query is the host:port of the instance's query API; empty when it
	// serves no queries.
	Query string `json:"query,omitempty"`
}

// memberData is the user data every member of our groups sends: versioned,
// so that a later format can be told apart.
type memberData struct {
	V int `json:"v"`
	Member
}

func encodeMember(m Member) []byte {
	b, _ := json.Marshal(memberData{V: 1, Member: m})
	return b
}

// decodeMember reads a member's user data; a member that is not one of ours
// (another client in the group) is a Member with no instance.
func decodeMember(b []byte) Member {
	var d memberData
	if json.Unmarshal(b, &d) != nil || d.V != 1 {
		return Member{}
	}
	return d.Member
}

func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// GroupState is what the group coordinator last said about a group: its
// state and, once stable, which member owns which partition.
type GroupState struct {
	Group string `json:"group"`
	// State is Kafka's group state: Stable, PreparingRebalance,
	// CompletingRebalance, Empty, Dead.
	State   string           `json:"state"`
	Members []Member         `json:"members"`
	Owners  map[int32]Member `json:"owners"`
	// Err is why the last describe of this group failed; empty when it did not.
	Err string `json:"error,omitempty"`
}

// membership keeps, per group, which member owns each partition, as the
// group coordinators describe it. Safe for concurrent use.
type membership struct {
	admin  sarama.ClusterAdmin
	client sarama.Client
	groups []string
	log    *slog.Logger

	mu       sync.Mutex
	state    map[string]GroupState
	at       time.Time     // when the last refresh ended
	err      error         // its error
	inflight chan struct{} // closed when the refresh in flight ends
	changed  chan struct{} // closed (and replaced) after every refresh
}

func newMembership(client sarama.Client, groups []string, log *slog.Logger) (*membership, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	// Closing admin would close the shared client; it holds nothing else.
	return &membership{
		admin: admin, client: client, groups: slices.Clone(groups), log: log,
		state: map[string]GroupState{}, changed: make(chan struct{}),
	}, nil
}

// run refreshes every interval until ctx ends.
func (m *membership) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.refresh(ctx, 0); err != nil && ctx.Err() == nil {
			m.log.Debug("membership refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh describes the groups again unless the last answer is younger than
// fresh; concurrent callers share one request. It returns when the answer is
// in or ctx ends (the request itself then finishes in the background).
func (m *membership) refresh(ctx context.Context, fresh time.Duration) error {
	m.mu.Lock()
	if fresh > 0 && !m.at.IsZero() && time.Since(m.at) < fresh && m.inflight == nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	ch := m.inflight
	if ch == nil {
		ch = make(chan struct{})
		m.inflight = ch
		go m.describe(ch)
	}
	m.mu.Unlock()
	select {
	case <-ch:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *membership) describe(done chan struct{}) {
	state, err := m.describeGroups()
	m.mu.Lock()
	if err == nil || len(state) > 0 {
		maps.Copy(m.state, state)
	}
	m.err, m.at, m.inflight = err, time.Now(), nil
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	close(done)
}

func (m *membership) describeGroups() (map[string]GroupState, error) {
	if len(m.groups) == 0 {
		return nil, nil
	}
	descs, err := m.admin.DescribeConsumerGroups(m.groups)
	if err != nil {
		// A coordinator that moved or died: ask again next time.
		for _, g := range m.groups {
			_ = m.client.RefreshCoordinator(g)
		}
		return nil, fmt.Errorf("describe groups: %w", err)
	}
	out := map[string]GroupState{}
	var errs []error
	for _, d := range descs {
		gs := GroupState{Group: d.GroupId, State: d.State, Owners: map[int32]Member{}}
		if d.Err != sarama.ErrNoError {
			gs.Err = d.Err.Error()
			errs = append(errs, fmt.Errorf("describe group %s: %w", d.GroupId, d.Err))
			if errors.Is(d.Err, sarama.ErrNotCoordinatorForConsumer) || errors.Is(d.Err, sarama.ErrConsumerCoordinatorNotAvailable) {
				_ = m.client.RefreshCoordinator(d.GroupId)
			}
			out[d.GroupId] = gs
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(d.Members)) {
			md := d.Members[id]
			var mem Member
			if meta, err := md.GetMemberMetadata(); err == nil && meta != nil {
				mem = decodeMember(meta.UserData)
			}
			gs.Members = append(gs.Members, mem)
			a, err := md.GetMemberAssignment()
			if err != nil || a == nil {
				continue
			}
			// Co-partitioned inputs: every topic of the assignment names the
			// same partitions.
			for _, parts := range a.Topics {
				for _, p := range parts {
					gs.Owners[p] = mem
				}
			}
		}
		out[d.GroupId] = gs
	}
	return out, errors.Join(errs...)
}

// owner is the member that owns partition p of group, if the coordinator
// named one in the last answer.
func (m *membership) owner(group string, p int32) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gs, ok := m.state[group]
	if !ok || gs.State != "Stable" {
		return Member{}, false
	}
	mem, ok := gs.Owners[p]
	return mem, ok
}

// changes is closed by the next refresh.
func (m *membership) changes() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *membership) snapshot() []GroupState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]GroupState, 0, len(m.state))
	for _, g := range slices.Sorted(maps.Keys(m.state)) {
		gs := m.state[g]
		gs.Owners = maps.Clone(gs.Owners)
		gs.Members = slices.Clone(gs.Members)
		out = append(out, gs)
	}
	return out
}
