package codecs_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

func mustEvent(t *testing.T, subject string, data any) codecs.Event {
	t.Helper()
	e, err := codecs.NewEvent("/shop/customers", "CustomerRegistered", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sameEvent(t *testing.T, got, want codecs.Event) {
	t.Helper()
	if !got.Time.Equal(want.Time) {
		t.Errorf("time: got %v, want %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestGivenNewIDWhenCalledThenDistinctUUIDv4(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := codecs.NewID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not a canonical UUIDv4", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

func TestGivenDataWhenNewEventThenRequiredAttributesAreFilled(t *testing.T) {
	before := time.Now()
	e := mustEvent(t, "c1", customer{ID: "c1", Name: "Ada"})
	if e.SpecVersion != "1.0" || !uuidV4.MatchString(e.ID) || e.Source != "/shop/customers" ||
		e.Type != "CustomerRegistered" || e.Subject != "c1" || e.DataContentType != "application/json" {
		t.Errorf("unexpected attributes: %+v", e)
	}
	if e.Time.Location() != time.UTC || e.Time.Before(before.Add(-time.Second)) {
		t.Errorf("time %v is not now in UTC", e.Time)
	}
	var c customer
	if err := e.DataAs(&c); err != nil || c.Name != "Ada" {
		t.Errorf("DataAs: %+v, %v", c, err)
	}
}

func TestGivenBadArgumentsWhenNewEventThenEncodeError(t *testing.T) {
	for name, f := range map[string]func() (codecs.Event, error){
		"no type":         func() (codecs.Event, error) { return codecs.NewEvent("/src", "", "s", nil) },
		"no source":       func() (codecs.Event, error) { return codecs.NewEvent("", "T", "s", nil) },
		"unmarshalable":   func() (codecs.Event, error) { return codecs.NewEvent("/src", "T", "s", func() {}) },
		"invalid rawjson": func() (codecs.Event, error) { return codecs.NewEvent("/src", "T", "s", json.RawMessage("{")) },
	} {
		_, err := f()
		var ee *codecs.EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: got %v, want an *EncodeError", name, err)
		}
	}
}

func TestGivenEventWithoutDataWhenDataAsThenErrNoData(t *testing.T) {
	e := mustEvent(t, "c1", nil)
	if e.Data != nil {
		t.Fatalf("nil data became %q", e.Data)
	}
	var c customer
	err := e.DataAs(&c)
	var de *codecs.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, codecs.ErrNoData) {
		t.Fatalf("got %v, want a *DecodeError wrapping ErrNoData", err)
	}
}

func TestGivenInvalidEventWhenEncodingThenEncodeErrorNamesEveryProblem(t *testing.T) {
	_, err := codecs.CloudEvents{}.Encode(codecs.Event{SpecVersion: "0.3", Data: json.RawMessage("{")})
	var ee *codecs.EncodeError
	if !errors.As(err, &ee) || !errors.Is(err, codecs.ErrInvalidEvent) {
		t.Fatalf("got %v, want an *EncodeError wrapping ErrInvalidEvent", err)
	}
	for _, want := range []string{`specversion "0.3"`, "missing id", "missing source", "missing type", "data is not valid JSON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestGivenStructuredRecordWhenDecodingThenEventRoundTrips(t *testing.T) {
	e := mustEvent(t, "c1", customer{ID: "c1", Name: "Ada"})
	b, err := codecs.CloudEvents{}.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	for name, hs := range map[string][]codecs.Header{
		"no headers":            nil,
		"structured media type": {{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}},
		"capitalised header":    {{Key: "Content-Type", Value: []byte("application/cloudevents+json")}},
	} {
		got, err := codecs.DecodeEvent(b, hs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameEvent(t, got, e)
	}
}

func TestGivenStructuredRecordWithExtensionsWhenDecodingThenTheyAreIgnored(t *testing.T) {
	v := `{"specversion":"1.0","id":"e1","source":"/s","type":"T","traceparent":"00-x","data":null}`
	got, err := codecs.DecodeEvent([]byte(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, codecs.Event{SpecVersion: "1.0", ID: "e1", Source: "/s", Type: "T"})
}

func binaryHeaders(kv ...string) []codecs.Header {
	var hs []codecs.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, codecs.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestGivenBinaryRecordWhenDecodingThenSameEventAsStructured(t *testing.T) {
	structured := `{"specversion":"1.0","id":"e1","source":"/shop","type":"CustomerRegistered","subject":"c1",` +
		`"time":"2024-05-01T12:00:00.5Z","datacontenttype":"application/json","data":{"id":"c1","name":"Ada"}}`
	want, err := codecs.DecodeEvent([]byte(structured), nil)
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(`{"id":"c1","name":"Ada"}`)
	got, err := codecs.DecodeEvent(value, binaryHeaders(
		"ce_specversion", "1.0", "ce_id", "e1", "ce_source", "/shop", "ce_type", "CustomerRegistered",
		"ce_subject", "c1", "ce_time", "2024-05-01T12:00:00.5Z", "content-type", "application/json",
		"ce_traceparent", "00-x", // an extension: ignored
	))
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, want)
	value[2] = 'X'
	if string(got.Data) != `{"id":"c1","name":"Ada"}` {
		t.Errorf("event data aliases the record value: %s", got.Data)
	}
}

func TestGivenBinaryRecordWithTextDataWhenDecodingThenDataIsAJSONString(t *testing.T) {
	got, err := codecs.DecodeEvent([]byte("hello"), binaryHeaders(
		"ce_specversion", "1.0", "ce_id", "e1", "ce_source", "/s", "ce_type", "Greeted", "content-type", "text/plain"))
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := got.DataAs(&s); err != nil || s != "hello" || got.DataContentType != "text/plain" {
		t.Fatalf("got %q (%s), %v", s, got.DataContentType, err)
	}
}

func TestGivenBinaryRecordWithRepeatedHeaderWhenDecodingThenLastWins(t *testing.T) {
	got, err := codecs.DecodeEvent(nil, binaryHeaders(
		"ce_specversion", "1.0", "ce_id", "old", "ce_id", "new", "ce_source", "/s", "ce_type", "T"))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "new" || got.Data != nil {
		t.Fatalf("got %+v", got)
	}
}

func TestGivenMalformedRecordWhenDecodingThenDecodeErrorExplains(t *testing.T) {
	binary := func(kv ...string) []codecs.Header {
		base := []string{"ce_specversion", "1.0", "ce_id", "e1", "ce_source", "/s", "ce_type", "T"}
		for i := 0; i < len(kv); i += 2 {
			replaced := false
			for j := 0; j < len(base); j += 2 {
				if base[j] == kv[i] {
					base[j+1], replaced = kv[i+1], true
				}
			}
			if !replaced {
				base = append(base, kv[i], kv[i+1])
			}
		}
		var out []string
		for j := 0; j < len(base); j += 2 {
			if base[j+1] != "<drop>" {
				out = append(out, base[j], base[j+1])
			}
		}
		return binaryHeaders(out...)
	}
	for _, tc := range []struct {
		name     string
		value    string
		headers  []codecs.Header
		sentinel error
		says     string
	}{
		{"empty", "", nil, codecs.ErrNotCloudEvent, "empty value"},
		{"not json", "hello", nil, codecs.ErrNotCloudEvent, "not JSON"},
		{"json array", `[1]`, nil, codecs.ErrNotCloudEvent, "not an object"},
		{"plain json object", `{"name":"Ada"}`, nil, codecs.ErrNotCloudEvent, "without specversion"},
		{"missing id", `{"specversion":"1.0","source":"/s","type":"T"}`, nil, codecs.ErrInvalidEvent, "missing id"},
		{"missing type", `{"specversion":"1.0","id":"e1","source":"/s"}`, nil, codecs.ErrInvalidEvent, "missing type"},
		{"missing source", `{"specversion":"1.0","id":"e1","type":"T"}`, nil, codecs.ErrInvalidEvent, "missing source"},
		{"wrong specversion", `{"specversion":"0.3","id":"e1","source":"/s","type":"T"}`, nil, codecs.ErrInvalidEvent, `specversion "0.3"`},
		{"attribute of wrong type", `{"specversion":"1.0","id":7,"source":"/s","type":"T"}`, nil, nil, "id"},
		{"bad time", `{"specversion":"1.0","id":"e1","source":"/s","type":"T","time":"yesterday"}`, nil, nil, "yesterday"},
		{"data_base64", `{"specversion":"1.0","id":"e1","source":"/s","type":"T","data_base64":"AAE="}`, nil, codecs.ErrUnsupportedData, "data_base64"},
		{"structured but not json", "hello", binaryHeaders("content-type", "application/cloudevents+json"), codecs.ErrNotCloudEvent, "not JSON"},
		{"batch mode", `[]`, binaryHeaders("content-type", "application/cloudevents-batch+json"), codecs.ErrUnsupportedData, "single events"},
		{"binary missing ce_id", `{}`, binary("ce_id", "<drop>"), codecs.ErrInvalidEvent, "missing id"},
		{"binary missing ce_type", `{}`, binary("ce_type", "<drop>"), codecs.ErrInvalidEvent, "missing type"},
		{"binary wrong specversion", `{}`, binary("ce_specversion", "0.3"), codecs.ErrInvalidEvent, `specversion "0.3"`},
		{"binary bad ce_time", `{}`, binary("ce_time", "noon"), codecs.ErrInvalidEvent, `ce_time "noon"`},
		{"binary value not json", `{`, binary("content-type", "application/json"), codecs.ErrInvalidEvent, "not valid JSON"},
		{"binary value not json, no content-type", `nope`, binary(), codecs.ErrInvalidEvent, "not valid JSON"},
		{"binary value not text", "\xff\xfe", binary("content-type", "application/octet-stream"), codecs.ErrUnsupportedData, "neither JSON nor UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := codecs.DecodeEvent([]byte(tc.value), tc.headers)
			var de *codecs.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}
