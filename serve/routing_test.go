package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/queryapi"
)

// shopLike registers routes as the shop does: resources, sub-resources,
// keyed handlers, a body-keyed write served here when no owner answers, and
// an unrouted command.
func shopLike(t *testing.T, rt Runtime) *Server {
	t.Helper()
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	ok := func(r *http.Request) (int, any, error) {
		return http.StatusOK, map[string]string{"served": "here"}, nil
	}
	customers := &fakeReader{table: "customers-table"}
	srv.Resource("customers", customers, nil)
	srv.Handle(http.MethodPost, "/customers", ok, KeyFromBody(customers.Name()), OrLocal())
	srv.Handle(http.MethodPatch, "/customers/{id}", ok, KeyFromPath(customers.Name(), "id"))
	srv.Handle(http.MethodDelete, "/customers/{id}", ok, KeyFromPath(customers.Name(), "id"))
	srv.Get("/customers/{id}/carts", &fakeReader{table: "customer-carts-table"})
	srv.Resource("products", &fakeReader{table: "products-table"}, nil)
	srv.Resource("carts", nil, nil)
	srv.Handle(http.MethodGet, "/carts/{id}", ok, KeyFromPath("carts-table", "id"))
	srv.Get("/carts/{id}/events", &fakeReader{table: "cart-history-table"})
	srv.Handle(http.MethodPost, "/carts/{id}/commands", ok)
	return srv
}

func TestRouting_GivenRegisteredRoutes_ThenKeyRoutesNameTheirTableAndKey(t *testing.T) {
	srv := shopLike(t, &fakeRuntime{})
	for _, c := range []struct {
		method, path string
		table, key   string // table "" means not routed
	}{
		{http.MethodGet, "/customers/ada", "customers-table", "ada"},
		{http.MethodGet, "/customers/a%2Fb", "customers-table", "a/b"},
		{http.MethodPatch, "/customers/ada", "customers-table", "ada"},
		{http.MethodDelete, "/customers/ada", "customers-table", "ada"},
		{http.MethodPost, "/customers", "customers-table", ""}, // the key is in the body
		{http.MethodGet, "/customers/ada/carts", "customer-carts-table", "ada"},
		{http.MethodGet, "/products/apple", "products-table", "apple"},
		{http.MethodGet, "/carts/c1", "carts-table", "c1"},
		{http.MethodGet, "/carts/c1/events", "cart-history-table", "c1"},
		{http.MethodPost, "/carts/c1/commands", "", ""},
		{http.MethodGet, "/customers", "", ""},
		{http.MethodGet, "/carts", "", ""},
		{http.MethodGet, "/carts/c1/nope", "", ""},
		{http.MethodGet, "/customers//carts", "", ""},
		{http.MethodGet, "/readyz", "", ""},
		{http.MethodGet, "/", "", ""},
		{http.MethodPost, "/customers/ada", "", ""},
	} {
		kr, key, ok := srv.matchKeyRoute(httptest.NewRequest(c.method, c.path, nil))
		if c.table == "" {
			assert.False(t, ok, "%s %s is routed to %s", c.method, c.path, kr.table)
			continue
		}
		if assert.True(t, ok, "%s %s is not routed", c.method, c.path) {
			assert.Equal(t, c.table, kr.table, "%s %s", c.method, c.path)
			assert.Equal(t, c.key, key, "%s %s", c.method, c.path)
		}
	}
}

// do serves one request and returns the recorded answer.
func do(h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) queryapi.Problem {
	t.Helper()
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p queryapi.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	return p
}

func TestRouting_GivenAKeyOwnedHere_ThenServedHereAndSaysSo(t *testing.T) {
	rt := &fakeRuntime{self: streamfold.Member{Instance: "a", Query: "a:1"}, place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Assigned: true, Local: true, Copy: true, Restored: true}
	}}
	rec := do(shopLike(t, rt), http.MethodGet, "/customers/ada", "")
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "a:1", rec.Header().Get(HeaderServedBy))
	assert.JSONEq(t, `{"table":"customers-table","key":"ada"}`, rec.Body.String())
}

func TestRouting_GivenAnOwnerElsewhere_ThenForwardedWithHopsAndBudget(t *testing.T) {
	var got http.Header
	var gotBody string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set(HeaderServedBy, "b:1")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, `{"from":"owner"}`)
	}))
	defer owner.Close()
	rt := &fakeRuntime{self: streamfold.Member{Instance: "a", Query: "a:1"}, place: func(string, string) streamfold.Placement {
		return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "b", Query: strings.TrimPrefix(owner.URL, "http://")}}
	}}
	srv := shopLike(t, rt)

	rec := do(srv, http.MethodGet, "/customers/a%2Fb", "", HeaderTimeout, "3s")
	assert.Equal(t, http.StatusTeapot, rec.Code)
	assert.Equal(t, "b:1", rec.Header().Get(HeaderServedBy))
	assert.Equal(t, "a:1", rec.Header().Get(HeaderRoutedVia))
	assert.Equal(t, `{"from":"owner"}`, rec.Body.String())
	assert.Equal(t, "1", got.Get(HeaderHops))
	budget, err := time.ParseDuration(got.Get(HeaderTimeout))
	require.NoError(t, err)
	assert.LessOrEqual(t, budget, 3*time.Second, "what is left of the caller's budget")

	rec = do(srv, http.MethodPost, "/customers", `{"id":"ada","name":"A"}`)
	assert.Equal(t, http.StatusTeapot, rec.Code, "a body key is routed too")
	assert.Equal(t, `{"id":"ada","name":"A"}`, gotBody, "the body is forwarded whole")
}

func TestRouting_GivenABodyWithoutID_ThenServedHere(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		panic("no key, no placement")
	}}
	rec := do(shopLike(t, rt), http.MethodPost, "/customers", `{"name":"A"}`)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestRouting_GivenAForwardedRequestNotOwnedHere_ThenMisdirected(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Partition: 3, OwnerKnown: true, Owner: streamfold.Member{Instance: "c", Query: "c:1"}}
	}}
	rec := do(shopLike(t, rt), http.MethodGet, "/customers/ada", "", HeaderHops, "1")
	assert.Equal(t, http.StatusMisdirectedRequest, rec.Code)
	p := problemOf(t, rec)
	assert.Contains(t, p.Detail, "partition 3 of customers-table is not owned here")
}

func TestRouting_GivenAnUnreachableOwner_Then503NamingItAfterLookingAgain(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	gone := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "gone", Query: gone}}
	}}
	srv := shopLike(t, rt)

	rec := do(srv, http.MethodGet, "/customers/ada", "")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	p := problemOf(t, rec)
	assert.Contains(t, p.Detail, gone)
	assert.Contains(t, p.Detail, "unreachable")
	assert.Equal(t, map[string]any{"instance": "gone", "query": gone}, p.Extras["owner"])
	assert.Positive(t, rt.refreshes.Load(), "an unreachable owner is worth another look at the membership")

	// A route that copes without the owner is served here instead.
	rec = do(srv, http.MethodPost, "/customers", `{"id":"ada"}`)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestRouting_GivenAnOwnerServingNoQueries_Then503AtOnce(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "p"}}
	}}
	rec := do(shopLike(t, rt), http.MethodGet, "/customers/ada", "")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, problemOf(t, rec).Detail, "its owner (instance p) serves no queries")
}

func TestRouting_GivenAStaleReadWithoutOwner_ThenTheLocalCopyAnswersAtOnce(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Copy: true}
	}}
	start := time.Now()
	rec := do(shopLike(t, rt), http.MethodGet, "/customers/ada?stale=ok", "")
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Less(t, time.Since(start), ownerWait, "a stale read does not wait for an owner")
	assert.Empty(t, rec.Header().Get(HeaderStale), "the fake reader read no view")
	assert.Zero(t, rt.refreshes.Load())
}

func TestRouting_GivenABadTimeoutHeader_Then400(t *testing.T) {
	rec := do(shopLike(t, &fakeRuntime{}), http.MethodGet, "/customers/ada", "", HeaderTimeout, "soon")
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, problemOf(t, rec).Detail, HeaderTimeout)
}

func TestRouting_GivenTheCallersBudgetRunsOut_Then504(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{} // rebalancing: no owner known
	}}
	rec := do(shopLike(t, rt), http.MethodGet, "/customers/ada", "", HeaderTimeout, "50ms")
	assert.Equal(t, http.StatusGatewayTimeout, rec.Code, rec.Body.String())
}

func TestMembership_GivenAQueryAddress_ThenSelfAndGroups(t *testing.T) {
	rec := do(shopLike(t, &fakeRuntime{self: streamfold.Member{Instance: "a", Query: "a:1"}}), http.MethodGet, "/membership", "")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"self":{"instance":"a","query":"a:1"},"groups":[{"group":"g","state":"Stable","members":[{"instance":"a","query":"a:1"}],"owners":null}]}`, rec.Body.String())

	rec = do(shopLike(t, &fakeRuntime{}), http.MethodGet, "/membership", "")
	assert.Equal(t, http.StatusNotFound, rec.Code, "an instance serving no queries routes none")
}

func TestServer_GivenAKeyRouteServedHere_ThenTheReaderAnswers(t *testing.T) {
	rt := &fakeRuntime{place: func(string, string) streamfold.Placement {
		return streamfold.Placement{Replica: true}
	}}
	srv := shopLike(t, rt)
	rec := do(srv, http.MethodGet, "/carts/c1/events", "")
	assert.JSONEq(t, `{"table":"cart-history-table","key":"c1"}`, rec.Body.String())
	rec = do(srv, http.MethodGet, "/customers/absent/carts", "")
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestHandle_GivenAKeyVariableThePathLacks_ThenTheMistakeIsCaughtAtRegistration(t *testing.T) {
	srv, err := New(&fakeRuntime{}, Options{Listener: listen(t)})
	require.NoError(t, err)
	ok := func(*http.Request) (int, any, error) { return http.StatusOK, nil, nil }
	assert.PanicsWithValue(t, "serve: route GET /orders/{order} has no variable {id} to find its key in", func() {
		srv.Handle(http.MethodGet, "/orders/{order}", ok, KeyFromPath("orders-table", "id"))
	})
}
