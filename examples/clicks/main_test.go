package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/serve"
)

// TestClicks_GivenClicksFromAnotherClient_ThenTheServedCountHasEachOnce runs
// the example against the embedded broker and clicks with franz-go (whose
// default partitioner is murmur2, as Java's): three clicks on one page, one
// of them sent twice, are served as a count of three once the group has
// handled all four records. Stopped, the program has closed its runtime (a
// second one opens the same state directory) and, started again, serves the
// same count from its restored table without folding anything again.
func TestClicks_GivenClicksFromAnotherClient_ThenTheServedCountHasEachOnceAlsoAfterARestart(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	dir := t.TempDir()
	ctx := context.Background()
	srv, stop := runClicks(t, broker.Addrs(), dir)

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.DefaultProduceTopic("clicks"))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	for _, id := range []string{"c-1", "c-2", "c-2", "c-3"} {
		v := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"urn:test","type":"Clicked","subject":"home"}`, id)
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Key: []byte("home"), Value: []byte(v)}).FirstErr())
	}

	require.Eventually(t, func() bool {
		s := srv.Runtime().Stats()["counts"]
		return s.Applied+s.Duplicates >= 4
	}, 30*time.Second, 20*time.Millisecond, "the counts group never handled the four records")
	status, got := getCount(t, srv)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, Count{Page: "home", Clicks: 3}, got)

	require.NoError(t, stop())
	again, _ := runClicks(t, broker.Addrs(), dir)
	require.Eventually(t, func() bool {
		status, got = getCount(t, again)
		return status != http.StatusServiceUnavailable // restoring
	}, 30*time.Second, 20*time.Millisecond, "the restarted program never served")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, Count{Page: "home", Clicks: 3}, got)
	assert.Zero(t, again.Runtime().Stats()["counts"].Applied, "the restart folded clicks again")
}

// runClicks opens the program on dir and runs it until stop, which returns
// Run's error (the test's end stops it too).
func runClicks(t *testing.T, brokers []string, dir string) (*serve.Server, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := open(ctx, brokers, dir, "127.0.0.1:0")
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var (
		once   sync.Once
		runErr error
	)
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	return srv, stop
}

// getCount asks srv for the home page's count.
func getCount(t *testing.T, srv *serve.Server) (int, Count) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/counts/home", srv.Addr()))
	require.NoError(t, err)
	defer resp.Body.Close()
	var c Count
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&c))
	}
	return resp.StatusCode, c
}
