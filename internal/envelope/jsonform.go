package envelope

import "bytes"

// The JSON form, which versions before the binary frame wrote and which
// changelogs and stores still hold: the bookkeeping as the leading member of
// the state's object,
//
//	{"_meta":{<bookkeeping>}, <the state's members>}
//
// It is read, never written.

// jsonPrefix opens every value of the JSON form.
const jsonPrefix = `{"_meta":`

// jsonMetaOf returns the encoded bookkeeping at the start of a value of the
// JSON form (nil for any other value), without decoding it or looking at
// the state after it.
func jsonMetaOf(value []byte) ([]byte, error) {
	if !bytes.HasPrefix(value, []byte(jsonPrefix)) {
		return nil, nil
	}
	n, err := skipValue(value[len(jsonPrefix):])
	if err != nil {
		return nil, err
	}
	return value[len(jsonPrefix) : len(jsonPrefix)+n], nil
}

// stateAfter turns what follows the bookkeeping (a comma and the state's
// members, or the closing brace) into the state's own object.
func stateAfter(b []byte) ([]byte, error) {
	rest := bytes.TrimLeft(b, " \t\r\n")
	switch {
	case len(rest) > 0 && rest[0] == ',':
		out := make([]byte, 0, len(rest))
		out = append(out, '{')
		return append(out, rest[1:]...), nil
	case len(rest) > 0 && rest[0] == '}':
		return []byte("{}"), nil
	default:
		return nil, ErrMalformed
	}
}

// skipValue returns the length of the JSON value at the start of b (after
// leading white space), without decoding it. It checks the nesting and the
// strings, not every token: the values it reads were written by
// encoding/json.
func skipValue(b []byte) (int, error) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	if i == len(b) {
		return 0, ErrMalformed
	}
	if c := b[i]; c != '{' && c != '[' && c != '"' {
		// A number or a literal: it ends where a delimiter begins.
		start := i
		for i < len(b) && bytes.IndexByte([]byte(",}] \t\r\n"), b[i]) < 0 {
			i++
		}
		if i == start {
			return 0, ErrMalformed // a delimiter where the value should be
		}
		return i, nil
	}
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			n, err := skipString(b[i:])
			if err != nil {
				return 0, err
			}
			i += n - 1
			if depth == 0 {
				return i + 1, nil
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return 0, ErrMalformed
			}
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, ErrMalformed
}

// skipString returns the length of the string at the start of b, quotes
// included.
func skipString(b []byte) (int, error) {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, ErrMalformed
}
