package queryapi

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram: a LevelDB-backed Get answers in well under a millisecond, a
// command that waits for its reply takes tens to hundreds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// routeUnmatched is the route label of requests no route matched (404, 405):
// the raw path would let clients mint unbounded label values.
const routeUnmatched = "unmatched"

// The request metrics' names: the framework's series share the streamfold_
// prefix.
const (
	metricRequests = "streamfold_http_requests_total"
	metricDuration = "streamfold_http_request_duration_seconds"
	metricInFlight = "streamfold_http_requests_in_flight"
)

type seriesKey struct {
	method, route string
	status        int
}

// series are one label set's children, found once and kept: a request
// then costs one map read instead of hashing its label values twice.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// requestMetrics counts requests by method, route template and status.
// Safe for concurrent use.
type requestMetrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	series   sync.Map // seriesKey -> *series
}

func newRequestMetrics() *requestMetrics {
	labels := []string{"method", "route", "status"}
	return &requestMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricInFlight,
			Help: "HTTP requests being answered.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRequests,
			Help: "HTTP requests answered, by method, route template and status; requests no route matched have the route \"" + routeUnmatched + "\".",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricDuration,
			Help:    "Time to answer HTTP requests, by method, route template and status.",
			Buckets: latencyBuckets,
		}, labels),
	}
}

// register adds the metrics to r.
func (m *requestMetrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register request metrics: %w", err)
		}
	}
	return nil
}

func (m *requestMetrics) start() { m.inFlight.Inc() }

func (m *requestMetrics) done(method, route string, status int, d time.Duration) {
	m.inFlight.Dec()
	m.observe(method, route, status, d)
}

// observe counts one answered request.
func (m *requestMetrics) observe(method, route string, status int, d time.Duration) {
	k := seriesKey{method: methodLabel(method), route: route, status: status}
	s, ok := m.series.Load(k)
	if !ok {
		code := strconv.Itoa(status)
		s, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(k.method, route, code),
			duration: m.duration.WithLabelValues(k.method, route, code),
		})
	}
	ss := s.(*series)
	ss.requests.Inc()
	ss.duration.Observe(d.Seconds())
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
