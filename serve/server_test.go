package serve

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun_GivenCancel_ThenHTTPStopsBeforeTheProcessors(t *testing.T) {
	rtStopped := make(chan bool, 1)
	ln := listen(t)
	addr := ln.Addr().String()
	rt := &fakeRuntime{run: func(ctx context.Context) error {
		<-ctx.Done()
		// The HTTP server has stopped accepting before the processors stop.
		_, err := http.Get("http://" + addr + "/healthz")
		rtStopped <- err != nil
		return nil
	}}
	srv, err := New(rt, Options{Listener: ln})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	assert.True(t, <-rtStopped, "the HTTP server was still accepting when the processors stopped")
}

func TestRun_GivenAProcessorFailure_ThenHTTPStopsAndRunReturnsIt(t *testing.T) {
	boom := errors.New("boom")
	rt := &fakeRuntime{run: func(context.Context) error { return boom }}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, boom)
	case <-time.After(30 * time.Second):
		t.Fatal("a failed runtime did not stop the HTTP server")
	}
}

func TestNew_GivenNoListener_ThenAnError(t *testing.T) {
	_, err := New(&fakeRuntime{}, Options{})
	assert.Error(t, err)
	_, err = New(nil, Options{Listener: listen(t)})
	assert.Error(t, err)
}
