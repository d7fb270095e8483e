package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold"
)

const (
	traceTestTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceTestParent  = "00-" + traceTestTraceID + "-00f067aa0ba902b7-01"
)

// tracedServer is a server with one handled route, one keyed route owned
// by owner (nil: here) and a route whose handler fails, traced into spans.
func tracedServer(t *testing.T, owner string) (*Server, *tracetest.SpanRecorder) {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	rt := &fakeRuntime{self: streamfold.Member{Instance: "a", Query: "a:1"}, place: func(string, string) streamfold.Placement {
		if owner == "" {
			return streamfold.Placement{Assigned: true, Local: true, Copy: true, Restored: true}
		}
		return streamfold.Placement{OwnerKnown: true, Owner: streamfold.Member{Instance: "b", Query: owner}}
	}}
	srv, err := New(rt, Options{Listener: listen(t), TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
	require.NoError(t, err)
	srv.Handle(http.MethodPost, "/carts/{id}/commands", func(r *http.Request) (int, any, error) {
		assert.Equal(t, traceTestTraceID, trace.SpanContextFromContext(r.Context()).TraceID().String(), "the handler runs in the request's trace")
		return http.StatusOK, map[string]string{"ok": "yes"}, nil
	})
	srv.Resource("customers", &fakeReader{table: "customers-table"}, nil)
	srv.Handle(http.MethodGet, "/broken", func(*http.Request) (int, any, error) {
		return 0, nil, io.ErrUnexpectedEOF
	})
	return srv, spans
}

func TestTracing_GivenATracerProvider_ThenEachRequestIsAServerSpanNamedByItsRouteInTheCallersTrace(t *testing.T) {
	srv, spans := tracedServer(t, "")
	require.Equal(t, http.StatusOK, do(srv, http.MethodPost, "/carts/c1/commands", `{}`, "traceparent", traceTestParent).Code)
	require.Equal(t, http.StatusInternalServerError, do(srv, http.MethodGet, "/broken", "").Code)
	require.Equal(t, http.StatusNotFound, do(srv, http.MethodGet, "/nowhere/x", "").Code)

	ended := spans.Ended()
	require.Len(t, ended, 3)
	cmd, broken, unmatched := ended[0], ended[1], ended[2]
	assert.Equal(t, "POST /carts/{id}/commands", cmd.Name())
	assert.Equal(t, trace.SpanKindServer, cmd.SpanKind())
	assert.Equal(t, traceTestTraceID, cmd.SpanContext().TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", cmd.Parent().SpanID().String())
	assert.Equal(t, codes.Unset, cmd.Status().Code)

	assert.Equal(t, "GET /broken", broken.Name())
	assert.False(t, broken.Parent().IsValid(), "no traceparent: a new trace")
	assert.Equal(t, codes.Error, broken.Status().Code, "a 5xx answer")

	assert.Equal(t, "GET", unmatched.Name(), "no route: the method alone, not a name per path")
}

// A request forwarded to the key's owner carries the trace on: the owner's
// span is a child of this instance's.
func TestTracing_GivenAKeyOwnedElsewhere_ThenTheForwardedRequestCarriesTheServerSpansContext(t *testing.T) {
	var got string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		_, _ = io.WriteString(w, `{}`)
	}))
	defer owner.Close()
	srv, spans := tracedServer(t, strings.TrimPrefix(owner.URL, "http://"))

	require.Equal(t, http.StatusOK, do(srv, http.MethodGet, "/customers/ada", "", "traceparent", traceTestParent).Code)
	ended := spans.Ended()
	require.Len(t, ended, 1)
	assert.Equal(t, "GET /customers/{id}", ended[0].Name(), "named by its route although the API here never saw it")
	parts := strings.Split(got, "-")
	require.Len(t, parts, 4, "forwarded traceparent %q", got)
	assert.Equal(t, traceTestTraceID, parts[1])
	assert.Equal(t, ended[0].SpanContext().SpanID().String(), parts[2], "the owner continues this instance's span, not the caller's")
}
