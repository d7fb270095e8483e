package envelope

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// The binary form, which Join writes:
//
//	0xF5 | format version | kind | uvarint len(meta) | uvarint len(state) | meta | state
//
// 0xF5 never starts UTF-8 text, so no JSON document (a value of the JSON
// form, a bare state another producer wrote) is mistaken for a frame. The
// state is last and kept exactly as the state's codec wrote it: a reader
// finds it from the two lengths, without scanning or copying. meta is the
// bookkeeping in the encoding its kind names: a fold's Meta and an
// aggregate's Aggregate in binary forms of their own (below), anything else
// as JSON. Integers are varints, strings and byte strings are prefixed with
// their length as a uvarint.

const (
	magic         byte = 0xF5
	formatVersion byte = 1

	kindFold      byte = 1 // Meta, binary
	kindAggregate byte = 2 // Aggregate, binary
	kindJSON      byte = 3 // any bookkeeping, as JSON

	frameHeaderMax = 3 + 2*binary.MaxVarintLen64
)

// Flags of a fold's bookkeeping, its first byte.
const (
	flagAbsent byte = 1 << iota
	flagParked
)

type frame struct {
	kind        byte
	meta, state []byte
}

func isFrame(value []byte) bool { return len(value) > 0 && value[0] == magic }

func appendFrame(dst []byte, kind byte, meta, state []byte) []byte {
	dst = append(dst, magic, formatVersion, kind)
	dst = binary.AppendUvarint(dst, uint64(len(meta)))
	dst = binary.AppendUvarint(dst, uint64(len(state)))
	dst = append(dst, meta...)
	return append(dst, state...)
}

// parseFrame reads the header of a value that opens with the magic byte; the
// lengths must account for every byte after it.
func parseFrame(value []byte) (frame, error) {
	if len(value) < 3 || value[0] != magic {
		return frame{}, ErrMalformed
	}
	if value[1] != formatVersion {
		return frame{}, fmt.Errorf("%w: format version %d", ErrMalformed, value[1])
	}
	f := frame{kind: value[2]}
	if f.kind < kindFold || f.kind > kindJSON {
		return frame{}, fmt.Errorf("%w: kind %d", ErrMalformed, f.kind)
	}
	r := reader{b: value[3:]}
	metaLen, stateLen := r.uvarint(), r.uvarint()
	if r.err != nil || metaLen > uint64(len(r.b)) || stateLen != uint64(len(r.b))-metaLen {
		return frame{}, ErrMalformed
	}
	f.meta, f.state = r.b[:metaLen:metaLen], r.b[metaLen:]
	return f, nil
}

// decode decodes the frame's bookkeeping into meta, which must be of the
// frame's kind (any for JSON).
func (f frame) decode(meta any) error {
	switch f.kind {
	case kindFold:
		m, ok := meta.(*Meta)
		if !ok {
			return fmt.Errorf("%w: a fold's bookkeeping read as %T", ErrMalformed, meta)
		}
		return decodeMeta(f.meta, m)
	case kindAggregate:
		m, ok := meta.(*Aggregate)
		if !ok {
			return fmt.Errorf("%w: an aggregate's bookkeeping read as %T", ErrMalformed, meta)
		}
		return decodeAggregate(f.meta, m)
	default:
		return json.Unmarshal(f.meta, meta)
	}
}

// A fold's bookkeeping:
//
//	flags | uvarint n, n × (topic, varint offset) | uvarint n, n × id | varint at | [parked records as JSON]
//
// The offsets are in topic order, so the same bookkeeping is the same bytes.
func appendMeta(dst []byte, m *Meta) ([]byte, error) {
	var flags byte
	if m.Absent {
		flags |= flagAbsent
	}
	if len(m.Parked) > 0 {
		flags |= flagParked
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(m.Offsets)))
	if len(m.Offsets) == 1 {
		for topic, off := range m.Offsets {
			dst = appendString(dst, topic)
			dst = binary.AppendVarint(dst, off)
		}
	} else {
		topics := make([]string, 0, len(m.Offsets))
		for topic := range m.Offsets {
			topics = append(topics, topic)
		}
		slices.Sort(topics)
		for _, topic := range topics {
			dst = appendString(dst, topic)
			dst = binary.AppendVarint(dst, m.Offsets[topic])
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.IDs)))
	for _, id := range m.IDs {
		dst = appendString(dst, id)
	}
	dst = binary.AppendVarint(dst, m.At)
	if len(m.Parked) > 0 {
		b, err := json.Marshal(m.Parked)
		if err != nil {
			return nil, fmt.Errorf("encode parked records: %w", err)
		}
		dst = appendBytes(dst, b)
	}
	return dst, nil
}

func decodeMeta(b []byte, m *Meta) error {
	r := reader{b: b}
	flags := r.byte()
	*m = Meta{Absent: flags&flagAbsent != 0}
	if n := r.count(); n > 0 {
		m.Offsets = make(map[string]int64, n)
		for range n {
			topic := r.string()
			m.Offsets[topic] = r.varint()
		}
	}
	if n := r.count(); n > 0 {
		m.IDs = make([]string, n)
		for i := range m.IDs {
			m.IDs[i] = r.string()
		}
	}
	m.At = r.varint()
	if flags&flagParked != 0 {
		if p := r.bytes(); r.err == nil {
			if err := json.Unmarshal(p, &m.Parked); err != nil {
				return fmt.Errorf("%w: parked records: %w", ErrMalformed, err)
			}
		}
	}
	return r.end()
}

// foldFlags is the first byte of a fold's bookkeeping.
func foldFlags(b []byte) (byte, error) {
	if len(b) == 0 {
		return 0, ErrMalformed
	}
	return b[0], nil
}

// appliedOf reads only the ids and time of a fold's bookkeeping.
func appliedOf(b []byte) ([]string, int64, error) {
	r := reader{b: b}
	r.byte()
	for range r.count() {
		r.bytes()
		r.varint()
	}
	var ids []string
	if n := r.count(); n > 0 {
		ids = make([]string, n)
		for i := range ids {
			ids[i] = r.string()
		}
	}
	at := r.varint()
	return ids, at, r.err
}

// An aggregate's bookkeeping:
//
//	varint version | last | 0, or 1 and varint offset | uvarint n, n × command
//
// where a command is id | topic | varint offset | status | varint version |
// reason | events | reply.
func appendAggregate(dst []byte, m *Aggregate) []byte {
	dst = binary.AppendVarint(dst, m.Version)
	dst = appendString(dst, m.Last)
	if m.Offset == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, *m.Offset)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Commands)))
	for i := range m.Commands {
		c := &m.Commands[i]
		dst = appendString(dst, c.ID)
		dst = appendString(dst, c.Topic)
		dst = binary.AppendVarint(dst, c.Offset)
		dst = appendString(dst, c.Status)
		dst = binary.AppendVarint(dst, c.Version)
		dst = appendString(dst, c.Reason)
		dst = appendBytes(dst, c.Events)
		dst = appendBytes(dst, c.Reply)
	}
	return dst
}

func decodeAggregate(b []byte, m *Aggregate) error {
	r := reader{b: b}
	*m = Aggregate{Version: r.varint(), Last: r.string()}
	switch r.byte() {
	case 0:
	case 1:
		off := r.varint()
		m.Offset = &off
	default:
		r.fail()
	}
	if n := r.count(); n > 0 {
		m.Commands = make([]Command, n)
		for i := range m.Commands {
			c := &m.Commands[i]
			c.ID, c.Topic, c.Offset = r.string(), r.string(), r.varint()
			c.Status, c.Version, c.Reason = r.string(), r.varint(), r.string()
			c.Events, c.Reply = r.raw(), r.raw()
		}
	}
	if err := r.end(); err != nil {
		*m = Aggregate{}
		return err
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// reader reads a binary form; its first error sticks, and every read after
// it gives zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrMalformed
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads the length of a list, each of whose items takes a byte at
// least: a count beyond the bytes left is malformed (and allocates nothing).
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

// bytes reads a byte string, a sub-slice of the input.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) string() string { return string(r.bytes()) }

// raw reads a byte string as a JSON message; an empty one is none.
func (r *reader) raw() json.RawMessage {
	if b := r.bytes(); len(b) > 0 {
		return b
	}
	return nil
}

// end reports the first error, or bytes left over.
func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = ErrMalformed
	}
	return r.err
}
