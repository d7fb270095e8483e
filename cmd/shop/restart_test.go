package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/shop"
)

// seedCustomers registers n customers and updates each once, over HTTP, and
// waits until all are folded.
func seedCustomers(t *testing.T, s *shopRun, n int) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf(`{"id":"c%d","name":"Customer %d","email":"c%d@example.com"}`, i, i, i)
		require.Equal(t, http.StatusAccepted, s.do(http.MethodPost, "/customers", body, nil).StatusCode)
	}
	for i := range n {
		s.awaitVersion(fmt.Sprintf("c%d", i), 1)
		require.Equal(t, http.StatusAccepted, s.do(http.MethodPatch, fmt.Sprintf("/customers/c%d", i), `{"name":"Renamed"}`, nil).StatusCode)
	}
	for i := range n {
		s.awaitVersion(fmt.Sprintf("c%d", i), 2)
	}
}

// snapshot reads every customer through the list endpoint.
func snapshot(t *testing.T, s *shopRun) []shop.Customer {
	t.Helper()
	var p page
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/customers?limit=1000", "", &p).StatusCode)
	return p.Items
}

func TestRestart_GivenSameDataDir_ThenNothingReprocessedAndStateIntact(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, testConfig(dir))
	seedCustomers(t, s, 20)
	before := snapshot(t, s)
	require.Len(t, before, 20)
	s.stop()

	s = startShop(t, testConfig(dir))
	assert.Equal(t, before, snapshot(t, s))
	assert.Zero(t, s.app.Runtime().Stats()["customers"].Processed, "a committed event was processed again")
}

func TestRestart_GivenLocalStateDeleted_ThenRebuiltFromChangelogWithoutHandlers(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, testConfig(dir))
	seedCustomers(t, s, 20)
	require.Equal(t, http.StatusAccepted, s.do(http.MethodDelete, "/customers/c3?erase=true", "", nil).StatusCode)
	require.Equal(t, http.StatusAccepted, s.do(http.MethodDelete, "/customers/c4", "", nil).StatusCode)
	s.awaitVersion("c3", 0)
	s.awaitVersion("c4", 3)
	before := snapshot(t, s)
	var deletedBefore page
	s.do(http.MethodGet, "/customers?state=deleted", "", &deletedBefore)
	s.stop()

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "state")))

	s = startShop(t, testConfig(dir))
	assert.Equal(t, before, snapshot(t, s))
	var deletedAfter page
	s.do(http.MethodGet, "/customers?state=deleted", "", &deletedAfter)
	assert.Equal(t, deletedBefore, deletedAfter, "the state index was not rebuilt")
	assert.Equal(t, []string{"c4"}, ids(deletedAfter.Items))
	assert.Zero(t, s.app.Runtime().Stats()["customers"].Processed, "restore ran handlers")
}

func TestRestart_GivenBrokerDataWiped_ThenLocalStateAheadIsDetectedAndRebuilt(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, testConfig(dir))
	seedCustomers(t, s, 5)
	s.stop()

	// The broker lost everything; the local stores still hold the old tables.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "kafka")))

	s = startShop(t, testConfig(dir))
	assert.Empty(t, snapshot(t, s), "stale local state served after the changelog was lost")
	_, found := s.customer("c1")
	assert.False(t, found)
	assert.Contains(t, s.logs.String(), "ahead of changelog")

	// And the rebuilt store works: new events fold from offset 0 again.
	require.Equal(t, http.StatusAccepted, s.do(http.MethodPost, "/customers", `{"id":"c1","name":"Again","email":"again@example.com"}`, nil).StatusCode)
	c := s.awaitVersion("c1", 1)
	assert.Equal(t, "Again", c.Name)
}

func TestRestart_GivenCommittedOffsetOutOfRange_ThenResetsToEarliestAndLogsSkipped(t *testing.T) {
	// Given a broker of its own, so the shop runs with --brokers and can stop
	// while the log moves on.
	broker, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	cfg := testConfig(t.TempDir())
	cfg.Partitions = 1
	cfg.Brokers = broker.Addrs()

	s := startShop(t, cfg)
	seedCustomers(t, s, 3) // offsets 0..5 folded and committed
	s.stop()

	// When four more events arrive while the group is down, and retention
	// removes the first two of them before the group is back.
	cl := kafkaClient(t, broker.Addrs())
	for _, name := range []string{"lost", "lost"} {
		r, _ := eventRecord(t, "c0", shop.CustomerUpdatedType, map[string]string{"name": name})
		produce(t, cl, r)
	}
	for _, name := range []string{"seen", "seen again"} {
		r, _ := eventRecord(t, "c1", shop.CustomerUpdatedType, map[string]string{"name": name})
		produce(t, cl, r)
	}
	scfg := sarama.NewConfig()
	scfg.Version = kafkaconf.Version()
	admin, err := sarama.NewClusterAdmin(broker.Addrs(), scfg)
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.DeleteRecords(shop.CustomerEvents.Name, map[int32]int64{0: 8}))

	// Then the group resets to the earliest offset, says how much it skipped,
	// and folds what is left.
	s = startShop(t, cfg)
	c1 := s.awaitVersion("c1", 4)
	assert.Equal(t, "seen again", c1.Name)
	c0, _ := s.customer("c0")
	assert.Equal(t, int64(2), c0.Version)
	assert.Contains(t, s.logs.String(), "committed offset out of range")
	assert.Contains(t, s.logs.String(), "skipped=2")
}

// TestShop_GivenSIGINT_ThenExitsZeroAfterCleanShutdown runs the real main (this
// test binary re-executed as the shop) and interrupts it.
func TestShop_GivenSIGINT_ThenExitsZeroAfterCleanShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "--data-dir", dir, "--http", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0", "--partitions", "2")
	cmd.Env = append(os.Environ(), "SHOP_TEST_AS_MAIN=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var httpAddr string
	var logged []string
	deadline := time.After(wait)
	for httpAddr == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "shop exited early: %s", strings.Join(logged, "\n"))
			logged = append(logged, l)
			if a, ok := loggedAttr(l, "http listening", "addr"); ok {
				httpAddr = a
			}
		case <-deadline:
			t.Fatalf("shop never listened: %s", strings.Join(logged, "\n"))
		}
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, wait, 20*time.Millisecond)

	// Off a terminal the shop logs JSON lines, and says once when it is
	// ready and where.
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "shop exited early: %s", strings.Join(logged, "\n"))
			logged = append(logged, l)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), "a log line off a terminal is JSON: %s", l)
			if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "ready in ") {
				assert.Equal(t, "http://"+httpAddr, m["http"])
				ready = true
			}
		case <-deadline:
			t.Fatalf("shop never said it was ready: %s", strings.Join(logged, "\n"))
		}
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	after := make(chan []string, 1)
	go func() {
		var tail []string
		for l := range lines { // keep the pipe drained until the process exits
			tail = append(tail, l)
		}
		after <- tail
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit status after SIGINT: %v; what it logged after the signal:\n%s", err, strings.Join(<-after, "\n"))
		}
	case <-time.After(wait):
		t.Fatal("shop did not exit after SIGINT")
	}
}
