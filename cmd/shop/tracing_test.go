package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/shop"
)

// The caller's trace: what a browser or a gateway in front of the shop sends.
const (
	tracingTestTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tracingTestSpanID  = "00f067aa0ba902b7"
)

// tracingCommand posts an AddItem for cart to s under the caller's trace
// (traceparent, when given) and returns its command id.
func tracingCommand(t *testing.T, s *shopRun, cart, traceparent string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/carts/"+cart+"/commands",
		strings.NewReader(`{"type":"AddItem","data":{"productId":"apple","quantity":1,"customerId":"ada"}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	var rep cartReply
	require.Equal(t, http.StatusOK, s.doReq(req, &rep), rep.Detail)
	require.NotEmpty(t, rep.CommandID)
	require.Len(t, rep.Events, 2, "CartCreated and ItemAdded")
	return rep.CommandID
}

// tracingRecords reads the command, events and reply of one command from the
// broker: the records of cart on cart-commands and cart-events (both events)
// and the record of commandID on cart-replies.
func tracingRecords(t *testing.T, s *shopRun, cart, commandID string) map[string][]*kgo.Record {
	t.Helper()
	keyed := func(topic, key string, n int) []*kgo.Record {
		recs := consumeUntil(t, s.brokers(), topic, func(recs []*kgo.Record) bool {
			return len(ofKey(recs, key)) >= n
		})
		return ofKey(recs, key)
	}
	return map[string][]*kgo.Record{
		shop.CartCommands.Name: keyed(shop.CartCommands.Name, cart, 1),
		shop.CartEvents.Name:   keyed(shop.CartEvents.Name, cart, 2),
		shop.CartReplies.Name:  keyed(shop.CartReplies.Name, commandID, 1),
	}
}

func ofKey(recs []*kgo.Record, key string) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range recs {
		if string(r.Key) == key {
			out = append(out, r)
		}
	}
	return out
}

// One POST's trace, as the issue asks: the W3C trace id the caller sent is
// on the command record, on each event the decision wrote, on the reply,
// and on the spans of the projections that applied those events, also one
// hop further (the events re-keyed by customer and folded into
// customer-carts).
func TestTracing_GivenAPostWithATraceparent_ThenItsTraceIDIsOnTheCommandItsEventsItsReplyAndTheProjectionsSpans(t *testing.T) {
	s, spans := startTracedShop(t)
	addProducts(t, s, "apple")

	commandID := tracingCommand(t, s, "traced", "00-"+tracingTestTraceID+"-"+tracingTestSpanID+"-01")

	for topic, recs := range tracingRecords(t, s, "traced", commandID) {
		for _, r := range recs {
			tp := headerMap(r)[streamfold.HeaderTraceParent]
			require.NotEmpty(t, tp, "%s record at offset %d has no %s", topic, r.Offset, streamfold.HeaderTraceParent)
			parts := strings.Split(tp, "-")
			require.Len(t, parts, 4, "%s: traceparent %q", topic, tp)
			assert.Equal(t, tracingTestTraceID, parts[1], "%s record at offset %d is in another trace", topic, r.Offset)
			assert.NotEqual(t, tracingTestSpanID, parts[2], "%s: the record's parent is a span of the shop, not the caller's", topic)
		}
	}

	// The spans: the HTTP request's (a child of the caller's span), the
	// decision's, and the projections' that applied the events.
	want := []string{
		"POST /carts/{id}/commands",
		"send " + shop.CartCommands.Name,
		shop.CartsGroup + " process " + shop.CartCommands.Name,
		shop.CartsGroup + "-relay process " + shop.CartsGroup + "-table",
		shop.CartHistoryGroup + " process " + shop.CartEvents.Name,
		shop.CartCustomersGroup + " process " + shop.CartEvents.Name,
		shop.CustomerCartsGroup + " process " + shop.CustomerCartEvents.Name,
	}
	var traced []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		traced = slices.DeleteFunc(spans.Ended(), func(sp sdktrace.ReadOnlySpan) bool {
			return sp.SpanContext().TraceID().String() != tracingTestTraceID
		})
		for _, name := range want {
			if !slices.ContainsFunc(traced, func(sp sdktrace.ReadOnlySpan) bool { return sp.Name() == name }) {
				return false
			}
		}
		return true
	}, wait, 10*time.Millisecond, "spans of the trace: %v", spanNames(traced))

	server := traced[slices.IndexFunc(traced, func(sp sdktrace.ReadOnlySpan) bool { return sp.Name() == want[0] })]
	assert.Equal(t, tracingTestSpanID, server.Parent().SpanID().String(), "the server span continues the caller's")
	assert.True(t, server.Parent().IsRemote())
	assert.Equal(t, trace.SpanKindServer, server.SpanKind())

	// Each hop is a child of the one before: the send, the decision, its
	// relay (which sends the decision's events and reply from the group
	// table), the history projection.
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range traced {
		byName[sp.Name()] = sp
	}
	decision := byName[want[2]]
	assert.Equal(t, byName[want[1]].SpanContext().SpanID(), decision.Parent().SpanID(), "the decision continues the send")
	relay := byName[want[3]]
	assert.Equal(t, decision.SpanContext().SpanID(), relay.Parent().SpanID(), "the relay continues the decision")
	assert.Equal(t, relay.SpanContext().SpanID(), byName[want[4]].Parent().SpanID(), "the projection continues the relay")
	assert.Equal(t, trace.SpanKindConsumer, decision.SpanKind())
	attrs := map[string]string{}
	for _, kv := range decision.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	assert.Equal(t, "kafka", attrs["messaging.system"])
	assert.Equal(t, shop.CartCommands.Name, attrs["messaging.destination.name"])
	assert.Equal(t, shop.CartsGroup, attrs["messaging.consumer.group.name"])
	assert.Contains(t, attrs, "messaging.destination.partition.id")
	assert.Contains(t, attrs, "messaging.kafka.offset")
}

// Off by default: a shop without a tracer provider adds no trace header to
// what it writes, whatever the caller sends.
func TestTracing_GivenNoTracerProvider_WhenAPostCarriesATraceparent_ThenNoRecordCarriesATraceHeader(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	addProducts(t, s, "apple")

	commandID := tracingCommand(t, s, "untraced", "00-"+tracingTestTraceID+"-"+tracingTestSpanID+"-01")

	for topic, recs := range tracingRecords(t, s, "untraced", commandID) {
		for _, r := range recs {
			for _, h := range r.Headers {
				assert.NotContains(t, []string{streamfold.HeaderTraceParent, streamfold.HeaderTraceState, "traceparent"}, h.Key,
					"%s record at offset %d", topic, r.Offset)
			}
		}
	}
}

// startTracedShop starts a shop whose spans the recorder keeps.
func startTracedShop(t *testing.T) (*shopRun, *tracetest.SpanRecorder) {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	cfg := testConfig(t.TempDir())
	cfg.TracerProvider = tp
	return startShop(t, cfg), spans
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, sp := range spans {
		names[i] = sp.Name()
	}
	return names
}

// librdkafkaTraceScript produces one registration through librdkafka (a
// client nobody here wrote) with the plain W3C traceparent header that the
// OpenTelemetry instrumentations of Kafka clients write.
const librdkafkaTraceScript = `
import json, sys
from confluent_kafka import Producer

p = Producer({"bootstrap.servers": sys.argv[1], "partitioner": "murmur2_random"})
value = json.dumps({"specversion": "1.0", "id": "rdk-traced-1", "source": "urn:librdkafka",
                    "type": "CustomerRegistered", "subject": "rdk-traced",
                    "data": {"name": "R", "email": "r@example.com"}})
p.produce("customer-events", key="rdk-traced", value=value, headers=[("traceparent", sys.argv[2])])
if p.flush(30) != 0:
    sys.exit("not delivered")
print("done")
`

// A record another client wrote under its own trace: the group that folds
// it continues that trace, a child of the producer's span.
func TestTracing_GivenALibrdkafkaRecordWithAPlainTraceparent_ThenTheProjectionContinuesItsTrace(t *testing.T) {
	librdkafkaNeeded(t)
	s, spans := startTracedShop(t)

	librdkafka(t, librdkafkaTraceScript, strings.Join(s.brokers(), ","), "00-"+tracingTestTraceID+"-"+tracingTestSpanID+"-01")

	name := "customers process " + shop.CustomerEvents.Name
	var fold sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, sp := range spans.Ended() {
			if sp.Name() == name && sp.SpanContext().TraceID().String() == tracingTestTraceID {
				fold = sp
				return true
			}
		}
		return false
	}, wait, 10*time.Millisecond, "no %s span in the producer's trace: %v", name, spanNames(spans.Ended()))
	assert.Equal(t, tracingTestSpanID, fold.Parent().SpanID().String(), "a child of the producer's span")
	assert.True(t, fold.Parent().IsRemote())
}
