package queryapi

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram: a LevelDB-backed Get answers in well under a millisecond, a
// command that waits for its reply takes tens to hundreds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// routeUnmatched is the route label of requests no route matched (404, 405):
// the raw path would let clients mint unbounded label values.
const routeUnmatched = "unmatched"

type seriesKey struct {
	method, route string
	status        int
}

type series struct {
	count   uint64
	sum     float64
	buckets []uint64 // per latencyBuckets, not cumulative
}

// requestMetrics counts requests by method, route template and status.
// Safe for concurrent use.
type requestMetrics struct {
	inFlight atomic.Int64
	mu       sync.Mutex
	series   map[seriesKey]*series
}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{series: make(map[seriesKey]*series)}
}

func (m *requestMetrics) start() { m.inFlight.Add(1) }

func (m *requestMetrics) done(method, route string, status int, d time.Duration) {
	k := seriesKey{method: methodLabel(method), route: route, status: status}
	secs := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, secs) // first bound >= secs

	m.inFlight.Add(-1)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[k]
	if s == nil {
		s = &series{buckets: make([]uint64, len(latencyBuckets))}
		m.series[k] = s
	}
	s.count++
	s.sum += secs
	if i < len(latencyBuckets) {
		s.buckets[i]++
	}
}

// writeTo writes the metrics in Prometheus text exposition format 0.0.4,
// series sorted so the output is stable.
func (m *requestMetrics) writeTo(w io.Writer) error {
	type row struct {
		k seriesKey
		s series
	}
	m.mu.Lock()
	rows := make([]row, 0, len(m.series))
	for k, s := range m.series {
		rows = append(rows, row{k: k, s: series{count: s.count, sum: s.sum, buckets: slices.Clone(s.buckets)}})
	}
	m.mu.Unlock()
	inFlight := m.inFlight.Load()
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.k.route, b.k.route), cmp.Compare(a.k.method, b.k.method), cmp.Compare(a.k.status, b.k.status))
	})

	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# HELP queryapi_requests_total HTTP requests answered, by method, route template and status.")
	fmt.Fprintln(bw, "# TYPE queryapi_requests_total counter")
	for _, r := range rows {
		fmt.Fprintf(bw, "queryapi_requests_total{%s} %d\n", labels(r.k), r.s.count)
	}
	fmt.Fprintln(bw, "# HELP queryapi_request_duration_seconds Time to answer HTTP requests, by method, route template and status.")
	fmt.Fprintln(bw, "# TYPE queryapi_request_duration_seconds histogram")
	for _, r := range rows {
		l := labels(r.k)
		var cum uint64
		for i, le := range latencyBuckets {
			cum += r.s.buckets[i]
			fmt.Fprintf(bw, "queryapi_request_duration_seconds_bucket{%s,le=%q} %d\n", l, strconv.FormatFloat(le, 'g', -1, 64), cum)
		}
		fmt.Fprintf(bw, "queryapi_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", l, r.s.count)
		fmt.Fprintf(bw, "queryapi_request_duration_seconds_sum{%s} %s\n", l, strconv.FormatFloat(r.s.sum, 'g', -1, 64))
		fmt.Fprintf(bw, "queryapi_request_duration_seconds_count{%s} %d\n", l, r.s.count)
	}
	fmt.Fprintln(bw, "# HELP queryapi_requests_in_flight HTTP requests being answered.")
	fmt.Fprintln(bw, "# TYPE queryapi_requests_in_flight gauge")
	fmt.Fprintf(bw, "queryapi_requests_in_flight %d\n", inFlight)
	return bw.Flush()
}

// methodLabel folds non-standard methods into one label value, so clients
// cannot create series at will.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "OTHER"
}

func labels(k seriesKey) string {
	return `method="` + escapeLabel(k.method) + `",route="` + escapeLabel(k.route) + `",status="` + strconv.Itoa(k.status) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
