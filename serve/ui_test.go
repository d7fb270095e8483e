package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

func TestUI_GivenAServer_ThenThePageAndItsAssetsAreServedWithTheirTypes(t *testing.T) {
	srv, err := New(&fakeRuntime{}, Options{Listener: listen(t), Name: "app<1>", AdminToken: "secret"})
	require.NoError(t, err)

	cases := []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `href="/ui"`},
		{"/ui", "text/html; charset=utf-8", `<script src="/ui/static/app.js" defer></script>`},
		{"/ui/", "text/html; charset=utf-8", `id="graph"`},
		{"/ui/static/app.js", "text/javascript; charset=utf-8", "'/ui/api/status'"},
		{"/ui/static/app.css", "text/css; charset=utf-8", ":root"},
	}
	for _, tc := range cases {
		// The page holds no data: served without the admin token.
		rec := do(srv, http.MethodGet, tc.path, "")
		require.Equal(t, http.StatusOK, rec.Code, tc.path)
		assert.Equal(t, tc.ctype, rec.Header().Get("Content-Type"), tc.path)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), tc.path)
		assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'", tc.path)
		assert.Contains(t, rec.Body.String(), tc.contains, tc.path)
		head := do(srv, http.MethodHead, tc.path, "")
		assert.Equal(t, http.StatusOK, head.Code, tc.path)
		assert.Empty(t, head.Body.String(), tc.path)
	}
	// The application's name is text in the page, not markup.
	page := do(srv, http.MethodGet, "/ui", "").Body.String()
	assert.Contains(t, page, "app&lt;1&gt;")
	assert.NotContains(t, page, "app<1>")

	for _, path := range []string{"/ui/static/nope.js", "/ui/static/index.txt", "/ui/static/sub/app.js", "/ui/static/"} {
		rec := do(srv, http.MethodGet, path, "")
		assert.Equal(t, http.StatusNotFound, rec.Code, path)
		assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), path)
	}
	assert.Equal(t, http.StatusMethodNotAllowed, do(srv, http.MethodPost, "/ui/api/topology", "").Code,
		"other methods go to the API, which knows the route only for GET")
}

// externalRef finds references to another origin: absolute or
// protocol-relative URLs in src, href, action, url() or @import.
var externalRef = regexp.MustCompile(`(?i)((src|href|action)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']?)(https?:)?//`)

// anyURL finds any absolute http(s) URL at all.
var anyURL = regexp.MustCompile(`(?i)https?://[^\s"'` + "`" + `)]*`)

func TestUI_GivenTheEmbeddedFiles_ThenNoneReachesAnotherOrigin(t *testing.T) {
	var names []string
	require.NoError(t, fs.WalkDir(uiAssets, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, path)
		b, err := fs.ReadFile(uiAssets, path)
		require.NoError(t, err)
		assert.Empty(t, externalRef.FindAllString(string(b), -1), "%s refers to another origin", path)
		for _, u := range anyURL.FindAllString(string(b), -1) {
			// The SVG namespace is a name, never fetched.
			assert.Equal(t, "http://www.w3.org/2000/svg", u, "%s has an absolute URL", path)
		}
		return nil
	}))
	assert.ElementsMatch(t, []string{"ui/app.css", "ui/app.js", "ui/index.html", "ui/root.html"}, names)

	// Every asset a page names is embedded.
	ref := regexp.MustCompile(`(?:src|href)="(/ui/static/[^"]+)"`)
	srv, err := New(&fakeRuntime{}, Options{Listener: listen(t)})
	require.NoError(t, err)
	for _, page := range []string{"ui/index.html", "ui/root.html"} {
		b, err := fs.ReadFile(uiAssets, page)
		require.NoError(t, err)
		ms := ref.FindAllStringSubmatch(string(b), -1)
		require.NotEmpty(t, ms, page)
		for _, m := range ms {
			assert.Equal(t, http.StatusOK, do(srv, http.MethodGet, m[1], "").Code, "%s names %s", page, m[1])
		}
	}
}

func TestUIAPI_GivenAnAdminToken_ThenOperatorInformationNeedsIt(t *testing.T) {
	srv, err := New(&fakeRuntime{}, Options{Listener: listen(t), Name: "app", AdminToken: "secret", AdminTokenHint: "--admin-token"})
	require.NoError(t, err)
	for _, path := range []string{"/ui/api/topology", "/ui/api/status", "/ui/api/info", "/ui/api/resources"} {
		rec := do(srv, http.MethodGet, path, "")
		assert.Equal(t, http.StatusUnauthorized, rec.Code, path)
		assert.Equal(t, `Bearer realm="app-admin"`, rec.Header().Get("WWW-Authenticate"), path)
		assert.Equal(t, http.StatusOK, do(srv, http.MethodGet, path, "", "Authorization", "Bearer secret").Code, path)
	}
	// The page asks whether to ask for the token: that is open.
	rec := do(srv, http.MethodGet, "/ui/api/access", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"operator":"token","hint":"--admin-token"}`, rec.Body.String())

	open, err := New(&fakeRuntime{}, Options{Listener: listen(t)})
	require.NoError(t, err)
	rec = do(open, http.MethodGet, "/ui/api/access", "")
	assert.JSONEq(t, `{"operator":"open","hint":""}`, rec.Body.String(), "a loopback listener without a token")
	assert.Equal(t, http.StatusOK, do(open, http.MethodGet, "/ui/api/status", "").Code)
}

func TestUIAPI_GivenARuntime_ThenTopologyAndStatusSayWhatRuns(t *testing.T) {
	self := streamfold.Member{Instance: "i1", Query: "127.0.0.1:1"}
	lags := []streamfold.PartitionLag{
		{Group: "g", Topic: "in", Partition: 0, Committed: 3, End: 5, Lag: 2},
		{Group: "g", Topic: "in", Partition: 1, Committed: -1, End: 0, Lag: 0},
	}
	rt := &fakeRuntime{
		self: self,
		topics: []streamfold.TopicInfo{
			{Spec: tables.Spec{Name: "g-table", Kind: tables.KindTable, Partitions: 2}, Writers: []string{"g"}, Readers: []string{"query api"}},
			{Spec: tables.Spec{Name: "in", Kind: tables.KindStream, Partitions: 2}, Writers: []string{"http /in"}, Readers: []string{"g"}},
		},
		lag: func(context.Context) ([]streamfold.PartitionLag, error) { return lags, nil },
		progress: map[string][]tables.Progress{"g-table": {
			{Topic: "g-table", Partition: 1, Recovered: false, StartOffset: 0, Offset: 4, HighWatermark: 10, Records: 5},
			{Topic: "g-table", Partition: 0, Recovered: true, Offset: 9, HighWatermark: 10, Records: 10},
		}},
		stats: map[string]processors.Snapshot{"g": {Processed: 7, Applied: 5, Duplicates: 1, DeadLetters: map[string]int64{"decode": 1, "handler": 2}}},
	}
	rt.recovered.Store(true)
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)

	rec := do(srv, http.MethodGet, "/ui/api/topology", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var topo struct {
		Topics []struct {
			Name, Kind       string
			Partitions       int
			Writers, Readers []string
		}
		Groups []string
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &topo))
	require.Len(t, topo.Topics, 2)
	assert.Equal(t, "g-table", topo.Topics[0].Name)
	assert.Equal(t, "table", topo.Topics[0].Kind, "the page tells tables from streams by kind")
	assert.Equal(t, []string{"http /in"}, topo.Topics[1].Writers)
	assert.Equal(t, []string{"g"}, topo.Topics[1].Readers)
	assert.Equal(t, []string{"g"}, topo.Groups)

	rec = do(srv, http.MethodGet, "/ui/api/status", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var st uiStatusDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.True(t, st.Recovered)
	assert.Equal(t, self, st.Self)
	assert.Equal(t, lags, st.Lag)
	assert.Empty(t, st.LagError)
	assert.Equal(t, "g", st.Membership[0].Group)
	require.Len(t, st.Progress["g-table"], 2)
	assert.Equal(t, int32(0), st.Progress["g-table"][0].Partition, "by partition")
	assert.Equal(t, int64(4), st.Progress["g-table"][1].Offset)
	assert.Equal(t, uiGroupCounters{Processed: 7, Applied: 5, Duplicates: 1, DeadLetters: 3}, st.Counters["g"])
	assert.Equal(t, int64(2), st.Stats["g"].DeadLetters["handler"])
	assert.False(t, st.Time.IsZero())
}

func TestUIAPI_GivenLagFails_ThenTheRestIsShownAndTheErrorSaid(t *testing.T) {
	rt := &fakeRuntime{lag: func(context.Context) ([]streamfold.PartitionLag, error) { return nil, errors.New("lag: broker down") }}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	rec := do(srv, http.MethodGet, "/ui/api/status", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var st map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, "lag: broker down", st["lagError"])
	assert.Equal(t, []any{}, st["lag"])
	assert.NotNil(t, st["membership"])
}

func TestUIAPI_GivenRoutesAndInfo_ThenTheBrowserKnowsTheKeyRoutesAndTheInstanceItsConfiguration(t *testing.T) {
	srv, err := New(&fakeRuntime{}, Options{Listener: listen(t), Info: map[string]any{"partitions": 8}})
	require.NoError(t, err)
	ok := func(*http.Request) (int, any, error) { return http.StatusOK, map[string]string{}, nil }
	customers := &fakeReader{table: "customers-table"}
	srv.Resource("customers", customers, &Lister[struct{}]{Filters: map[string]string{"state": "by-state", "email": "by-email"}})
	srv.Resource("carts", nil, &Lister[struct{}]{Filters: map[string]string{"product": "by-product"}, Filtered: true})
	srv.Resource("products", &fakeReader{table: "products-table"}, nil)
	srv.Get("/customers/{id}/carts", &fakeReader{table: "customer-carts-table"})
	srv.Handle(http.MethodGet, "/carts/{id}/events", ok, KeyFromPath("carts-table", "id"))
	srv.Handle(http.MethodPatch, "/customers/{id}", ok, KeyFromPath("customers-table", "id"))
	srv.Handle(http.MethodPost, "/customers", ok, KeyFromBody("customers-table"))
	srv.Handle(http.MethodGet, "/secret/{id}", ok, KeyFromPath("customers-table", "id"), AdminOnly())
	srv.Handle(http.MethodGet, "/health/deep", ok)

	rec := do(srv, http.MethodGet, "/ui/api/resources", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{
		"resources": [
			{"name":"carts","list":"/carts","filters":["product"],"filterRequired":true},
			{"name":"customers","get":"/customers/{id}","list":"/customers","filters":["email","state"],"filterRequired":false},
			{"name":"products","get":"/products/{id}","filters":[],"filterRequired":false}
		],
		"lookups": [
			{"path":"/carts/{id}/events","variable":"id","table":"carts-table"},
			{"path":"/customers/{id}","variable":"id","table":"customers-table"},
			{"path":"/customers/{id}/carts","variable":"id","table":"customer-carts-table"},
			{"path":"/products/{id}","variable":"id","table":"products-table"}
		]}`, rec.Body.String(), "GET routes of one key only: no writes, no operator routes, no unkeyed ones")

	rec = do(srv, http.MethodGet, "/ui/api/info", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var info uiInfoDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &info))
	assert.Equal(t, "streamfold", info.Name)
	assert.Equal(t, map[string]any{"partitions": float64(8)}, info.Config)
	assert.True(t, strings.HasPrefix(info.Version["go"], "go"), "%v", info.Version)
}
