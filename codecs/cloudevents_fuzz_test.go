package codecs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// fuzzHeaders turns "key=value" lines into record headers, so the fuzzer
// mutates headers as text.
func fuzzHeaders(s string) []codecs.Header {
	var hs []codecs.Header
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		hs = append(hs, codecs.Header{Key: k, Value: []byte(v)})
	}
	return hs
}

// FuzzDecodeEvent: whatever a producer puts in a record, DecodeEvent never
// panics, fails only with a *DecodeError, and a decoded event is valid,
// encodes, and decodes from its encoding to the same event.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"urn:x","type":"CustomerRegistered","subject":"ada","time":"2024-01-02T03:04:05.123456789+01:00","datacontenttype":"application/json","data":{"name":"Ada"}}`), "")
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"urn:x","type":"T","data":null}`), "content-type=application/cloudevents+json")
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"urn:x","type":"T","data_base64":"AA=="}`), "")
	f.Add([]byte(`{"email":"kim@example.net"}`), "ce_specversion=1.0\nce_id=evt-kim-2\nce_source=urn:kcat\nce_type=CustomerUpdated\nce_subject=kim\ncontent-type=application/json")
	f.Add([]byte("plain text"), "ce_specversion=1.0\nce_id=1\nce_source=s\nce_type=t\ncontent-type=text/plain\nce_time=2024-01-02T03:04:05Z")
	f.Add([]byte("\xff\xfe"), "ce_specversion=1.0\nce_id=1\nce_source=s\nce_type=t\ncontent-type=application/octet-stream")
	f.Add([]byte("this is not an event"), "")
	f.Add([]byte(`[1,2]`), "")
	f.Add([]byte(``), "content-type=application/cloudevents-batch+json")
	f.Add([]byte(`{}`), "CE_SPECVERSION=1.0\nce_id=\nce_id=2\nce_source=s\nce_type=t")
	f.Add([]byte(`{}`), "ce_specversion=1.0\nce_id=1\nce_source=s\nce_type=t\nce_subject=\xff")
	f.Fuzz(func(t *testing.T, value []byte, headers string) {
		e, err := codecs.DecodeEvent(value, fuzzHeaders(headers))
		if err != nil {
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		b, err := codecs.CloudEvents{}.Encode(e)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
		again, err := codecs.CloudEvents{}.Decode(b)
		if err != nil {
			t.Fatalf("an encoded event does not decode: %v\n%s", err, b)
		}
		if !equalOnTheWire(e, again) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v\nvia %s", e, again, b)
		}
	})
}

// equalOnTheWire compares events as the wire does: times by instant, data as
// JSON (whitespace aside).
func equalOnTheWire(a, b codecs.Event) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	da, db := compact(a.Data), compact(b.Data)
	a.Time, b.Time, a.Data, b.Data = time.Time{}, time.Time{}, nil, nil
	return reflect.DeepEqual(a, b) && bytes.Equal(da, db)
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
