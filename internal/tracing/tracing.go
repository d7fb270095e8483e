// Package tracing owns how a W3C trace context travels in a Kafka record's
// headers: the CloudEvents distributed-tracing extension in binary mode,
// ce_traceparent and ce_tracestate. Records written by other Kafka clients
// that carry the plain traceparent / tracestate headers (the OpenTelemetry
// instrumentations of sarama, franz-go and the Java client do) are read too;
// the ce_ form wins when a record has both.
//
// The emitter (a record's producer) injects, the processor groups extract
// and inject again into what they write while handling a record. Nothing
// here is called when tracing is off.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"

	"github.com/streamfold/streamfold/codecs"
)

// Record headers of the trace context.
const (
	HeaderTraceParent = "ce_traceparent"
	HeaderTraceState  = "ce_tracestate"
	plainTraceParent  = "traceparent"
	plainTraceState   = "tracestate"
)

// propagator is W3C Trace Context: the traceparent and tracestate fields.
var propagator = propagation.TraceContext{}

// Extract returns ctx with the remote span context that headers carry (get
// looks one header up; nil when absent), or ctx itself when they carry none.
func Extract(ctx context.Context, get func(key string) []byte) context.Context {
	if get(HeaderTraceParent) == nil && get(plainTraceParent) == nil {
		return ctx
	}
	return propagator.Extract(ctx, reader(get))
}

// Inject returns the headers that carry ctx's span context, as pairs of key
// and value (traceparent first, tracestate when there is one); none when
// ctx has no valid span context.
func Inject(ctx context.Context) []codecs.Header {
	var w writer
	propagator.Inject(ctx, &w)
	return w.headers
}

// IsTraceHeader reports whether key is one of the headers Inject writes, so
// that a record passed on replaces them instead of carrying two.
func IsTraceHeader(key string) bool {
	return key == HeaderTraceParent || key == HeaderTraceState
}

// reader is a propagation.TextMapCarrier over a record's headers: the
// propagator asks for traceparent and tracestate.
type reader func(key string) []byte

func (r reader) Get(key string) string {
	switch key {
	case plainTraceParent:
		return r.first(HeaderTraceParent, plainTraceParent)
	case plainTraceState:
		return r.first(HeaderTraceState, plainTraceState)
	}
	return ""
}

func (r reader) first(keys ...string) string {
	for _, k := range keys {
		if v := r(k); v != nil {
			return string(v)
		}
	}
	return ""
}

func (r reader) Set(string, string) {}
func (r reader) Keys() []string     { return []string{plainTraceParent, plainTraceState} }

// writer collects what the propagator injects under the ce_ names.
type writer struct{ headers []codecs.Header }

func (w *writer) Get(string) string { return "" }
func (w *writer) Keys() []string    { return nil }
func (w *writer) Set(key, value string) {
	switch key {
	case plainTraceParent:
		w.headers = append(w.headers, codecs.Header{Key: HeaderTraceParent, Value: []byte(value)})
	case plainTraceState:
		w.headers = append(w.headers, codecs.Header{Key: HeaderTraceState, Value: []byte(value)})
	}
}
