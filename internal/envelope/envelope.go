package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrMalformed: a value opens as an envelope (the frame's magic byte, or
// the leading bookkeeping member of the JSON form) but does not parse as one.
var ErrMalformed = errors.New("malformed snapshot envelope")

// ErrNotObject: the state given to Join is not a JSON object.
var ErrNotObject = errors.New("state codec must encode a JSON object")

// Meta is the bookkeeping of a fold (processors.Project): what Absent,
// ParkedOf and Applied read. It is written in a binary form of its own.
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
// value and headers, when it was parked and what it waits for. Parked
// records are rare: the binary form keeps them as JSON.
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

// Aggregate is the bookkeeping of an aggregate (processors.HandleCommands),
// written in a binary form of its own: every command reads it, and the relay
// reads it once more per decision.
type Aggregate struct {
	Version int64 `json:"version"`
	// Last is the command whose decision this write records: the one the
	// relay sends.
	Last string `json:"last,omitempty"`
	// Offset is the offset of the last command record decided, if any.
	Offset   *int64    `json:"offset,omitempty"`
	Commands []Command `json:"commands,omitempty"`
}

// Command is what an aggregate's snapshot remembers of a handled command.
// Events and Reply are the processors' JSON, kept as bytes: decoded only
// when a reply is sent. A decoded Command's Events and Reply share the
// bytes of the value they were read from.
type Command struct {
	ID      string          `json:"id"`
	Topic   string          `json:"topic"`
	Offset  int64           `json:"offset"`
	Status  string          `json:"status,omitempty"`
	Version int64           `json:"version,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Events  json.RawMessage `json:"events,omitempty"`
	Reply   json.RawMessage `json:"reply,omitempty"`
}

// Split returns a value's bookkeeping and its state document, decoding
// neither: meta is the encoded bookkeeping (nil for a value without any,
// whose state is then the value as it is), state is what the application's
// codec wrote. For a value of the binary form, state is a sub-slice of value:
// neither copied nor scanned.
func Split(value []byte) (meta, state []byte, err error) {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil {
			return nil, nil, err
		}
		return f.meta, f.state, nil
	}
	meta, err = jsonMetaOf(value)
	if err != nil || meta == nil {
		return nil, value, err
	}
	state, err = stateAfter(value[len(jsonPrefix)+len(meta):])
	if err != nil {
		return nil, nil, err
	}
	return bytes.TrimLeft(meta, " \t\r\n"), state, nil
}

// Framed reports whether value is of the binary form this package writes
// (whole and well-formed), so its state is what the table's codec wrote.
func Framed(value []byte) bool {
	if !isFrame(value) {
		return false
	}
	_, err := parseFrame(value)
	return err == nil
}

// Join writes the value that carries meta in front of state, which must be
// a JSON object and is kept byte for byte. A Meta or an Aggregate (or a
// pointer to one) is written in its binary form; any other bookkeeping as
// JSON inside the frame.
func Join(meta any, state []byte) ([]byte, error) {
	if !isObject(state) {
		return nil, ErrNotObject
	}
	var kind byte
	var mb []byte
	switch m := meta.(type) {
	case Meta:
		return joinMeta(&m, state)
	case *Meta:
		return joinMeta(m, state)
	case Aggregate:
		kind, mb = kindAggregate, appendAggregate(nil, &m)
	case *Aggregate:
		kind, mb = kindAggregate, appendAggregate(nil, m)
	default:
		b, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("encode meta: %w", err)
		}
		kind, mb = kindJSON, b
	}
	return appendFrame(make([]byte, 0, frameHeaderMax+len(mb)+len(state)), kind, mb, state), nil
}

func joinMeta(m *Meta, state []byte) ([]byte, error) {
	mb, err := appendMeta(make([]byte, 0, 64), m)
	if err != nil {
		return nil, err
	}
	return appendFrame(make([]byte, 0, frameHeaderMax+len(mb)+len(state)), kindFold, mb, state), nil
}

// Decode decodes a value's bookkeeping into meta and returns the state
// document, reading each part once. A value without bookkeeping leaves meta
// as it is and is returned whole. A value of the binary form decodes a fold's
// bookkeeping into a *Meta and an aggregate's into an *Aggregate only.
func Decode(value []byte, meta any) (state []byte, err error) {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		if err := f.decode(meta); err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		return f.state, nil
	}
	if !bytes.HasPrefix(value, []byte(jsonPrefix)) {
		return value, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value[len(jsonPrefix):]))
	if err := dec.Decode(meta); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	state, err = stateAfter(value[len(jsonPrefix)+int(dec.InputOffset()):])
	if err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	return state, nil
}

// DecodeMeta decodes only a value's bookkeeping into meta; a value without
// any leaves meta as it is. Of the JSON form it reads no further than the
// bookkeeping.
func DecodeMeta(value []byte, meta any) error {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil {
			return err
		}
		return f.decode(meta)
	}
	if !bytes.HasPrefix(value, []byte(jsonPrefix)) {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(value[len(jsonPrefix):])).Decode(meta)
}

// Absent reports a value that carries bookkeeping only (records parked under
// a key that has no state yet): readers treat it as no value. A malformed
// value is not absent (its reader reports it).
func Absent(value []byte) bool {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil {
			return false
		}
		switch f.kind {
		case kindFold:
			flags, err := foldFlags(f.meta)
			return err == nil && flags&flagAbsent != 0
		case kindJSON:
			return jsonAbsent(f.meta)
		}
		return false
	}
	// Most values are not absent: a byte search turns them away before any
	// decoding.
	if !bytes.HasPrefix(value, []byte(jsonPrefix)) || !bytes.Contains(value, []byte(`"absent":true`)) {
		return false
	}
	meta, err := jsonMetaOf(value)
	return err == nil && jsonAbsent(meta)
}

func jsonAbsent(meta []byte) bool {
	if !bytes.Contains(meta, []byte(`"absent":true`)) {
		return false
	}
	var m struct {
		Absent bool `json:"absent"`
	}
	return json.Unmarshal(meta, &m) == nil && m.Absent
}

// HasParked reports whether a value's bookkeeping holds parked records,
// without decoding them.
func HasParked(value []byte) bool {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil || f.kind != kindFold {
			return false
		}
		flags, err := foldFlags(f.meta)
		return err == nil && flags&flagParked != 0
	}
	const parked = `"parked":[{`
	if !bytes.HasPrefix(value, []byte(jsonPrefix)) || !bytes.Contains(value, []byte(parked)) {
		return false
	}
	meta, err := jsonMetaOf(value)
	return err == nil && bytes.Contains(meta, []byte(parked))
}

// ParkedOf returns the records parked in a value's bookkeeping, in order
// (none for a value without bookkeeping or of an aggregate).
func ParkedOf(value []byte) ([]Parked, error) {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		if f.kind != kindFold {
			return nil, nil
		}
		var m Meta
		if err := decodeMeta(f.meta, &m); err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		return m.Parked, nil
	}
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
	var ids []string
	var at int64
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil || f.kind != kindFold {
			return nil, time.Time{}
		}
		if ids, at, err = appliedOf(f.meta); err != nil {
			return nil, time.Time{}
		}
	} else {
		meta, err := jsonMetaOf(value)
		if err != nil || meta == nil {
			return nil, time.Time{}
		}
		var m struct {
			IDs []string `json:"ids"`
			At  int64    `json:"at"`
		}
		if json.Unmarshal(meta, &m) != nil {
			return nil, time.Time{}
		}
		ids, at = m.IDs, m.At
	}
	if len(ids) == 0 {
		return nil, time.Time{}
	}
	if at == 0 {
		return ids, time.Time{}
	}
	return ids, time.UnixMilli(at)
}

// isObject reports whether b, without surrounding white space, is braced.
func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}

// JSONMeta returns a value's bookkeeping when it is JSON (any bookkeeping
// other than a fold's or an aggregate's, in either form), undecoded; false
// for a value without bookkeeping or with a binary one.
func JSONMeta(value []byte) ([]byte, bool) {
	if isFrame(value) {
		f, err := parseFrame(value)
		if err != nil || f.kind != kindJSON {
			return nil, false
		}
		return f.meta, true
	}
	meta, err := jsonMetaOf(value)
	if err != nil || meta == nil {
		return nil, false
	}
	return bytes.TrimLeft(meta, " \t\r\n"), true
}
