package codecs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"
)

// CloudEvents constants used on the wire.
const (
	// SpecVersion is the only CloudEvents version we read and write.
	SpecVersion = "1.0"
	// ContentTypeHeader is the Kafka header naming the record's media type.
	ContentTypeHeader = "content-type"
	// ContentTypeStructured is the content-type of a structured-mode record.
	ContentTypeStructured = "application/cloudevents+json"
	// ContentTypeJSON is the datacontenttype of events built by NewEvent.
	ContentTypeJSON = "application/json"
)

// Event is a CloudEvents 1.0 event. Data is the JSON payload; its Go type is
// chosen by the event Type (see Registry). Extension attributes are not kept.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"` // the aggregate id
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// NewEvent builds an event of eventType about subject (the aggregate id) with
// data marshalled to JSON; nil data means no data. It gets a new random id,
// the current time in UTC, specversion 1.0 and datacontenttype
// application/json. source and eventType must not be empty.
func NewEvent(source, eventType, subject string, data any) (Event, error) {
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              NewID(),
		Source:          source,
		Type:            eventType,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: ContentTypeJSON,
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return Event{}, &EncodeError{Codec: "cloudevents", Err: fmt.Errorf("data of %s: %w", eventType, err)}
		}
		if string(b) != "null" {
			e.Data = b
		}
	}
	if err := e.Validate(); err != nil {
		return Event{}, &EncodeError{Codec: "cloudevents", Err: err}
	}
	return e, nil
}

// NewID returns a random (version 4) UUID in its canonical text form.
func NewID() string {
	var u [16]byte
	// crypto/rand.Read never returns an error: since Go 1.24 it crashes the
	// program if the system's randomness fails.
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// Validate checks the attributes the spec requires (specversion "1.0", id,
// source, type), that every attribute is valid UTF-8 and that Data, if any,
// is JSON. The error wraps
// ErrInvalidEvent and names every problem found.
func (e Event) Validate() error {
	var problems []string
	switch e.SpecVersion {
	case SpecVersion:
	case "":
		problems = append(problems, "missing specversion")
	default:
		problems = append(problems, fmt.Sprintf("specversion %q, want %q", e.SpecVersion, SpecVersion))
	}
	if e.ID == "" {
		problems = append(problems, "missing id")
	}
	if e.Source == "" {
		problems = append(problems, "missing source")
	}
	if e.Type == "" {
		problems = append(problems, "missing type")
	}
	// Attributes are Unicode strings: invalid UTF-8 would be replaced by
	// U+FFFD when encoded, a different id or subject than was read.
	for _, a := range []struct{ name, v string }{
		{"id", e.ID}, {"source", e.Source}, {"type", e.Type}, {"subject", e.Subject}, {"datacontenttype", e.DataContentType},
	} {
		if !utf8.ValidString(a.v) {
			problems = append(problems, a.name+" is not valid UTF-8")
		}
	}
	if len(e.Data) > 0 && !fastjson.Valid(e.Data) {
		problems = append(problems, "data is not valid JSON")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, strings.Join(problems, ", "))
	}
	return nil
}

// DataAs unmarshals the event data into v. An event without data yields a
// *DecodeError wrapping ErrNoData.
func (e Event) DataAs(v any) error {
	if len(e.Data) == 0 {
		return &DecodeError{Codec: "cloudevents", Err: fmt.Errorf("%w (type %s, id %s)", ErrNoData, e.Type, e.ID)}
	}
	if err := fastjson.Unmarshal(e.Data, v); err != nil {
		return &DecodeError{Codec: "cloudevents", Err: fmt.Errorf("data of %s (id %s): %w", e.Type, e.ID, err)}
	}
	return nil
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// DecodeEvent reads the CloudEvent carried by a Kafka record, in either
// content mode of the CloudEvents Kafka protocol binding:
//
//   - structured: the value is the JSON envelope. Chosen when the
//     content-type header is application/cloudevents+json, and tried when
//     there is neither such a header nor a ce_specversion header.
//   - binary: the attributes are the ce_specversion, ce_id, ce_source,
//     ce_type, ce_subject and ce_time headers, the content-type header is the
//     datacontenttype and the value is the data. JSON data (content-type
//     application/json, any +json type, or none) is kept as is; other
//     UTF-8 data becomes a JSON string, as structured mode would carry it.
//
// Header names match case-insensitively and the last of repeated headers
// wins. Any failure is a *DecodeError explaining what is wrong and wrapping
// ErrNotCloudEvent, ErrInvalidEvent or ErrUnsupportedData where they apply.
// The returned event does not alias value.
func DecodeEvent(value []byte, headers []Header) (Event, error) {
	if ct, ok := header(headers, ContentTypeHeader); ok {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && strings.HasPrefix(mt, "application/cloudevents") {
			if mt != ContentTypeStructured {
				return Event{}, decodeErr("cloudevents", "%w: content-type %q: only single events in JSON format are supported", ErrUnsupportedData, ct)
			}
			return decodeStructured(value)
		}
	}
	if _, ok := header(headers, "ce_specversion"); ok {
		return decodeBinary(value, headers)
	}
	return decodeStructured(value)
}

func decodeStructured(value []byte) (Event, error) {
	trimmed := bytes.TrimSpace(value)
	notJSON := func() (Event, error) {
		return Event{}, decodeErr("cloudevents", "%w: value is not JSON and there is no ce_specversion header", ErrNotCloudEvent)
	}
	switch {
	case len(trimmed) == 0:
		return Event{}, decodeErr("cloudevents", "%w: empty value and no ce_specversion header", ErrNotCloudEvent)
	case trimmed[0] != '{':
		if !fastjson.Valid(trimmed) {
			return notJSON()
		}
		return Event{}, decodeErr("cloudevents", "%w: value is JSON but not an object", ErrNotCloudEvent)
	}
	var w struct {
		Event
		DataBase64 *string `json:"data_base64"`
	}
	// Unmarshal checks the syntax as it goes: the value is scanned once, and
	// only a failure asks whether it was JSON at all.
	if err := fastjson.Unmarshal(trimmed, &w); err != nil {
		if !fastjson.Valid(trimmed) {
			return notJSON()
		}
		return Event{}, decodeErr("cloudevents", "structured mode: %w", err)
	}
	e := w.Event
	if e.SpecVersion == "" {
		return Event{}, decodeErr("cloudevents", "%w: JSON object without specversion and no ce_specversion header", ErrNotCloudEvent)
	}
	if w.DataBase64 != nil {
		return Event{}, decodeErr("cloudevents", "%w: data_base64 (binary data) in event %s, only JSON data is supported", ErrUnsupportedData, e.ID)
	}
	if string(e.Data) == "null" {
		e.Data = nil
	}
	if err := e.Validate(); err != nil {
		return Event{}, decodeErr("cloudevents", "structured mode: %w", err)
	}
	return e, nil
}

func decodeBinary(value []byte, headers []Header) (Event, error) {
	e := Event{
		SpecVersion: headerString(headers, "ce_specversion"),
		ID:          headerString(headers, "ce_id"),
		Source:      headerString(headers, "ce_source"),
		Type:        headerString(headers, "ce_type"),
		Subject:     headerString(headers, "ce_subject"),
	}
	if ts, ok := header(headers, "ce_time"); ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Event{}, decodeErr("cloudevents", "binary mode: %w: ce_time %q is not an RFC 3339 timestamp", ErrInvalidEvent, ts)
		}
		e.Time = t
	}
	ct, _ := header(headers, ContentTypeHeader)
	e.DataContentType = ct
	// Report missing attributes before data problems: they say more about
	// what the producer got wrong.
	if err := e.Validate(); err != nil {
		return Event{}, decodeErr("cloudevents", "binary mode: %w (headers ce_specversion, ce_id, ce_source, ce_type)", err)
	}
	if len(value) > 0 {
		switch {
		case isJSONMediaType(ct):
			if !json.Valid(value) {
				return Event{}, decodeErr("cloudevents", "binary mode: %w: value of event %s is not valid JSON (content-type %q)", ErrInvalidEvent, e.ID, ct)
			}
			e.Data = bytes.Clone(value)
		case utf8.Valid(value):
			e.Data, _ = json.Marshal(string(value)) // marshalling a string cannot fail
		default:
			return Event{}, decodeErr("cloudevents", "%w: binary mode value of event %s is neither JSON nor UTF-8 text (content-type %q)", ErrUnsupportedData, e.ID, ct)
		}
	}
	return e, nil
}

// isJSONMediaType reports whether ct names JSON; no content type counts as
// JSON, the CloudEvents default.
func isJSONMediaType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// header returns the value of the last header named key, as Java's
// Headers.lastHeader does.
func header(hs []Header, key string) (string, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if strings.EqualFold(hs[i].Key, key) {
			return string(hs[i].Value), true
		}
	}
	return "", false
}

func headerString(hs []Header, key string) string {
	v, _ := header(hs, key)
	return v
}

// CloudEvents is the Codec for events in structured mode. Encode validates
// the event first; Decode accepts only structured mode (use DecodeEvent when
// record headers are at hand) and validates what it read.
type CloudEvents struct{}

// Encode validates e and marshals it as a structured-mode JSON envelope.
func (CloudEvents) Encode(e Event) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, &EncodeError{Codec: "cloudevents", Err: err}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, &EncodeError{Codec: "cloudevents", Err: err}
	}
	return b, nil
}

// Decode reads a structured-mode envelope.
func (CloudEvents) Decode(b []byte) (Event, error) { return decodeStructured(b) }

// DecodeRecord implements RecordDecoder: DecodeEvent, both content modes.
func (CloudEvents) DecodeRecord(value []byte, headers []Header) (Event, error) {
	return DecodeEvent(value, headers)
}
