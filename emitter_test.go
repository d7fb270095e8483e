package streamfold_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// A caller that stops waiting (an HTTP request whose client left, a server
// shutting down) must not stay blocked on a broker that does not answer.
func TestEmitter_GivenABrokerThatHoldsTheProduce_WhenTheCallerGivesUp_ThenEmitReturnsTheContextError(t *testing.T) {
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	rt, broker := run(t, g)
	emit := streamfold.NewEmitter(rt, numbers)
	ev, err := codecs.NewEvent("urn:test", "Number", "k", map[string]int{"n": 1})
	require.NoError(t, err)
	_, err = emit.Emit(context.Background(), "k", ev) // the producer is connected
	require.NoError(t, err)

	// The broker holds the next produce until released.
	cluster := broker.Cluster()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		once.Do(func() { close(held) })
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := emit.Emit(ctx, "k", ev)
		result <- err
	}()
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the produce never reached the broker")
	}
	cancel()
	select {
	case err := <-result:
		require.True(t, errors.Is(err, context.Canceled), "Emit returned %v, want the context's error", err)
	case <-time.After(wait):
		close(release)
		t.Fatal("Emit kept waiting for the broker after its context ended")
	}
	close(release)

	// The producer still works once the broker answers again.
	_, err = emit.Emit(context.Background(), "k", ev)
	require.NoError(t, err)
}
