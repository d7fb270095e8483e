package serve

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
)

type budgetKey struct{}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestBudget_GivenTimeLeft_ThenItIsARunningContextWithTheDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), budgetKey{}, "v")
	before := time.Now()
	ctx := withBudget(parent, time.Now(), time.Hour)
	stop := ctx.stop
	defer stop()
	dl, ok := ctx.Deadline()
	require.True(t, ok)
	assert.WithinRange(t, dl, before.Add(time.Hour), time.Now().Add(time.Hour))
	assert.NoError(t, ctx.Err())
	assert.Equal(t, "v", ctx.Value(budgetKey{}))
	assert.False(t, closed(ctx.Done()))
	assert.NoError(t, ctx.Err(), "asking for Done changes nothing")
	assert.Equal(t, "v", ctx.Value(budgetKey{}))
}

func TestBudget_GivenAParentWithAnEarlierDeadline_ThenTheParentsDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, _ := parent.Deadline()
	ctx := withBudget(parent, time.Now(), time.Hour)
	stop := ctx.stop
	defer stop()
	dl, _ := ctx.Deadline()
	assert.Equal(t, want, dl)
}

func TestBudget_GivenTheDeadlinePassed_ThenDeadlineExceededAndDoneClosed(t *testing.T) {
	ctx := withBudget(context.Background(), time.Now(), -time.Second)
	stop := ctx.stop
	defer stop()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "before anyone asked for Done")
	assert.True(t, closed(ctx.Done()))
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, context.Cause(ctx), context.DeadlineExceeded)
}

func TestBudget_GivenAWaiter_ThenDoneClosesAtTheDeadline(t *testing.T) {
	ctx := withBudget(context.Background(), time.Now(), 20*time.Millisecond)
	stop := ctx.stop
	defer stop()
	<-ctx.Done()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	dl, _ := ctx.Deadline()
	assert.False(t, time.Now().Before(dl))
}

func TestBudget_GivenTheRequestEnds_ThenCanceled(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	ctx := withBudget(parent, time.Now(), time.Hour)
	stop := ctx.stop
	defer stop()
	cancel()
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "before anyone asked for Done")
	assert.True(t, closed(ctx.Done()))
	assert.ErrorIs(t, ctx.Err(), context.Canceled)

	parent, cancel = context.WithCancel(context.Background())
	ctx = withBudget(parent, time.Now(), time.Hour)
	stop = ctx.stop
	defer stop()
	done := ctx.Done()
	cancel()
	<-done
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "after Done was asked for")
}

func TestBudget_GivenStopped_ThenCanceledWhetherOrNotDoneWasAskedFor(t *testing.T) {
	ctx := withBudget(context.Background(), time.Now(), time.Hour)
	stop := ctx.stop
	stop()
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
	assert.True(t, closed(ctx.Done()))
	assert.ErrorIs(t, ctx.Err(), context.Canceled)

	ctx = withBudget(context.Background(), time.Now(), time.Hour)
	stop = ctx.stop
	done := ctx.Done()
	stop()
	assert.True(t, closed(done))
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
	stop() // a second stop is harmless, as a CancelFunc's
}

func TestBudget_GivenConcurrentUse_ThenEveryWaiterSeesTheDeadline(t *testing.T) {
	ctx := withBudget(context.Background(), time.Now(), 20*time.Millisecond)
	stop := ctx.stop
	defer stop()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(time.Millisecond):
				}
			}
			<-ctx.Done()
			assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
		})
	}
	wg.Wait()
}

// A key route served here runs under the caller's budget: a handler that
// waits longer is cut off at the budget's end.
func TestRouting_GivenAHandlerServedHereOutlastsTheBudget_Then504(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Assigned: true, Local: true, Copy: true, Restored: true}
	}}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	var deadline time.Time
	srv.Handle(http.MethodPatch, "/customers/{id}", func(r *http.Request) (int, any, error) {
		deadline, _ = r.Context().Deadline()
		<-r.Context().Done()
		return 0, nil, r.Context().Err()
	}, KeyFromPath("customers-table", "id"))

	start := time.Now()
	rec := do(srv, http.MethodPatch, "/customers/ada", "", HeaderTimeout, "50ms")
	assert.Equal(t, http.StatusGatewayTimeout, rec.Code, rec.Body.String())
	assert.WithinRange(t, deadline, start.Add(50*time.Millisecond), time.Now())

	// Without a budget from the caller, the default one.
	srv2, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	srv2.Handle(http.MethodGet, "/customers/{id}", func(r *http.Request) (int, any, error) {
		deadline, _ = r.Context().Deadline()
		return 0, nil, nil
	}, KeyFromPath("customers-table", "id"))
	start = time.Now()
	rec = do(srv2, http.MethodGet, "/customers/ada", "")
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.WithinRange(t, deadline, start.Add(defaultBudget), time.Now().Add(defaultBudget))
}
