package serve

import (
	"cmp"
	"context"
	"embed"
	"html"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/tables"
)

// The dashboard: GET /ui is one page (HTML, CSS and JavaScript embedded in
// the binary, nothing fetched from elsewhere) that polls the JSON under
// /ui/api/ and calls the operator endpoints (/dlq, /parked) and the
// application's own GET routes (the table browser).
//
//	GET /                     a page linking the dashboard and the built-in endpoints
//	GET /ui                   the dashboard
//	GET /ui/static/{file}     its stylesheet and script
//	GET /ui/api/access        whether the operator routes want the admin token (open)
//	GET /ui/api/topology      topics (kind, partitions, writers, readers) and groups
//	GET /ui/api/status        membership, lag, restore progress, counters, readiness
//	GET /ui/api/info          name, version (build info) and configuration (Options.Info)
//	GET /ui/api/resources     the application's GET routes the table browser can call
//
// GET / is the dashboard's: an application cannot serve its own there.
// The page and its assets are open: they hold no data. The JSON under
// /ui/api/ (but access) is operator information, served as the operator
// endpoints are (AdminOnly).

//go:embed ui
var uiAssets embed.FS

const (
	uiPath       = "/ui"
	uiStatic     = "/ui/static/"
	uiAPI        = "/ui/api/"
	uiLagTimeout = 5 * time.Second
)

// uiContentTypes are the types of the embedded files, by extension; a file
// of another extension is not served.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiCSP keeps the page to its own origin: no inline script, nothing from
// elsewhere, not framed.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; frame-ancestors 'none'"

// uiHandler serves the page and its assets and hands every other request to
// next.
type uiHandler struct {
	next http.Handler
	name string
}

func (u uiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		u.next.ServeHTTP(w, r)
		return
	}
	switch p := r.URL.Path; {
	case p == "/":
		u.serveFile(w, r, "ui/root.html")
	case p == uiPath || p == uiPath+"/":
		u.serveFile(w, r, "ui/index.html")
	case strings.HasPrefix(p, uiStatic) && !strings.Contains(p[len(uiStatic):], "/"):
		u.serveFile(w, r, "ui/"+p[len(uiStatic):])
	default:
		u.next.ServeHTTP(w, r)
	}
}

func (u uiHandler) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	ctype, ok := uiContentTypes[path.Ext(name)]
	b, err := fs.ReadFile(uiAssets, name)
	if !ok || err != nil {
		_ = queryapi.WriteProblem(w, r, queryapi.NotFound("no such dashboard file: "+r.URL.Path), 0)
		return
	}
	if path.Ext(name) == ".html" {
		b = []byte(strings.ReplaceAll(string(b), "{{name}}", html.EscapeString(u.name)))
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The assets change with the binary: always revalidate.
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// uiEndpoints registers the dashboard's JSON routes.
func (s *Server) uiEndpoints() {
	s.Handle(http.MethodGet, uiAPI+"access", s.uiAccess)
	s.Handle(http.MethodGet, uiAPI+"topology", s.uiTopology, AdminOnly())
	s.Handle(http.MethodGet, uiAPI+"status", s.uiStatus, AdminOnly())
	s.Handle(http.MethodGet, uiAPI+"info", s.uiInfo, AdminOnly())
	s.Handle(http.MethodGet, uiAPI+"resources", s.uiResources, AdminOnly())
}

// uiAccess tells the page whether to ask for the admin token before it
// calls the operator routes: "token" (one is configured), "open" (a
// loopback listener without one) or "disabled" (neither: they answer 403).
func (s *Server) uiAccess(*http.Request) (int, any, error) {
	mode := "open"
	switch {
	case s.opts.AdminToken != "":
		mode = "token"
	case !isLoopback(s.ln.Addr()):
		mode = "disabled"
	}
	return http.StatusOK, map[string]any{"operator": mode, "hint": s.opts.AdminTokenHint}, nil
}

// uiTopologyDoc is GET /ui/api/topology.
type uiTopologyDoc struct {
	Topics []streamfold.TopicInfo `json:"topics"`
	Groups []string               `json:"groups"`
}

func (s *Server) uiTopology(*http.Request) (int, any, error) {
	doc := uiTopologyDoc{Topics: s.rt.Topics(), Groups: s.rt.GroupNames()}
	if doc.Topics == nil {
		doc.Topics = []streamfold.TopicInfo{}
	}
	if doc.Groups == nil {
		doc.Groups = []string{}
	}
	return http.StatusOK, doc, nil
}

// uiStatusDoc is GET /ui/api/status: what changes, polled.
type uiStatusDoc struct {
	Time       time.Time                    `json:"time"`
	Self       streamfold.Member            `json:"self"`
	Recovered  bool                         `json:"recovered"`
	Membership []streamfold.GroupState      `json:"membership"`
	Lag        []streamfold.PartitionLag    `json:"lag"`
	LagError   string                       `json:"lagError,omitempty"`
	Progress   map[string][]tables.Progress `json:"progress"`
	// Stats are the groups' counters as the runtime gives them; Counters
	// their totals, which the page turns into rates between two polls.
	Stats    map[string]processors.Snapshot `json:"stats"`
	Counters map[string]uiGroupCounters     `json:"counters"`
}

// uiGroupCounters are a group's totals the page turns into rates.
type uiGroupCounters struct {
	Processed   int64 `json:"processed"`
	Applied     int64 `json:"applied"`
	Duplicates  int64 `json:"duplicates"`
	DeadLetters int64 `json:"deadLetters"`
}

func (s *Server) uiStatus(r *http.Request) (int, any, error) {
	doc := uiStatusDoc{
		Time:       time.Now().UTC(),
		Self:       s.rt.Self(),
		Recovered:  s.rt.Recovered(),
		Membership: s.rt.Membership(),
		Progress:   map[string][]tables.Progress{},
		Stats:      map[string]processors.Snapshot{},
		Counters:   map[string]uiGroupCounters{},
	}
	if doc.Membership == nil {
		doc.Membership = []streamfold.GroupState{}
	}
	ctx, cancel := context.WithTimeout(r.Context(), uiLagTimeout)
	defer cancel()
	lag, err := s.rt.Lag(ctx)
	if err != nil {
		// The rest of the page is still worth showing: say why lag is not.
		doc.LagError = err.Error()
	}
	if lag == nil {
		lag = []streamfold.PartitionLag{}
	}
	doc.Lag = lag
	for table, ps := range s.rt.Progress() {
		out := slices.Clone(ps)
		slices.SortFunc(out, func(a, b tables.Progress) int { return cmp.Compare(a.Partition, b.Partition) })
		doc.Progress[table] = out
	}
	for g, snap := range s.rt.Stats() {
		doc.Stats[g] = snap
		c := uiGroupCounters{Processed: snap.Processed, Applied: snap.Applied, Duplicates: snap.Duplicates}
		for _, n := range snap.DeadLetters {
			c.DeadLetters += n
		}
		doc.Counters[g] = c
	}
	return http.StatusOK, doc, nil
}

// uiInfoDoc is GET /ui/api/info.
type uiInfoDoc struct {
	Name    string            `json:"name"`
	Self    streamfold.Member `json:"self"`
	Version map[string]string `json:"version"`
	Config  map[string]any    `json:"config"`
}

func (s *Server) uiInfo(*http.Request) (int, any, error) {
	doc := uiInfoDoc{Name: s.opts.Name, Self: s.rt.Self(), Version: buildVersion(), Config: s.info}
	if doc.Config == nil {
		doc.Config = map[string]any{}
	}
	return http.StatusOK, doc, nil
}

// buildVersion is what the binary says of its build: module, version, Go
// and the VCS revision when it was built from a checkout.
func buildVersion() map[string]string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return map[string]string{"version": "unknown"}
	}
	out := map[string]string{"path": bi.Main.Path, "version": bi.Main.Version, "go": bi.GoVersion}
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
			out[st.Key] = st.Value
		}
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/streamfold/streamfold" {
			out["streamfold"] = d.Version
		}
	}
	return out
}

// uiResource is one resource of the application (Resource): its key route
// and its listing with the filters it takes.
type uiResource struct {
	Name string `json:"name"`
	// Get is the key route, "/{name}/{id}"; empty without a reader.
	Get string `json:"get,omitempty"`
	// List is the listing route, "/{name}"; empty without a lister.
	List string `json:"list,omitempty"`
	// Filters are the listing's query parameters; FilterRequired: a
	// listing needs one.
	Filters        []string `json:"filters"`
	FilterRequired bool     `json:"filterRequired"`
}

// uiLookup is one GET route that reads one key: a resource's key route, a
// Get, a keyed Handle.
type uiLookup struct {
	Path     string `json:"path"`
	Variable string `json:"variable"`
	Table    string `json:"table"`
}

// uiLister is what a Lister says of its filters; a queryapi.Lister that is
// not one is listed without filters.
type uiLister interface {
	uiFilters() (params []string, required bool)
}

func (l *Lister[V]) uiFilters() ([]string, bool) {
	return slices.Sorted(maps.Keys(l.Filters)), l.Filtered
}

// noteResource records a resource for the table browser.
func (s *Server) noteResource(name string, r Reader, l queryapi.Lister) {
	res := uiResource{Name: name, Filters: []string{}}
	if r != nil {
		res.Get = "/" + name + "/{id}"
	}
	if l != nil {
		res.List = "/" + name
		if ul, ok := l.(uiLister); ok {
			res.Filters, res.FilterRequired = ul.uiFilters()
		}
	}
	s.resources = append(s.resources, res)
}

// noteLookup records a keyed GET route for the table browser.
func (s *Server) noteLookup(method, path string, kr keyRoute) {
	if method != http.MethodGet || kr.table == "" || kr.bodyKey || kr.admin {
		return
	}
	s.lookups = append(s.lookups, uiLookup{Path: path, Variable: kr.variable, Table: kr.table})
}

func (s *Server) uiResources(*http.Request) (int, any, error) {
	res := slices.Clone(s.resources)
	slices.SortFunc(res, func(a, b uiResource) int { return strings.Compare(a.Name, b.Name) })
	lk := slices.Clone(s.lookups)
	slices.SortFunc(lk, func(a, b uiLookup) int { return strings.Compare(a.Path, b.Path) })
	if res == nil {
		res = []uiResource{}
	}
	if lk == nil {
		lk = []uiLookup{}
	}
	return http.StatusOK, map[string]any{"resources": res, "lookups": lk}, nil
}
