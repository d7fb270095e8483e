package serve

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/promtext"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// metricsScrape GETs /metrics of h and parses it with Prometheus' parser.
func metricsScrape(t testing.TB, h http.Handler) promtext.Families {
	t.Helper()
	rec := do(h, http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	fams, err := promtext.Parse(strings.NewReader(rec.Body.String()))
	require.NoError(t, err, rec.Body.String())
	return fams
}

func metricsSample(t testing.TB, fams promtext.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := fams.Sample(name, labels...)
	require.True(t, ok, "no %s%q among %v", name, labels, fams.Series(name))
	return v
}

func TestMetrics_GivenTheRuntimesCountersLagAndRestores_ThenEachIsASeriesByItsLabels(t *testing.T) {
	rt := &fakeRuntime{
		stats: map[string]processors.Snapshot{"g": {
			Processed: 5, Counters: map[string]int64{"parked": 1, "stores-broken": 1},
			Partitions: []processors.PartitionSnapshot{
				{Topic: "in", Partition: 0, Processed: 3, Applied: 2, Duplicates: 1, Counters: map[string]int64{"retried-in-place": 2, "parked": 1}},
				{Topic: "g-retry-1", Partition: 1, Processed: 2, DeadLetters: map[string]int64{"decode": 1}},
			},
		}},
		parked: map[string][]streamfold.ParkedRecord{"g": {
			{Key: "k1", Topic: "in", Partition: 0}, {Key: "k2", Topic: "in", Partition: 0}, {Key: "k3", Topic: "in", Partition: 1},
		}},
		progress: map[string][]tables.Progress{"g-table": {
			{Topic: "g-table", Partition: 0, StartOffset: 0, Offset: 9, HighWatermark: 40, Records: 10},
			{Topic: "g-table", Partition: 1, Recovered: true, Offset: 4, HighWatermark: 5, Records: 5},
		}},
		lag: func(context.Context) ([]streamfold.PartitionLag, error) {
			return []streamfold.PartitionLag{
				{Group: "g", Topic: "in", Partition: 0, Committed: 3, End: 10, Lag: 7},
				{Group: "g", Topic: "in", Partition: 1, Committed: -1, End: 2, Lag: 2},
			}, nil
		},
	}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	fams := metricsScrape(t, srv)

	in0 := []string{"group", "g", "topic", "in", "partition", "0"}
	assert.Equal(t, 3.0, metricsSample(t, fams, "streamfold_records_processed_total", in0...))
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_records_applied_total", in0...))
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_records_duplicate_total", in0...))
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_retries_total", append(in0, "kind", "in-place")...))
	assert.Equal(t, 0.0, metricsSample(t, fams, "streamfold_retries_total", append(in0, "kind", "later")...))
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_records_parked_total", in0...))
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_records_parked", in0...), "parked now, as GET /parked lists them")
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_records_parked", "group", "g", "topic", "in", "partition", "1"))
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_dead_letters_total", "group", "g", "topic", "g-retry-1", "partition", "1", "class", "decode"))
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_failures_total", "group", "g", "reason", "stores-broken"))

	assert.Equal(t, 7.0, metricsSample(t, fams, "streamfold_consumer_lag_records", in0...))
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_consumer_lag_records", "group", "g", "topic", "in", "partition", "1"))
	assert.Equal(t, 3.0, metricsSample(t, fams, "streamfold_consumer_committed_offset", in0...))
	_, committed := fams.Sample("streamfold_consumer_committed_offset", "partition", "1")
	assert.False(t, committed, "no commit, no committed offset (not -1 as a value)")
	assert.Equal(t, 10.0, metricsSample(t, fams, "streamfold_consumer_end_offset", in0...))

	assert.Equal(t, 30.0, metricsSample(t, fams, "streamfold_restore_remaining_records", "table", "g-table", "partition", "0"), "offsets 10..39")
	assert.Equal(t, 0.0, metricsSample(t, fams, "streamfold_restore_remaining_records", "table", "g-table", "partition", "1"))
	assert.Equal(t, 0.0, metricsSample(t, fams, "streamfold_restore_recovered", "table", "g-table", "partition", "0"))
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_restore_recovered", "table", "g-table", "partition", "1"))
	assert.Equal(t, 40.0, metricsSample(t, fams, "streamfold_restore_end_offset", "table", "g-table", "partition", "0"))
	assert.Equal(t, 9.0, metricsSample(t, fams, "streamfold_restore_offset", "table", "g-table", "partition", "0"))

	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		assert.Contains(t, fams, name, "the Go runtime and process collectors")
	}
}

// metricsOwnsAll is a runtime that owns every key: requests are served here.
func metricsOwnsAll() *fakeRuntime {
	return &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Assigned: true, Local: true, Copy: true, Restored: true}
	}}
}

func TestMetrics_GivenRequests_ThenHistogramsByRouteTemplateAndUnknownPathsFoldedIntoOne(t *testing.T) {
	srv := shopLike(t, metricsOwnsAll())
	for _, path := range []string{"/customers/c1", "/customers/c2", "/no/such/thing", "/nor/this"} {
		do(srv, http.MethodGet, path, "")
	}
	fams := metricsScrape(t, srv)

	const duration = "streamfold_http_request_duration_seconds"
	assert.Equal(t, "HISTOGRAM", fams[duration].GetType().String())
	assert.Equal(t, 2.0, metricsSample(t, fams, duration, "method", "GET", "route", "/customers/{id}", "status", "200"))
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_http_requests_total", "method", "GET", "route", "unmatched", "status", "404"))
	for _, s := range fams.Series(duration) {
		assert.NotContains(t, s["route"], "/no/such", "a raw path is no label value")
	}
}

func TestMetrics_GivenTwoServersInOneProcess_ThenEachCountsItsOwn(t *testing.T) {
	a, b := shopLike(t, metricsOwnsAll()), shopLike(t, metricsOwnsAll())
	do(a, http.MethodGet, "/customers/c1", "")
	assert.Equal(t, 1.0, metricsSample(t, metricsScrape(t, a), "streamfold_http_requests_total", "route", "/customers/{id}"))
	_, ok := metricsScrape(t, b).Sample("streamfold_http_requests_total", "route", "/customers/{id}")
	assert.False(t, ok)
}

func TestMetrics_GivenTheBrokersDoNotAnswerTheLag_ThenTheScrapeServesTheRestAndCountsIt(t *testing.T) {
	rt := &fakeRuntime{
		stats: map[string]processors.Snapshot{"g": {Partitions: []processors.PartitionSnapshot{{Topic: "in", Processed: 1}}}},
		lag: func(ctx context.Context) ([]streamfold.PartitionLag, error) {
			<-ctx.Done() // a broker that never answers: the scrape's timeout ends it
			return nil, errors.New("lag: " + ctx.Err().Error())
		},
	}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	srv.lag.timeout = time.Millisecond

	fams := metricsScrape(t, srv)
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_lag_scrape_errors_total"))
	assert.NotContains(t, fams, "streamfold_consumer_lag_records")
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_records_processed_total", "group", "g", "topic", "in", "partition", "0"))
	assert.Equal(t, 2.0, metricsSample(t, metricsScrape(t, srv), "streamfold_lag_scrape_errors_total"))
}

func TestReadiness_GivenTheRuntime_ThenReadyzFollowsItsRestore(t *testing.T) {
	rt := &fakeRuntime{stats: map[string]processors.Snapshot{"g": {Processed: 1}}}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, do(srv, http.MethodGet, "/readyz", "").Code)
	rt.recovered.Store(true)
	rec := do(srv, http.MethodGet, "/readyz", "")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"processed":1`)
}

// metricsNumbers is the input of the group of the end-to-end test.
var metricsNumbers = tables.NewStream[codecs.Event]("metrics-numbers", codecs.CloudEvents{})

type metricsCount struct{ N int }

func TestMetrics_GivenARuntimeThatProcessedRecords_ThenItsCountersAndLagArePerPartitionOnMetrics(t *testing.T) {
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	g := processors.NewGroup("metrics-counter")
	processors.Project(g, metricsNumbers, func(s *metricsCount, _ codecs.Event) (*metricsCount, error) {
		if s == nil {
			s = &metricsCount{}
		}
		return &metricsCount{N: s.N + 1}, nil
	}, processors.Into(tables.NewTable[metricsCount]("metrics-counter-table", codecs.JSON[metricsCount]{})))
	const partitions = 2
	topo := streamfold.NewTopology(streamfold.WithPartitions(partitions)).AddGroup(g).WrittenBy(metricsNumbers, "test")
	srv, err := Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1}, "127.0.0.1:0", Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })

	// Given records on both partitions, one of them poison.
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	var recs []*kgo.Record
	want := map[int32]float64{} // applied per partition
	for i, k := range keys {
		ev, err := codecs.NewEvent("urn:test", "Number", k, map[string]int{"n": i})
		require.NoError(t, err)
		b, err := codecs.CloudEvents{}.Encode(ev)
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Topic: metricsNumbers.Name, Key: []byte(k), Value: b})
		want[tables.PartitionFor(k, partitions)]++
	}
	poison := "a"
	recs = append(recs, &kgo.Record{Topic: metricsNumbers.Name, Key: []byte(poison), Value: []byte("not json")})
	require.Len(t, want, partitions, "the keys cover both partitions")
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())

	// When processed and committed, then /metrics (over HTTP, as Prometheus
	// scrapes) has them by partition, and the group's lag there is none.
	base := "http://" + srv.Addr().String()
	label := func(p int32) []string {
		return []string{"group", "metrics-counter", "topic", metricsNumbers.Name, "partition", strconv.Itoa(int(p))}
	}
	var fams promtext.Families
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false
		}
		fams, err = promtext.Parse(strings.NewReader(string(b)))
		require.NoError(t, err, "%s", b)
		var lag float64
		for _, p := range []int32{0, 1} {
			v, ok := fams.Sample("streamfold_consumer_lag_records", label(p)...)
			if !ok {
				return false
			}
			lag += v
		}
		processed, _ := fams.Sample("streamfold_records_processed_total", "group", "metrics-counter", "topic", metricsNumbers.Name)
		return lag == 0 && processed == float64(len(recs))
	}, 30*time.Second, 50*time.Millisecond, "the group processes and commits every record")

	pp := tables.PartitionFor(poison, partitions)
	for p, n := range want {
		processed := n
		if p == pp {
			processed++
		}
		assert.Equal(t, processed, metricsSample(t, fams, "streamfold_records_processed_total", label(p)...), "partition %d", p)
		assert.Equal(t, n, metricsSample(t, fams, "streamfold_records_applied_total", label(p)...), "partition %d", p)
	}
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_dead_letters_total", append(label(pp), "class", processors.ClassDecode)...))
	_, ok := fams.Sample("streamfold_dead_letters_total", label(1-pp)...)
	assert.False(t, ok, "no dead letter on the other partition")
	assert.Equal(t, 1.0, metricsSample(t, fams, "streamfold_restore_recovered", "table", "metrics-counter-table", "partition", "0"))
}

func TestMetrics_GivenKeyRoutesForwardedOrRefusedByTheRouting_ThenEachIsCountedOnceByItsRoute(t *testing.T) {
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	defer owner.Close()
	var mode atomic.Value // "here", "owner" or "no-queries"
	rt := &fakeRuntime{self: streamfold.Member{Instance: "a", Query: "a:1"}, place: func(string, string) streamfold.Placement {
		switch mode.Load() {
		case "owner":
			return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "b", Query: strings.TrimPrefix(owner.URL, "http://")}}
		case "no-queries":
			return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "p"}}
		}
		return streamfold.Placement{Assigned: true, Local: true, Copy: true, Restored: true}
	}}
	srv := shopLike(t, rt)

	mode.Store("here")
	require.Equal(t, http.StatusOK, do(srv, http.MethodGet, "/customers/c1", "").Code)
	mode.Store("owner")
	require.Equal(t, http.StatusTeapot, do(srv, http.MethodGet, "/customers/c2", "").Code)
	require.Equal(t, http.StatusTeapot, do(srv, http.MethodGet, "/customers/c3", "").Code)
	mode.Store("no-queries")
	require.Equal(t, http.StatusServiceUnavailable, do(srv, http.MethodGet, "/customers/c4", "").Code)
	require.Equal(t, http.StatusBadRequest, do(srv, http.MethodGet, "/customers/c5", "", HeaderTimeout, "soon").Code)

	fams := metricsScrape(t, srv)
	const requests = "streamfold_http_requests_total"
	assert.Equal(t, 1.0, metricsSample(t, fams, requests, "method", "GET", "route", "/customers/{id}", "status", "200"), "served here: counted by the API, once")
	assert.Equal(t, 2.0, metricsSample(t, fams, requests, "method", "GET", "route", "/customers/{id}", "status", "418"), "forwarded: the owner's answer")
	assert.Equal(t, 1.0, metricsSample(t, fams, requests, "method", "GET", "route", "/customers/{id}", "status", "503"), "refused by the routing")
	assert.Equal(t, 1.0, metricsSample(t, fams, requests, "method", "GET", "route", "/customers/{id}", "status", "400"), "refused before routing")
	assert.Equal(t, 2.0, metricsSample(t, fams, "streamfold_http_request_duration_seconds", "method", "GET", "route", "/customers/{id}", "status", "418"))
}
