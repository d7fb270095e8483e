package processors

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lovoo/goka"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
)

// Re-drive headers, set by whoever produces a dead letter back to its topic
// (package deadletters).
const (
	// HeaderRedriveOf names the record a re-driven record stands for: the
	// coordinates of its first delivery (the dead letter's kafka_dlt-original-*
	// headers), as Coordinates writes them. It keys <group>-dlq-state.
	HeaderRedriveOf = "streamfold-redrive-of"
	// HeaderRedriveForce is "true" when the operator forced a re-drive over
	// newer writes of its key. It never lets a deletion erase a newer write.
	HeaderRedriveForce = "streamfold-redrive-force"
	// HeaderRedriveGroup names the group whose dead letter was re-driven.
	// Other groups reading the topic handled the original already: they skip
	// the record.
	HeaderRedriveGroup = "streamfold-redrive-group"
	// HeaderRedrivenFrom names the dead letter a re-driven record came from,
	// <group>-dlq/<partition>/<offset>.
	HeaderRedrivenFrom = "streamfold-redriven-from"
)

// Re-drive statuses, in RedriveState.Status.
const (
	RedriveSent        = "redriven"     // produced back; the group has not seen it yet
	RedriveApplied     = "applied"      // the group handled it without error
	RedriveStale       = "stale"        // refused: the key was written after the original offset
	RedriveFailedAgain = "failed-again" // handled and failed again; not dead-lettered a second time
	RedriveSendFailed  = "send-failed"  // the re-driver could not produce it; nothing reached the group
)

// RedriveState is what became of a dead letter that was re-driven: the value
// of <group>-dlq-state under the record's original coordinates. The last
// write wins: the re-driver writes RedriveSent, the group the outcome.
type RedriveState struct {
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
	Forced   bool      `json:"forced,omitempty"`
	// From is the dead letter that was re-driven, <group>-dlq/<partition>/<offset>.
	From string `json:"from,omitempty"`
	// To is where the re-driven record went, <topic>/<partition>/<offset>
	// (unknown to the re-driver until the produce is acknowledged).
	To         string    `json:"to,omitempty"`
	RedrivenAt time.Time `json:"redrivenAt,omitzero"`
	// Reason says why a re-drive was refused or failed: for RedriveStale what
	// changed since, for RedriveFailedAgain the error.
	Reason string `json:"reason,omitempty"`
	Class  string `json:"class,omitempty"` // RedriveFailedAgain: the error class
	// AppliedOffset is, for RedriveStale, the offset of the key's last applied
	// write on the original topic, the one that made the re-drive stale.
	AppliedOffset *int64 `json:"appliedOffset,omitempty"`
}

// RedriveStates is the handle of group's compacted <group>-dlq-state: one
// RedriveState per re-driven record, keyed by its original coordinates. One
// partition: every writer (the re-driver's murmur2, goka's hasher) agrees on
// where a key lives, and a listing reads one log.
func RedriveStates(group string) tables.Table[RedriveState] {
	return tables.Table[RedriveState]{Name: group + "-dlq-state", Codec: codecs.JSON[RedriveState]{}, Partitions: 1}
}

// Coordinates is <topic>/<partition>/<offset>, the value of HeaderRedriveOf
// and the key of <group>-dlq-state.
func Coordinates(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

// ParseCoordinates reads what Coordinates wrote. Kafka topic names have no
// slash, so the last two slashes split it.
func ParseCoordinates(s string) (topic string, partition int32, offset int64, err error) {
	i := strings.LastIndexByte(s, '/')
	j := -1
	if i > 0 {
		j = strings.LastIndexByte(s[:i], '/')
	}
	if j <= 0 {
		return "", 0, 0, fmt.Errorf("coordinates %q: want <topic>/<partition>/<offset>", s)
	}
	p, perr := strconv.ParseInt(s[j+1:i], 10, 32)
	o, oerr := strconv.ParseInt(s[i+1:], 10, 64)
	if perr != nil || oerr != nil || p < 0 || o < 0 {
		return "", 0, 0, fmt.Errorf("coordinates %q: want <topic>/<partition>/<offset>", s)
	}
	return s[:j], int32(p), o, nil
}

// redriveOf is the re-drive a record carries, if any.
type redriveOf struct {
	key       string // the original coordinates
	topic     string
	partition int32
	offset    int64
	force     bool
}

func redriveHeaders(hs []codecs.Header) (redriveOf, bool) {
	var rd redriveOf
	found := false
	for _, h := range hs {
		switch h.Key {
		case HeaderRedriveOf:
			t, p, o, err := ParseCoordinates(string(h.Value))
			if err != nil {
				return redriveOf{}, false
			}
			rd.key, rd.topic, rd.partition, rd.offset, found = string(h.Value), t, p, o, true
		case HeaderRedriveForce:
			rd.force = string(h.Value) == "true"
		}
	}
	return rd, found
}

// foreignRedrive reports a re-driven record meant for another group: this
// one handled the original, so the record is skipped here.
func (g *Group) foreignRedrive(r *recordCtx) bool {
	for _, h := range r.headers {
		if h.Key == HeaderRedriveGroup && string(h.Value) != g.name {
			r.stats.count("redrive-skipped")
			return true
		}
	}
	return false
}

// refuseRedrive decides, before a projection applies a re-driven record,
// whether that would go back in time: the key's snapshot (prevRaw) shows a
// write applied from the original topic after the original offset, or one
// whose order against it is unknown (applied on another partition). A stale
// re-drive is refused unless forced; a tombstone is refused even forced. A
// refused record is not applied; its state says why. Keys without a snapshot
// are not refused here: nothing newer is stored to overwrite (a deletion
// since is the re-driver's pre-check to catch).
func (g *Group) refuseRedrive(r *recordCtx, prevRaw []byte) bool {
	rd, ok := redriveHeaders(r.headers)
	if !ok || prevRaw == nil {
		return false
	}
	var m meta
	if err := envelope.DecodeMeta(prevRaw, (*envelope.Meta)(&m)); err != nil {
		return false // the handler reports the undecodable state
	}
	last, written := m.Offsets[rd.topic]
	if !written || (rd.partition == r.gctx.Partition() && last <= rd.offset) {
		return false
	}
	tombstone := r.value == nil
	if rd.force && !tombstone {
		g.log.Warn("forced re-drive over newer writes", "topic", r.topic(), "partition", r.gctx.Partition(),
			"offset", r.gctx.Offset(), "key", r.gctx.Key(), "redriveOf", rd.key, "appliedOffset", last)
		return false
	}
	reason := fmt.Sprintf("key %q was written at %s/%d/%d, after the original offset %d", r.gctx.Key(), rd.topic, r.gctx.Partition(), last, rd.offset)
	if rd.partition != r.gctx.Partition() {
		reason = fmt.Sprintf("key %q was written at %s/%d/%d; the original came from partition %d, so its order is unknown", r.gctx.Key(), rd.topic, r.gctx.Partition(), last, rd.partition)
	}
	if tombstone {
		reason = "a tombstone is never re-driven over a newer write: " + reason
	}
	g.refuse(r, rd, reason, &last)
	return true
}

// refuseRedrivenDelete is refuseRedrive for an event whose fold deletes the
// key: a forced re-drive may overwrite newer state, never erase it.
func (g *Group) refuseRedrivenDelete(r *recordCtx, prevRaw []byte) bool {
	rd, ok := redriveHeaders(r.headers)
	if !ok || !rd.force || prevRaw == nil {
		return false
	}
	var m meta
	if err := envelope.DecodeMeta(prevRaw, (*envelope.Meta)(&m)); err != nil {
		return false
	}
	last, written := m.Offsets[rd.topic]
	if !written || (rd.partition == r.gctx.Partition() && last <= rd.offset) {
		return false
	}
	g.refuse(r, rd, fmt.Sprintf("a deletion is never re-driven over a newer write: key %q was written at %s/%d/%d, after the original offset %d",
		r.gctx.Key(), rd.topic, r.gctx.Partition(), last, rd.offset), &last)
	return true
}

func (g *Group) refuse(r *recordCtx, rd redriveOf, reason string, last *int64) {
	r.redriveSettled = true
	r.stats.count("redrive-refused")
	g.log.Warn("refused stale re-drive", "topic", r.topic(), "partition", r.gctx.Partition(),
		"offset", r.gctx.Offset(), "key", r.gctx.Key(), "redriveOf", rd.key, "reason", reason)
	g.emitRedriveState(r.gctx, rd, r.headers, RedriveState{Status: RedriveStale, Reason: reason, AppliedOffset: last})
}

// redriveApplied records that a re-driven record went through.
func (g *Group) redriveApplied(r *recordCtx) {
	if r.redriveSettled {
		return
	}
	if rd, ok := redriveHeaders(r.headers); ok {
		g.emitRedriveState(r.gctx, rd, r.headers, RedriveState{Status: RedriveApplied})
	}
}

// redriveFailed records that a re-driven record failed again, in place of a
// second dead letter: the first one is still in <group>-dlq, and its state
// now counts the attempts. It reports false for a record that is no re-drive.
func (g *Group) redriveFailed(gctx goka.Context, d deadRecord, err error) bool {
	rd, ok := redriveHeaders(d.headers)
	if !ok {
		return false
	}
	class := classify(err)
	g.log.Warn("re-driven record failed again",
		"topic", d.topic, "partition", d.partition, "offset", d.offset,
		"key", d.key, "redriveOf", rd.key, "class", class, "err", err)
	g.stats.part(string(gctx.Topic()), gctx.Partition()).count("redrive-failed-again")
	g.emitRedriveState(gctx, rd, d.headers, RedriveState{Status: RedriveFailedAgain, Reason: err.Error(), Class: class})
	return true
}

func (g *Group) emitRedriveState(gctx goka.Context, rd redriveOf, hs []codecs.Header, s RedriveState) {
	s.At = time.Now().UTC()
	s.Attempts = attempt(hs)
	s.Forced = rd.force
	s.To = Coordinates(string(gctx.Topic()), gctx.Partition(), gctx.Offset())
	s.RedrivenAt = gctx.Timestamp().UTC()
	for _, h := range hs {
		if h.Key == HeaderRedrivenFrom {
			s.From = string(h.Value)
		}
	}
	table := RedriveStates(g.name)
	b, err := table.Codec.Encode(s)
	if err != nil { // a struct of strings, times and numbers
		g.log.Error("encode re-drive state", "err", err)
		return
	}
	gctx.Emit(goka.Stream(table.Name), rd.key, b)
}
