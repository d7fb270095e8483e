package codecs_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamfold/streamfold/codecs"
)

// FuzzDebeziumEvents: whatever a connector (or anyone) writes to a Debezium
// topic, the codec never panics, fails only with a *DecodeError, decodes the
// same bytes to the same id, and a decoded event is a valid CloudEvent that
// encodes and reads back the same; DecodeChange agrees on what is a change.
func FuzzDebeziumEvents(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "debezium", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"schema":null,"payload":{"op":"c","after":{"id":1},"source":{"name":"x","lsn":"1"}}}`))
	f.Add([]byte(`{"op":"d","before":null,"source":{"connector":"mongodb","ord":3}}`))
	f.Add([]byte(`{"op":"r","after":{},"source":{"snapshot":"last","ts_ms":-1}}`))
	f.Add([]byte("\xff"))
	d := codecs.DebeziumEvents{}
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := d.Decode(value)
		_, changeErr := codecs.DecodeChange[map[string]any](value)
		if err != nil {
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if changeErr == nil {
				t.Fatalf("DecodeChange read what the codec refused (%v)", err)
			}
			return
		}
		if changeErr != nil && errors.Is(changeErr, codecs.ErrNotChangeEvent) {
			t.Fatalf("DecodeChange says not a change (%v), the codec read %+v", changeErr, e)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		again, err := d.Decode(value)
		if err != nil || again.ID != e.ID {
			t.Fatalf("the same bytes gave id %q then %q (%v)", e.ID, again.ID, err)
		}
		b, err := codecs.CloudEvents{}.Encode(e)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
		back, err := codecs.CloudEvents{}.Decode(b)
		if err != nil || !equalOnTheWire(e, back) {
			t.Fatalf("round trip: %+v\n%+v (%v)", e, back, err)
		}
	})
}

// FuzzDebeziumOutbox: a routed record never panics the outbox codec and
// fails only with a *DecodeError; what decodes is a valid CloudEvent.
func FuzzDebeziumOutbox(f *testing.F) {
	for _, name := range []string{"outbox-string.json", "outbox-expanded.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "debezium", name)); err == nil {
			f.Add(b, "id=4d47e190\neventType=OrderCreated")
		}
	}
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"urn:x","type":"T","data":{"a":1}}`), "")
	f.Add([]byte(`"plain"`), "id=\"x\"\neventType=\"T\"\nts=12")
	f.Fuzz(func(t *testing.T, value []byte, headers string) {
		e, err := codecs.DebeziumOutbox{TimeHeader: "ts"}.DecodeRecord(value, fuzzHeaders(headers))
		if err != nil {
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
	})
}
