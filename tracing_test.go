package streamfold_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
)

// tracedRun starts a topology with one group on a fresh embedded broker,
// traced by tp (nil: off), as run does.
func tracedRun(t *testing.T, g *processors.Group, tp trace.TracerProvider) (*streamfold.Runtime, *embedded.Broker) {
	t.Helper()
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test")
	return runTopology(t, broker, topo, tp), broker
}

// runTopology opens topo on broker, traced by tp (nil: off), runs it until
// the test ends and returns it once it has recovered.
func runTopology(t *testing.T, broker *embedded.Broker, topo *streamfold.Topology, tp trace.TracerProvider) *streamfold.Runtime {
	t.Helper()
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1, TracerProvider: tp})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, rt.Close())
	})
	require.Eventually(t, rt.Recovered, wait, 10*time.Millisecond)
	return rt
}

// readRecords reads topic from the start until it holds n records.
func readRecords(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		recs = append(recs, cl.PollFetches(ctx).Records()...)
		return len(recs) >= n
	}, wait, time.Millisecond, "%s: %d records", topic, len(recs))
	return recs
}

func traceHeader(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// awaitSpan waits for an ended span named name in the trace id.
func awaitSpan(t *testing.T, spans *tracetest.SpanRecorder, id trace.TraceID, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		i := slices.IndexFunc(spans.Ended(), func(sp sdktrace.ReadOnlySpan) bool {
			return sp.SpanContext().TraceID() == id && sp.Name() == name
		})
		if i >= 0 {
			found = spans.Ended()[i]
		}
		return i >= 0
	}, wait, 5*time.Millisecond, "no span %q in trace %s", name, id)
	return found
}

func numberEvent(t *testing.T, key string, n int) codecs.Event {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", "Number", key, map[string]int{"n": n})
	require.NoError(t, err)
	return ev
}

func TestTracing_GivenATracerProvider_WhenAnEmitterSendsUnderASpan_ThenTheRecordCarriesItAndTheGroupHandlesItInAChildSpan(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	rt, broker := tracedRun(t, g, tp)

	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	pos, err := streamfold.NewEmitter(rt, numbers).Emit(ctx, "k", numberEvent(t, "k", 1),
		codecs.Header{Key: streamfold.HeaderTraceParent, Value: []byte("00-11111111111111111111111111111111-2222222222222222-01")})
	require.NoError(t, err)
	caller.End()

	rec := readRecords(t, broker.Addrs(), numbers.Name, 1)[0]
	tp1, ok := traceHeader(rec, streamfold.HeaderTraceParent)
	require.True(t, ok, "the record carries %s", streamfold.HeaderTraceParent)
	n := 0
	for _, h := range rec.Headers {
		if h.Key == streamfold.HeaderTraceParent {
			n++
		}
	}
	assert.Equal(t, 1, n, "the emitter's trace context replaces the caller's header, it is not a second one")
	id := caller.SpanContext().TraceID()
	assert.Equal(t, id.String(), strings.Split(tp1, "-")[1])

	send := awaitSpan(t, spans, id, "send "+numbers.Name)
	assert.Equal(t, trace.SpanKindProducer, send.SpanKind())
	assert.Equal(t, caller.SpanContext().SpanID(), send.Parent().SpanID())
	assert.Equal(t, send.SpanContext().SpanID().String(), strings.Split(tp1, "-")[2], "the record's parent is the send span")

	process := awaitSpan(t, spans, id, "counter process "+numbers.Name)
	assert.Equal(t, trace.SpanKindConsumer, process.SpanKind())
	assert.Equal(t, send.SpanContext().SpanID(), process.Parent().SpanID())
	assert.True(t, process.Parent().IsRemote())
	assert.Equal(t, codes.Unset, process.Status().Code)
	attrs := map[string]string{}
	for _, kv := range process.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	assert.Equal(t, map[string]string{
		"messaging.system":                   "kafka",
		"messaging.operation.type":           "process",
		"messaging.destination.name":         numbers.Name,
		"messaging.consumer.group.name":      "counter",
		"messaging.destination.partition.id": strconv.Itoa(int(pos.Partition)),
		"messaging.kafka.offset":             "0",
		"messaging.kafka.message.key":        "k",
	}, attrs)
}

// Other Kafka clients' OpenTelemetry instrumentations write the plain
// traceparent header: the group continues their trace; a record it cannot
// handle ends its span in error, and its dead letter keeps the context it
// arrived with.
func TestTracing_GivenARecordWithAPlainTraceparent_ThenTheGroupContinuesThatTraceAndADeadLetterKeepsIt(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	_, broker := tracedRun(t, g, tp)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	good := numberRecord(t, "k", 1)
	good.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte(parent)}}
	poison := &kgo.Record{Topic: numbers.Name, Key: []byte("k"), Value: []byte("{not json"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(parent)}}}
	produceAll(t, broker.Addrs(), good, poison)

	id, err := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	require.NoError(t, err)
	var processed []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		processed = slices.DeleteFunc(spans.Ended(), func(sp sdktrace.ReadOnlySpan) bool {
			return sp.SpanContext().TraceID() != id || sp.Name() != "counter process "+numbers.Name
		})
		return len(processed) == 2
	}, wait, 5*time.Millisecond)
	slices.SortFunc(processed, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	for _, sp := range processed {
		assert.Equal(t, "b7ad6b7169203331", sp.Parent().SpanID().String())
	}
	assert.Equal(t, codes.Unset, processed[0].Status().Code, "the good record")
	assert.Equal(t, codes.Error, processed[1].Status().Code, "the poison record")
	assert.Equal(t, processors.ClassDecode, processed[1].Status().Description)

	dead := readRecords(t, broker.Addrs(), g.DLQTopic(), 1)[0]
	tp1, ok := traceHeader(dead, "traceparent")
	assert.True(t, ok)
	assert.Equal(t, parent, tp1, "the dead letter keeps the headers it arrived with")
	ce, ok := traceHeader(dead, streamfold.HeaderTraceParent)
	require.True(t, ok, "the dead letter carries the trace of the span that dead-lettered it")
	assert.Equal(t, processed[1].SpanContext().SpanID().String(), strings.Split(ce, "-")[2])
}

// Off by default and free when off: no span, no header.
func TestTracing_GivenNoTracerProvider_ThenAnEmitterWritesNoTraceHeaderEvenUnderASpan(t *testing.T) {
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	rt, broker := tracedRun(t, g, nil)

	spans := tracetest.NewSpanRecorder()
	ctx, caller := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("test").Start(context.Background(), "caller")
	_, err := streamfold.NewEmitter(rt, numbers).Emit(ctx, "k", numberEvent(t, "k", 1))
	require.NoError(t, err)
	caller.End()

	rec := readRecords(t, broker.Addrs(), numbers.Name, 1)[0]
	for _, h := range rec.Headers {
		assert.NotContains(t, []string{streamfold.HeaderTraceParent, streamfold.HeaderTraceState, "traceparent"}, h.Key)
	}
	require.Eventually(t, func() bool { return rt.Stats()["counter"].Applied == 1 }, wait, 5*time.Millisecond)
	assert.Len(t, spans.Ended(), 1, "only the caller's own span")
}
