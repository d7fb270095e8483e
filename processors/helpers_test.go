package processors

import (
	"context"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// This file is the one place where the tests of aggregates, reactors and the
// failure policy declare a group's handlers (HandleCommands, Project,
// AddReactor) and reach its runtime hooks (Bind, CatchUp, Graph): when those
// signatures change, only these few functions do.

// handleCommands declares the aggregate a on g and returns every group that
// has to run for it (g itself and the relay that sends its decisions).
func handleCommands[S, C any](g *Group, a Aggregate[S, C]) []*Group {
	HandleCommands(g, a)
	return append([]*Group{g}, g.needs...)
}

// project makes g fold in into table, its table (<group>-table).
func project[S any](g *Group, table tables.Table[S], in tables.Stream[codecs.Event], apply Apply[S]) {
	Project(g, in, apply, Into(table))
}

// addReactor adds one input of a reactor group.
func addReactor[S, In any](g *Group, rt Reactor[S, In]) { AddReactor(g, rt) }

// runOption prepares a group as the runtime would before it runs it.
type runOption func(t *testing.T, g *Group)

// withPartitions binds the partition counts of the group's input topics, as
// the runtime does once the topics exist.
func withPartitions(p map[string]int) runOption {
	return func(_ *testing.T, g *Group) { g.bind(p) }
}

// withCatchUp sets a bootstrap group's catch-up targets (input topic →
// partition → end offset at its first start).
func withCatchUp(targets map[string]map[int32]int64) runOption {
	return func(t *testing.T, g *Group) {
		if g.bootstrap {
			require.NoError(t, g.setCatchUp(targets))
		}
	}
}

// run starts groups on a new goka tester, in-memory and synchronous: every
// topic has one partition (0) with offsets from 0, and Consume returns once
// every group has handled everything that followed from the record. The
// groups stop at the end of the test.
func run(t *testing.T, groups []*Group, opts ...runOption) *tester.Tester {
	t.Helper()
	gkt := tester.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	for _, g := range groups {
		for _, o := range opts {
			o(t, g)
		}
		graph, err := g.graph()
		require.NoError(t, err)
		// Nil values reach the handlers, as in the runtime.
		proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt), goka.WithNilHandling(goka.NilProcess))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- proc.Run(ctx) }()
		dones = append(dones, done)
	}
	t.Cleanup(func() {
		cancel()
		for _, done := range dones {
			require.NoError(t, <-done)
		}
	})
	return gkt
}

// drainEvents decodes the CloudEvents sent to q since the last call, with
// their keys and bytes.
func drainEvents(t *testing.T, q *tester.QueueTracker) (keys []string, evs []codecs.Event, raw [][]byte) {
	t.Helper()
	for {
		key, b, ok := q.NextRaw()
		if !ok {
			return keys, evs, raw
		}
		ev, err := codecs.CloudEvents{}.Decode(b)
		require.NoError(t, err)
		keys, evs, raw = append(keys, key), append(evs, ev), append(raw, b)
	}
}
