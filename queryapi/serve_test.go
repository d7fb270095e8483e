package queryapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/streamfold/streamfold/queryapi"
)

// waitFor polls cond until it holds or the deadline passes; the deadline is a
// failure bound, not a timing assumption.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv waits for a value from ch, failing the test if none comes within a
// generous bound (a hang guard, not a timing assumption).
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestServe_GivenInFlightRequest_WhenContextCancelled_ThenRequestFinishesAndServeReturnsNil(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	api := queryapi.New()
	api.Handle("GET", "/slow", func(*http.Request) (int, any, error) {
		close(entered)
		<-release
		return http.StatusOK, map[string]string{"done": "yes"}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- queryapi.ServeListener(ctx, ln, api, nil) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "healthz", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := client.Get(base + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	recv(t, "handler entered", entered)

	cancel()
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(release)

	r := recv(t, "in-flight response", slow)
	if r.err != nil || r.status != http.StatusOK || r.body != `{"done":"yes"}` {
		t.Fatalf("in-flight request = %+v", r)
	}
	if err := recv(t, "ServeListener to return", served); err != nil {
		t.Fatalf("ServeListener = %v, want nil", err)
	}
}

func TestServe_GivenCancelledContext_ThenReturnsNil(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if err := queryapi.Serve(ctx, "127.0.0.1:0", queryapi.New(), nil); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServe_GivenBadAddress_ThenError(t *testing.T) {
	if err := queryapi.Serve(context.Background(), "127.0.0.1:-1", queryapi.New(), nil); err == nil {
		t.Fatal("Serve on an invalid address returned nil")
	}
}

// net/http's Shutdown waits five seconds for a new connection that has sent
// nothing (a request may be on its way), as long as the grace: such a
// connection cuts no request off and is no shutdown failure.
func TestServe_GivenAConnectionThatSendsNothing_WhenContextCancelled_ThenServeReturnsNil(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- queryapi.ServeListener(ctx, ln, queryapi.New(), nil) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server has accepted it once a request on another connection is
	// answered after it (Serve accepts in order).
	waitFor(t, "the server to answer", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/nothing")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	cancel()
	if err := recv(t, "ServeListener to return", served); err != nil {
		t.Fatalf("ServeListener = %v, want nil", err)
	}
}
