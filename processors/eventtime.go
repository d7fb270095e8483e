package processors

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// TimeOf gives an input record its event time: when what it records
// happened, not when it reached Kafka. recordTime is the Kafka record's
// timestamp. The default (a nil TimeOf) is a CloudEvent's time when it has
// one, the record's timestamp otherwise; RecordTime always takes the record's.
type TimeOf[In any] func(in In, recordTime time.Time) time.Time

// RecordTime is a TimeOf that takes the Kafka record's timestamp.
func RecordTime[In any](_ In, recordTime time.Time) time.Time { return recordTime }

func eventTime[In any](of TimeOf[In], in In, recordTime time.Time) time.Time {
	if of != nil {
		return of(in, recordTime)
	}
	if ev, ok := any(in).(codecs.Event); ok && !ev.Time.IsZero() {
		return ev.Time
	}
	return recordTime
}

// Stream time. A partition's stream time is the greatest event time its
// group has seen on it. It only moves forward, so it is what decides that
// a window is closed or a stream-time timer is due: replaying the same
// records gives the same decisions, whatever the wall clock says.
//
// It is kept with the state: a block that uses time writes, in each value's
// bookkeeping (timeMeta), the partition's stream time at that write. The
// internal index timeIndex files every key under it, so the partition's
// stream time after a restart, a rebalance or a restore is the index's
// greatest term: what the last write saw.

// timeMeta is the time part of a block's bookkeeping (JSON inside the
// envelope's frame): the partition's stream time when the value was written
// and the key's earliest pending timers, all in unix milliseconds (0: none).
type timeMeta struct {
	StreamTime int64 `json:"streamTime,omitempty"`
	Due        int64 `json:"due,omitempty"`     // a timer in stream time
	WallDue    int64 `json:"wallDue,omitempty"` // a timer in wall-clock time
}

// timeIndex files a key under its value's timeMeta: "t"+stream time,
// "s"+stream-time due, "w"+wall-clock due, each 16 hex digits so that terms
// sort as the times they encode.
var timeIndex = tables.Index{Name: "_time", Terms: func(_ string, v []byte) []string {
	tm := timeMetaOf(v)
	if tm == (timeMeta{}) {
		return nil
	}
	terms := make([]string, 0, 3)
	if tm.StreamTime > 0 {
		terms = append(terms, msTerm('t', tm.StreamTime))
	}
	if tm.Due > 0 {
		terms = append(terms, msTerm('s', tm.Due))
	}
	if tm.WallDue > 0 {
		terms = append(terms, msTerm('w', tm.WallDue))
	}
	return terms
}}

// timeMetaOf reads the timeMeta of a value's JSON bookkeeping from its
// front: every bookkeeping that has one embeds it first, so encoding/json
// writes its fields first, in order, each only when set. Reading no further
// keeps the index from parsing the rest (a window's event ids, a reactor's
// effects) on every write. A value whose bookkeeping does not open so has
// none.
func timeMetaOf(v []byte) timeMeta {
	var tm timeMeta
	meta, ok := envelope.JSONMeta(v)
	if !ok || len(meta) == 0 || meta[0] != '{' {
		return tm
	}
	rest := meta[1:]
	for _, f := range []struct {
		name string
		dst  *int64
	}{{`"streamTime":`, &tm.StreamTime}, {`"due":`, &tm.Due}, {`"wallDue":`, &tm.WallDue}} {
		after, found := bytes.CutPrefix(rest, []byte(f.name))
		if !found {
			continue
		}
		end := bytes.IndexAny(after, ",}")
		if end < 0 {
			return timeMeta{}
		}
		n, err := strconv.ParseInt(string(after[:end]), 10, 64)
		if err != nil {
			return timeMeta{}
		}
		*f.dst = n
		rest = after[end:]
		if rest[0] == ',' {
			rest = rest[1:]
		}
	}
	return tm
}

func msTerm(kind byte, ms int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(ms, 0)))
	return string(kind) + hex.EncodeToString(b[:])
}

func termMs(term string) int64 {
	var b [8]byte
	if len(term) != 17 {
		return 0
	}
	if _, err := hex.Decode(b[:], []byte(term[1:])); err != nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b[:]))
}

// storedStreamTime is the partition's stream time as the store's committed
// data knows it (0: none).
func storedStreamTime(s *tables.Store) (int64, error) {
	term, ok, err := s.LastTerm(timeIndex.Name, "t", "u")
	if err != nil || !ok {
		return 0, err
	}
	return termMs(term), nil
}

// partitionTime is a partition's stream time while this instance owns it,
// and the store it was read from: a store opened anew (the partition came
// back after a rebalance) is read again, since another owner may have moved
// it on.
type partitionTime struct {
	store *tables.Store
	ms    int64
}

// streamTime returns the partition's stream time after seeing event time t
// (zero: none; the stream time only moves forward).
func (g *Group) streamTime(partition int32, t time.Time) int64 {
	s, _ := g.store(partition)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.times == nil {
		g.times = map[int32]*partitionTime{}
	}
	pt := g.times[partition]
	if pt == nil || pt.store != s {
		pt = &partitionTime{store: s}
		if s != nil {
			ms, err := storedStreamTime(s)
			if err != nil {
				g.log.Warn("stream time: read the store", "partition", partition, "err", err)
			}
			pt.ms = ms
		}
		g.times[partition] = pt
	}
	if !t.IsZero() {
		pt.ms = max(pt.ms, t.UnixMilli())
	}
	return pt.ms
}
