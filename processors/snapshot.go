package processors

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// metaPrefix opens every snapshot that carries framework bookkeeping.
const metaPrefix = `{"_meta":`

// stateOf returns a snapshot's state document without the framework's leading
// "_meta" member, without decoding it: what the application's codec wrote. A
// value without "_meta" is returned as it is.
func stateOf(snapshot []byte) ([]byte, error) {
	if !bytes.HasPrefix(snapshot, []byte(metaPrefix)) {
		return snapshot, nil
	}
	n, err := skipJSONValue(snapshot[len(metaPrefix):])
	if err != nil {
		return nil, err
	}
	return restAfterMeta(snapshot[len(metaPrefix)+n:])
}

// decodeWithMeta reads a stored snapshot: its "_meta" member into an M and
// the rest with the state's codec; nil bytes mean no state.
func decodeWithMeta[S, M any](c codecs.Codec[S], b []byte) (*S, M, error) {
	var m M
	if b == nil {
		return nil, m, nil
	}
	state, err := splitMeta(b, &m)
	if err != nil {
		return nil, m, err
	}
	return decodeState(c, state, m)
}

func decodeState[S, M any](c codecs.Codec[S], state []byte, m M) (*S, M, error) {
	s, err := c.Decode(state)
	if err != nil {
		var zero M
		return nil, zero, err
	}
	return &s, m, nil
}

// restAfterMeta turns what follows the "_meta" value (a comma and the state's
// members, or the closing brace) into the state's own object.
func restAfterMeta(b []byte) ([]byte, error) {
	rest := bytes.TrimLeft(b, " \t\r\n")
	switch {
	case len(rest) > 0 && rest[0] == ',':
		out := make([]byte, 0, len(rest))
		out = append(out, '{')
		return append(out, rest[1:]...), nil
	case len(rest) > 0 && rest[0] == '}':
		return []byte("{}"), nil
	default:
		return nil, errMalformedSnapshot
	}
}

var errMalformedSnapshot = errors.New("malformed snapshot after _meta")

// decodeMeta decodes only a snapshot's leading "_meta" member into m,
// reading no further; a snapshot without one leaves m as it is.
func decodeMeta(snapshot []byte, m any) error {
	if !bytes.HasPrefix(snapshot, []byte(metaPrefix)) {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(snapshot[len(metaPrefix):])).Decode(m)
}

// stateIndexes makes a group table's indexes see the state only: a Terms
// function then parses the application's document, not the bookkeeping in
// front of it (which can be many times larger: an aggregate remembers its
// last commands' replies).
func stateIndexes(idx []tables.Index) []tables.Index {
	out := make([]tables.Index, len(idx))
	for i, x := range idx {
		terms := x.Terms
		out[i] = tables.Index{Name: x.Name, Terms: func(key string, value []byte) []string {
			state, err := stateOf(value)
			if err != nil {
				return nil
			}
			return terms(key, state)
		}}
	}
	return out
}

// skipJSONValue returns the length of the JSON value at the start of b
// (after leading white space), without decoding it. It checks the nesting
// and the strings, not every token: the snapshots it reads were written by
// encoding/json.
func skipJSONValue(b []byte) (int, error) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	if i == len(b) {
		return 0, errMalformedSnapshot
	}
	if c := b[i]; c != '{' && c != '[' && c != '"' {
		// A number or a literal: it ends where a delimiter begins.
		for i < len(b) && bytes.IndexByte([]byte(",}] \t\r\n"), b[i]) < 0 {
			i++
		}
		return i, nil
	}
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			n, err := skipJSONString(b[i:])
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
				return 0, errMalformedSnapshot
			}
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, errMalformedSnapshot
}

// skipJSONString returns the length of the string at the start of b,
// quotes included.
func skipJSONString(b []byte) (int, error) {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errMalformedSnapshot
}
