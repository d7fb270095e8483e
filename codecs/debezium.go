package codecs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"
)

// Sentinels of the Debezium codecs, wrapped in a *DecodeError (or an
// *EncodeError for ErrReadOnly).
var (
	// ErrNotChangeEvent means a value is not a Debezium change-event
	// envelope: not a JSON object, or one without an op (a row unwrapped by
	// ExtractNewRecordState, a heartbeat, a schema change).
	ErrNotChangeEvent = errors.New("not a debezium change event")
	// ErrInvalidChange means an envelope with an op this package does not
	// know (such as m, a PostgreSQL logical decoding message), or without the
	// row image its op requires (after for c, u and r), or without source.
	ErrInvalidChange = errors.New("invalid debezium change event")
	// ErrTombstone means a nil or empty value: the tombstone Debezium sends
	// after a delete so that log compaction can drop the key. It says the
	// key is gone; it is not a malformed record. Check for a nil value
	// before decoding (processors.Project does).
	ErrTombstone = errors.New("tombstone")
	// ErrReadOnly is returned by Encode of the codecs that only read what
	// Debezium writes.
	ErrReadOnly = errors.New("codec only decodes")
)

// Op is the operation a Debezium change event reports.
type Op string

// The operations of Debezium's envelope.
const (
	OpCreate   Op = "c" // a row was inserted
	OpUpdate   Op = "u" // a row was updated
	OpDelete   Op = "d" // a row was deleted; a tombstone follows by default
	OpRead     Op = "r" // a row read by a snapshot
	OpTruncate Op = "t" // the table was truncated (PostgreSQL, MySQL); no row, no key
)

func (o Op) known() bool {
	switch o {
	case OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate:
		return true
	}
	return false
}

// Change is one Debezium change event with its row images decoded into T.
// Before is nil for c and r (and for d and u when the table's replica
// identity or binlog_row_image does not give the old row); After is nil for
// d. Neither is set for t.
//
// T must match what the connector's converter writes: with the JSON
// converter, decimals are base64 strings unless decimal.handling.mode is
// string or double, and times are epoch numbers unless time.precision.mode
// says otherwise.
type Change[T any] struct {
	Op     Op
	Before *T
	After  *T
	Source Source
	// TsMs is when the connector processed the event (the envelope's
	// ts_ms), in milliseconds since the epoch; 0 if absent. When the change
	// was made in the database is Source.TsMs.
	TsMs int64
}

// Source is the envelope's source block: where a change comes from and its
// position in the database's log. Fields a connector does not write stay
// zero; Raw keeps the whole block for the rest (SQL Server's change_lsn,
// Oracle's scn, MongoDB's ord, ...).
type Source struct {
	Version   string // the Debezium version
	Connector string // postgresql, mysql, sqlserver, ...
	Name      string // the connector's logical name (topic.prefix)
	TsMs      int64  // when the change was made in the database; for a snapshot, when the row was read
	// Snapshot is "false" for a streamed change, else the snapshot's marker:
	// "true", "first", "first_in_data_collection", "last", "incremental", ...
	// Older versions wrote a boolean; it reads as "true" or "false".
	Snapshot string
	DB       string
	Schema   string // PostgreSQL, SQL Server, Oracle
	Table    string
	TxID     string // the transaction id as the connector writes it (a number for PostgreSQL)
	// LSN is PostgreSQL's log sequence number of the change; 0 if absent.
	LSN int64
	// File, Pos and Row are MySQL's (and MariaDB's) binlog coordinates: the
	// binlog file, the event's position in it and the row within the event.
	File     string
	Pos      int64
	Row      int64
	ServerID int64
	GTID     string
	Raw      json.RawMessage
}

// DecodeChange reads a Debezium change-event value written by the JSON
// converter, with the schema wrapper ({"schema":…,"payload":…},
// schemas.enable=true, the converter's default) or without it, and decodes
// its row images into T. A nil or empty value (the tombstone after a delete)
// yields ErrTombstone. Any failure is a *DecodeError wrapping
// ErrNotChangeEvent, ErrInvalidChange or ErrTombstone, or the JSON error of
// a row image that does not fit T.
func DecodeChange[T any](value []byte) (Change[T], error) {
	env, err := decodeEnvelope(value)
	if err != nil {
		return Change[T]{}, err
	}
	c := Change[T]{Op: env.op, Source: env.source, TsMs: env.tsMs}
	image := func(name string, raw json.RawMessage) (*T, error) {
		if raw == nil {
			return nil, nil
		}
		v := new(T)
		if err := fastjson.Unmarshal(raw, v); err != nil {
			return nil, decodeErr("debezium", "%s of %s change at %s: %w", name, env.op, env.position(), err)
		}
		return v, nil
	}
	if c.Before, err = image("before", env.before); err != nil {
		return Change[T]{}, err
	}
	if c.After, err = image("after", env.after); err != nil {
		return Change[T]{}, err
	}
	return c, nil
}

// envelope is a change event with its row images still JSON.
type envelope struct {
	op            Op
	before, after json.RawMessage // nil when null or absent
	source        Source
	sourceFields  map[string]json.RawMessage
	tsMs          int64
}

// wireEnvelope reads both forms: the fields of a bare envelope and the
// schema wrapper's payload.
type wireEnvelope struct {
	Payload json.RawMessage `json:"payload"`
	Op      *string         `json:"op"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	Source  json.RawMessage `json:"source"`
	TsMs    *int64          `json:"ts_ms"`
}

func decodeEnvelope(value []byte) (envelope, error) {
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 {
		return envelope{}, decodeErr("debezium", "%w: nil or empty value", ErrTombstone)
	}
	var w wireEnvelope
	if err := unmarshalObject(trimmed, &w); err != nil {
		return envelope{}, err
	}
	if w.Op == nil && len(w.Payload) > 0 {
		// The schema wrapper: the envelope is its payload.
		p := bytes.TrimSpace(w.Payload)
		if string(p) == "null" {
			return envelope{}, decodeErr("debezium", "%w: schema wrapper with a null payload", ErrTombstone)
		}
		w = wireEnvelope{}
		if err := unmarshalObject(p, &w); err != nil {
			return envelope{}, err
		}
	}
	if w.Op == nil {
		return envelope{}, decodeErr("debezium", "%w: JSON object without op (a row unwrapped by ExtractNewRecordState is not an envelope)", ErrNotChangeEvent)
	}
	env := envelope{op: Op(*w.Op), before: nullToNil(w.Before), after: nullToNil(w.After)}
	if w.TsMs != nil {
		env.tsMs = *w.TsMs
	}
	if !env.op.known() {
		return envelope{}, decodeErr("debezium", "%w: op %q is not one of c, u, d, r, t", ErrInvalidChange, *w.Op)
	}
	src := nullToNil(w.Source)
	if src == nil {
		return envelope{}, decodeErr("debezium", "%w: %s change without source", ErrInvalidChange, env.op)
	}
	if err := env.readSource(src); err != nil {
		return envelope{}, err
	}
	switch env.op {
	case OpCreate, OpUpdate, OpRead:
		if env.after == nil {
			return envelope{}, decodeErr("debezium", "%w: %s change at %s without after", ErrInvalidChange, env.op, env.position())
		}
	}
	return env, nil
}

// unmarshalObject decodes a JSON object into v, telling "not JSON" and "not
// an object" apart from a field of the wrong type.
func unmarshalObject(b []byte, v any) error {
	if len(b) == 0 || b[0] != '{' {
		return decodeErr("debezium", "%w: value is not a JSON object", ErrNotChangeEvent)
	}
	if err := fastjson.Unmarshal(b, v); err != nil {
		if !fastjson.Valid(b) {
			return decodeErr("debezium", "%w: value is not valid JSON", ErrNotChangeEvent)
		}
		return decodeErr("debezium", "%w: %w", ErrInvalidChange, err)
	}
	return nil
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

func (env *envelope) readSource(raw json.RawMessage) error {
	if raw[0] != '{' {
		return decodeErr("debezium", "%w: source is not an object", ErrInvalidChange)
	}
	var fields map[string]json.RawMessage
	if err := fastjson.Unmarshal(raw, &fields); err != nil {
		return decodeErr("debezium", "%w: source: %w", ErrInvalidChange, err)
	}
	env.sourceFields = fields
	s := Source{Raw: bytes.Clone(raw)}
	var problems []string
	str := func(name string) string {
		v, _ := scalarText(fields[name])
		return v
	}
	num := func(name string) int64 {
		text, ok := scalarText(fields[name])
		if !ok || text == "" {
			return 0
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %s is not an integer", name, fields[name]))
		}
		return n
	}
	s.Version, s.Connector, s.Name = str("version"), str("connector"), str("name")
	s.DB, s.Schema, s.Table = str("db"), str("schema"), str("table")
	s.Snapshot, s.TxID, s.File, s.GTID = str("snapshot"), str("txId"), str("file"), str("gtid")
	s.TsMs, s.LSN, s.Pos, s.Row, s.ServerID = num("ts_ms"), num("lsn"), num("pos"), num("row"), num("server_id")
	if s.Snapshot == "" {
		s.Snapshot = "false"
	}
	if len(problems) > 0 {
		return decodeErr("debezium", "%w: source: %s", ErrInvalidChange, strings.Join(problems, ", "))
	}
	env.source = s
	return nil
}

// scalarText is a JSON value as text: a string unquoted, anything else as
// written; null and absent are "", false.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = nullToNil(raw)
	if raw == nil {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if err := fastjson.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	}
	return string(raw), true
}

// positionFields are the source fields that place a change in its
// database's log, connector by connector: PostgreSQL (lsn), MySQL and
// MariaDB (file, pos, row), SQL Server (change_lsn, commit_lsn,
// event_serial_no), Oracle (scn, commit_scn, rs_id, ssn), MongoDB (ord),
// Db2 and Informix (change_lsn, commit_lsn).
var positionFields = []string{"lsn", "file", "pos", "row", "change_lsn", "commit_lsn", "event_serial_no", "scn", "commit_scn", "rs_id", "ssn", "ord"}

// position is the change's place in the database's log as
// "field:value;…", from the position fields its connector writes; for a
// connector none of them fits, a digest of its source block without the
// fields that change when the same change is sent again (version, ts_*).
func (env envelope) position() string {
	var b strings.Builder
	for _, f := range positionFields {
		if v, ok := scalarText(env.sourceFields[f]); ok {
			if b.Len() > 0 {
				b.WriteByte(';')
			}
			b.WriteString(f + ":" + v)
		}
	}
	if b.Len() > 0 {
		return b.String()
	}
	keys := make([]string, 0, len(env.sourceFields))
	for k := range env.sourceFields {
		switch k {
		case "version", "ts_ms", "ts_us", "ts_ns":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, compactJSON(env.sourceFields[k]))
	}
	return "source:" + hex.EncodeToString(h.Sum(nil)[:8])
}

// id is the change's CloudEvents id: its connector, table and log position,
// its op, and a digest of its row images. The position alone is not unique:
// every row of a PostgreSQL snapshot has the same lsn, every row of a MySQL
// snapshot the same file and pos, and a primary-key update is a delete and a
// create at one position. The digest tells those rows apart and, like the
// rest, is the same when Debezium sends the change again.
func (env envelope) id() string {
	s := env.source
	var b strings.Builder
	b.WriteString("name:" + s.Name)
	if s.DB != "" {
		b.WriteString(";db:" + s.DB)
	}
	if s.Schema != "" {
		b.WriteString(";schema:" + s.Schema)
	}
	if s.Table != "" {
		b.WriteString(";table:" + s.Table)
	}
	b.WriteString(";" + env.position() + ";op:" + string(env.op))
	h := sha256.New()
	h.Write(compactJSON(env.before))
	h.Write([]byte{0})
	h.Write(compactJSON(env.after))
	b.WriteString(";rows:" + hex.EncodeToString(h.Sum(nil)[:8]))
	return b.String()
}

func compactJSON(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

// DecodeKey reads a Debezium record key (the row's primary key columns),
// schema-wrapped or not, into a map from column to value; numbers are
// json.Number, so a BIGINT keeps every digit. A key that is not a JSON
// object (a table without a primary key has a nil key) is a *DecodeError
// wrapping ErrNotChangeEvent.
func DecodeKey(key []byte) (map[string]any, error) {
	payload, err := keyPayload(key)
	if err != nil {
		return nil, err
	}
	if len(payload) == 0 || payload[0] != '{' {
		return nil, decodeErr("debezium", "%w: key %q is not a JSON object", ErrNotChangeEvent, payload)
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, decodeErr("debezium", "key: %w", err)
	}
	return m, nil
}

// DecodeKeyAs reads a Debezium record key, schema-wrapped or not, into T: a
// struct of the key columns, or a string or number for a key a transform
// made a single value (ExtractField$Key).
func DecodeKeyAs[T any](key []byte) (T, error) {
	var v T
	payload, err := keyPayload(key)
	if err != nil {
		return v, err
	}
	if err := fastjson.Unmarshal(payload, &v); err != nil {
		var zero T
		return zero, decodeErr("debezium", "key: %w", err)
	}
	return v, nil
}

// KeyString is a record key as one string, the form a subject or a lookup
// takes: the single column's value of a one-column key ({"id":1004} is
// "1004"), a string or number key as its text, the compact JSON of a
// composite key's payload, and a key that is not JSON (written by the
// StringConverter) as it is.
func KeyString(key []byte) (string, error) {
	trimmed := bytes.TrimSpace(key)
	if len(trimmed) == 0 {
		return "", decodeErr("debezium", "%w: no key (a truncate, or a table without a primary key)", ErrNotChangeEvent)
	}
	if !fastjson.Valid(trimmed) {
		if !utf8.Valid(key) {
			return "", decodeErr("debezium", "%w: key is neither JSON nor UTF-8 text", ErrNotChangeEvent)
		}
		return string(key), nil
	}
	payload, err := keyPayload(trimmed)
	if err != nil {
		return "", err
	}
	if payload[0] == '{' {
		var fields map[string]json.RawMessage
		if err := fastjson.Unmarshal(payload, &fields); err != nil {
			return "", decodeErr("debezium", "key: %w", err)
		}
		if len(fields) == 1 {
			for _, v := range fields {
				payload = nullToNil(v)
			}
			if payload == nil {
				return "", decodeErr("debezium", "%w: key's only column is null", ErrNotChangeEvent)
			}
		}
	}
	if s, ok := scalarText(payload); ok && payload[0] != '{' && payload[0] != '[' {
		return s, nil
	}
	return string(compactJSON(payload)), nil
}

// keyPayload is a key's payload: the key itself, or the payload of its
// schema wrapper.
func keyPayload(key []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(key)
	if len(trimmed) == 0 {
		return nil, decodeErr("debezium", "%w: no key (a truncate, or a table without a primary key)", ErrNotChangeEvent)
	}
	if !fastjson.Valid(trimmed) {
		return nil, decodeErr("debezium", "%w: key is not valid JSON", ErrNotChangeEvent)
	}
	if p, ok := schemaPayload(trimmed); ok {
		if p == nil {
			return nil, decodeErr("debezium", "%w: schema-wrapped key with a null payload", ErrNotChangeEvent)
		}
		return p, nil
	}
	return trimmed, nil
}

// schemaPayload reports whether b (valid JSON) is the JSON converter's
// schema wrapper — an object of exactly "schema" (an object or null) and
// "payload" — and returns its payload (nil for null).
func schemaPayload(b []byte) (json.RawMessage, bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if err := fastjson.Unmarshal(b, &fields); err != nil || len(fields) != 2 {
		return nil, false
	}
	schema, hasSchema := fields["schema"]
	payload, hasPayload := fields["payload"]
	schema = bytes.TrimSpace(schema)
	if !hasSchema || !hasPayload || (len(schema) > 0 && schema[0] != '{' && string(schema) != "null") {
		return nil, false
	}
	return nullToNil(payload), true
}

// DebeziumEvents is the Codec of a Debezium change-event topic as
// CloudEvents, so processors.Project folds a table from it like any event
// stream. Each change becomes:
//
//   - id: "name:<name>;db:<db>[;schema:<schema>];table:<table>;<position>;op:<op>;rows:<digest>",
//     where position is lsn:<lsn> (PostgreSQL), file:<file>;pos:<pos>;row:<row>
//     (MySQL, MariaDB) or the position fields of another connector, and the
//     digest is of the row images. It is the same every time Debezium sends
//     the change (after a connector restart it sends changes again), so the
//     fold drops the copies.
//   - source: "/debezium/<connector>/<name>", as Debezium's own CloudEvents
//     converter names it.
//   - type: "<TypePrefix>.created", ".updated", ".deleted", ".read" (a
//     snapshot) or ".truncated"; see Type, and DebeziumOp to read it back.
//   - subject: empty, so the fold takes the record key (the row's primary
//     key as the key converter wrote it; see KeyString).
//   - time: when the change was made in the database (source.ts_ms), or,
//     when the source has none, when Debezium processed it (ts_ms).
//   - data: the row after the change; for a delete, the row before it (null
//     when the database did not give it); none for a truncate.
//
// The tombstone that follows a delete never reaches the codec: a fold
// treats a nil value as "remove the key", which the delete has done
// already. Decode of a nil value yields ErrTombstone.
//
// Encode refuses (ErrReadOnly): the topic is Debezium's.
type DebeziumEvents struct {
	// TypePrefix starts every event type; "debezium" if empty.
	TypePrefix string
}

// Type is the event type a change of op becomes: "<prefix>.created",
// ".updated", ".deleted", ".read" or ".truncated".
func (d DebeziumEvents) Type(op Op) string {
	prefix := d.TypePrefix
	if prefix == "" {
		prefix = "debezium"
	}
	switch op {
	case OpCreate:
		return prefix + ".created"
	case OpUpdate:
		return prefix + ".updated"
	case OpDelete:
		return prefix + ".deleted"
	case OpRead:
		return prefix + ".read"
	case OpTruncate:
		return prefix + ".truncated"
	}
	return prefix + "." + string(op)
}

// DebeziumOp is the operation of an event DebeziumEvents made, whatever its
// TypePrefix, read back from the type's last part (created, updated,
// deleted, read, truncated); false for any other type.
func DebeziumOp(e Event) (Op, bool) {
	i := strings.LastIndexByte(e.Type, '.')
	if i < 0 {
		return "", false
	}
	switch e.Type[i+1:] {
	case "created":
		return OpCreate, true
	case "updated":
		return OpUpdate, true
	case "deleted":
		return OpDelete, true
	case "read":
		return OpRead, true
	case "truncated":
		return OpTruncate, true
	}
	return "", false
}

// Decode maps a change-event value to its CloudEvent.
func (d DebeziumEvents) Decode(value []byte) (Event, error) {
	env, err := decodeEnvelope(value)
	if err != nil {
		return Event{}, err
	}
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              env.id(),
		Source:          "/debezium/" + env.source.Connector + "/" + env.source.Name,
		Type:            d.Type(env.op),
		DataContentType: ContentTypeJSON,
	}
	switch {
	case env.source.TsMs > 0:
		e.Time = time.UnixMilli(env.source.TsMs).UTC()
	case env.tsMs > 0:
		e.Time = time.UnixMilli(env.tsMs).UTC()
	}
	switch env.op {
	case OpDelete:
		e.Data = bytes.Clone(env.before)
	case OpTruncate:
	default:
		e.Data = bytes.Clone(env.after)
	}
	if err := e.Validate(); err != nil {
		return Event{}, decodeErr("debezium", "%w", err)
	}
	return e, nil
}

// DecodeRecord implements RecordDecoder; the headers add nothing to a
// change event.
func (d DebeziumEvents) DecodeRecord(value []byte, _ []Header) (Event, error) {
	return d.Decode(value)
}

// Encode refuses: Debezium writes the topic.
func (DebeziumEvents) Encode(Event) ([]byte, error) {
	return nil, &EncodeError{Codec: "debezium", Err: fmt.Errorf("%w: a debezium topic is written by debezium", ErrReadOnly)}
}
