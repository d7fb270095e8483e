package codecs_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/codecs"
)

// codecSuite is the behaviour every Codec shares: what it encodes it decodes
// back unchanged, and what it cannot decode it reports as a *DecodeError that
// keeps its cause.
type codecSuite[T any] struct {
	codec     codecs.Codec[T]
	values    []T
	malformed [][]byte
}

func (s codecSuite[T]) run(t *testing.T) {
	for _, v := range s.values {
		b, err := s.codec.Encode(v)
		if err != nil {
			t.Fatalf("encode %#v: %v", v, err)
		}
		got, err := s.codec.Decode(b)
		if err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		if !reflect.DeepEqual(v, got) {
			t.Errorf("round trip of %#v gave %#v", v, got)
		}
	}
	for _, b := range s.malformed {
		_, err := s.codec.Decode(b)
		var de *codecs.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("decode %q: got %v, want a *DecodeError", b, err)
			continue
		}
		if errors.Unwrap(err) == nil {
			t.Errorf("decode %q: DecodeError without a cause", b)
		}
	}
}

type customer struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Tags  []string `json:"tags,omitempty"`
	Score float64  `json:"score"`
}

func TestGivenEachCodecWhenRoundTrippingThenValuesSurvive(t *testing.T) {
	t.Run("json struct", codecSuite[customer]{
		codec:     codecs.JSON[customer]{},
		values:    []customer{{}, {ID: "c1", Name: "Ada", Tags: []string{"vip"}, Score: 1.5}},
		malformed: [][]byte{nil, {}, []byte("not json"), []byte(`{"id": 5}`), []byte(`[1,2]`)},
	}.run)
	t.Run("json map", codecSuite[map[string]int]{
		codec:     codecs.JSON[map[string]int]{},
		values:    []map[string]int{{"a": 1}, {}},
		malformed: [][]byte{[]byte(`{"a": "x"}`)},
	}.run)
	t.Run("json pointer", codecSuite[*customer]{
		codec:  codecs.JSON[*customer]{},
		values: []*customer{{ID: "c2"}, nil},
	}.run)
	t.Run("bytes", codecSuite[[]byte]{
		codec:  codecs.Bytes{},
		values: [][]byte{nil, {}, []byte("raw \x00\xff")},
	}.run)
	t.Run("string", codecSuite[string]{
		codec:  codecs.String{},
		values: []string{"", "hello", "héllo ☃"},
	}.run)
	t.Run("cloudevents", codecSuite[codecs.Event]{
		codec: codecs.CloudEvents{},
		values: []codecs.Event{
			mustEvent(t, "c1", customer{ID: "c1"}),
			{SpecVersion: "1.0", ID: "e2", Source: "/test", Type: "Bare"},
		},
		malformed: [][]byte{nil, []byte("{"), []byte(`{"specversion":"1.0"}`), []byte(`{"name":"not an event"}`)},
	}.run)
}

func TestGivenBytesWhenDecodingThenResultDoesNotAliasInput(t *testing.T) {
	in := []byte("value")
	out, err := codecs.Bytes{}.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	if string(out) != "value" {
		t.Fatalf("decoded bytes changed with the input: %q", out)
	}
}

func TestGivenUnencodableValueWhenEncodingJSONThenEncodeError(t *testing.T) {
	_, err := codecs.JSON[any]{}.Encode(make(chan int))
	var ee *codecs.EncodeError
	if !errors.As(err, &ee) || ee.Codec != "json" {
		t.Fatalf("got %v, want a json *EncodeError", err)
	}
	if !strings.Contains(err.Error(), "chan") {
		t.Errorf("error %q does not say what could not be encoded", err)
	}
}
