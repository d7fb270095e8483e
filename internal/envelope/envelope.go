package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// prefix opens every value that carries bookkeeping.
const prefix = `{"_meta":`

// ErrMalformed: a value opens with bookkeeping that does not end, or is not
// followed by the state's members.
var ErrMalformed = errors.New("malformed snapshot envelope")

// ErrNotObject: the state given to Join is not a JSON object, so it has no
// members to put beside the bookkeeping.
var ErrNotObject = errors.New("state codec must encode a JSON object")

// Meta is the bookkeeping of a fold (processors.Project): what Absent,
// ParkedOf and Applied read. Aggregates and reactors keep bookkeeping of their
// own shape and pass it to Join and Decode.
type Meta struct {
	// Offsets is the last applied input offset per topic. A key always lives on
	// one partition of a topic, so one offset per topic suffices.
	Offsets map[string]int64 `json:"offsets,omitempty"`
	// IDs are the event ids this write applied (snapshots written before
	// the ids were kept in the store hold the last few applied); At is when,
	// in unix milliseconds.
	IDs []string `json:"ids,omitempty"`
	At  int64    `json:"at,omitempty"`
	// Parked are records waiting for this key's state (their parent), in order.
	Parked []Parked `json:"parked,omitempty"`
	// Absent: there is no state, only bookkeeping (parked records).
	Absent bool `json:"absent,omitempty"`
}

// Parked is a record waiting for its parent, as it arrived: its coordinates,
// value and headers, when it was parked and what it waits for.
type Parked struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Value     []byte            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
	Since     time.Time         `json:"since"`
	Kind      string            `json:"kind"`
	ID        string            `json:"id,omitempty"` // the event's id
}

// Split returns a value's bookkeeping and its state document, decoding
// neither: meta is the encoded bookkeeping (nil for a value without any, whose
// state is then the value as it is), state is what the application's codec
// wrote.
func Split(value []byte) (meta, state []byte, err error) {
	meta, err = metaOf(value)
	if err != nil || meta == nil {
		return nil, value, err
	}
	state, err = stateAfter(value[len(prefix)+len(meta):])
	if err != nil {
		return nil, nil, err
	}
	return bytes.TrimLeft(meta, " \t\r\n"), state, nil
}

// metaOf returns the encoded bookkeeping at the start of value (nil when
// there is none), without decoding it or looking at the state after it.
func metaOf(value []byte) ([]byte, error) {
	if !bytes.HasPrefix(value, []byte(prefix)) {
		return nil, nil
	}
	n, err := skipValue(value[len(prefix):])
	if err != nil {
		return nil, err
	}
	return value[len(prefix) : len(prefix)+n], nil
}

// Join writes the value that carries meta (encoded as JSON) in front of
// state, which must be a JSON object.
func Join(meta any, state []byte) ([]byte, error) {
	state = bytes.TrimSpace(state)
	if len(state) < 2 || state[0] != '{' || state[len(state)-1] != '}' {
		return nil, ErrNotObject
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	out := make([]byte, 0, len(state)+len(mb)+10)
	out = append(out, prefix...)
	out = append(out, mb...)
	if rest := bytes.TrimSpace(state[1:]); len(rest) > 1 {
		out = append(out, ',')
		out = append(out, rest...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// Decode decodes a value's bookkeeping into meta and returns the state
// document, reading each part once. A value without bookkeeping leaves meta
// as it is and is returned whole.
func Decode(value []byte, meta any) (state []byte, err error) {
	if !bytes.HasPrefix(value, []byte(prefix)) {
		return value, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value[len(prefix):]))
	if err := dec.Decode(meta); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	state, err = stateAfter(value[len(prefix)+int(dec.InputOffset()):])
	if err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	return state, nil
}

// DecodeMeta decodes only a value's leading bookkeeping into meta, reading
// no further; a value without any leaves meta as it is.
func DecodeMeta(value []byte, meta any) error {
	if !bytes.HasPrefix(value, []byte(prefix)) {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(value[len(prefix):])).Decode(meta)
}

// Absent reports a value that carries bookkeeping only (records parked under
// a key that has no state yet): readers treat it as no value. A malformed
// value is not absent (its reader reports it).
func Absent(value []byte) bool {
	// Most values are not absent: a byte search turns them away before any
	// decoding.
	if !bytes.HasPrefix(value, []byte(prefix)) || !bytes.Contains(value, []byte(`"absent":true`)) {
		return false
	}
	var m struct {
		Absent bool `json:"absent"`
	}
	return DecodeMeta(value, &m) == nil && m.Absent
}

// HasParked reports whether a value's bookkeeping holds parked records,
// without decoding it.
func HasParked(value []byte) bool {
	const parked = `"parked":[{`
	if !bytes.HasPrefix(value, []byte(prefix)) || !bytes.Contains(value, []byte(parked)) {
		return false
	}
	meta, err := metaOf(value)
	return err == nil && bytes.Contains(meta, []byte(parked))
}

// ParkedOf returns the records parked in a value's bookkeeping, in order
// (none for a value without bookkeeping).
func ParkedOf(value []byte) ([]Parked, error) {
	var m struct {
		Parked []Parked `json:"parked"`
	}
	if err := DecodeMeta(value, &m); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	return m.Parked, nil
}

// Applied returns the event ids a value's write applied and when. A value
// without a time (written before it was recorded) gives the zero time; one
// without ids, or malformed, gives none.
func Applied(value []byte) ([]string, time.Time) {
	meta, err := metaOf(value)
	if err != nil || meta == nil {
		return nil, time.Time{}
	}
	var m struct {
		IDs []string `json:"ids"`
		At  int64    `json:"at"`
	}
	if json.Unmarshal(meta, &m) != nil || len(m.IDs) == 0 {
		return nil, time.Time{}
	}
	if m.At == 0 {
		return m.IDs, time.Time{}
	}
	return m.IDs, time.UnixMilli(m.At)
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
