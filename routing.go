package streamfold

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/streamfold/streamfold/internal/membership"
	"github.com/streamfold/streamfold/tables"
)

// ErrUnknownTable: a table name the topology does not have.
var ErrUnknownTable = errors.New("unknown table")

// selectGroups returns the set of groups to run: all for nil names, else the
// named ones, each of which must be a group of the topology.
func (t *Topology) selectGroups(names []string) (map[string]bool, error) {
	all := make([]string, 0, len(t.groups))
	for _, g := range t.groups {
		all = append(all, g.Name())
	}
	run := map[string]bool{}
	if names == nil {
		for _, g := range all {
			run[g] = true
		}
		return run, nil
	}
	var unknown []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if !slices.Contains(all, n) {
			unknown = append(unknown, fmt.Sprintf("%q", n))
			continue
		}
		run[n] = true
	}
	if len(unknown) > 0 {
		slices.Sort(all)
		return nil, fmt.Errorf("%w %s: the topology's groups are %s", ErrUnknownGroup, strings.Join(unknown, ", "), strings.Join(all, ", "))
	}
	return run, nil
}

// readTables lists the tables the topology declares as read outside its
// groups (ReadBy: views, queries), sorted.
func (t *Topology) readTables() []string {
	var out []string
	for _, e := range t.external {
		s := e.topic.Spec()
		if e.reader != "" && s.Kind == tables.KindTable && !slices.Contains(out, s.Name) {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Placement says where a key of a table lives, as far as this instance knows.
type Placement struct {
	Table     string `json:"table"`
	Key       string `json:"key"`
	Partition int32  `json:"partition"`
	// Group is the group that writes the table.
	Group string `json:"group,omitempty"`
	// Replica: the whole table is kept here as a read replica, because its
	// group does not run here. Read it here.
	Replica bool `json:"replica,omitempty"`
	// Assigned: the group runs here and its processor was assigned the
	// partition in its latest generation (it may still be restoring it, or
	// be giving it up in a rebalance that has begun).
	Assigned bool `json:"assigned,omitempty"`
	// Local: assigned, and the processor is running: this instance owns the
	// partition now.
	Local bool `json:"local,omitempty"`
	// Copy: a local copy of the partition is open here — the owned
	// partition, a hot standby or a replica — perhaps still restoring;
	// Restored: it has caught up with the changelog (as of its restore).
	Copy     bool `json:"copy,omitempty"`
	Restored bool `json:"restored,omitempty"`
	// Owner is the member the group coordinator last named as the
	// partition's owner; OwnerKnown is false while the group rebalances and
	// before the first answer.
	Owner      Member `json:"owner"`
	OwnerKnown bool   `json:"ownerKnown"`
	// OwnerIsSelf: the coordinator named this instance as the owner (its
	// processor may not have started the new generation yet).
	OwnerIsSelf bool `json:"ownerIsSelf,omitempty"`
}

// Place says where key of table lives: here (owned or replicated), at another
// member (its advertised query address), or nowhere known yet. It reads only
// local state; RefreshMembership asks the coordinators again.
func (rt *Runtime) Place(table, key string) (Placement, error) {
	n := rt.partitions[table]
	group, ok := rt.owners[table]
	if n == 0 || !ok {
		return Placement{}, fmt.Errorf("%w: %q", ErrUnknownTable, table)
	}
	pl := Placement{Table: table, Key: key, Partition: tables.PartitionFor(key, n), Group: group}
	if s, ok := rt.Store(table, pl.Partition); ok {
		pl.Copy, pl.Restored = true, s.Recovered()
	}
	if _, ok := rt.replicas[table]; ok {
		pl.Replica = true
		return pl, nil
	}
	if rt.running[group] {
		rt.mu.Lock()
		_, pl.Assigned = rt.assigned[group][pl.Partition]
		p := rt.processors[group]
		rt.mu.Unlock()
		pl.Local = pl.Assigned && p != nil && p.Recovered()
	}
	pl.Owner, pl.OwnerKnown = rt.members.Owner(group, pl.Partition)
	pl.OwnerIsSelf = pl.OwnerKnown && pl.Owner.Instance == rt.self.Instance
	return pl, nil
}

// Self is how this instance advertises itself to its groups.
func (rt *Runtime) Self() Member { return rt.self }

// RefreshMembership asks the group coordinators again which member owns
// which partition, unless an answer is at most a moment old; concurrent
// callers share one request. It returns when the answer is in or ctx ends.
func (rt *Runtime) RefreshMembership(ctx context.Context) error {
	return rt.members.Refresh(ctx, membership.Fresh)
}

// Membership is the last answer of the group coordinators about every group
// of the topology: its state, members and owners.
func (rt *Runtime) Membership() []GroupState {
	snap := rt.members.Snapshot()
	out := make([]GroupState, len(snap))
	for i, g := range snap {
		out[i] = groupState(g)
	}
	return out
}
