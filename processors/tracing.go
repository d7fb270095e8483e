package processors

import (
	"strconv"

	"github.com/lovoo/goka"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/internal/tracing"
)

// instrumentation names the spans' source, as OpenTelemetry asks.
const instrumentation = "github.com/streamfold/streamfold/processors"

// setTracing makes the group trace every record it handles with tp's
// tracer; nil turns tracing off. The runtime calls it before the group
// runs.
func (g *Group) setTracing(tp trace.TracerProvider) {
	if tp == nil {
		g.tracer = nil
		return
	}
	g.tracer = tp.Tracer(instrumentation)
}

// traceRecord starts the consumer span of r, a child of the trace context
// its headers carry (a new trace when they carry none), and makes every
// record the handler emits carry the span's context: its events, its reply,
// its outputs. Headers a handler passes itself win (a retry or a dead
// letter keeps the context the record arrived with). Call end when the
// record is handled.
//
// The changelog records it writes carry the context too: an aggregate's
// decision reaches its relay (which sends the events and the reply)
// through the group table.
func (g *Group) traceRecord(r *recordCtx) (end func()) {
	gctx := r.gctx
	headers := gctx.Headers()
	ctx := tracing.Extract(gctx.Context(), func(k string) []byte { return headers[k] })
	topic := r.topic()
	ctx, span := g.tracer.Start(ctx, g.name+" process "+topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.consumer.group.name", g.name),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(int(gctx.Partition()))),
			attribute.Int64("messaging.kafka.offset", gctx.Offset()),
			attribute.String("messaging.kafka.message.key", gctx.Key()),
		))
	out := goka.Headers{}
	for _, h := range tracing.Inject(ctx) {
		out[h.Key] = h.Value
	}
	r.gctx = tracedContext{gokaContext: gctx, headers: out}
	r.span = span
	return func() { span.End() }
}

// spanFailed marks r's span as failed with err; a no-op when tracing is off.
func (r *recordCtx) spanFailed(err error) {
	if r.span == nil {
		return
	}
	r.span.RecordError(err)
	r.span.SetStatus(codes.Error, classify(err))
}

// spanDeadLettered marks r's span as ended in a dead letter (its status
// may have been set by spanFailed already); a no-op when tracing is off.
func (r *recordCtx) spanDeadLettered(err error) {
	if r.span == nil {
		return
	}
	r.span.SetAttributes(attribute.String("streamfold.dead_letter.class", classify(err)))
	r.span.SetStatus(codes.Error, classify(err))
}

// tracedContext is a goka context whose emits carry the trace context of
// the record being handled.
type tracedContext struct {
	gokaContext // named apart: goka.Context has a method Context
	headers     goka.Headers
}

type gokaContext = goka.Context

// Emit sends the trace headers with the record.
func (c tracedContext) Emit(topic goka.Stream, key string, value any, options ...goka.ContextOption) {
	c.gokaContext.Emit(topic, key, value, c.with(options)...)
}

// SetValue writes the trace headers on the changelog record too: an
// aggregate's relay sends the decision's events and reply from it, in the
// decision's trace.
func (c tracedContext) SetValue(value any, options ...goka.ContextOption) {
	c.gokaContext.SetValue(value, c.with(options)...)
}

// Delete writes the trace headers on the tombstone.
func (c tracedContext) Delete(options ...goka.ContextOption) {
	c.gokaContext.Delete(c.with(options)...)
}

// with puts the trace headers first, so that headers the caller gives
// (goka merges them in order) replace them.
func (c tracedContext) with(options []goka.ContextOption) []goka.ContextOption {
	opts := make([]goka.ContextOption, 0, len(options)+1)
	opts = append(opts, goka.WithCtxEmitHeaders(c.headers))
	return append(opts, options...)
}
