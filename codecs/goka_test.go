package codecs_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
)

// The adapter satisfies goka's interface without the package importing goka.
var _ goka.Codec = codecs.Goka[string](codecs.String{})

func TestGivenGokaAdapterWhenEncodingTheRightTypeThenTypedCodecIsUsed(t *testing.T) {
	var c goka.Codec = codecs.Goka[customer](codecs.JSON[customer]{})
	b, err := c.Encode(customer{ID: "c1", Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (customer{ID: "c1", Name: "Ada"}); !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v, want %#v", v, want)
	}
}

func TestGivenGokaAdapterWhenEncodingAWrongTypeThenErrorNotPanic(t *testing.T) {
	c := codecs.Goka[customer](codecs.JSON[customer]{})
	for _, v := range []any{"c1", &customer{ID: "c1"}, 42, nil} {
		_, err := c.Encode(v) // a panic fails the test
		var ee *codecs.EncodeError
		if !errors.As(err, &ee) || !errors.Is(err, codecs.ErrWrongType) {
			t.Errorf("encode %#v: got %v, want an *EncodeError wrapping ErrWrongType", v, err)
			continue
		}
		if !strings.Contains(err.Error(), "want codecs_test.customer") {
			t.Errorf("error %q does not name the wanted type", err)
		}
	}
}

func TestGivenGokaAdapterOfANilableTypeWhenEncodingNilThenZeroValueIsEncoded(t *testing.T) {
	b, err := codecs.Goka[*customer](codecs.JSON[*customer]{}).Encode(nil)
	if err != nil || string(b) != "null" {
		t.Errorf("pointer codec: got %q, %v; want null", b, err)
	}
	b, err = codecs.Goka[[]byte](codecs.Bytes{}).Encode(nil)
	if err != nil || b != nil {
		t.Errorf("bytes codec: got %q, %v; want nil", b, err)
	}
}

func TestGivenGokaAdapterWhenDecodingGarbageThenDecodeError(t *testing.T) {
	_, err := codecs.Goka[customer](codecs.JSON[customer]{}).Decode([]byte("garbage"))
	var de *codecs.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DecodeError", err)
	}
}

func TestGivenZeroGokaCodecWhenUsedThenErrorNotPanic(t *testing.T) {
	var c codecs.GokaCodec
	if _, err := c.Encode("x"); err == nil {
		t.Error("encode with a zero GokaCodec succeeded")
	}
	if _, err := c.Decode([]byte("x")); err == nil {
		t.Error("decode with a zero GokaCodec succeeded")
	}
}
