package codecs

import (
	"errors"
	"fmt"
	"reflect"
)

// GokaCodec is a typed Codec seen through goka's untyped codec interface
// (Encode(interface{}) ([]byte, error); Decode([]byte) (interface{}, error)).
// It satisfies goka.Codec structurally, so this package does not import goka.
// Build one with Goka; the zero value only returns errors. It is safe for
// concurrent use when the adapted codec is.
type GokaCodec struct {
	encode func(any) ([]byte, error)
	decode func([]byte) (any, error)
}

// Goka adapts c to goka's codec interface. Encoding a value that is not a T
// returns an *EncodeError wrapping ErrWrongType; it never panics. A nil
// interface is encoded as the zero T when T can be nil (pointer, slice, map,
// interface), and is a wrong-type error otherwise.
func Goka[T any](c Codec[T]) GokaCodec {
	want := reflect.TypeFor[T]()
	return GokaCodec{
		encode: func(v any) ([]byte, error) {
			t, ok := v.(T)
			if !ok {
				if v != nil || !nilable(want) {
					return nil, &EncodeError{Codec: "goka", Err: fmt.Errorf("%w: got %T, want %v", ErrWrongType, v, want)}
				}
				// t is already the zero T, i.e. nil.
			}
			return c.Encode(t)
		},
		decode: func(b []byte) (any, error) {
			return c.Decode(b)
		},
	}
}

// Encode encodes v, which must be of the adapted codec's type.
func (g GokaCodec) Encode(v interface{}) ([]byte, error) {
	if g.encode == nil {
		return nil, &EncodeError{Codec: "goka", Err: errZeroGokaCodec}
	}
	return g.encode(v)
}

// Decode decodes b into a value of the adapted codec's type.
func (g GokaCodec) Decode(b []byte) (interface{}, error) {
	if g.decode == nil {
		return nil, &DecodeError{Codec: "goka", Err: errZeroGokaCodec}
	}
	return g.decode(b)
}

var errZeroGokaCodec = errors.New("zero GokaCodec: build it with codecs.Goka")

func nilable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return true
	}
	return false
}
