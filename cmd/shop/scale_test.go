package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// startCluster starts a 3-broker embedded cluster in the test process that
// lets members ask for short sessions.
func startCluster(t *testing.T) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Brokers: 3, Partitions: 4, MinSessionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// memberSession is the members' session timeout: a killed member's
// partitions move after it. 5 s was chosen while the embedded broker still
// dropped members that waited in a join longer than their session (it no
// longer does); shorter sessions have not been tried since.
const memberSession = 5 * time.Second

// memberConfig is an instance joining the cluster: its own data directory,
// short sessions so that a dead member's partitions move within seconds.
func memberConfig(t *testing.T, brokers []string) Config {
	cfg := testConfig(t.TempDir())
	cfg.Brokers = brokers
	cfg.Replication = 3
	cfg.SessionTimeout = memberSession
	// A command in flight when its instance stops ends (504, retried by
	// the client) within the HTTP server's shutdown grace.
	cfg.ReplyTimeout = 3 * time.Second
	return cfg
}

// awaitStable waits until rt's view of every routed group is stable with n
// members, each advertising a query address.
func awaitStable(t *testing.T, rt *streamfold.Runtime, n int) {
	t.Helper()
	var last []streamfold.GroupState
	var lastErr error
	ok := assert.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lastErr = rt.RefreshMembership(ctx)
		last = rt.Membership()
		if len(last) == 0 {
			return false
		}
		for _, g := range last {
			if g.State != "Stable" || len(g.Members) != n {
				return false
			}
		}
		return true
	}, wait, 50*time.Millisecond)
	if !ok {
		t.Fatalf("groups never settled with %d members: %+v (%v)", n, last, lastErr)
	}
}

// startMemberProcess runs the shop binary (this test binary as main) as a
// member of the cluster, so that it can be killed with SIGKILL.
func startMemberProcess(t *testing.T, brokers []string) *shopProcess {
	t.Helper()
	return runShopProcess(t, "run", "--brokers", strings.Join(brokers, ","), "--data-dir", t.TempDir(),
		"--http", "127.0.0.1:0", "--session-timeout", memberSession.String(), "--reply-timeout", "3s")
}

// ownerWatch samples, for each partition of a table, how many of the watched
// runtimes process it (Placement.Local).
type ownerWatch struct {
	table string
	keys  []string // one key per partition

	mu      sync.Mutex
	rts     []*streamfold.Runtime
	samples int
	doubles []string
	done    chan struct{}
	stopped chan struct{}
}

func watchOwners(t *testing.T, table string, rts ...*streamfold.Runtime) *ownerWatch {
	n := rts[0].PartitionsOf(table)
	w := &ownerWatch{table: table, keys: make([]string, n), rts: rts, done: make(chan struct{}), stopped: make(chan struct{})}
	for found, i := 0, 0; found < n; i++ {
		k := fmt.Sprintf("k%d", i)
		if p := tables.PartitionFor(k, n); w.keys[p] == "" {
			w.keys[p] = k
			found++
		}
	}
	go func() {
		defer close(w.stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			w.sample(t)
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *ownerWatch) add(rt *streamfold.Runtime) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rts = append(w.rts, rt)
}

func (w *ownerWatch) sample(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	for p, k := range w.keys {
		var active []string
		for _, rt := range w.rts {
			pl, err := rt.Place(w.table, k)
			if err == nil && pl.Local {
				active = append(active, rt.Self().Query)
			}
		}
		if len(active) > 1 {
			w.doubles = append(w.doubles, fmt.Sprintf("partition %d on %v", p, active))
		}
	}
}

func (w *ownerWatch) stop() (samples int, doubles []string) {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, w.doubles
}

type answer struct {
	status   int
	servedBy string
	body     []byte
	header   http.Header
}

func get(base, path string, hdr ...string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, servedBy: resp.Header.Get(serve.HeaderServedBy), body: b, header: resp.Header}, err
}

// allReadable waits until every customer is readable with its name through
// every base URL; it returns how many answers another instance served.
func allReadable(t *testing.T, bases []string, ids []string) (forwarded int) {
	t.Helper()
	for _, base := range bases {
		self := strings.TrimPrefix(base, "http://")
		for _, id := range ids {
			var last answer
			ok := assert.Eventually(t, func() bool {
				a, err := get(base, "/customers/"+id)
				last = a
				if err != nil || a.status != http.StatusOK {
					return false
				}
				var c shop.Customer
				return json.Unmarshal(a.body, &c) == nil && c.Name == "name-"+id
			}, wait, 20*time.Millisecond)
			if !ok {
				t.Fatalf("customer %s never readable through %s (last %d %s served by %s)", id, base, last.status, last.body, last.servedBy)
			}
			if last.servedBy != self {
				forwarded++
			}
		}
	}
	return forwarded
}

func register(base, id string) (int, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(base+"/customers", "application/json",
		strings.NewReader(fmt.Sprintf(`{"id":%q,"name":"name-%s","email":"%s@example.com"}`, id, id, id)))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// registerAll registers n customers named prefix-00, prefix-01, … through
// base and returns their ids; each must be accepted.
func registerAll(t *testing.T, base, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		status, err := register(base, id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, status)
		ids = append(ids, id)
	}
	return ids
}

func TestScale_GivenThreeInstancesOnThreeBrokers_ThenEveryKeyIsServedEverywhereAndSurvivesAKillAndAStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	cluster := startCluster(t)
	a := startShop(t, memberConfig(t, cluster.Addrs()))
	b := startShop(t, memberConfig(t, cluster.Addrs()))
	c := startMemberProcess(t, cluster.Addrs())
	awaitStable(t, a.app.Runtime(), 3)

	// Given customers registered through one instance.
	ids := registerAll(t, a.base, "cust", 24)
	// Then every key is readable through every instance, most of them
	// answered by the partition's owner behind a forward.
	forwarded := allReadable(t, []string{a.base, b.base, c.base}, ids)
	t.Logf("%d of %d answers were forwarded to the owner", forwarded, 3*len(ids))
	assert.Greater(t, forwarded, 0, "no answer came from another instance")

	// A forwarded answer names the owner that served it and the instance
	// that routed it; a stale read is not needed while an owner is known.
	servedBy := map[string]bool{}
	for _, id := range ids {
		ans, err := get(b.base, "/customers/"+id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, ans.status)
		servedBy[ans.servedBy] = true
		if ans.servedBy != b.app.Advertised() {
			assert.Equal(t, b.app.Advertised(), ans.header.Get(serve.HeaderRoutedVia))
		}
		assert.Empty(t, ans.header.Get(serve.HeaderStale))
	}
	assert.Len(t, servedBy, 3, "the partitions are not spread over the three instances: %v", servedBy)

	// A write that checks the current state is decided by the owner too:
	// registering a taken id is a conflict through any instance.
	for _, base := range []string{a.base, b.base, c.base} {
		for _, id := range ids[:4] {
			status, err := register(base, id)
			require.NoError(t, err)
			assert.Equal(t, http.StatusConflict, status, "registering %s again through %s", id, base)
		}
	}

	// And a cart command sent through any instance gets its reply.
	addProducts(t, a, "apple")
	for i, base := range []string{a.base, b.base, c.base} {
		status, rep := postCommand(t, base, fmt.Sprintf("cart-%d", i), fmt.Sprintf("cmd-%d", i), addItem("apple", 1))
		require.Equal(t, http.StatusOK, status, "through %s: %s", base, rep.Detail)
	}

	// Writes keep flowing through a while c is killed and b stopped.
	var mu sync.Mutex
	accepted := append([]string(nil), ids...)
	stop := make(chan struct{})
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("live-%03d", n)
			if status, err := register(a.base, id); err == nil && status == http.StatusAccepted {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond) // pacing the writer, not synchronisation
		}
	}()
	waitCount := func(n int) {
		mu.Lock()
		start := len(accepted)
		mu.Unlock()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(accepted) >= start+n
		}, wait, 10*time.Millisecond, "writes stopped flowing")
	}

	// When one instance is killed (no leave, no commit)...
	waitCount(5)
	c.kill()
	killed := time.Now()
	waitCount(5)
	// ...the survivors serve every key again within seconds.
	mu.Lock()
	snapshot := append([]string(nil), accepted...)
	mu.Unlock()
	allReadable(t, []string{a.base, b.base}, snapshot)
	t.Logf("after the kill every key was readable through both survivors in %s", time.Since(killed).Round(10*time.Millisecond))

	// When another stops cleanly, the last one serves everything.
	b.stop()
	stopped := time.Now()
	waitCount(5)
	close(stop)
	<-writer
	allReadable(t, []string{a.base}, accepted)
	t.Logf("after the stop every key (%d, of which %d written during the failovers) was readable in %s",
		len(accepted), len(accepted)-len(ids), time.Since(stopped).Round(10*time.Millisecond))
	assert.Equal(t, a.app.Advertised(), mustGet(t, a.base, "/customers/"+ids[0]).servedBy)
}

func mustGet(t *testing.T, base, path string) answer {
	t.Helper()
	a, err := get(base, path)
	require.NoError(t, err)
	return a
}

func postCommand(t *testing.T, base, cart, cmdID, body string) (int, cartReply) {
	t.Helper()
	status, rep, err := sendCommand(base, cart, cmdID, body)
	require.NoError(t, err)
	return status, rep
}

func sendCommand(base, cart, cmdID, body string) (int, cartReply, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/carts/"+cart+"/commands", strings.NewReader(body))
	if err != nil {
		return 0, cartReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", cmdID)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, cartReply{}, err
	}
	defer resp.Body.Close()
	var rep cartReply
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &rep)
	return resp.StatusCode, rep, nil
}

func TestScale_GivenRoutingFailures_ThenProblemsNameTheOwnerAndTheReason(t *testing.T) {
	cluster := startCluster(t)
	a := startShop(t, memberConfig(t, cluster.Addrs()))

	t.Run("a forwarded request for a partition not owned here is misdirected, never forwarded again", func(t *testing.T) {
		// A sender whose membership is out of date forwards a key to b,
		// which does not own its partition.
		b := startShop(t, memberConfig(t, cluster.Addrs()))
		awaitStable(t, a.app.Runtime(), 2)
		var notB string
		for i := range 100 {
			id := fmt.Sprintf("k%d", i)
			pl, err := b.app.Runtime().Place(shop.CustomersTable.Name, id)
			require.NoError(t, err)
			if !pl.Assigned {
				notB = id
				break
			}
		}
		require.NotEmpty(t, notB, "b owns every partition")
		ans, err := get(b.base, "/customers/"+notB, serve.HeaderHops, "1")
		require.NoError(t, err)
		assert.Equal(t, http.StatusMisdirectedRequest, ans.status, string(ans.body))
		assert.Equal(t, "application/problem+json", ans.header.Get("Content-Type"))
		b.stop()
		awaitStable(t, a.app.Runtime(), 1)
	})

	t.Run("a stale read of a local copy carries the lag", func(t *testing.T) {
		status, err := register(a.base, "ada")
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, status)
		a.awaitVersion("ada", 1)
		ans := mustGet(t, a.base, "/customers/ada?stale=ok")
		assert.Equal(t, http.StatusOK, ans.status)
		assert.Empty(t, ans.header.Get(serve.HeaderStale), "the owner answers fresh")
		// Where no owner is known, a stale read is served from the local copy.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		srv, err := serve.New(noOwner{a.app.Runtime()}, serve.Options{Listener: ln})
		require.NoError(t, err)
		srv.Resource("customers", views.New(a.app.Runtime(), shop.CustomersTable), nil)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/customers/ada?stale=ok", nil))
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "true", rec.Header().Get(serve.HeaderStale))
		// Caught up: nothing to apply (goka does not record changelog offset
		// 0 for a processor's own writes, so a store whose only write is the
		// partition's first record reports one).
		lag, err := strconv.Atoi(rec.Header().Get(serve.HeaderLagRecords))
		require.NoError(t, err)
		assert.LessOrEqual(t, lag, 1)
	})

	t.Run("a bad timeout header is a 400", func(t *testing.T) {
		ans, err := get(a.base, "/customers/ada", serve.HeaderTimeout, "soon")
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadRequest, ans.status)
	})
}

// TestScale_GivenARebalanceStorm_ThenEveryCartIsTheFoldOfItsAcceptedCommands
// has instances join and leave (cleanly, and once by SIGKILL) while cart
// commands flow through whichever instances are up.
// stormFor is how long instances keep joining and leaving in the storm.
const stormFor = time.Minute

func TestScale_GivenARebalanceStorm_ThenEveryCartIsTheFoldOfItsAcceptedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and lasts a minute")
	}
	cluster := startCluster(t)
	a := startShop(t, memberConfig(t, cluster.Addrs()))
	products := []string{"p0", "p1", "p2", "p3"}
	addProducts(t, a, products...)
	carts := []string{"k0", "k1", "k2", "k3", "k4", "k5"}

	// Every attempt goes to a random instance among those serving; one about
	// to leave is taken out of the list first (a clean stop then waits for
	// no client), and a killed one cuts its clients off.
	var mu sync.Mutex
	bases := []string{a.base}
	inFlight := map[string]int{}
	pick := func(rng *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		base := bases[rng.IntN(len(bases))]
		inFlight[base]++
		return base
	}
	release := func(base string) {
		mu.Lock()
		defer mu.Unlock()
		inFlight[base]--
	}
	serve := func(base string) {
		mu.Lock()
		defer mu.Unlock()
		bases = append(bases, base)
	}
	withdraw := func(base string) {
		mu.Lock()
		defer mu.Unlock()
		bases = slices.DeleteFunc(bases, func(b string) bool { return b == base })
	}
	drained := func(base string) {
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return inFlight[base] == 0
		}, wait, 10*time.Millisecond, "commands to %s never finished", base)
	}
	flow := startCartFlow(carts, products, 11, pick, release)

	// Throughout, no partition of carts-table is processed by two in-process
	// instances at once.
	owners := watchOwners(t, shop.CartsTable.Name, a.app.Runtime())

	// The storm: instances join, alternately in this process and as a
	// process of their own; once three extra instances run, the oldest
	// leaves: stopped cleanly if in-process, killed (SIGKILL) otherwise.
	// Every step first waits for commands to be accepted.
	type instance struct {
		name  string
		leave func()
	}
	var extras []instance
	began := time.Now()
	step := func(what string) {
		flow.awaitAccepted(t, 10)
		t.Logf("%6s  %s", time.Since(began).Round(100*time.Millisecond), what)
	}
	leave := func() {
		e := extras[0]
		extras = extras[1:]
		e.leave()
		step(e.name + " left")
	}
	for i := 0; time.Since(began) < stormFor; i++ {
		if i%2 == 0 {
			s := startShop(t, memberConfig(t, cluster.Addrs()))
			owners.add(s.app.Runtime())
			serve(s.base)
			extras = append(extras, instance{name: fmt.Sprintf("in-process %d (stopped)", i), leave: func() {
				withdraw(s.base)
				drained(s.base)
				s.stop()
			}})
		} else {
			p := startMemberProcess(t, cluster.Addrs())
			serve(p.base)
			extras = append(extras, instance{name: fmt.Sprintf("process %d (killed)", i), leave: func() {
				withdraw(p.base)
				p.kill()
			}})
		}
		step(extras[len(extras)-1].name + " joined")
		if len(extras) == 3 {
			leave()
		}
	}
	for len(extras) > 0 {
		leave()
	}
	flow.finish()
	samples, doubles := owners.stop()
	t.Logf("ownership: %d samples, %d with a partition active on two instances", samples, len(doubles))
	assert.Empty(t, doubles, "a partition was processed by two instances at once")

	records, copies := flow.checkCarts(t, cluster.Addrs(), a.base)
	t.Logf("storm: %d accepted events, %d records in cart-events, %d re-appended copies", flow.count(), records, copies)
}

// noOwner is a runtime that knows of no owner of any partition, as during a
// rebalance, and keeps its local copies.
type noOwner struct{ *streamfold.Runtime }

func (n noOwner) Place(table, key string) (streamfold.Placement, error) {
	pl, err := n.Runtime.Place(table, key)
	pl.Replica, pl.Assigned, pl.Local, pl.OwnerKnown, pl.OwnerIsSelf = false, false, false, false, false
	pl.Owner = streamfold.Member{}
	return pl, err
}
