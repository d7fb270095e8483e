package serve

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the spans' source, as OpenTelemetry asks.
const instrumentation = "github.com/streamfold/streamfold/serve"

// httpPropagator reads and writes the W3C traceparent and tracestate
// headers of requests.
var httpPropagator = propagation.TraceContext{}

// tracedHandler serves every request in a server span, a child of the
// trace context of the request's traceparent header (a new trace without
// one). The span is named by the route's template once the API has matched
// it (nameSpan); the emitters of the handlers send their records in
// children of it.
type tracedHandler struct {
	tracer trace.Tracer
	next   http.Handler
}

func (h tracedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := httpPropagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, r.Method,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
		))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w}
	h.next.ServeHTTP(sw, r.WithContext(ctx))
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// nameSpan is a queryapi guard that lets every request through: it names
// the request's span by its route, "POST /carts/{id}/commands", as
// OpenTelemetry's HTTP conventions ask (the path would make a name per
// key).
func nameSpan(r *http.Request, route string) error {
	span := trace.SpanFromContext(r.Context())
	span.SetName(r.Method + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
	return nil
}

// injectTrace writes the trace context of r's span into a request
// forwarded to a key's owner, whose server span becomes its child.
func injectTrace(r *http.Request, forwarded *http.Request) {
	httpPropagator.Inject(r.Context(), propagation.HeaderCarrier(forwarded.Header))
}

// statusWriter remembers the status written. Flush and Unwrap pass through,
// so that a stream of server-sent events and http.ResponseController work
// through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
