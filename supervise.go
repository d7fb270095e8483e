package streamfold

import (
	"context"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/internal/restart"
	"github.com/streamfold/streamfold/processors"
)

// A group's processor that stops because of a storage fault — a store found
// corrupted (at open, on a read, on a write) or a write that failed (a full
// disk) — is restarted rather than ending Run: the local state is a cache of
// the changelog, and reopening it is the repair. Restarting closes the
// group's stores and opens them again, which rebuilds a broken store from its
// changelog and retries a failed one; inputs resume from their committed
// offsets, and the handlers' deduplication by offset keeps re-consumed
// records from counting twice. Meanwhile the runtime is not Recovered
// (readiness 503) and views answer not ready for the partitions.
//
// A store fault cancels the processor at once, even when no record arrives
// for the partition (a view's read found the damage), so the rebuild never
// waits for traffic. A read replica (a goka view) is restarted the same way.
// Faults, rebuilds and restarts are counted in the Stats of the group that
// owns the table (package internal/restart does the restarting).

// Counter names of storage faults in a group's processors.Snapshot.Counters.
const (
	CounterStoresBroken       = "stores-broken"
	CounterStoreWritesFailed  = "store-writes-failed"
	CounterStoresRebuilt      = "stores-rebuilt"
	CounterProcessorRestarted = "processor-restarted"
)

func (rt *Runtime) guard(group string) goka.ProcessorOption {
	return restart.Guard(rt.runs[group], group)
}

// storeFault is the engines' fault handler: it stops the run owning the
// store (a group's processor, or a replica's view, under key), which
// restart.Supervise then restarts. It must not block.
func (rt *Runtime) storeFault(key, topic string, partition int32, err error) {
	rt.log.Warn("store out of service; restarting its processor or replica to rebuild or reopen it",
		"owner", key, "topic", topic, "partition", partition, "error", err)
	rt.runs[key].Fault()
}

// runGroup runs a group's processor, restarted after storage faults.
func (rt *Runtime) runGroup(ctx context.Context, name string, p *goka.Processor, build func() (*goka.Processor, error)) error {
	defer rt.setAssigned(name, nil)
	return restart.Supervise(ctx, rt.runs[name], rt.log, "processor", "group "+name, []any{"group", name},
		func(ctx context.Context) error {
			rt.mu.Lock()
			rt.processors[name] = p
			rt.mu.Unlock()
			defer rt.setAssigned(name, nil)
			return p.Run(ctx)
		},
		func() {
			rt.mu.Lock()
			delete(rt.processors, name) // not recovered until the new one is
			rt.restarts[name]++
			rt.mu.Unlock()
		},
		func() (err error) {
			p, err = build()
			return err
		})
}

// runReplica runs a table's read replica, restarted after storage faults.
func (rt *Runtime) runReplica(ctx context.Context, table string, v *goka.View, build func() (*goka.View, error)) error {
	return restart.Supervise(ctx, rt.runs[replicaRunKey(table)], rt.log, "read replica", "replica of "+table, []any{"table", table},
		func(ctx context.Context) error {
			rt.mu.Lock()
			rt.views[table] = v
			rt.mu.Unlock()
			return v.Run(ctx)
		},
		func() {
			rt.mu.Lock()
			delete(rt.views, table)
			rt.restarts[replicaRunKey(table)]++
			rt.mu.Unlock()
		},
		func() (err error) {
			v, err = build()
			return err
		})
}

// replicaRunKey is the key of a replica's run in rt.runs; group names
// cannot contain '/'.
func replicaRunKey(table string) string { return replicaDir + "/" + table }

// addStorageStats adds to a group's snapshot the storage fault counters of
// its engine and of the read replicas of its table.
func (rt *Runtime) addStorageStats(group string, snap *processors.Snapshot) {
	e, ok := rt.engines[group]
	if !ok {
		return
	}
	st := e.Stats()
	rt.mu.Lock()
	restarts := rt.restarts[group]
	for table, re := range rt.replicas {
		if rt.owners[table] == group {
			rs := re.Stats()
			st.Broken += rs.Broken
			st.FailedWrites += rs.FailedWrites
			st.Rebuilt += rs.Rebuilt
			restarts += rt.restarts[replicaRunKey(table)]
		}
	}
	rt.mu.Unlock()
	if snap.Counters == nil {
		snap.Counters = map[string]int64{}
	}
	for name, n := range map[string]int64{
		CounterStoresBroken:       st.Broken,
		CounterStoreWritesFailed:  st.FailedWrites,
		CounterStoresRebuilt:      st.Rebuilt,
		CounterProcessorRestarted: restarts,
	} {
		if n > 0 {
			snap.Counters[name] = n
		}
	}
}

// storesSound reports whether no open store of a running group or replica
// is at fault.
func (rt *Runtime) storesSound() bool {
	for _, g := range rt.topo.hooks() {
		spec, _, ok := g.Table()
		if !ok || !rt.running[g.Name()] {
			continue
		}
		for _, s := range rt.engines[g.Name()].Stores(spec.Name) {
			if s.Fault() != nil {
				return false
			}
		}
	}
	for table, e := range rt.replicas {
		for _, s := range e.Stores(table) {
			if s.Fault() != nil {
				return false
			}
		}
	}
	return true
}
