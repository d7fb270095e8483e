package streamfold

import (
	"context"
	"slices"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/tracing"
)

// instrumentation names the spans' source, as OpenTelemetry asks.
const instrumentation = "github.com/streamfold/streamfold"

// HeaderTraceParent and HeaderTraceState carry a record's W3C trace context:
// the CloudEvents distributed-tracing extension, in binary mode. With
// Config.TracerProvider set, an Emitter writes them on every record and the
// groups read them (and the plain traceparent / tracestate other Kafka
// clients write) and write them on what they emit while handling a record.
const (
	HeaderTraceParent = tracing.HeaderTraceParent
	HeaderTraceState  = tracing.HeaderTraceState
)

// traceSend starts the producer span of a record sent to topic, a child of
// ctx's span, and returns headers with its trace context in place of any
// the caller gave. Call end with the outcome.
func (rt *Runtime) traceSend(ctx context.Context, topic string, headers []codecs.Header) ([]codecs.Header, func(Position, error)) {
	ctx, span := rt.tracer.Start(ctx, "send "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
		))
	out := slices.DeleteFunc(slices.Clone(headers), func(h codecs.Header) bool { return tracing.IsTraceHeader(h.Key) })
	out = append(out, tracing.Inject(ctx)...)
	return out, func(pos Position, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "send failed")
		} else {
			span.SetAttributes(
				attribute.String("messaging.destination.partition.id", strconv.Itoa(int(pos.Partition))),
				attribute.Int64("messaging.kafka.offset", pos.Offset))
		}
		span.End()
	}
}
