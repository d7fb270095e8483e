package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/cli"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
)

// TestMain lets a test run this test binary as the shop itself (see runShopProcess).
func TestMain(m *testing.M) {
	if os.Getenv("SHOP_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(pgtest.Main(m)) // stops the private PostgreSQL of the tests that start one
}

// wait is how long a condition may take to hold before a test fails. Generous:
// the suite runs with -race on two cores.
const wait = 30 * time.Second

// stopWait bounds a clean stop. The embedded broker now and then leaves one
// request unanswered (seen in goroutine dumps: a fetch, a join) until
// sarama's 30 s read timeout cuts the connection; a stop that meets one
// takes that long and still ends cleanly.
const stopWait = 2 * wait

// readyWait bounds how long a started shop takes to be ready: joining a
// running cluster rebalances every group of the shop (26 with the order
// flow), each waiting its turn on two shared cores, while the other
// packages' tests (a PostgreSQL server among them) run beside it in CI: a
// rebalance-storm run there took longer than a minute.
const readyWait = 4 * wait

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shopRun is one in-process run of the shop on its own embedded broker.
type shopRun struct {
	t      *testing.T
	app    *cli.Running
	cfg    Config
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	base   string
}

// testConfig is a config on fresh ports in dataDir.
func testConfig(dataDir string) Config {
	return Config{Config: cli.Config{
		DataDir:        dataDir,
		HTTPAddr:       "127.0.0.1:0",
		KafkaListen:    "127.0.0.1:0",
		Partitions:     4,
		Replication:    1,
		LogLevel:       slog.LevelInfo,
		SessionTimeout: 10 * time.Second,
		MaxWait:        time.Hour,
		DedupHorizon:   processors.DefaultDedupHorizon,
		StoreMemoryMiB: streamfold.DefaultStoreMemory >> 20,
		AdminToken:     testAdminToken,
	}, ReplyTimeout: 5 * time.Second, FraudSessionGap: shop.FraudSessionGap, OutboxRelay: "poll"}
}

// start starts the shop with cfg as the run command would, without parsing
// flags.
func start(ctx context.Context, cfg Config, log *slog.Logger) (*cli.Running, error) {
	return cli.Start(ctx, shopApp(&cfg), cfg.Config, log)
}

// parseRunFlags parses the run command's flags, the shop's own included,
// into the Config the shop's routes see.
func parseRunFlags(args []string, out io.Writer) (Config, error) {
	var cfg Config
	_, err := cli.ParseRunFlags(shopApp(&cfg), args, out)
	return cfg, err
}

// testAdminToken is the --admin-token of test shops; shopRun.do sends it.
const testAdminToken = "test-admin-token"

// startShop starts the shop with cfg and waits until /readyz says ready.
func startShop(t *testing.T, cfg Config) *shopRun {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := start(ctx, cfg, log)
	require.NoError(t, err)
	r := &shopRun{t: t, app: a, cfg: cfg, logs: logs, cancel: cancel, done: make(chan error, 1), base: "http://" + a.HTTPAddr()}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		defer func() {
			if t.Failed() {
				t.Logf("shop log:\n%s", logs.String())
			}
		}()
		r.stop()
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, readyWait, 20*time.Millisecond, "shop never became ready")
	return r
}

// stop cancels the run and waits for a clean exit; safe to call twice.
// requireRunning fails the test if the shop's Run has returned.
func (r *shopRun) requireRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		t.Fatalf("the shop exited: %v", err)
	default:
	}
}

func (r *shopRun) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		require.NoError(r.t, err, "shop did not stop cleanly")
	case <-time.After(stopWait):
		// What it waits for is the whole point of the failure.
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		r.t.Fatalf("shop did not stop within %v; goroutines:\n%s", stopWait, stacks.String())
	}
}

func (r *shopRun) brokers() []string { return r.app.Brokers() }

// do sends a request with an optional JSON body and decodes the JSON answer into out (if non-nil).
func (r *shopRun) do(method, path, body string, out any) *http.Response {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	require.NoError(r.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	r.authorize(req)
	return r.send(req, out)
}

// authorize adds the shop's admin token (or else its write token) to req as
// an operator's client would; tests of the access rules build their
// requests without it.
func (r *shopRun) authorize(req *http.Request) {
	tok := r.cfg.AdminToken
	if !isOperatorPath(req.URL.Path) && r.cfg.WriteToken != "" {
		tok = r.cfg.WriteToken
	}
	if tok != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// isOperatorPath reports whether path is one of the operator endpoints
// (serve.Server.OperatorEndpoints), which take the admin token.
func isOperatorPath(path string) bool {
	for _, p := range []string{"/dlq", "/parked"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// expectProblem sends a request that must be answered with status as a
// problem+json document with a detail, and returns the problem.
func (r *shopRun) expectProblem(t *testing.T, method, path, body string, status int) problem {
	t.Helper()
	var p problem
	resp := r.do(method, path, body, &p)
	assert.Equal(t, status, resp.StatusCode)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	assert.NotEmpty(t, p.Detail)
	return p
}

// customer GETs a customer; ok is false on 404.
func (r *shopRun) customer(id string) (shop.Customer, bool) {
	var c shop.Customer
	resp := r.do(http.MethodGet, "/customers/"+id, "", &c)
	if resp.StatusCode == http.StatusNotFound {
		return c, false
	}
	require.Equal(r.t, http.StatusOK, resp.StatusCode)
	return c, true
}

// eventually waits for the customer to reach a version (0: to be absent).
func (r *shopRun) awaitVersion(id string, version int64) shop.Customer {
	r.t.Helper()
	var last shop.Customer
	require.Eventually(r.t, func() bool {
		c, ok := r.customer(id)
		last = c
		if version == 0 {
			return !ok
		}
		return ok && c.Version == version
	}, wait, 20*time.Millisecond, "customer %s never reached version %d (last %+v)", id, version, last)
	return last
}

// kafkaClient is a plain Kafka client, as any producer outside the shop would
// use; franz-go's default partitioner is the Java client's murmur2.
func kafkaClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// eventRecord is a structured-mode CloudEvent record for customer-events.
func eventRecord(t *testing.T, id, typ string, data any) (*kgo.Record, codecs.Event) {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", typ, id, data)
	require.NoError(t, err)
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte(id), Value: b}, ev
}

func shopEventBytes(t *testing.T, ev codecs.Event) ([]byte, error) {
	t.Helper()
	return codecs.CloudEvents{}.Encode(ev)
}

// endOffsets sums the end offsets of a topic's partitions: how many records it holds.
func endOffsets(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafkaconf.Version()
	c, err := sarama.NewClient(brokers, cfg)
	require.NoError(t, err)
	defer c.Close()
	parts, err := c.Partitions(topic)
	require.NoError(t, err)
	var n int64
	for _, p := range parts {
		off, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		n += off
	}
	return n
}

// consumeAll reads a topic from the start until it has n records, and checks
// the topic holds exactly n.
func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	recs := consumeUpTo(t, brokers, topic, n)
	require.Equal(t, int64(n), endOffsets(t, brokers, topic), "%s holds more records than expected", topic)
	return recs
}

// consumeUpTo reads a topic's committed records from the start until it has
// at least n, as the shop's groups read them.
func consumeUpTo(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeUntil(t, brokers, topic, func(recs []*kgo.Record) bool { return len(recs) >= n })
}

// consumeUntil reads a topic's committed records from the start until done
// says it has them all.
func consumeUntil(t *testing.T, brokers []string, topic string, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	recs, ok := pollUntil(t, brokers, topic, done)
	require.True(t, ok, "%s: %d records, not all there", topic, len(recs))
	return recs
}

// pollUntil reads a topic's committed records from the start until done
// says it has them all, or for at most wait; ok says which.
func pollUntil(t *testing.T, brokers []string, topic string, done func([]*kgo.Record) bool) (recs []*kgo.Record, ok bool) {
	t.Helper()
	cl := kafkaClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for deadline := time.Now().Add(wait); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		recs = append(recs, cl.PollFetches(ctx).Records()...)
		cancel()
		if done(recs) {
			return recs, true
		}
		if time.Now().After(deadline) {
			return recs, false
		}
	}
}

// loggedAttr reads a line the shop logged off a terminal (one JSON object): if
// its message is msg, the value of its attribute attr.
func loggedAttr(line, msg, attr string) (string, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
		return "", false
	}
	v, ok := m[attr].(string)
	return v, ok
}

// withID says whether a record of recs holds the CloudEvent id.
func withID(recs []*kgo.Record, id string) bool {
	return slices.ContainsFunc(recs, func(r *kgo.Record) bool { return eventID(r) == id })
}

// eventID is the id of the CloudEvent a record holds ("" for none).
func eventID(r *kgo.Record) string {
	ev, err := codecs.DecodeEvent(r.Value, nil)
	if err != nil {
		return ""
	}
	return ev.ID
}

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func stringsReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

// doReq sends a prepared request and decodes the JSON answer into out.
func (r *shopRun) doReq(req *http.Request, out any) int {
	r.t.Helper()
	return r.send(req, out).StatusCode
}

// send sends req, decodes a JSON answer into out (if non-nil) and returns the
// response with its body consumed.
func (r *shopRun) send(req *http.Request, out any) *http.Response {
	r.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	if out != nil && len(b) > 0 {
		require.NoError(r.t, json.Unmarshal(b, out), "body: %s", b)
	}
	return resp
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// httpGetJSON GETs url and decodes a JSON answer; it returns the status.
func httpGetJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(b, out), "body: %s", b)
	}
	return resp.StatusCode
}

func jsonNumber(s string) json.Number { return json.Number(s) }
