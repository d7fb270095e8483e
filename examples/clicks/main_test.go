package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/embedded"
)

// TestClicks_GivenClicksFromAnotherClient_ThenTheServedCountHasEachOnce runs
// the example against the embedded broker and clicks with franz-go (whose
// default partitioner is murmur2, as Java's): three clicks on one page, one
// of them sent twice, are served as a count of three once the group has
// handled all four records.
func TestClicks_GivenClicksFromAnotherClient_ThenTheServedCountHasEachOnce(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := open(ctx, broker.Addrs(), t.TempDir(), "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

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
	resp, err := http.Get(fmt.Sprintf("http://%s/counts/home", srv.Addr()))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got Count
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, Count{Page: "home", Clicks: 3}, got)
}
