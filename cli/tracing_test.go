package cli_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/cli"
	"github.com/streamfold/streamfold/serve"
)

// otlpReceiver is an OTLP/HTTP trace endpoint: it decodes what an exporter
// posts to /v1/traces (protobuf, maybe gzipped).
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
	errs  []error
}

type receivedSpan struct {
	service, name, traceID, parentSpanID string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := o.read(r)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.errs = append(o.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collector.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		o.errs = append(o.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				o.spans = append(o.spans, receivedSpan{service: service, name: sp.GetName(),
					traceID: hex.EncodeToString(sp.GetTraceId()), parentSpanID: hex.EncodeToString(sp.GetParentSpanId())})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func (o *otlpReceiver) read(r *http.Request) ([]byte, error) {
	if r.URL.Path != "/v1/traces" {
		return nil, io.ErrUnexpectedEOF
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

func (o *otlpReceiver) received() ([]receivedSpan, []error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]receivedSpan(nil), o.spans...), append([]error(nil), o.errs...)
}

// The run command turns tracing on from the standard OpenTelemetry
// variable alone, exports over OTLP/HTTP, and flushes what it buffered when
// it stops: the span of a request that came with a traceparent reaches the
// collector, in the caller's trace, under the application's name.
func TestRun_GivenOTELExporterOTLPEndpoint_ThenARequestsSpanIsExportedByTheTimeRunReturns(t *testing.T) {
	receiver := &otlpReceiver{}
	collector := httptest.NewServer(receiver)
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_SDK_DISABLED", "")

	var greeting string
	app := testApp(&greeting)
	addrs := make(chan string, 1)
	app.Routes = func(srv *serve.Server, _ *streamfold.Runtime) (func() error, error) {
		srv.Handle(http.MethodGet, "/greetings/{id}", func(*http.Request) (int, any, error) {
			return http.StatusOK, map[string]string{"greeting": "hello"}, nil
		})
		addrs <- srv.Addr().String()
		return nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- cli.Main(ctx, app, []string{"run", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0",
			"--partitions", "1", "--groups", "none"}, io.Discard, &errb)
	}()
	var addr string
	select {
	case addr = <-addrs:
	case code := <-done:
		t.Fatalf("run exited with %d: %s", code, errb.String())
	case <-time.After(time.Minute):
		t.Fatal("the routes were never registered")
	}

	const traceID = "5bf92f3577b34da6a3ce929d0e0e4737"
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/greetings/ada", nil)
	require.NoError(t, err)
	req.Header.Set("traceparent", "00-"+traceID+"-10f067aa0ba902b8-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", errb.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not return")
	}
	// No wait here: Run returned, so the batch was flushed.
	spans, errs := receiver.received()
	assert.Empty(t, errs)
	assert.Contains(t, spans, receivedSpan{service: "my-orders", name: "GET /greetings/{id}", traceID: traceID, parentSpanID: "10f067aa0ba902b8"},
		"spans received: %v", spans)
}
