package queryapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamfold/streamfold/internal/promtext"
	"github.com/streamfold/streamfold/queryapi"
)

func customersAPI(opts ...queryapi.Option) (*queryapi.API, *fakeLister) {
	api := queryapi.New(opts...)
	l := &fakeLister{items: []string{`{"id":"c1"}`, `{"id":"c2"}`, `{"id":"c3"}`}}
	api.Resource("customers", fakeReader{
		docs: map[string]string{"c1": `{"id":"c1","name":"Ada"}`, "a/b": `{"id":"a/b"}`},
		errs: map[string]error{
			"restoring": fmt.Errorf("customers: %w", restoringError{after: 1500 * time.Millisecond, progress: map[string]any{"restored": 10, "total": 40}}),
			"boom":      errBoom,
			"empty":     nil,
		},
	}, l)
	return api, l
}

func TestResource_GivenKnownKey_WhenGet_ThenDocumentAsJSON(t *testing.T) {
	api, _ := customersAPI()

	r := do(t, api, "GET", "/customers/c1", "")

	var doc map[string]string
	r.wantJSON(t, http.StatusOK, &doc)
	if doc["name"] != "Ada" {
		t.Fatalf("body = %s", r.body)
	}
}

func TestResource_GivenKeyWithSlash_WhenGetEscaped_ThenReaderGetsUnescapedKey(t *testing.T) {
	api, _ := customersAPI()

	r := do(t, api, "GET", "/customers/a%2Fb", "")

	r.wantJSON(t, http.StatusOK, nil)
	wantContains(t, "body", r.body, `"a/b"`)
}

func TestResource_GivenReaderReturnsNothing_WhenGet_Then500(t *testing.T) {
	api := queryapi.New()
	api.Resource("things", fakeReader{docs: map[string]string{"x": ""}}, nil)

	do(t, api, "GET", "/things/x", "").wantProblem(t, http.StatusInternalServerError)
}

// TestErrors_GivenClassifiedError_ThenStatusAndProblem is the status mapping,
// through a handler and through a reader, bare and wrapped.
func TestErrors_GivenClassifiedError_ThenStatusAndProblem(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		detail     string // substring; "" = don't care
		extras     map[string]any
	}{
		{name: "not found", err: notFoundError{key: "k"}, status: 404, detail: `key "k" not found`},
		{name: "not found wrapped", err: fmt.Errorf("view: %w", notFoundError{key: "k"}), status: 404, detail: "view: key"},
		{name: "not found joined", err: errors.Join(errors.New("x"), notFoundError{key: "k"}), status: 404},
		{name: "NotFound false is no 404", err: notReallyNotFound{}, status: 500},
		{name: "retry after rounded up", err: restoringError{after: 1500 * time.Millisecond, progress: map[string]any{"restored": 10.0}}, status: 503, retryAfter: "2",
			extras: map[string]any{"progress": map[string]any{"restored": 10.0}}},
		{name: "retry after exact", err: restoringError{after: 3 * time.Second}, status: 503, retryAfter: "3"},
		{name: "retry after at least 1", err: restoringError{after: 0}, status: 503, retryAfter: "1"},
		{name: "retry after without progress", err: unavailableError{}, status: 503, retryAfter: "2", detail: "rebalancing"},
		{name: "conflict with extras", err: conflictError{expected: 3, actual: 4}, status: 409, detail: "expected version 3",
			extras: map[string]any{"expectedVersion": 3.0, "actualVersion": 4.0}},
		{name: "problem", err: queryapi.Unprocessable("cart is checked out", map[string]any{"field": "items"}), status: 422,
			detail: "cart is checked out", extras: map[string]any{"field": "items"}},
		{name: "problem wrapped", err: fmt.Errorf("decide: %w", queryapi.BadRequest("bad sku")), status: 400, detail: "bad sku"},
		{name: "not found problem", err: queryapi.NotFound("no such cart"), status: 404, detail: "no such cart"},
		{name: "deadline", err: fmt.Errorf("wait for reply: %w", context.DeadlineExceeded), status: 504},
		{name: "unclassified", err: errBoom, status: 500, detail: "internal error"},
		{name: "canceled, client still there", err: context.Canceled, status: 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := queryapi.New()
			api.Handle("POST", "/fail", errFor(tc.err))
			api.Resource("docs", fakeReader{errs: map[string]error{"k": tc.err}}, nil)

			for _, target := range []string{"/fail", "/docs/k"} {
				method := map[string]string{"/fail": "POST", "/docs/k": "GET"}[target]
				r := do(t, api, method, target, "")

				p := r.wantProblem(t, tc.status)
				if got := r.header.Get("Retry-After"); got != tc.retryAfter {
					t.Fatalf("%s: Retry-After = %q, want %q", target, got, tc.retryAfter)
				}
				wantContains(t, "detail", p.Detail, tc.detail)
				if p.Instance != target {
					t.Fatalf("instance = %q, want %q", p.Instance, target)
				}
				for k, want := range tc.extras {
					got, _ := json.Marshal(p.Extras[k])
					wantJSON, _ := json.Marshal(want)
					if string(got) != string(wantJSON) {
						t.Fatalf("%s: extra %q = %s, want %s", target, k, got, wantJSON)
					}
				}
				if strings.Contains(r.body, "hunter2") {
					t.Fatalf("cause leaked to the client: %s", r.body)
				}
			}
		})
	}
}

func TestErrors_GivenUnclassifiedError_ThenCauseLoggedAtErrorNotSent(t *testing.T) {
	log, logs := newLogger()
	api, _ := customersAPI(queryapi.WithLogger(log))

	r := do(t, api, "GET", "/customers/boom", "")

	p := r.wantProblem(t, http.StatusInternalServerError)
	if strings.Contains(r.body, "hunter2") {
		t.Fatalf("cause leaked: %s", r.body)
	}
	wantContains(t, "detail", p.Detail, "internal error")
	wantContains(t, "log", logs.String(), "level=ERROR")
	wantContains(t, "log", logs.String(), "password=hunter2")
	wantContains(t, "log", logs.String(), "route=/customers/{id}")
}

func TestErrors_GivenRestoringView_ThenProgressInBodyAndWarnLogged(t *testing.T) {
	log, logs := newLogger()
	api, _ := customersAPI(queryapi.WithLogger(log))

	r := do(t, api, "GET", "/customers/restoring", "")

	p := r.wantProblem(t, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	progress, _ := p.Extras["progress"].(map[string]any)
	if progress["restored"] != 10.0 || progress["total"] != 40.0 {
		t.Fatalf("progress = %v; body %s", p.Extras["progress"], r.body)
	}
	wantContains(t, "log", logs.String(), "level=WARN")
}

func TestErrors_GivenClientGone_WhenReaderReturnsCanceled_Then499Recorded(t *testing.T) {
	log, logs := newLogger()
	api, _ := customersAPI(queryapi.WithLogger(log))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/customers/c1", nil).WithContext(ctx)
	rec := httptest.NewRecorder()

	api.ServeHTTP(rec, req)

	if rec.Code != queryapi.StatusClientClosedRequest {
		t.Fatalf("status = %d", rec.Code)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a client going away is no server error: %s", logs.String())
	}
	wantSample(t, scrape(t, api), 1, "streamfold_http_requests_total", "method", "GET", "route", "/customers/{id}", "status", "499")
}

func TestList_GivenNoLimit_ThenDefaultLimitAndFirstPage(t *testing.T) {
	api, l := customersAPI()

	r := do(t, api, "GET", "/customers", "")

	var page queryapi.Page
	r.wantJSON(t, http.StatusOK, &page)
	if len(page.Items) != 3 || page.Next != "" {
		t.Fatalf("page = %s", r.body)
	}
	q := l.lastQuery(t)
	if q.Limit != queryapi.DefaultLimit || q.Cursor != "" || q.Filters == nil || len(q.Filters) != 0 {
		t.Fatalf("query = %+v", q)
	}
}

func TestList_GivenLimitAndCursor_ThenPagesThrough(t *testing.T) {
	api, l := customersAPI()

	first := do(t, api, "GET", "/customers?limit=2", "")
	var p1 queryapi.Page
	first.wantJSON(t, http.StatusOK, &p1)
	second := do(t, api, "GET", "/customers?limit=2&cursor="+p1.Next, "")
	var p2 queryapi.Page
	second.wantJSON(t, http.StatusOK, &p2)

	if len(p1.Items) != 2 || p1.Next == "" || len(p2.Items) != 1 || p2.Next != "" {
		t.Fatalf("pages = %s then %s", first.body, second.body)
	}
	if q := l.lastQuery(t); q.Limit != 2 || q.Cursor != "2" {
		t.Fatalf("query = %+v", q)
	}
}

func TestList_GivenFilters_ThenPassedThroughToLister(t *testing.T) {
	api, l := customersAPI()

	do(t, api, "GET", "/customers?state=deleted&limit=1000", "").wantJSON(t, http.StatusOK, nil)

	q := l.lastQuery(t)
	if q.Filters["state"] != "deleted" || len(q.Filters) != 1 || q.Limit != 1000 {
		t.Fatalf("query = %+v", q)
	}
}

func TestList_GivenFilterListerRejects_Then400FromLister(t *testing.T) {
	api, _ := customersAPI()

	p := do(t, api, "GET", "/customers?colour=red", "").wantProblem(t, http.StatusBadRequest)

	wantContains(t, "detail", p.Detail, `cannot filter by "colour"`)
}

func TestList_GivenEmptyResult_ThenItemsIsEmptyArray(t *testing.T) {
	api := queryapi.New()
	api.Resource("things", nil, &fakeLister{})

	r := do(t, api, "GET", "/things", "")

	r.wantJSON(t, http.StatusOK, nil)
	if r.body != `{"items":[]}` {
		t.Fatalf("body = %s", r.body)
	}
}

func TestList_GivenInvalidQuery_Then400AndListerNotCalled(t *testing.T) {
	for _, query := range []string{
		"limit=abc", "limit=0", "limit=-1", "limit=1001", "limit=1.5", "limit=", "limit=99999999999999999999",
		"limit=1&limit=2", "state=a&state=b", "=x", "state=%zz",
	} {
		t.Run(query, func(t *testing.T) {
			api, l := customersAPI()

			p := do(t, api, "GET", "/customers?"+query, "").wantProblem(t, http.StatusBadRequest)

			wantContains(t, "detail", p.Detail, "query:")
			if strings.HasPrefix(query, "limit=") && !strings.Contains(query, "&") {
				wantContains(t, "detail", p.Detail, "limit must be an integer from 1 to 1000")
			}
			if len(l.queries) != 0 {
				t.Fatalf("lister called with %+v", l.queries)
			}
		})
	}
}

func TestResource_GivenNilReaderOrLister_ThenThatRouteIs404(t *testing.T) {
	api := queryapi.New()
	api.Resource("listonly", nil, &fakeLister{})
	api.Resource("getonly", fakeReader{docs: map[string]string{"x": "{}"}}, nil)

	do(t, api, "GET", "/listonly/x", "").wantProblem(t, http.StatusNotFound)
	do(t, api, "GET", "/getonly", "").wantProblem(t, http.StatusNotFound)
	do(t, api, "GET", "/getonly/x", "").wantJSON(t, http.StatusOK, nil)
}

func TestRouting_GivenUnknownRoute_Then404Problem(t *testing.T) {
	api, _ := customersAPI()

	p := do(t, api, "GET", "/nope/1/2", "").wantProblem(t, http.StatusNotFound)

	wantContains(t, "detail", p.Detail, "GET /nope/1/2")
}

func TestRouting_GivenWrongMethod_Then405ProblemWithAllow(t *testing.T) {
	api, _ := customersAPI()
	api.Handle("DELETE", "/customers/{id}", func(*http.Request) (int, any, error) { return 0, nil, nil })

	r := do(t, api, "PUT", "/customers/c1", "")

	r.wantProblem(t, http.StatusMethodNotAllowed)
	if got := r.header.Values("Allow"); !slices.Equal(got, []string{"DELETE", "GET"}) {
		t.Fatalf("Allow = %q", got)
	}
}

func TestHandle_GivenCreated_WhenBodyWithHeaders_Then201WithLocation(t *testing.T) {
	api := queryapi.New()
	api.Handle("POST", "/carts/{id}/commands", func(r *http.Request) (int, any, error) {
		var cmd struct {
			Type string `json:"type"`
		}
		if err := queryapi.DecodeJSON(r, &cmd); err != nil {
			return 0, nil, err
		}
		id := queryapi.Vars(r)["id"]
		body := map[string]string{"cart": id, "accepted": cmd.Type}
		return http.StatusCreated, queryapi.WithHeaders(body, http.Header{"Location": {"/carts/" + id}}), nil
	})

	r := do(t, api, "POST", "/carts/k1/commands", `{"type":"AddItem"}`, "Content-Type", "application/json")

	var got map[string]string
	r.wantJSON(t, http.StatusCreated, &got)
	if got["cart"] != "k1" || got["accepted"] != "AddItem" || r.header.Get("Location") != "/carts/k1" {
		t.Fatalf("answer = %d %v %s", r.status, r.header, r.body)
	}

	bad := do(t, api, "POST", "/carts/k1/commands", `{"type":"AddItem","qty":1}`)
	p := bad.wantProblem(t, http.StatusBadRequest)
	wantContains(t, "detail", p.Detail, `body: unknown field "qty"`)
}

// etagged is a body type that carries its own headers.
type etagged struct {
	Version int `json:"version"`
}

func (e etagged) Headers() http.Header { return http.Header{"Etag": {fmt.Sprintf(`"%d"`, e.Version)}} }

func TestHandle_GivenBodyWithHeadersMethod_ThenHeadersCopied(t *testing.T) {
	api := queryapi.New()
	api.Handle("GET", "/v", func(*http.Request) (int, any, error) { return 0, etagged{Version: 7}, nil })

	r := do(t, api, "GET", "/v", "")

	r.wantJSON(t, http.StatusOK, nil)
	if r.header.Get("ETag") != `"7"` || r.body != `{"version":7}` {
		t.Fatalf("answer = %v %s", r.header, r.body)
	}
}

func TestHandle_GivenNilBody_ThenNoContent(t *testing.T) {
	api := queryapi.New()
	api.Handle("DELETE", "/x", func(*http.Request) (int, any, error) { return 0, nil, nil })
	api.Handle("POST", "/x", func(*http.Request) (int, any, error) {
		return http.StatusAccepted, queryapi.WithHeaders(nil, http.Header{"Location": {"/x/1"}}), nil
	})

	del := do(t, api, "DELETE", "/x", "")
	post := do(t, api, "POST", "/x", "")

	if del.status != http.StatusNoContent || del.body != "" || del.header.Get("Content-Type") != "" {
		t.Fatalf("delete = %d %v %q", del.status, del.header, del.body)
	}
	if post.status != http.StatusAccepted || post.body != "" || post.header.Get("Location") != "/x/1" {
		t.Fatalf("post = %d %v %q", post.status, post.header, post.body)
	}
}

func TestHandle_GivenErrorStatusWithoutError_ThenProblem(t *testing.T) {
	api := queryapi.New()
	api.Handle("GET", "/teapot", func(*http.Request) (int, any, error) { return http.StatusTeapot, map[string]int{"a": 1}, nil })
	api.Handle("GET", "/odd", func(*http.Request) (int, any, error) { return 42, nil, nil })
	api.Handle("GET", "/chan", func(*http.Request) (int, any, error) { return 200, make(chan int), nil })

	do(t, api, "GET", "/teapot", "").wantProblem(t, http.StatusTeapot)
	do(t, api, "GET", "/odd", "").wantProblem(t, http.StatusInternalServerError)
	do(t, api, "GET", "/chan", "").wantProblem(t, http.StatusInternalServerError)
}

func TestPanic_GivenHandlerPanics_Then500ProblemLoggedAndServerKeepsServing(t *testing.T) {
	log, logs := newLogger()
	api := queryapi.New(queryapi.WithLogger(log))
	api.Handle("GET", "/panic", func(*http.Request) (int, any, error) { panic("kaboom") })
	api.Handle("GET", "/late-panic", func(r *http.Request) (int, any, error) {
		var m map[string]int
		m["x"] = 1 // runtime error
		return 0, nil, nil
	})

	p := do(t, api, "GET", "/panic", "").wantProblem(t, http.StatusInternalServerError)
	do(t, api, "GET", "/late-panic", "").wantProblem(t, http.StatusInternalServerError)
	do(t, api, "GET", "/healthz", "").wantJSON(t, http.StatusOK, nil)

	if strings.Contains(p.Detail, "kaboom") {
		t.Fatalf("panic value leaked: %s", p.Detail)
	}
	wantContains(t, "log", logs.String(), "handler panicked")
	wantContains(t, "log", logs.String(), "kaboom")
	wantContains(t, "log", logs.String(), "assignment to entry in nil map")
}

func TestPanic_GivenErrAbortHandler_ThenReRaisedForNetHTTP(t *testing.T) {
	api := queryapi.New()
	api.Handle("GET", "/abort", func(*http.Request) (int, any, error) { panic(http.ErrAbortHandler) })

	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	do(t, api, "GET", "/abort", "")
	t.Fatal("ErrAbortHandler was swallowed")
}

func TestHealthz_ThenOK(t *testing.T) {
	r := do(t, queryapi.New(), "GET", "/healthz", "")

	r.wantJSON(t, http.StatusOK, nil)
	if r.body != `{"status":"ok"}` {
		t.Fatalf("body = %s", r.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Run("given no readiness then ready", func(t *testing.T) {
		r := do(t, queryapi.New(), "GET", "/readyz", "")
		r.wantJSON(t, http.StatusOK, nil)
		if r.body != `{"ready":true}` {
			t.Fatalf("body = %s", r.body)
		}
	})
	t.Run("given ready then 200 with details", func(t *testing.T) {
		api := queryapi.New(queryapi.WithReadiness(fakeReadiness{ready: true, details: map[string]int{"lag": 0}}))
		var body struct {
			Ready   bool           `json:"ready"`
			Details map[string]int `json:"details"`
		}
		do(t, api, "GET", "/readyz", "").wantJSON(t, http.StatusOK, &body)
		if !body.Ready || body.Details == nil {
			t.Fatalf("body = %+v", body)
		}
	})
	t.Run("given restoring then 503 problem with retry-after and details", func(t *testing.T) {
		details := map[string]any{"customers-table": map[string]any{"restored": 5.0, "total": 8.0}}
		api := queryapi.New(queryapi.WithReadiness(fakeReadiness{ready: false, details: details}))

		r := do(t, api, "GET", "/readyz", "")

		p := r.wantProblem(t, http.StatusServiceUnavailable)
		if r.header.Get("Retry-After") != "5" {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
		if p.Extras["ready"] != false {
			t.Fatalf("ready = %v; body %s", p.Extras["ready"], r.body)
		}
		got, _ := json.Marshal(p.Extras["details"])
		want, _ := json.Marshal(details)
		if string(got) != string(want) {
			t.Fatalf("details = %s, want %s", got, want)
		}
	})
	t.Run("given details with retry-after then that header", func(t *testing.T) {
		api := queryapi.New(queryapi.WithReadiness(fakeReadiness{details: restoringError{after: 30 * time.Second}}))
		r := do(t, api, "GET", "/readyz", "")
		r.wantProblem(t, http.StatusServiceUnavailable)
		if r.header.Get("Retry-After") != "30" {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
	})
}

func TestMetrics_GivenRequests_ThenCountersByRouteTemplateAndStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop_customers", Help: "Customers."})
	app.Set(2)
	reg.MustRegister(app)
	api, _ := customersAPI(queryapi.WithRegistry(reg))
	do(t, api, "GET", "/customers/c1", "")
	do(t, api, "GET", "/customers/c1", "")
	do(t, api, "GET", "/customers/zz", "")
	do(t, api, "GET", "/customers?limit=0", "")
	do(t, api, "GET", "/no/such/route", "")
	do(t, api, "BREW", "/customers/c1", "")

	r := do(t, api, "GET", "/metrics", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("answer = %d %v", r.status, r.header)
	}
	fams, err := promtext.Parse(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	wantSample(t, fams, 2, "shop_customers") // the application's, from its registry
	const requests, duration = "streamfold_http_requests_total", "streamfold_http_request_duration_seconds"
	for _, c := range []struct {
		method, route, status string
		n                     float64
	}{
		{"GET", "/customers/{id}", "200", 2},
		{"GET", "/customers/{id}", "404", 1},
		{"GET", "/customers", "400", 1},
		{"GET", "unmatched", "404", 1},
		{"OTHER", "unmatched", "405", 1},
	} {
		wantSample(t, fams, c.n, requests, "method", c.method, "route", c.route, "status", c.status)
		wantSample(t, fams, c.n, duration, "method", c.method, "route", c.route, "status", c.status)
	}
	if got := fams[duration].GetType().String(); got != "HISTOGRAM" {
		t.Fatalf("%s is a %s", duration, got)
	}
	wantSample(t, fams, 1, "streamfold_http_requests_in_flight") // the scrape itself
	if strings.Contains(r.body, "/no/such/route") {
		t.Fatal("raw paths must not become labels")
	}
}

func TestMetrics_GivenNoRegistry_ThenEachAPIServesItsOwn(t *testing.T) {
	a, _ := customersAPI()
	b, _ := customersAPI()
	do(t, a, "GET", "/customers/c1", "")
	wantSample(t, scrape(t, a), 1, "streamfold_http_requests_total", "route", "/customers/{id}")
	if _, ok := scrape(t, b).Sample("streamfold_http_requests_total", "route", "/customers/{id}"); ok {
		t.Fatal("b counted a's request")
	}
}

func TestMetrics_GivenConcurrentRequests_ThenEveryRequestCounted(t *testing.T) {
	api, _ := customersAPI()
	const workers, each = 8, 50

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				rec := httptest.NewRecorder()
				api.ServeHTTP(rec, httptest.NewRequest("GET", "/customers/c1", nil))
				if rec.Code != http.StatusOK {
					t.Errorf("status = %d", rec.Code)
				}
			}
		})
	}
	wg.Wait()

	wantSample(t, scrape(t, api), workers*each, "streamfold_http_requests_total", "method", "GET", "route", "/customers/{id}", "status", "200")
}

func TestRegistration_GivenProgrammingErrors_ThenPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s: no panic", name)
			}
		}()
		f()
	}
	api := queryapi.New()
	mustPanic("empty name", func() { api.Resource("", nil, nil) })
	mustPanic("name with slash", func() { api.Resource("a/b", nil, nil) })
	mustPanic("reserved name", func() { api.Resource("metrics", nil, nil) })
	mustPanic("relative path", func() { api.Handle("GET", "x", errFor(nil)) })
	mustPanic("nil handler", func() { api.Handle("GET", "/x", nil) })

	do(t, api, "GET", "/healthz", "")
	mustPanic("handle after serving", func() { api.Handle("GET", "/late", errFor(nil)) })
	mustPanic("resource after serving", func() { api.Resource("late", fakeReader{}, nil) })
}
