package deadletters

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/processors"
)

// HeaderRedrivenFrom names the dead letter a re-driven record came from, as
// <dlq-topic>/<partition>/<offset>. The group copies it into the next dead
// letter if the record fails again.
const HeaderRedrivenFrom = processors.HeaderRedrivenFrom

// Topic is a group's dead-letter topic, <group>-dlq.
func Topic(group string) string { return group + "-dlq" }

// DeadLetter is one record of <group>-dlq with its diagnostic headers decoded.
// Fields whose header is absent or malformed are zero, except
// OriginalPartition and OriginalOffset (-1) and Attempts (1: a dead letter
// failed at least once).
type DeadLetter struct {
	Group     string
	Topic     string // <group>-dlq
	Partition int32  // in the dead-letter topic
	Offset    int64  // in the dead-letter topic
	Key       string
	Value     []byte // nil for a tombstone
	// Headers are every header of the dead-letter record, the diagnostic
	// ones included, as text.
	Headers map[string]string

	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	OriginalTimestamp time.Time
	Class             string // processors.Class*
	Message           string
	Attempts          int
	FirstFailure      time.Time
	// DeadLetteredAt is the dead-letter record's timestamp.
	DeadLetteredAt time.Time
	// Redrive is what became of the record's last re-drive, from
	// <group>-dlq-state; nil when it was never re-driven.
	Redrive *RedriveState
}

// Coordinates is <dlq-topic>/<partition>/<offset>, the value of
// HeaderRedrivenFrom for this dead letter.
func (d DeadLetter) Coordinates() string {
	return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset)
}

// Original is <topic>/<partition>/<offset> of the record as it first arrived.
func (d DeadLetter) Original() string {
	return processors.Coordinates(d.OriginalTopic, d.OriginalPartition, d.OriginalOffset)
}

// decode reads a dead-letter record.
func decode(group string, m *sarama.ConsumerMessage) DeadLetter {
	d := DeadLetter{
		Group: group, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: string(m.Key), Value: m.Value,
		Headers:           make(map[string]string, len(m.Headers)),
		OriginalPartition: -1, OriginalOffset: -1, Attempts: 1,
		DeadLetteredAt: m.Timestamp.UTC(),
	}
	for _, h := range m.Headers {
		if h != nil {
			d.Headers[string(h.Key)] = string(h.Value)
		}
	}
	h := d.Headers
	d.OriginalTopic = h[processors.HeaderOriginalTopic]
	if p, err := strconv.ParseInt(h[processors.HeaderOriginalPartition], 10, 32); err == nil {
		d.OriginalPartition = int32(p)
	}
	if o, err := strconv.ParseInt(h[processors.HeaderOriginalOffset], 10, 64); err == nil {
		d.OriginalOffset = o
	}
	d.OriginalTimestamp = parseTime(h[processors.HeaderOriginalTimestamp])
	d.Class = h[processors.HeaderExceptionClass]
	d.Message = h[processors.HeaderExceptionMessage]
	if n, err := strconv.Atoi(h[processors.HeaderAttempts]); err == nil && n > 0 {
		d.Attempts = n
	}
	d.FirstFailure = parseTime(h[processors.HeaderFirstFailure])
	return d
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// diagnostic reports whether a header is one the dead-lettering added (or a
// previous re-drive carried), as opposed to one of the original record's.
func diagnostic(key string) bool {
	return strings.HasPrefix(key, "kafka_dlt-") || strings.HasPrefix(key, "streamfold-")
}

// deadLetterJSON is DeadLetter on the wire: camelCase, times that are unknown
// left out, the value as text when it is UTF-8.
type deadLetterJSON struct {
	Group             string            `json:"group"`
	Topic             string            `json:"topic"`
	Partition         int32             `json:"partition"`
	Offset            int64             `json:"offset"`
	Key               string            `json:"key"`
	Value             *string           `json:"value"`
	ValueBase64       bool              `json:"valueBase64,omitempty"`
	Headers           map[string]string `json:"headers"`
	OriginalTopic     string            `json:"originalTopic"`
	OriginalPartition int32             `json:"originalPartition"`
	OriginalOffset    int64             `json:"originalOffset"`
	OriginalTimestamp *time.Time        `json:"originalTimestamp,omitempty"`
	Class             string            `json:"class"`
	Message           string            `json:"message"`
	Attempts          int               `json:"attempts"`
	FirstFailure      *time.Time        `json:"firstFailure,omitempty"`
	DeadLetteredAt    *time.Time        `json:"deadLetteredAt,omitempty"`
	Redrive           *RedriveState     `json:"redrive,omitempty"`
}

// MarshalJSON writes the dead letter with camelCase fields. The value is a
// JSON string when it is valid UTF-8, base64 with "valueBase64": true
// otherwise, and null for a tombstone.
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	j := deadLetterJSON{
		Group: d.Group, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset,
		Key: d.Key, Headers: d.Headers,
		OriginalTopic: d.OriginalTopic, OriginalPartition: d.OriginalPartition, OriginalOffset: d.OriginalOffset,
		OriginalTimestamp: timeOrNil(d.OriginalTimestamp),
		Class:             d.Class, Message: d.Message, Attempts: d.Attempts,
		FirstFailure:   timeOrNil(d.FirstFailure),
		DeadLetteredAt: timeOrNil(d.DeadLetteredAt),
		Redrive:        d.Redrive,
	}
	if j.Headers == nil {
		j.Headers = map[string]string{}
	}
	if d.Value != nil {
		s := string(d.Value)
		if !utf8.Valid(d.Value) {
			s, j.ValueBase64 = base64.StdEncoding.EncodeToString(d.Value), true
		}
		j.Value = &s
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	var j deadLetterJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = DeadLetter{
		Group: j.Group, Topic: j.Topic, Partition: j.Partition, Offset: j.Offset,
		Key: j.Key, Headers: j.Headers,
		OriginalTopic: j.OriginalTopic, OriginalPartition: j.OriginalPartition, OriginalOffset: j.OriginalOffset,
		Class: j.Class, Message: j.Message, Attempts: j.Attempts,
		Redrive: j.Redrive,
	}
	if j.Value != nil {
		d.Value = []byte(*j.Value)
		if j.ValueBase64 {
			v, err := base64.StdEncoding.DecodeString(*j.Value)
			if err != nil {
				return fmt.Errorf("value: %w", err)
			}
			d.Value = v
		}
	}
	for dst, src := range map[*time.Time]*time.Time{
		&d.OriginalTimestamp: j.OriginalTimestamp, &d.FirstFailure: j.FirstFailure, &d.DeadLetteredAt: j.DeadLetteredAt,
	} {
		if src != nil {
			*dst = src.UTC()
		}
	}
	return nil
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
