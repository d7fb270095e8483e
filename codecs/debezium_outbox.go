package codecs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"
)

// DebeziumOutbox is the Codec of a topic written by Debezium's outbox event
// router (io.debezium.transforms.outbox.EventRouter) from an outbox table
// with the router's columns (id, aggregatetype, aggregateid, type, payload),
// such as the one package outbox writes. The router makes each outbox row a
// record whose key is the aggregateid, whose value is the payload column and
// whose id header is the row's id; it puts the type column in a header when
// told to (table.fields.additional.placement=type:header:eventType).
//
// A routed record becomes a CloudEvent:
//
//   - a payload that is itself a structured CloudEvent (it has specversion)
//     is taken as it is;
//   - any other payload is the event's data, with the id from the IDHeader
//     header, the type from the TypeHeader header, the time from TimeHeader
//     if set, the source Source and no subject (a fold takes the record key,
//     the aggregateid).
//
// The payload may be JSON (table.expand.json.payload=true, or a jsonb column
// without the JSON converter's schemas), a JSON string holding JSON (a text
// or jsonb column as the JSON converter writes it by default), or either
// inside the converter's schema wrapper ({"schema":…,"payload":…}). Header
// values may be plain text (Kafka Connect's SimpleHeaderConverter, the
// default) or JSON strings (the JsonConverter as header converter).
//
// Encode writes the structured CloudEvent, which this codec reads back as
// it is.
type DebeziumOutbox struct {
	// IDHeader names the header with the event id; "id" (the router's) if
	// empty.
	IDHeader string
	// TypeHeader names the header with the event type; "eventType" if empty.
	TypeHeader string
	// TimeHeader, if set, names a header with the event time (the outbox
	// row's timestamp, placed with timestamp:header:<name>): an RFC 3339
	// time (a timestamptz column) or epoch milli-, micro- or nanoseconds,
	// told apart by magnitude.
	TimeHeader string
	// Source is the source of the events built; "/debezium/outbox" if
	// empty.
	Source string
}

// DecodeRecord maps a routed record (its value and headers) to its
// CloudEvent. A nil value (the router's tombstone for an empty payload,
// route.tombstone.on.empty.payload) yields ErrTombstone. Failures are
// *DecodeError wrapping ErrTombstone, ErrNotCloudEvent (no id or type
// header), ErrInvalidEvent or ErrUnsupportedData.
func (o DebeziumOutbox) DecodeRecord(value []byte, headers []Header) (Event, error) {
	data, err := outboxPayload(value)
	if err != nil {
		return Event{}, err
	}
	if isStructuredEvent(data) {
		return decodeStructured(data)
	}
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              headerText(headers, or(o.IDHeader, "id")),
		Source:          or(o.Source, "/debezium/outbox"),
		Type:            headerText(headers, or(o.TypeHeader, "eventType")),
		DataContentType: ContentTypeJSON,
		Data:            data,
	}
	var missing []string
	if e.ID == "" {
		missing = append(missing, "header "+or(o.IDHeader, "id"))
	}
	if e.Type == "" {
		missing = append(missing, "header "+or(o.TypeHeader, "eventType")+" (table.fields.additional.placement=type:header:"+or(o.TypeHeader, "eventType")+")")
	}
	if len(missing) > 0 {
		return Event{}, decodeErr("debezium-outbox", "%w: outbox record without %s", ErrNotCloudEvent, strings.Join(missing, " and "))
	}
	if o.TimeHeader != "" {
		if ts := headerText(headers, o.TimeHeader); ts != "" {
			t, err := parseOutboxTime(ts)
			if err != nil {
				return Event{}, decodeErr("debezium-outbox", "%w: header %s of event %s: %w", ErrInvalidEvent, o.TimeHeader, e.ID, err)
			}
			e.Time = t
		}
	}
	if err := e.Validate(); err != nil {
		return Event{}, decodeErr("debezium-outbox", "%w", err)
	}
	return e, nil
}

// DecodeOutbox is DecodeRecord with the record key too: the subject of an
// event built from the payload is the key (the aggregateid, see KeyString).
func (o DebeziumOutbox) DecodeOutbox(key, value []byte, headers []Header) (Event, error) {
	e, err := o.DecodeRecord(value, headers)
	if err != nil || e.Subject != "" || len(key) == 0 {
		return e, err
	}
	subject, err := KeyString(key)
	if err != nil {
		return Event{}, err
	}
	e.Subject = subject
	return e, nil
}

// Decode reads a routed value without its headers: only a payload that is a
// structured CloudEvent decodes (the id and type of any other are headers).
func (o DebeziumOutbox) Decode(value []byte) (Event, error) { return o.DecodeRecord(value, nil) }

// Encode writes e as a structured CloudEvent.
func (DebeziumOutbox) Encode(e Event) ([]byte, error) { return CloudEvents{}.Encode(e) }

// outboxPayload is the outbox row's payload as JSON: unwrapped from the
// schema wrapper, and a JSON string holding JSON replaced by that JSON.
func outboxPayload(value []byte) (json.RawMessage, error) {
	v := bytes.TrimSpace(value)
	if len(v) == 0 {
		return nil, decodeErr("debezium-outbox", "%w: nil or empty value", ErrTombstone)
	}
	if !fastjson.Valid(v) {
		if !utf8.Valid(v) {
			return nil, decodeErr("debezium-outbox", "%w: payload is neither JSON nor UTF-8 text", ErrUnsupportedData)
		}
		// Text written by the StringConverter: data is a JSON string, as
		// a binary-mode CloudEvent's text data is.
		s, _ := json.Marshal(string(v))
		return s, nil
	}
	if p, ok := schemaPayload(v); ok {
		if p == nil {
			return nil, decodeErr("debezium-outbox", "%w: schema wrapper with a null payload", ErrTombstone)
		}
		v = p
	}
	if v[0] == '"' {
		var s string
		if err := fastjson.Unmarshal(v, &s); err != nil {
			return nil, decodeErr("debezium-outbox", "payload: %w", err)
		}
		if inner := bytes.TrimSpace([]byte(s)); fastjson.Valid(inner) {
			return inner, nil
		}
	}
	return bytes.Clone(v), nil
}

func isStructuredEvent(data json.RawMessage) bool {
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	var probe struct {
		SpecVersion *string `json:"specversion"`
	}
	return fastjson.Unmarshal(data, &probe) == nil && probe.SpecVersion != nil
}

// headerText is a header's value as text: a JSON string (written by the
// JsonConverter as header converter) unquoted, anything else as it is.
func headerText(hs []Header, key string) string {
	v, ok := header(hs, key)
	if !ok {
		return ""
	}
	if len(v) >= 2 && v[0] == '"' {
		var s string
		if err := json.Unmarshal([]byte(v), &s); err == nil {
			return s
		}
	}
	return v
}

func parseOutboxTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		// Debezium writes a timestamp column as epoch milliseconds
		// (time.precision.mode=connect), microseconds (MicroTimestamp, the
		// PostgreSQL default) or nanoseconds; for any time after 1973 the
		// magnitude tells which.
		switch {
		case n >= 1e17 || n <= -1e17:
			return time.Unix(0, n).UTC(), nil
		case n >= 1e14 || n <= -1e14:
			return time.UnixMicro(n).UTC(), nil
		}
		return time.UnixMilli(n).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor epoch milliseconds", s)
	}
	return t, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
