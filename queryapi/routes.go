package queryapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"
)

// Routes is a table of routes — a method and a gorilla/mux path template
// each — matched as an API matches its own: against the escaped path, never
// cleaned, the first route whose path and method match winning. A proxy in
// front of an API (a router sending each key to its owner) uses one to find
// the routes it treats apart and their variables.
//
// A gorilla/mux Router holds the routes: it checks the templates, and a
// table with a route that is not plain matches through it. A plain route
// has literal text and whole-segment variables with the default pattern
// ("/carts/{id}/commands"); when every route is plain, Match compares
// strings and returns the variables in a slice the caller owns, without the
// Router's regexps and its map per request. The tests hold both ways of
// matching to the same answers.
//
// Concurrency: Add from one goroutine before the first Match; Match is safe
// for concurrent use.
type Routes struct {
	mux    *mux.Router
	routes []routeEntry
	plain  bool // every route is plain: Match never asks mux
}

type routeEntry struct {
	method string // upper case, as mux.Route.Methods keeps it
	tpl    template
	mr     *mux.Route
	names  []string // the variables' names, in template order
}

// NewRoutes returns an empty table.
func NewRoutes() *Routes {
	return &Routes{mux: mux.NewRouter().UseEncodedPath().SkipClean(true), plain: true}
}

// Add adds method requests on path, a gorilla/mux path template, and
// returns the route's index: what Match answers for it. A malformed
// template is an error (its route never matches).
func (rs *Routes) Add(method, path string) (int, error) {
	return rs.add(method, path, nil)
}

// add is Add with the route's handler on the mux route, for Walk.
func (rs *Routes) add(method, path string, h http.Handler) (int, error) {
	mr := rs.mux.NewRoute().Path(path)
	if h != nil {
		mr = mr.Handler(h)
	}
	mr = mr.Methods(method)
	r := routeEntry{method: strings.ToUpper(method), mr: mr}
	r.tpl, r.names = compileTemplate(path)
	err := mr.GetError()
	if err != nil || !r.tpl.plain {
		rs.plain = false
	}
	if r.names == nil && err == nil {
		r.names, _ = mr.GetVarNames()
	}
	rs.routes = append(rs.routes, r)
	return len(rs.routes) - 1, err
}

// Names is the variable names of route i, in template order: the order of
// the values Match returns.
func (rs *Routes) Names(i int) []string { return rs.routes[i].names }

// Match finds the route that serves req: the index of the first whose path
// and method match, and its variables' values (escaped, in the order of
// Names) appended to vars; -1 when none matches, and then methodMismatch
// reports that some route's path matched but not its method (a 405 rather
// than a 404).
func (rs *Routes) Match(req *http.Request, vars []string) (i int, values []string, methodMismatch bool) {
	if !rs.plain {
		return rs.muxMatch(req, vars)
	}
	path := escapedPath(req.URL)
	for i := range rs.routes {
		r := &rs.routes[i]
		n := len(vars)
		var ok bool
		if vars, ok = r.tpl.match(path, vars); !ok {
			continue
		}
		if r.method != req.Method {
			methodMismatch = true
			vars = vars[:n]
			continue
		}
		return i, vars, false
	}
	return -1, vars, methodMismatch
}

// escapedPath is u.EscapedPath(), without its escaping pass over a path of
// bytes that are never escaped (letters, digits, "-._~/"), as most are.
func escapedPath(u *url.URL) string {
	if u.RawPath == "" {
		p := u.Path
		i := 0
		for i < len(p) && plainPathByte[p[i]] {
			i++
		}
		if i == len(p) && p != "" {
			return p
		}
	}
	return u.EscapedPath()
}

var plainPathByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", byte(c)) >= 0
	}
	return t
}()

// muxMatch is Match by the gorilla/mux Router.
func (rs *Routes) muxMatch(req *http.Request, vars []string) (int, []string, bool) {
	var m mux.RouteMatch
	if !rs.mux.Match(req, &m) || m.MatchErr != nil {
		return -1, vars, m.MatchErr == mux.ErrMethodMismatch
	}
	for i := range rs.routes {
		r := &rs.routes[i]
		if r.mr != m.Route {
			continue
		}
		for _, name := range r.names {
			vars = append(vars, m.Vars[name])
		}
		return i, vars, false
	}
	return -1, vars, false
}

// template is a path template compiled for matching without regexps. A
// plain one alternates literal text and variables: lits[0], a variable,
// lits[1], …, lits[len(lits)-1]. Every variable follows a '/' and ends the
// path or precedes a '/', and matches as mux's default pattern [^/]+ does:
// one or more bytes up to the next '/'.
type template struct {
	plain bool
	lits  []string
}

// compileTemplate compiles tpl; names is nil unless it is plain.
func compileTemplate(tpl string) (t template, names []string) {
	if !strings.HasPrefix(tpl, "/") {
		return template{}, nil
	}
	rest := tpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return template{}, nil
			}
			t.lits = append(t.lits, rest)
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return template{}, nil
		}
		end += open
		lit, name, after := rest[:open], rest[open+1:end], rest[end+1:]
		switch {
		case strings.IndexByte(lit, '}') >= 0,
			name == "", strings.ContainsAny(name, ":{"), // a pattern of its own, or nested braces
			!strings.HasSuffix(lit, "/"), after != "" && after[0] != '/': // part of a segment
			return template{}, nil
		}
		for _, n := range names {
			if n == name {
				return template{}, nil // mux keeps the last value of a repeated name
			}
		}
		t.lits = append(t.lits, lit)
		names = append(names, name)
		rest = after
	}
	t.plain = true
	return t, names
}

// match reports whether path matches t, appending the variables' values to
// vars.
func (t *template) match(path string, vars []string) ([]string, bool) {
	n := len(vars)
	for i, lit := range t.lits {
		if !strings.HasPrefix(path, lit) {
			return vars[:n], false
		}
		path = path[len(lit):]
		if i == len(t.lits)-1 {
			break
		}
		end := strings.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		if end == 0 {
			return vars[:n], false
		}
		vars = append(vars, path[:end])
		path = path[end:]
	}
	if path != "" {
		return vars[:n], false
	}
	return vars, true
}
