// Package membership keeps, per consumer group, which member owns each
// partition, as the group coordinators describe it (DescribeGroups): the
// member metadata's user data says who a member is, its assignment which
// partitions it owns. The runtime routes a key's query to its partition's
// owner with it.
//
// It is generic over the member type M, which the runtime defines (its
// users see it) and decodes from the user data.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

const (
	// Every is how often every instance re-reads which member owns which
	// partition of each group.
	Every = 2 * time.Second
	// Fresh: an on-demand refresh within this long of the last one reuses
	// its answer, so that a burst of lookup misses costs one request.
	Fresh = 100 * time.Millisecond
)

// Group is what the group coordinator last said about a group: its state
// and, once stable, which member owns which partition. Err is why the last
// describe of the group failed; empty when it did not.
type Group[M any] struct {
	Name    string
	State   string
	Members []M
	Owners  map[int32]M
	Err     string
}

// Tracker keeps the last answer of the coordinators about some groups. Safe
// for concurrent use.
type Tracker[M any] struct {
	admin  sarama.ClusterAdmin
	client sarama.Client
	groups []string
	decode func(userData []byte) M
	log    *slog.Logger

	mu       sync.Mutex
	state    map[string]Group[M]
	at       time.Time     // when the last refresh ended
	err      error         // its error
	inflight chan struct{} // closed when the refresh in flight ends
}

// New tracks groups through client; decode reads a member's user data (a
// member that is not one of ours must decode too, to some zero member).
func New[M any](client sarama.Client, groups []string, decode func(userData []byte) M, log *slog.Logger) (*Tracker[M], error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	// Closing admin would close the shared client; it holds nothing else.
	return &Tracker[M]{
		admin: admin, client: client, groups: slices.Clone(groups), decode: decode, log: log,
		state: map[string]Group[M]{},
	}, nil
}

// Run refreshes every interval until ctx ends.
func (m *Tracker[M]) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx, 0); err != nil && ctx.Err() == nil {
			m.log.Debug("membership refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh describes the groups again unless the last answer is younger than
// fresh; concurrent callers share one request. It returns when the answer is
// in or ctx ends (the request itself then finishes in the background).
func (m *Tracker[M]) Refresh(ctx context.Context, fresh time.Duration) error {
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

func (m *Tracker[M]) describe(done chan struct{}) {
	state, err := m.describeGroups()
	m.mu.Lock()
	if err == nil || len(state) > 0 {
		maps.Copy(m.state, state)
	}
	m.err, m.at, m.inflight = err, time.Now(), nil
	m.mu.Unlock()
	close(done)
}

func (m *Tracker[M]) describeGroups() (map[string]Group[M], error) {
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
	out := map[string]Group[M]{}
	var errs []error
	for _, d := range descs {
		gs := Group[M]{Name: d.GroupId, State: d.State, Owners: map[int32]M{}}
		if errors.Is(d.Err, sarama.ErrGroupIDNotFound) {
			// No member ever joined (a group no instance runs yet): newer
			// brokers say so as an error, older ones as the state Dead.
			gs.State = "Dead"
			out[d.GroupId] = gs
			continue
		}
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
			var userData []byte
			if meta, err := md.GetMemberMetadata(); err == nil && meta != nil {
				userData = meta.UserData
			}
			mem := m.decode(userData)
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

// Owner is the member that owns partition p of group, if the coordinator
// named one in the last answer and the group is stable.
func (m *Tracker[M]) Owner(group string, p int32) (M, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var zero M
	gs, ok := m.state[group]
	if !ok || gs.State != "Stable" {
		return zero, false
	}
	mem, ok := gs.Owners[p]
	return mem, ok
}

// Snapshot is a copy of the last answer, sorted by group.
func (m *Tracker[M]) Snapshot() []Group[M] {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Group[M], 0, len(m.state))
	for _, g := range slices.Sorted(maps.Keys(m.state)) {
		gs := m.state[g]
		gs.Owners = maps.Clone(gs.Owners)
		gs.Members = slices.Clone(gs.Members)
		out = append(out, gs)
	}
	return out
}
