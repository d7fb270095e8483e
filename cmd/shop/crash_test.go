package main

import (
	"bufio"
	"context"
	"fmt"
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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/shop"
)

func TestCarts_GivenNoReplyInTime_Then504Problem(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ReplyTimeout = 300 * time.Millisecond
	// The topics exist and the API serves, but no processor runs: nobody answers.
	a, err := start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.close() })
	srv := httptest.NewServer(a.handler)
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

func startShopProcess(t *testing.T, brokers []string, dataDir string) *shopProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--brokers", strings.Join(brokers, ","), "--data-dir", dataDir,
		"--http", "127.0.0.1:0", "--partitions", "2", "--session-timeout", "1s")
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
			logTail = append(logTail, l)
			if len(logTail) > 30 {
				logTail = logTail[1:]
			}
			logMu.Unlock()
			if i := strings.Index(l, `msg="http listening" addr=`); i >= 0 {
				addr <- strings.TrimPrefix(l[i:], `msg="http listening" addr=`)
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
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
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, wait, 20*time.Millisecond, "shop process never became ready")
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
	broker, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", MinSessionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	dataDir := t.TempDir()

	p := startShopProcess(t, broker.Addrs(), dataDir)
	products := []string{"p0", "p1", "p2", "p3"}
	cl := kafkaClient(t, broker.Addrs())
	for i, id := range products {
		ev, err := codecs.NewEvent("urn:test", shop.ProductAddedType, id, shop.ProductAdded{Name: id, Price: "1.00", SKU: fmt.Sprintf("PRD-%04d", i)})
		require.NoError(t, err)
		b, _ := codecs.CloudEvents{}.Encode(ev)
		produce(t, cl, &kgo.Record{Topic: shop.ProductEvents.Name, Key: []byte(id), Value: b})
	}
	carts := []string{"k0", "k1", "k2", "k3", "k4", "k5"}

	var mu sync.Mutex
	accepted := map[string][]codecs.Event{} // cart -> events of accepted commands, in reply order
	var base string
	send := func(cart, cmdID, body string) (int, cartReply, error) {
		mu.Lock()
		url := base
		mu.Unlock()
		req, _ := http.NewRequest(http.MethodPost, url+"/carts/"+cart+"/commands", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", cmdID)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, cartReply{}, err
		}
		defer resp.Body.Close()
		var rep cartReply
		b, _ := io.ReadAll(resp.Body)
		_ = jsonUnmarshal(b, &rep)
		return resp.StatusCode, rep, nil
	}

	// Commands flow from one client per cart; a command whose outcome is
	// unknown (connection cut, 504) is retried with the same id, which is what
	// makes retries safe.
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for ci, cart := range carts {
		clients.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			held := map[string]bool{}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				prod := products[rng.IntN(len(products))]
				body := addItem(prod, 1+rng.IntN(5))
				if held[prod] {
					body = fmt.Sprintf(`{"type":"RemoveItem","data":{"productId":%q}}`, prod)
				}
				cmdID := fmt.Sprintf("%s-%d", cart, n)
				for {
					status, rep, err := send(cart, cmdID, body)
					if err == nil && status == http.StatusOK {
						mu.Lock()
						if !rep.Duplicate || len(accepted[cart]) == 0 || !containsID(accepted[cart], rep.Events) {
							accepted[cart] = append(accepted[cart], rep.Events...)
						}
						mu.Unlock()
						held[prod] = !held[prod]
						break
					}
					if err == nil && status == http.StatusUnprocessableEntity {
						break // a rule said no: nothing appended
					}
					// Unknown outcome: retry until the answer is definite, also
					// after stop, so that every command ends accepted or rejected.
					time.Sleep(20 * time.Millisecond) // pacing a retry, not synchronisation
				}
			}
		})
	}

	mu.Lock()
	base = p.base
	mu.Unlock()
	for range 3 {
		// Let commands flow, then kill at an arbitrary point.
		waitAccepted(t, &mu, accepted, 10)
		p.kill()
		p = startShopProcess(t, broker.Addrs(), dataDir)
		mu.Lock()
		base = p.base
		mu.Unlock()
	}
	waitAccepted(t, &mu, accepted, 10)
	close(stop)
	clients.Wait()

	// Every cart's snapshot is the fold of its distinct events, every accepted
	// command's events are in cart-events, and copies only ever repeat an id.
	events := readCartEvents(t, broker.Addrs())
	copies, total := 0, 0
	defer func() { t.Logf("cart-events: %d records, %d re-appended copies", total, copies) }()
	for _, cart := range carts {
		distinct := map[string]codecs.Event{}
		var order []codecs.Event
		for _, ev := range events[cart] {
			total++
			if prev, dup := distinct[ev.ID]; dup {
				copies++
				assert.Equal(t, prev.Type, ev.Type, "a re-appended copy differs from its original")
				assert.JSONEq(t, string(prev.Data), string(ev.Data))
				continue
			}
			distinct[ev.ID] = ev
			order = append(order, ev)
		}
		mu.Lock()
		acceptedIDs := map[string]bool{}
		for _, ev := range accepted[cart] {
			acceptedIDs[ev.ID] = true
			_, ok := distinct[ev.ID]
			assert.True(t, ok, "accepted event %s of %s lost", ev.ID, cart)
		}
		mu.Unlock()
		for id, ev := range distinct {
			assert.True(t, acceptedIDs[id], "event %s (%s %s) of %s belongs to no accepted command", id, ev.Type, ev.Data, cart)
		}
		var folded *shop.Cart
		for _, ev := range order {
			folded, err = shop.EvolveCart(folded, ev)
			require.NoError(t, err)
		}
		var got shop.Cart
		resp := httpGetJSON(t, p.base+"/carts/"+cart+fmt.Sprintf("?minVersion=%d", len(order)), &got)
		require.Equal(t, http.StatusOK, resp, "cart %s", cart)
		require.NotNil(t, folded)
		assert.Equal(t, int64(len(order)), got.Version, "cart %s: version is not the number of distinct events", cart)
		if !assert.Equal(t, folded.Items, got.Items, "cart %s: snapshot is not the fold of its events", cart) {
			for _, ev := range events[cart] {
				t.Logf("%s %s %s %s", cart, ev.ID[:8], ev.Type, ev.Data)
			}
		}
	}
}

func containsID(have []codecs.Event, evs []codecs.Event) bool {
	for _, e := range evs {
		for _, h := range have {
			if h.ID == e.ID {
				return true
			}
		}
	}
	return false
}

// waitAccepted waits until at least n more events were accepted.
func waitAccepted(t *testing.T, mu *sync.Mutex, accepted map[string][]codecs.Event, n int) {
	t.Helper()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for _, evs := range accepted {
			c += len(evs)
		}
		return c
	}
	start := count()
	require.Eventually(t, func() bool { return count() >= start+n }, wait, 10*time.Millisecond, "commands stopped flowing")
}

// readCartEvents reads all of cart-events, by cart, in log order.
func readCartEvents(t *testing.T, brokers []string) map[string][]codecs.Event {
	t.Helper()
	total := int(endOffsets(t, brokers, shop.CartEvents.Name))
	recs := consumeAll(t, brokers, shop.CartEvents.Name, total)
	out := map[string][]codecs.Event{}
	for _, r := range recs {
		ev, err := codecs.DecodeEvent(r.Value, nil)
		require.NoError(t, err)
		out[string(r.Key)] = append(out[string(r.Key)], ev)
	}
	return out
}
