package streamfold

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

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
// owns the table.
const (
	restartBackoffMin = time.Second
	restartBackoffMax = 30 * time.Second
)

// Counter names of storage faults in a group's processors.Snapshot.Counters.
const (
	CounterStoresBroken       = "stores-broken"
	CounterStoreWritesFailed  = "store-writes-failed"
	CounterStoresRebuilt      = "stores-rebuilt"
	CounterProcessorRestarted = "processor-restarted"
)

// groupRun is a processor run in progress: a storage fault cancels it and
// marks it faulted.
type groupRun struct {
	cancel  context.CancelFunc
	faulted atomic.Bool
}

// faultGuard wraps the goka context of every callback of a group so that a
// callback touching the group's state after a storage fault panics, which
// goka turns into a processor error without committing the record.
//
// Without it a record could be lost: once the run's context is cancelled,
// goka's Fail (called by Value or SetValue when the store refuses) records
// the error and returns instead of panicking, the callback carries on
// without the state it asked for, and goka commits the record as processed.
type faultGuard struct {
	gokaContext
	run   *atomic.Pointer[groupRun]
	group string
}

// gokaContext names the embedded goka.Context apart from its Context method.
type gokaContext = goka.Context

func (rt *Runtime) guard(group string) goka.ProcessorOption {
	run := rt.runs[group]
	return goka.WithContextWrapper(func(ctx goka.Context) goka.Context {
		return faultGuard{gokaContext: ctx, run: run, group: group}
	})
}

// check panics when a storage fault stopped the group's run.
func (g faultGuard) check() {
	if r := g.run.Load(); r != nil && r.faulted.Load() {
		panic(fmt.Errorf("group %s: storage fault; record left for the restarted processor", g.group))
	}
}

func (g faultGuard) Value() any {
	v := g.gokaContext.Value()
	g.check()
	return v
}

func (g faultGuard) SetValue(value any, opts ...goka.ContextOption) {
	g.gokaContext.SetValue(value, opts...)
	g.check()
}

func (g faultGuard) Delete(opts ...goka.ContextOption) {
	g.gokaContext.Delete(opts...)
	g.check()
}

// Emit refuses after a fault: a dead letter or output of a record whose
// state could not be written must not go out before the record is handled
// again.
func (g faultGuard) Emit(topic goka.Stream, key string, value any, opts ...goka.ContextOption) {
	g.check()
	g.gokaContext.Emit(topic, key, value, opts...)
}

func (g faultGuard) Join(topic goka.Table) any {
	v := g.gokaContext.Join(topic)
	g.check()
	return v
}

func (g faultGuard) Lookup(topic goka.Table, key string) any {
	v := g.gokaContext.Lookup(topic, key)
	g.check()
	return v
}

// storeFault is the engines' fault handler: it stops the run owning the
// store (a group's processor, or a replica's view, under key), which
// supervise then restarts. It must not block.
func (rt *Runtime) storeFault(key, topic string, partition int32, err error) {
	rt.log.Warn("store out of service; restarting its processor or replica to rebuild or reopen it",
		"owner", key, "topic", topic, "partition", partition, "error", err)
	if r := rt.runs[key].Load(); r != nil {
		r.faulted.Store(true)
		r.cancel()
	}
}

// runGroup runs a group's processor under supervise.
func (rt *Runtime) runGroup(ctx context.Context, name string, p *goka.Processor, build func() (*goka.Processor, error)) error {
	defer rt.setAssigned(name, nil)
	return rt.supervise(ctx, name, "processor", "group "+name, []any{"group", name},
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

// runReplica runs a table's read replica under supervise.
func (rt *Runtime) runReplica(ctx context.Context, table string, v *goka.View, build func() (*goka.View, error)) error {
	return rt.supervise(ctx, replicaRunKey(table), "read replica", "replica of "+table, []any{"table", table},
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

// supervise calls run until ctx ends or run fails for a reason other than a
// storage fault of its stores (which storeFault reports under key). After a
// storage fault it calls stopped, waits restartBackoffMin (doubling up to
// restartBackoffMax while the faults go on), calls rebuild and runs again.
func (rt *Runtime) supervise(ctx context.Context, key, what, errPrefix string, attrs []any,
	run func(context.Context) error, stopped func(), rebuild func() error,
) error {
	backoff := restartBackoffMin
	for {
		runCtx, cancel := context.WithCancel(ctx)
		r := &groupRun{cancel: cancel}
		rt.runs[key].Store(r)
		started := time.Now()
		rt.log.Info(what+" starting", attrs...)
		err := run(runCtx)
		cancel()
		faulted := r.faulted.Load()
		rt.runs[key].CompareAndSwap(r, nil)

		switch {
		case !faulted && err != nil:
			return fmt.Errorf("%s: %w", errPrefix, err)
		case !faulted || ctx.Err() != nil:
			rt.log.Info(what+" stopped", attrs...)
			return nil
		}
		stopped()
		if time.Since(started) > restartBackoffMax {
			backoff = restartBackoffMin // it ran well for a while: a new fault
		}
		rt.log.Warn(what+" stopped by a storage fault; restarting",
			slices.Concat(attrs, []any{"error", err, "backoff", backoff.String()})...)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, restartBackoffMax)
		if err := rebuild(); err != nil {
			return fmt.Errorf("%s: restart: %w", errPrefix, err)
		}
	}
}

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
	for _, g := range rt.topo.groups {
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
