package queryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamfold/streamfold/internal/promtext"
	"github.com/streamfold/streamfold/queryapi"
)

// The fakes stand in for views and command handlers of other packages. Their
// errors implement the structural interfaces queryapi classifies, exactly as
// views' errors do, without importing queryapi.

// fakeReader serves documents from a map; errs makes a key fail.
type fakeReader struct {
	docs map[string]string
	errs map[string]error
}

func (f fakeReader) GetJSON(ctx context.Context, key string) (json.RawMessage, error) {
	if err, ok := f.errs[key]; ok {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	doc, ok := f.docs[key]
	if !ok {
		return nil, notFoundError{key: key}
	}
	return json.RawMessage(doc), nil
}

// fakeLister pages over items in order; it remembers the queries it got and
// rejects filters other than "state".
type fakeLister struct {
	mu      sync.Mutex
	items   []string
	queries []queryapi.ListQuery
}

func (f *fakeLister) List(_ context.Context, q queryapi.ListQuery) (queryapi.Page, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	for k := range q.Filters {
		if k != "state" {
			return queryapi.Page{}, queryapi.BadRequest(fmt.Sprintf("query: cannot filter by %q", k))
		}
	}
	start := 0
	if q.Cursor != "" {
		fmt.Sscanf(q.Cursor, "%d", &start)
	}
	var p queryapi.Page
	for i := start; i < len(f.items) && len(p.Items) < q.Limit; i++ {
		p.Items = append(p.Items, json.RawMessage(f.items[i]))
	}
	if end := start + len(p.Items); end < len(f.items) {
		p.Next = fmt.Sprint(end)
	}
	return p, nil
}

func (f *fakeLister) lastQuery(t *testing.T) queryapi.ListQuery {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		t.Fatal("lister was not called")
	}
	return f.queries[len(f.queries)-1]
}

type fakeReadiness struct {
	ready   bool
	details any
}

func (f fakeReadiness) Ready(context.Context) (bool, any) { return f.ready, f.details }

// scrape GETs /metrics from h and parses it as Prometheus does.
func scrape(t testing.TB, h http.Handler) promtext.Families {
	t.Helper()
	r := do(t, h, "GET", "/metrics", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", r.status, r.body)
	}
	fams, err := promtext.Parse(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	return fams
}

// wantSample fails unless fams has the series of name with labels, of
// value want.
func wantSample(t testing.TB, fams promtext.Families, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := fams.Sample(name, labels...)
	if !ok || got != want {
		t.Fatalf("%s%q = %v (found %v), want %v; series: %v", name, labels, got, ok, want, fams.Series(name))
	}
}

type notFoundError struct{ key string }

func (e notFoundError) Error() string  { return fmt.Sprintf("key %q not found", e.key) }
func (e notFoundError) NotFound() bool { return true }

type restoringError struct {
	after    time.Duration
	progress any
}

func (e restoringError) Error() string             { return "view is restoring" }
func (e restoringError) RetryAfter() time.Duration { return e.after }
func (e restoringError) Progress() any             { return e.progress }

// unavailableError has RetryAfter but no Progress.
type unavailableError struct{}

func (unavailableError) Error() string             { return "view is rebalancing" }
func (unavailableError) RetryAfter() time.Duration { return 2 * time.Second }

type conflictError struct{ expected, actual int }

func (e conflictError) Error() string {
	return fmt.Sprintf("expected version %d, actual %d", e.expected, e.actual)
}
func (e conflictError) Conflict() bool { return true }
func (e conflictError) ProblemExtras() map[string]any {
	return map[string]any{"expectedVersion": e.expected, "actualVersion": e.actual}
}

// notReallyNotFound says NotFound() == false: it must not become a 404.
type notReallyNotFound struct{}

func (notReallyNotFound) Error() string  { return "disk on fire" }
func (notReallyNotFound) NotFound() bool { return false }

// logBuffer collects log output; handlers may log from server goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// response is what a test observes of an answer.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request through h. header is name, value pairs.
func do(t testing.TB, h http.Handler, method, target, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// wantJSON asserts a success answer and decodes its body into v (may be nil).
func (r response) wantJSON(t testing.TB, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			t.Fatalf("decode body %s: %v", r.body, err)
		}
	}
}

// wantProblem asserts an error answer and returns the decoded problem.
func (r response) wantProblem(t testing.TB, status int) queryapi.Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p queryapi.Problem
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Status != status {
		t.Fatalf("problem status = %d, want %d", p.Status, status)
	}
	if p.Title == "" || p.Type == "" {
		t.Fatalf("problem without type or title: %s", r.body)
	}
	return p
}

func wantContains(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s %q does not contain %q", what, s, sub)
	}
}

// errFor makes a HandlerFunc that fails with err.
func errFor(err error) queryapi.HandlerFunc {
	return func(*http.Request) (int, any, error) { return 0, nil, err }
}

var errBoom = errors.New("boom: password=hunter2")
