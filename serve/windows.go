package serve

import (
	"fmt"
	"net/http"
	"time"

	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/views"
)

// Windows serves a windowed table (processors.AggregateWindows) as the
// resource name: GET /{name}/{id} answers the key's windows, and
// GET /{name}/{id}/windows?from=&to= those that overlap [from, to) (RFC 3339
// times, each optional; anything else is a 400 problem) as
// {"key":...,"windows":[...]}. Both are served at the owner of the key's
// partition, like Resource.
func Windows[A any](s *Server, name string, v *views.View[processors.Windowed[A]]) {
	s.Resource(name, v, nil)
	s.Handle(http.MethodGet, "/"+name+"/{id}/windows", func(req *http.Request) (int, any, error) {
		q := req.URL.Query()
		from, err := queryTime(q.Get("from"), "from")
		if err != nil {
			return 0, nil, err
		}
		to, err := queryTime(q.Get("to"), "to")
		if err != nil {
			return 0, nil, err
		}
		if !from.IsZero() && !to.IsZero() && !from.Before(to) {
			return 0, nil, queryapi.BadRequest("from must be before to")
		}
		id := queryapi.Vars(req)["id"]
		w, err := v.Get(req.Context(), id)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, processors.Windowed[A]{Key: id, Windows: w.Between(from, to)}, nil
	}, KeyFromPath(v.Name(), "id"))
}

func queryTime(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, queryapi.BadRequest(fmt.Sprintf("%s must be an RFC 3339 time, like 2026-12-01T12:00:00Z", name))
	}
	return t, nil
}
