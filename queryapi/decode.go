package queryapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// MaxBodyBytes is the largest request body the API takes (1 MiB): DecodeJSON
// reads no more, and a proxy in front of an API (the shop's router) should
// use the same limit through ErrBodyTooLarge. A larger body is a 413 problem.
const MaxBodyBytes = 1 << 20

// DecodeJSON decodes the request body, one JSON document, into v (a non-nil
// pointer). It is strict, so a client's mistake is reported rather than half
// applied: a body over MaxBodyBytes is a 413 problem; a Content-Type that is
// given and is not application/json (or *+json) is a 415 problem; an empty
// body, malformed JSON, a field v does not have, a value of the wrong type
// or data after the document is a 400 problem whose detail says what is
// wrong, e.g. `body: unknown field "foo"`. Return the error from a
// HandlerFunc as is.
//
// Other errors (v not a pointer) are programming errors and come back
// unwrapped as plain errors (answered 500).
func DecodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !isJSONMediaType(mt) {
			return UnsupportedMediaType(fmt.Sprintf("body: Content-Type must be application/json, got %q", ct))
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return BadRequest("body: empty, expected a JSON document")
	}
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(dec, err)
	}
	// One document only: anything but whitespace after it is a mistake
	// (two documents glued together, a truncated edit).
	off := dec.InputOffset()
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case isTooLarge(err):
		return ErrBodyTooLarge()
	default:
		return BadRequest(fmt.Sprintf("body: unexpected data after the JSON document at offset %d", off+leadingSpace(dec)))
	}
}

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// leadingSpace counts the whitespace the decoder buffered before the
// trailing data, so the reported offset points at the data itself.
func leadingSpace(dec *json.Decoder) int64 {
	b, _ := io.ReadAll(io.LimitReader(dec.Buffered(), MaxBodyBytes))
	return int64(len(b) - len(bytes.TrimLeft(b, " \t\r\n")))
}

// ErrBodyTooLarge is the 413 problem of a body over MaxBodyBytes.
func ErrBodyTooLarge() *Problem {
	return PayloadTooLarge(fmt.Sprintf("body: larger than %d bytes", MaxBodyBytes))
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func decodeProblem(dec *json.Decoder, err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		inv    *json.InvalidUnmarshalError
	)
	switch {
	case isTooLarge(err):
		return ErrBodyTooLarge()
	case errors.Is(err, io.EOF):
		return BadRequest("body: empty, expected a JSON document")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest(fmt.Sprintf("body: invalid JSON at offset %d: unexpected end of input", dec.InputOffset()))
	case errors.As(err, &syntax):
		return BadRequest(fmt.Sprintf("body: invalid JSON at offset %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: ")))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return BadRequest(fmt.Sprintf("body: expected %s, got JSON %s", typeName(typ), typ.Value))
		}
		return BadRequest(fmt.Sprintf("body: field %q must be %s, got JSON %s", field, typeName(typ), typ.Value))
	case errors.As(err, &inv):
		return err
	}
	// encoding/json reports unknown fields only as text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return BadRequest("body: unknown field " + name)
	}
	return BadRequest("body: " + strings.TrimPrefix(err.Error(), "json: "))
}

// typeName describes the Go type a JSON value failed to fit, in JSON terms.
func typeName(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "another type"
	}
	switch e.Type.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return e.Type.String()
}
