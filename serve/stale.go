package serve

import (
	"net/http"
	"strconv"

	"github.com/streamfold/streamfold/views"
)

// Stale reads (?stale=ok) answered from a local copy carry these.
const (
	// HeaderStale is "true" on an answer read from a copy that may lag.
	HeaderStale = "X-Stale"
	// HeaderLagRecords is how many changelog records the copy read lags,
	// when known.
	HeaderLagRecords = "X-Lag-Records"
)

// serveStale answers from whatever local copy there is, with its lag.
func (ro *router) serveStale(w http.ResponseWriter, r *http.Request) {
	ctx, reads := views.WithStaleReads(r.Context())
	ro.next.ServeHTTP(&staleWriter{ResponseWriter: w, reads: reads}, r.WithContext(ctx))
}

// staleWriter adds the lag headers of the stale reads just before the
// status is written.
type staleWriter struct {
	http.ResponseWriter
	reads       *views.StaleReads
	wroteHeader bool
}

func (s *staleWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.wroteHeader = true
		if lag, _, read := s.reads.Lag(); read {
			s.Header().Set(HeaderStale, "true")
			if lag >= 0 {
				s.Header().Set(HeaderLagRecords, strconv.FormatInt(lag, 10))
			}
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *staleWriter) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *staleWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
