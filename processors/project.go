package processors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// rememberedIDs is how many applied event ids a snapshot keeps per key to drop
// re-sent duplicates; re-consumed records are caught by their offset.
const rememberedIDs = 16

// Apply folds one event into a state. state is nil when the key has none; a nil
// result removes the key (a tombstone in the table, gone from every view and
// index). Apply must be a pure function of its inputs: it runs again for the
// same event only if the table lost it.
type Apply[S any] func(state *S, ev codecs.Event) (*S, error)

// Project makes g fold a stream of CloudEvents into table, which becomes the
// group's table (<group>-table). Per record it:
//   - treats a Kafka tombstone (null value) on the input as "remove the key";
//   - dead-letters an undecodable event, an error or panic from apply;
//   - skips an event already applied: same input offset (a record re-consumed
//     after a crash before the offset commit) or same CloudEvents id (a
//     producer's retry), remembered inside the snapshot so it survives restores.
//
// The table's codec must encode S as a JSON object: the snapshot carries the
// framework's bookkeeping in a leading "_meta" member that readers decoding
// into S ignore.
func Project[S any](g *Group, table tables.Table[S], in tables.Stream[codecs.Event], apply Apply[S]) {
	g.setTable(table, table.Indexes)
	g.addInput(in, func(r *recordCtx) error {
		prevRaw, _ := r.gctx.Value().([]byte)
		if r.value == nil {
			if prevRaw != nil {
				r.gctx.Delete()
				g.stats.deleted.Add(1)
			}
			return nil
		}
		ev, err := codecs.DecodeEvent(r.value, r.headers)
		if err != nil {
			return err
		}
		prev, m, err := decodeSnapshot(table.Codec, prevRaw)
		if err != nil {
			return fail(ClassDecode, fmt.Errorf("stored state of %q: %w", r.gctx.Key(), err))
		}
		topic, offset := r.topic(), r.gctx.Offset()
		if m.seen(topic, offset, ev.ID) {
			g.stats.duplicates.Add(1)
			// Write the snapshot again: when a crash came between the local
			// write and the changelog's acknowledgement, this is what puts it
			// into the changelog.
			r.gctx.SetValue(prevRaw)
			return nil
		}
		var next *S
		if err := safely(func() (err error) { next, err = apply(prev, ev); return err }); err != nil {
			return err
		}
		if next == nil {
			if prev != nil {
				r.gctx.Delete()
				g.stats.deleted.Add(1)
			}
			return nil
		}
		m.record(topic, offset, ev.ID)
		b, err := encodeSnapshot(table.Codec, *next, m)
		if err != nil {
			return err
		}
		r.gctx.SetValue(b)
		g.stats.applied.Add(1)
		return nil
	})
}

// meta is the framework's bookkeeping stored with every snapshot.
type meta struct {
	// Offsets is the last applied input offset per topic. A key always lives on
	// one partition of a topic, so one offset per topic suffices.
	Offsets map[string]int64 `json:"offsets,omitempty"`
	// IDs are the most recently applied event ids, oldest first.
	IDs []string `json:"ids,omitempty"`
}

func (m *meta) seen(topic string, offset int64, id string) bool {
	if last, ok := m.Offsets[topic]; ok && offset <= last {
		return true
	}
	return id != "" && slices.Contains(m.IDs, id)
}

func (m *meta) record(topic string, offset int64, id string) {
	if m.Offsets == nil {
		m.Offsets = map[string]int64{}
	}
	m.Offsets[topic] = offset
	if id == "" {
		return
	}
	m.IDs = append(m.IDs, id)
	if len(m.IDs) > rememberedIDs {
		m.IDs = slices.Delete(m.IDs, 0, len(m.IDs)-rememberedIDs)
	}
}

var errNotObject = errors.New("state codec must encode a JSON object")

// encodeSnapshot writes {"_meta":{...}, <the state's members>}.
func encodeSnapshot[S any](c codecs.Codec[S], s S, m meta) ([]byte, error) {
	return encodeWithMeta(c, s, m)
}

func encodeWithMeta[S any](c codecs.Codec[S], s S, m any) ([]byte, error) {
	body, err := c.Encode(s)
	if err != nil {
		return nil, fail(ClassHandler, fmt.Errorf("encode state: %w", err))
	}
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, fail(ClassHandler, errNotObject)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fail(ClassHandler, fmt.Errorf("encode meta: %w", err))
	}
	out := make([]byte, 0, len(body)+len(mb)+10)
	out = append(out, `{"_meta":`...)
	out = append(out, mb...)
	if rest := bytes.TrimSpace(body[1:]); len(rest) > 1 {
		out = append(out, ',')
		out = append(out, rest...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// decodeSnapshot reads a stored snapshot; nil bytes mean no state.
func decodeSnapshot[S any](c codecs.Codec[S], b []byte) (*S, meta, error) {
	if b == nil {
		return nil, meta{}, nil
	}
	s, err := c.Decode(b)
	if err != nil {
		return nil, meta{}, err
	}
	var w struct {
		Meta meta `json:"_meta"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, meta{}, fmt.Errorf("decode meta: %w", err)
	}
	return &s, w.Meta, nil
}
