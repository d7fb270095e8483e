package queryapi

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shopRoutes are templates as an application registers them, in order,
// with a route registered twice for two methods and a literal segment after
// a variable.
var shopRoutes = []struct{ method, path string }{
	{"GET", "/healthz"},
	{"GET", "/readyz"},
	{"GET", "/metrics"},
	{"GET", "/customers/{id}"},
	{"GET", "/customers"},
	{"POST", "/customers"},
	{"PATCH", "/customers/{id}"},
	{"DELETE", "/customers/{id}"},
	{"GET", "/customers/{id}/carts"},
	{"GET", "/products/{id}"},
	{"post", "/carts/{id}/commands"},
	{"GET", "/carts/{id}/history"},
	{"GET", "/dlq/{group}/{partition}/{offset}"},
	{"POST", "/dlq/{group}/redrive"},
	{"GET", "/a.b/{x}/"},
	{"GET", "/"},
}

func newTable(t testing.TB, routes []struct{ method, path string }) *Routes {
	t.Helper()
	tb := NewRoutes()
	for i, r := range routes {
		j, _ := tb.Add(r.method, r.path)
		require.Equal(t, i, j)
	}
	return tb
}

type answer struct {
	route          int
	vars           []string
	methodMismatch bool
}

func (tb *Routes) both(req *http.Request) (fast, viaMux answer) {
	fast.route, fast.vars, fast.methodMismatch = tb.Match(req, nil)
	viaMux.route, viaMux.vars, viaMux.methodMismatch = tb.muxMatch(req, nil)
	for _, a := range []*answer{&fast, &viaMux} {
		if len(a.vars) == 0 {
			a.vars = nil // no variables, however the slice came to be empty
		}
	}
	return fast, viaMux
}

func TestRoutes_GivenPlainTemplates_ThenMatchAnswersAsMuxDoes(t *testing.T) {
	tb := newTable(t, shopRoutes)
	require.True(t, tb.plain)
	cases := []struct {
		method, target string
		want           answer
	}{
		{"GET", "/customers/c-1", answer{3, []string{"c-1"}, false}},
		{"PATCH", "/customers/c-1", answer{6, []string{"c-1"}, false}},
		{"PUT", "/customers/c-1", answer{-1, nil, true}},
		{"GET", "/customers/a%2Fb", answer{3, []string{"a%2Fb"}, false}},
		{"GET", "/customers/a%20b", answer{3, []string{"a%20b"}, false}},
		{"GET", "/customers/caf%C3%A9", answer{3, []string{"caf%C3%A9"}, false}},
		{"GET", "/customers/", answer{-1, nil, false}},
		{"GET", "/customers//carts", answer{-1, nil, false}},
		{"GET", "/customers/c-1/", answer{-1, nil, false}},
		{"GET", "/customers/c-1/carts", answer{8, []string{"c-1"}, false}},
		{"POST", "/carts/k/commands", answer{10, []string{"k"}, false}},
		{"GET", "/carts/k/commands", answer{-1, nil, true}},
		{"GET", "/dlq/g/0/17", answer{12, []string{"g", "0", "17"}, false}},
		{"GET", "/dlq/g/redrive/17", answer{12, []string{"g", "redrive", "17"}, false}},
		{"POST", "/dlq/g/redrive", answer{13, []string{"g"}, false}},
		{"GET", "/a.b/x/", answer{14, []string{"x"}, false}},
		{"GET", "/axb/x/", answer{-1, nil, false}},
		{"GET", "/", answer{15, nil, false}},
		{"GET", "/nope", answer{-1, nil, false}},
		{"GET", "/customers/.", answer{3, []string{"."}, false}},
		{"GET", "/customers/..", answer{3, []string{".."}, false}},
		{"GET", "/customers/c?x=1", answer{3, []string{"c"}, false}},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.target, nil)
		fast, viaMux := tb.both(req)
		assert.Equal(t, viaMux, fast, "%s %s", c.method, c.target)
		assert.Equal(t, c.want, fast, "%s %s", c.method, c.target)
	}
}

func TestRoutes_GivenATemplateThatIsNotPlain_ThenEveryRouteMatchesThroughMux(t *testing.T) {
	tb := newTable(t, []struct{ method, path string }{
		{"GET", "/customers/{id}"},
		{"GET", "/n/{id:[0-9]+}"},
		{"GET", "/p/x{id}"},
	})
	require.False(t, tb.plain)
	for _, c := range []struct {
		target string
		want   answer
	}{
		{"/customers/c", answer{0, []string{"c"}, false}},
		{"/n/12", answer{1, []string{"12"}, false}},
		{"/n/x", answer{-1, nil, false}},
		{"/p/xy", answer{2, []string{"y"}, false}},
	} {
		i, vars, mm := tb.Match(httptest.NewRequest("GET", c.target, nil), nil)
		assert.Equal(t, c.want, answer{i, vars, mm}, c.target)
	}
	i, _, mm := tb.Match(httptest.NewRequest("POST", "/n/1", nil), nil)
	assert.Equal(t, -1, i)
	assert.True(t, mm)
}

func TestRoutes_GivenTemplates_ThenOnlyWholeSegmentDefaultVariablesArePlain(t *testing.T) {
	for tpl, plain := range map[string]bool{
		"/":                    true,
		"/a/{id}":              true,
		"/a/{id}/b/{k}":        true,
		"/a/{id}/":             true,
		"/a.b+c/{id}":          true,
		"a/{id}":               false,
		"/a/{id:[0-9]+}":       false,
		"/a/x{id}":             false,
		"/a/{id}x":             false,
		"/a/{id}{k}":           false,
		"/a/{}":                false,
		"/a/{id":               false,
		"/a/id}":               false,
		"/a/{i{d}}":            false,
		"/a/{id}/{id}":         false,
		"/a/{id}/b/{k:.*}/{z}": false,
	} {
		got, _ := compileTemplate(tpl)
		assert.Equal(t, plain, got.plain, tpl)
	}
}

// TestRoutes_GivenRandomRequests_ThenMatchAnswersAsMuxDoes draws paths from
// the templates' own pieces and awkward bytes.
func TestRoutes_GivenRandomRequests_ThenMatchAnswersAsMuxDoes(t *testing.T) {
	tb := newTable(t, shopRoutes)
	pieces := []string{"customers", "carts", "commands", "dlq", "redrive", "a.b", "axb", "x", "",
		"%2F", "%25", "é", "a b", ".", "..", "{id}", "}", "healthz", "products", "history", "0", "\xff"}
	methods := []string{"GET", "POST", "PATCH", "DELETE", "PUT", "get", "OPTIONS"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(5) {
			b.WriteByte('/')
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(4) == 0 {
			b.WriteByte('/')
		}
		req, err := http.NewRequest(methods[rng.IntN(len(methods))], "http://h"+b.String(), nil)
		if err != nil {
			continue
		}
		fast, viaMux := tb.both(req)
		require.Equal(t, viaMux, fast, "%s %q", req.Method, b.String())
	}
}

func TestRoutes_GivenPaths_ThenEscapedPathIsURLs(t *testing.T) {
	for _, target := range []string{"/customers/c-1", "/a.b/x_y~z/", "/customers/a%2Fb", "/customers/a%20b", "/c/é", "/c/a+b", "/c/a!b", "/c/a@b:c", "/c/%41", "/", "*"} {
		u, err := url.ParseRequestURI(target)
		require.NoError(t, err, target)
		assert.Equal(t, u.EscapedPath(), escapedPath(u), target)
	}
	for _, p := range []string{"/a b", "/é", "", "/a%b", "/a/b/"} {
		u := &url.URL{Path: p}
		assert.Equal(t, u.EscapedPath(), escapedPath(u), p)
	}
}

func FuzzRoutes(f *testing.F) {
	tb := newTable(f, shopRoutes)
	for _, s := range []string{"/customers/c", "/customers/a%2Fb/carts", "/dlq/g/0/1", "/a.b/x/", "//", "/customers//"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "http://h"+path, nil)
		if err != nil {
			return
		}
		if got, want := escapedPath(req.URL), req.URL.EscapedPath(); got != want {
			t.Fatalf("%q: escapedPath %q, EscapedPath %q", path, got, want)
		}
		fast, viaMux := tb.both(req)
		if !slices.Equal(fast.vars, viaMux.vars) || fast.route != viaMux.route || fast.methodMismatch != viaMux.methodMismatch {
			t.Fatalf("%s %q: fast %+v, mux %+v", method, path, fast, viaMux)
		}
	})
}
