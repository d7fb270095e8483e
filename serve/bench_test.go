package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

type benchCustomer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	State string `json:"state"`
}

var benchCustomers = tables.Table[benchCustomer]{Name: "customers-table", Codec: codecs.JSON[benchCustomer]{}}

type benchStores struct {
	*tables.Engine
	partitions int
}

func (s benchStores) PartitionsOf(string) int { return s.partitions }

// BenchmarkServer_GetByKey is the work of one GET /customers/{id} that this
// instance owns, from the router to the written document, on a server
// registered as the shop registers its routes (a LevelDB view behind it, an
// info-level logger): the serving path without net/http's reading and
// writing of the connection.
func BenchmarkServer_GetByKey(b *testing.B) {
	const partitions, keys = 4, 1000
	e, err := tables.NewEngine(b.TempDir())
	require.NoError(b, err)
	b.Cleanup(func() { _ = e.Close() })
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = fmt.Sprintf("customer-%06d", i)
	}
	for p := range partitions {
		st, err := e.Builder()(benchCustomers.Name, int32(p))
		require.NoError(b, err)
		require.NoError(b, st.Open())
		for _, id := range ids {
			if tables.PartitionFor(id, partitions) == int32(p) {
				v, _ := benchCustomers.Codec.Encode(benchCustomer{ID: id, Name: "Customer " + id, Email: id + "@example.com", State: "active"})
				require.NoError(b, st.Set(id, v))
			}
		}
		require.NoError(b, st.MarkRecovered())
	}
	rt := &fakeRuntime{
		self: streamfold.Member{Instance: "i1", Query: "127.0.0.1:8080"},
		place: func(table, key string) streamfold.Placement {
			return streamfold.Placement{Partition: tables.PartitionFor(key, partitions), Copy: true, Restored: true,
				Assigned: true, Local: true, OwnerKnown: true, OwnerIsSelf: true}
		},
	}
	srv, err := New(rt, Options{Listener: listen(b), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	ok := func(r *http.Request) (int, any, error) { return http.StatusOK, nil, nil }
	customers := views.New(benchStores{e, partitions}, benchCustomers)
	srv.Resource("customers", customers, nil)
	srv.Handle(http.MethodPost, "/customers", ok, KeyFromBody(customers.Name()), OrLocal())
	srv.Handle(http.MethodPatch, "/customers/{id}", ok, KeyFromPath(customers.Name(), "id"))
	srv.Handle(http.MethodDelete, "/customers/{id}", ok, KeyFromPath(customers.Name(), "id"))
	srv.Get("/customers/{id}/carts", customers)
	srv.Handle(http.MethodPost, "/carts/{id}/commands", ok)
	srv.OperatorEndpoints()

	reqs := make([]*http.Request, keys)
	for i, id := range ids {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/customers/"+id, nil).WithContext(context.Background())
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			clear(w.h)
			srv.ServeHTTP(w, reqs[i%keys])
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
			i += 7
		}
	})
}

// processCPU is the CPU time (user and system, ns) this process has used:
// under other load a steadier figure than the time per operation.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchWriter is a ResponseWriter that keeps nothing but the status.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
