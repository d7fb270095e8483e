package processors

import (
	"fmt"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// A group table's stored value is a snapshot: the state with the group's
// bookkeeping in front of it. Its bytes are internal/envelope's; this file
// adapts it to the state's codec.

// stateOf returns a snapshot's state document without the bookkeeping,
// without decoding it: what the application's codec wrote. A value without
// bookkeeping is returned as it is.
func stateOf(snapshot []byte) ([]byte, error) {
	_, state, err := envelope.Split(snapshot)
	return state, err
}

// decodeWithMeta reads a stored snapshot: its bookkeeping into an M and
// the rest with the state's codec; nil bytes mean no state.
func decodeWithMeta[S, M any](c codecs.Codec[S], b []byte) (*S, M, error) {
	var m M
	if b == nil {
		return nil, m, nil
	}
	state, err := envelope.Decode(b, bookkeeping(&m))
	if err != nil {
		return nil, m, err
	}
	return decodeState(c, state, m)
}

// bookkeeping gives the envelope a fold's or an aggregate's bookkeeping as
// its own type, which it writes and reads in a binary form (any other is
// JSON): a pointer to it for Decode, the value for Join.
func bookkeeping(m any) any {
	switch m := m.(type) {
	case *meta:
		return (*envelope.Meta)(m)
	case meta:
		return envelope.Meta(m)
	case *aggMeta:
		return (*envelope.Aggregate)(m)
	case aggMeta:
		return envelope.Aggregate(m)
	}
	return m
}

func decodeState[S, M any](c codecs.Codec[S], state []byte, m M) (*S, M, error) {
	s, err := c.Decode(state)
	if err != nil {
		var zero M
		return nil, zero, err
	}
	return &s, m, nil
}

// encodeWithMeta writes the snapshot of s with the bookkeeping m.
func encodeWithMeta[S any](c codecs.Codec[S], s S, m any) ([]byte, error) {
	body, err := c.Encode(s)
	if err != nil {
		return nil, fail(ClassHandler, fmt.Errorf("encode state: %w", err))
	}
	b, err := envelope.Join(bookkeeping(m), body)
	if err != nil {
		return nil, fail(ClassHandler, err)
	}
	return b, nil
}

var errNotObject = envelope.ErrNotObject

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

// StateCodec reads a group table's values with c for a reader outside the
// framework: a plain goka processor's Lookup of <group>-table, a Kafka
// consumer of the changelog. Decode skips the framework's bookkeeping (either
// envelope form; a value without any is all state) and decodes the state; a
// value holding bookkeeping only (parked records) decodes as c decodes its
// empty state. Encode writes the bare state, which the framework reads as a
// value without bookkeeping.
func StateCodec[S any](c codecs.Codec[S]) codecs.Codec[S] { return stateCodec[S]{c} }

type stateCodec[S any] struct{ c codecs.Codec[S] }

func (s stateCodec[S]) Encode(v S) ([]byte, error) { return s.c.Encode(v) }

func (s stateCodec[S]) Decode(b []byte) (S, error) {
	state, err := stateOf(b)
	if err != nil {
		var zero S
		return zero, fmt.Errorf("group table value: %w", err)
	}
	return s.c.Decode(state)
}
