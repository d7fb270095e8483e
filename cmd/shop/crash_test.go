package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/embedded"
)

func TestCarts_GivenNoReplyInTime_Then504Problem(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ReplyTimeout = 300 * time.Millisecond
	// The topics exist and the API serves, but no processor runs: nobody answers.
	a, err := start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	srv := httptest.NewServer(a.Server())
	t.Cleanup(srv.Close)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/carts/c1/commands", strings.NewReader(addItem("apple", 1)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, string(body))
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	assert.Contains(t, string(body), "Idempotency-Key")
}

// shopProcess is the real shop binary (this test binary re-executed as main)
// running against an outside broker, so it can be killed with SIGKILL.
type shopProcess struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
}

// startProcessBroker starts a broker, with its log on disk, for shop
// processes that are killed and restarted against it; members that die are
// dropped after a second.
func startProcessBroker(t *testing.T) *embedded.Broker {
	t.Helper()
	broker, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", MinSessionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	return broker
}

// startShopProcess runs the shop alone against broker with its state in dataDir.
func startShopProcess(t *testing.T, brokers []string, dataDir string) *shopProcess {
	t.Helper()
	return runShopProcess(t, "--brokers", strings.Join(brokers, ","), "--data-dir", dataDir,
		"--http", "127.0.0.1:0", "--partitions", "2", "--session-timeout", "1s")
}

// runShopProcess runs the shop binary with args and waits until it is ready.
// It is killed with the test at the latest.
func runShopProcess(t testing.TB, args ...string) *shopProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SHOP_TEST_AS_MAIN=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &shopProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var logTail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			logMu.Lock()
			if !strings.Contains(l, `"path":"/readyz"`) { // the readiness polls below say nothing
				logTail = append(logTail, l)
				if len(logTail) > 30 {
					logTail = logTail[1:]
				}
			}
			logMu.Unlock()
			if a, ok := loggedAttr(l, "http listening", "addr"); ok {
				addr <- a
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("shop process exited before listening:\n%s", strings.Join(logTail, "\n"))
	case <-time.After(wait):
		t.Fatal("shop process never listened")
	}
	var last string // the last /readyz answer: what the process waits for
	ready := assert.Eventually(t, func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = string(b)
		return resp.StatusCode == http.StatusOK
	}, readyWait, 20*time.Millisecond)
	if !ready {
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("shop process never became ready; last /readyz: %s\nits log:\n%s", last, strings.Join(logTail, "\n"))
	}
	return p
}

func (p *shopProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// TestCarts_GivenProcessKilledWhileCommandsFlow_ThenEverySnapshotIsTheFoldOfItsAcceptedCommands
// kills the shop (SIGKILL: no flush, no commit) repeatedly while commands flow,
// then checks that no command was applied twice and no accepted event was lost.
func TestCarts_GivenProcessKilledWhileCommandsFlow_ThenEverySnapshotIsTheFoldOfItsAcceptedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	broker := startProcessBroker(t)
	dataDir := t.TempDir()

	p := startShopProcess(t, broker.Addrs(), dataDir)
	recs := productRecords(t, 0, 4)
	produce(t, kafkaClient(t, broker.Addrs()), recs...)
	var products []string
	for _, r := range recs {
		products = append(products, string(r.Key))
	}
	carts := []string{"k0", "k1", "k2", "k3", "k4", "k5"}

	// One instance at a time; its replacement after each kill takes over.
	var mu sync.Mutex
	base := p.base
	setBase := func(b string) {
		mu.Lock()
		defer mu.Unlock()
		base = b
	}
	flow := startCartFlow(carts, products, 7, func(*rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		return base
	}, func(string) {})
	for range 3 {
		// Let commands flow, then kill at an arbitrary point.
		flow.awaitAccepted(t, 10)
		p.kill()
		p = startShopProcess(t, broker.Addrs(), dataDir)
		setBase(p.base)
	}
	flow.awaitAccepted(t, 10)
	flow.finish()

	records, copies := flow.checkCarts(t, broker.Addrs(), p.base)
	t.Logf("cart-events: %d records, %d re-appended copies", records, copies)
}
