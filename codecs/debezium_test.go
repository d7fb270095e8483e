package codecs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// row is the customers table of Debezium's tutorial and docs.
type row struct {
	ID        int    `json:"id"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Email     string `json:"email,omitempty"`
}

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "debezium", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unwrapSchema is a schema-wrapped sample's payload: the same change as the
// JSON converter writes it with schemas.enable=false.
func unwrapSchema(t *testing.T, b []byte) []byte {
	t.Helper()
	var w struct{ Payload json.RawMessage }
	if err := json.Unmarshal(b, &w); err != nil || w.Payload == nil {
		t.Fatalf("not schema-wrapped: %v", err)
	}
	return w.Payload
}

var (
	anne       = row{1, "Anne", "Kretchmar", "annek@noanswer.org"}
	anneMarie  = row{1, "Anne Marie", "Kretchmar", "annek@noanswer.org"}
	anne1004   = row{1004, "Anne", "Kretchmar", "annek@noanswer.org"}
	anneM1004  = row{1004, "Anne Marie", "Kretchmar", "annek@noanswer.org"}
	anneMarie2 = row{1004, "Anne-Marie", "Kretchmar", "annek@noanswer.org"}
)

func TestDecodeChange_GivenRecordedSamples_ThenOpRowsAndSourceAreRead(t *testing.T) {
	tests := []struct {
		file          string
		schema        bool
		op            codecs.Op
		before, after *row
		source        codecs.Source // Raw is not compared
		tsMs          int64
	}{
		{"pg-create-schema.json", true, codecs.OpCreate, nil, &anne,
			codecs.Source{Version: "{debezium-version}", Connector: "postgresql", Name: "PostgreSQL_server", TsMs: 1559033904863, Snapshot: "true", DB: "postgres", Schema: "public", Table: "customers", TxID: "555", LSN: 24023128}, 1559033904863},
		{"pg-create.json", false, codecs.OpCreate, nil, &row{1005, "Bob", "Marley", "bob@marley.com"},
			codecs.Source{Version: "2.1.4.Final", Connector: "postgresql", Name: "dbserver1", TsMs: 1733906311010, Snapshot: "false", DB: "postgres", Schema: "inventory", Table: "customers", TxID: "767", LSN: 34466480}, 1733906311190},
		{"pg-read.json", false, codecs.OpRead, nil, &row{1001, "Sally", "Thomas", "sally.thomas@acme.com"},
			codecs.Source{Version: "2.1.3.Final", Connector: "postgresql", Name: "dbserver1", TsMs: 1582540780807, Snapshot: "true", DB: "postgres", Schema: "inventory", Table: "customers", TxID: "596", LSN: 33816576}, 1582540780809},
		{"pg-update.json", false, codecs.OpUpdate, &row{ID: 1}, &anneMarie,
			codecs.Source{Version: "{debezium-version}", Connector: "postgresql", Name: "PostgreSQL_server", TsMs: 1559033904863, Snapshot: "false", DB: "postgres", Schema: "public", Table: "customers", TxID: "556", LSN: 24023128}, 1465584025523},
		{"pg-delete.json", false, codecs.OpDelete, &row{ID: 1}, nil,
			codecs.Source{Version: "{debezium-version}", Connector: "postgresql", Name: "PostgreSQL_server", TsMs: 1559033904863, Snapshot: "false", DB: "postgres", Schema: "public", Table: "customers", TxID: "556", LSN: 46523128}, 1465581902461},
		{"pg-truncate.json", false, codecs.OpTruncate, nil, nil,
			codecs.Source{Version: "{debezium-version}", Connector: "postgresql", Name: "PostgreSQL_server", TsMs: 1559033904863, Snapshot: "false", DB: "postgres", Schema: "public", Table: "customers", TxID: "556", LSN: 46523128}, 1559033904961},
		{"mysql-create-schema.json", true, codecs.OpCreate, nil, &anne1004,
			codecs.Source{Version: "0.10.0.Final", Connector: "mysql", Name: "mysql-server-1", Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 154}, 1465491411815},
		{"mysql-create.json", false, codecs.OpCreate, nil, &anne1004,
			codecs.Source{Version: "0.10.0.Final", Connector: "mysql", Name: "mysql-server-1", Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 154}, 1465491411815},
		{"mysql-update.json", false, codecs.OpUpdate, &anneMarie2, &anne1004,
			codecs.Source{Version: "0.10.0.Final", Connector: "mysql", Name: "mysql-server-1", Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 154}, 1465491411815},
		{"mysql-read-schema.json", true, codecs.OpRead, nil, &anne1004,
			codecs.Source{Version: "{debezium-version}", Name: "dbserver1", Snapshot: "true", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 154}, 1486500577691},
		{"mysql-update-tutorial.json", false, codecs.OpUpdate, &anne1004, &anneM1004,
			codecs.Source{Name: "dbserver1", Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 364, ServerID: 223344}, 1486501486308},
		{"mysql-delete-tutorial.json", false, codecs.OpDelete, &anneM1004, nil,
			codecs.Source{Name: "dbserver1", Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 725, ServerID: 223344}, 1486501558315},
		{"mysql-read.json", false, codecs.OpRead, nil, &anne1004,
			codecs.Source{Version: "3.0.1.Final", Connector: "mysql", Name: "wasm", TsMs: 1731327511000, Snapshot: "true", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 797}, 1731327512006},
		{"mysql-update-1001.json", false, codecs.OpUpdate, &row{1001, "Sally", "Thomas", "sally.thomas@acme.com"}, &row{1001, "Sarah", "Thomas", "sally.thomas@acme.com"},
			codecs.Source{Version: "3.0.1.Final", Connector: "mysql", Name: "wasm", TsMs: 1731327659000, Snapshot: "false", DB: "inventory", Table: "customers", File: "mysql-bin.000003", Pos: 1041, ServerID: 223344}, 1731327659957},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			value := sample(t, tt.file)
			c, err := codecs.DecodeChange[row](value)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Source.Raw) == 0 {
				t.Error("Source.Raw is empty")
			}
			c.Source.Raw = nil
			want := codecs.Change[row]{Op: tt.op, Before: tt.before, After: tt.after, Source: tt.source, TsMs: tt.tsMs}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v before=%+v after=%+v\nwant %+v before=%+v after=%+v", c, c.Before, c.After, want, want.Before, want.After)
			}
			if !tt.schema {
				return
			}
			// Then the payload alone (schemas.enable=false) is the same change.
			bare, err := codecs.DecodeChange[row](unwrapSchema(t, value))
			if err != nil {
				t.Fatal(err)
			}
			bare.Source.Raw = nil
			if !reflect.DeepEqual(bare, want) {
				t.Errorf("without the schema wrapper: got %+v, want %+v", bare, want)
			}
		})
	}
}

func TestDecodeChange_GivenATombstone_ThenErrTombstone(t *testing.T) {
	for _, v := range [][]byte{nil, {}, []byte(" \n"), []byte(`{"schema":null,"payload":null}`)} {
		_, err := codecs.DecodeChange[row](v)
		if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !errors.Is(err, codecs.ErrTombstone) {
			t.Errorf("%q: got %v, want a *DecodeError wrapping ErrTombstone", v, err)
		}
	}
}

func TestDecodeChange_GivenMalformedValues_ThenTypedDecodeErrors(t *testing.T) {
	pg := string(sample(t, "pg-create.json"))
	tests := []struct {
		name  string
		value string
		want  error
	}{
		{"not JSON", `this is not json`, codecs.ErrNotChangeEvent},
		{"truncated JSON", pg[:len(pg)/2], codecs.ErrNotChangeEvent},
		{"an array", `[{"op":"c"}]`, codecs.ErrNotChangeEvent},
		{"a row unwrapped by ExtractNewRecordState", `{"id":1004,"first_name":"Anne"}`, codecs.ErrNotChangeEvent},
		{"a schema wrapper around a row", `{"schema":{"type":"struct"},"payload":{"id":1004}}`, codecs.ErrNotChangeEvent},
		{"a logical decoding message", strings.Replace(pg, `"op": "c"`, `"op": "m"`, 1), codecs.ErrInvalidChange},
		{"create without after", `{"op":"c","before":null,"after":null,"source":{"name":"s","lsn":1}}`, codecs.ErrInvalidChange},
		{"update without after", `{"op":"u","before":{"id":1},"source":{"name":"s","lsn":1}}`, codecs.ErrInvalidChange},
		{"no source", `{"op":"d","before":{"id":1}}`, codecs.ErrInvalidChange},
		{"source not an object", `{"op":"d","before":{"id":1},"source":"pg"}`, codecs.ErrInvalidChange},
		{"lsn not a number", strings.Replace(pg, `"lsn": 34466480`, `"lsn": "0/20F3A10"`, 1), codecs.ErrInvalidChange},
		{"op not a string", `{"op":1,"after":{"id":1},"source":{}}`, codecs.ErrInvalidChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codecs.DecodeChange[row]([]byte(tt.value))
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !errors.Is(err, tt.want) {
				t.Errorf("got %v, want a *DecodeError wrapping %v", err, tt.want)
			}
			_, err = codecs.DebeziumEvents{}.Decode([]byte(tt.value))
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !errors.Is(err, tt.want) {
				t.Errorf("DebeziumEvents: got %v, want a *DecodeError wrapping %v", err, tt.want)
			}
		})
	}
	t.Run("a row that does not fit T", func(t *testing.T) {
		_, err := codecs.DecodeChange[struct{ ID string }](sample(t, "pg-create.json"))
		if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !strings.Contains(err.Error(), "after of c change at lsn:34466480") {
			t.Errorf("got %v, want a *DecodeError naming the image and the position", err)
		}
	})
}

func TestDecodeKey_GivenKeysWithAndWithoutSchema_ThenTheColumns(t *testing.T) {
	wrapped := sample(t, "mysql-key-schema.json")
	tests := []struct {
		key    string
		want   map[string]any
		str    string
		wantID int
	}{
		{string(wrapped), map[string]any{"id": json.Number("1004")}, "1004", 1004},
		{`{"id":1004}`, map[string]any{"id": json.Number("1004")}, "1004", 1004},
		{`{"id":9007199254740993}`, map[string]any{"id": json.Number("9007199254740993")}, "9007199254740993", 0},
		{`{"order_id":7,"line":2}`, map[string]any{"order_id": json.Number("7"), "line": json.Number("2")}, `{"order_id":7,"line":2}`, 0},
		{`{"schema":{"type":"struct"},"payload":{"sku":"a-1"}}`, map[string]any{"sku": "a-1"}, "a-1", 0},
	}
	for _, tt := range tests {
		m, err := codecs.DecodeKey([]byte(tt.key))
		if err != nil || !reflect.DeepEqual(m, tt.want) {
			t.Errorf("DecodeKey(%s) = %v, %v; want %v", tt.key, m, err, tt.want)
		}
		s, err := codecs.KeyString([]byte(tt.key))
		if err != nil || s != tt.str {
			t.Errorf("KeyString(%s) = %q, %v; want %q", tt.key, s, err, tt.str)
		}
	}
	k, err := codecs.DecodeKeyAs[struct{ ID int }](wrapped)
	if err != nil || k.ID != 1004 {
		t.Errorf("DecodeKeyAs = %+v, %v; want ID 1004", k, err)
	}
	for key, want := range map[string]string{`"1"`: "1", `1`: "1", `order-1`: "order-1", `{"schema":{"type":"string"},"payload":"order-1"}`: "order-1"} {
		if s, err := codecs.KeyString([]byte(key)); err != nil || s != want {
			t.Errorf("KeyString(%s) = %q, %v; want %q", key, s, err, want)
		}
	}
	for _, bad := range []string{"", `[1]`, `"1"`, `{"schema":{},"payload":null}`, "{oops"} {
		_, err := codecs.DecodeKey([]byte(bad))
		if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !errors.Is(err, codecs.ErrNotChangeEvent) {
			t.Errorf("DecodeKey(%q): got %v, want a *DecodeError wrapping ErrNotChangeEvent", bad, err)
		}
	}
}

func TestDebeziumEvents_GivenEveryOp_ThenTheCloudEventAFoldExpects(t *testing.T) {
	d := codecs.DebeziumEvents{TypePrefix: "customers"}
	tests := []struct {
		file, typ, source, id string
		data                  string
		time                  time.Time
	}{
		{"pg-create-schema.json", "customers.created", "/debezium/postgresql/PostgreSQL_server",
			"name:PostgreSQL_server;db:postgres;schema:public;table:customers;lsn:24023128;op:c;rows:",
			`{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}`, time.UnixMilli(1559033904863)},
		{"pg-update.json", "customers.updated", "/debezium/postgresql/PostgreSQL_server",
			"name:PostgreSQL_server;db:postgres;schema:public;table:customers;lsn:24023128;op:u;rows:",
			`{"id":1,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"}`, time.UnixMilli(1559033904863)},
		{"pg-delete.json", "customers.deleted", "/debezium/postgresql/PostgreSQL_server",
			"name:PostgreSQL_server;db:postgres;schema:public;table:customers;lsn:46523128;op:d;rows:",
			`{"id":1}`, time.UnixMilli(1559033904863)},
		{"pg-read.json", "customers.read", "/debezium/postgresql/dbserver1",
			"name:dbserver1;db:postgres;schema:inventory;table:customers;lsn:33816576;op:r;rows:",
			`{"id":1001,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com"}`, time.UnixMilli(1582540780807)},
		{"pg-truncate.json", "customers.truncated", "/debezium/postgresql/PostgreSQL_server",
			"name:PostgreSQL_server;db:postgres;schema:public;table:customers;lsn:46523128;op:t;rows:", ``, time.UnixMilli(1559033904863)},
		// source.ts_ms is 0 (and absent in the tutorial): the time Debezium processed the change.
		{"mysql-create-schema.json", "customers.created", "/debezium/mysql/mysql-server-1",
			"name:mysql-server-1;db:inventory;table:customers;file:mysql-bin.000003;pos:154;row:0;op:c;rows:",
			`{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}`, time.UnixMilli(1465491411815)},
		{"mysql-delete-tutorial.json", "customers.deleted", "/debezium//dbserver1",
			"name:dbserver1;db:inventory;table:customers;file:mysql-bin.000003;pos:725;row:0;op:d;rows:",
			`{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"}`, time.UnixMilli(1486501558315)},
		{"mysql-read.json", "customers.read", "/debezium/mysql/wasm",
			"name:wasm;db:inventory;table:customers;file:mysql-bin.000003;pos:797;row:0;op:r;rows:",
			`{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}`, time.UnixMilli(1731327511000)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			value := sample(t, tt.file)
			e, err := d.Decode(value)
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != tt.typ || e.Source != tt.source || !strings.HasPrefix(e.ID, tt.id) || e.Subject != "" ||
				!e.Time.Equal(tt.time) || e.Time.Location() != time.UTC || e.SpecVersion != "1.0" {
				t.Errorf("got %+v\nwant type %s, source %s, id %s…, time %v, no subject", e, tt.typ, tt.source, tt.id, tt.time)
			}
			if got := string(compact(e.Data)); got != tt.data {
				t.Errorf("data %s, want %s", got, tt.data)
			}
			if op, ok := codecs.DebeziumOp(e); !ok || d.Type(op) != e.Type {
				t.Errorf("DebeziumOp(%s) = %q, %v", e.Type, op, ok)
			}
			// Then decoding the same record again (Debezium re-sends after a
			// restart) gives the same id.
			again, err := d.DecodeRecord(bytes.Clone(value), []codecs.Header{{Key: "__debezium.oldkey", Value: []byte("x")}})
			if err != nil || again.ID != e.ID {
				t.Errorf("again: id %q (%v), want %q", again.ID, err, e.ID)
			}
		})
	}
}

func TestDebeziumEvents_GivenDistinctChanges_ThenDistinctIDs_AndTheSchemaWrapperChangesNone(t *testing.T) {
	var d codecs.DebeziumEvents
	pgCreate := sample(t, "pg-create-schema.json")
	wrapped, err := d.Decode(pgCreate)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := d.Decode(unwrapSchema(t, pgCreate))
	if err != nil || bare.ID != wrapped.ID {
		t.Errorf("without schema: id %q (%v), with: %q", bare.ID, err, wrapped.ID)
	}
	// Two rows of one snapshot share the lsn: their ids differ all the same.
	read := sample(t, "pg-read.json")
	other := bytes.Replace(read, []byte(`"id":1001,"first_name":"Sally"`), []byte(`"id":1002,"first_name":"George"`), 1)
	changes := map[string][]byte{"pg-read.json with row 1002": other}
	files, err := filepath.Glob(filepath.Join("testdata", "debezium", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); !strings.HasPrefix(name, "outbox") && !strings.Contains(name, "key") {
			changes[name] = sample(t, name)
		}
	}
	// mysql-create-schema.json and mysql-create.json are one change, with
	// and without the schema wrapper (Debezium's serde test pair).
	same := map[string]string{"mysql-create.json": "mysql-create-schema.json"}
	byID := map[string]string{}
	for name, v := range changes {
		e, err := d.Decode(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if prev, dup := byID[e.ID]; dup && same[name] != prev && same[prev] != name {
			t.Errorf("%s and %s have the same id %s", prev, name, e.ID)
		}
		byID[e.ID] = name
	}
	if len(byID) != len(changes)-len(same) {
		t.Errorf("%d distinct ids over %d changes, want %d", len(byID), len(changes), len(changes)-len(same))
	}
	if _, err := d.Encode(wrapped); !errors.Is(err, codecs.ErrReadOnly) {
		t.Errorf("Encode: %v, want ErrReadOnly", err)
	}
}

func TestDebeziumOutbox_GivenRoutedRecords_ThenCloudEvents(t *testing.T) {
	order := `{"id":1,"lineItems":[{"id":1,"item":"Debezium in Action","status":"ENTERED","quantity":2,"totalPrice":39.98},{"id":2,"item":"Debezium for Dummies","status":"ENTERED","quantity":1,"totalPrice":29.99}],"orderDate":"2019-01-31T12:13:01","customerId":123}`
	str := sample(t, "outbox-string.json")
	headers := []codecs.Header{
		{Key: "id", Value: []byte("4d47e190-0402-4048-bc2c-89dd54343cdc")},
		{Key: "eventType", Value: []byte("OrderCreated")},
	}
	want := codecs.Event{SpecVersion: "1.0", ID: "4d47e190-0402-4048-bc2c-89dd54343cdc", Source: "/debezium/outbox", Type: "OrderCreated", DataContentType: "application/json"}
	tests := []struct {
		name    string
		value   []byte
		headers []codecs.Header
	}{
		{"payload as a JSON string", str, headers},
		{"expanded payload", sample(t, "outbox-expanded.json"), headers},
		{"a JSON string in the schema wrapper", []byte(`{"schema":{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1},"payload":` + strings.TrimSpace(string(str)) + `}`), headers},
		{"JSON-encoded headers", str, []codecs.Header{{Key: "id", Value: []byte(`"4d47e190-0402-4048-bc2c-89dd54343cdc"`)}, {Key: "eventType", Value: []byte(`"OrderCreated"`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := codecs.DebeziumOutbox{}.DecodeRecord(tt.value, tt.headers)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(compact(e.Data)); got != order {
				t.Errorf("data %s, want %s", got, order)
			}
			e.Data = nil
			sameEvent(t, e, want)
		})
	}
	t.Run("the subject is the key", func(t *testing.T) {
		e, err := codecs.DebeziumOutbox{}.DecodeOutbox([]byte("1"), str, headers)
		if err != nil || e.Subject != "1" {
			t.Errorf("subject %q (%v), want 1", e.Subject, err)
		}
	})
	t.Run("configured headers and time", func(t *testing.T) {
		o := codecs.DebeziumOutbox{IDHeader: "eventId", TypeHeader: "type", TimeHeader: "timestamp", Source: "/payments"}
		e, err := o.DecodeRecord(str, []codecs.Header{{Key: "eventId", Value: []byte("p1")}, {Key: "type", Value: []byte("PaymentReceived")}, {Key: "timestamp", Value: []byte("1556890294344")}})
		if err != nil || e.ID != "p1" || e.Type != "PaymentReceived" || e.Source != "/payments" || !e.Time.Equal(time.UnixMilli(1556890294344)) {
			t.Errorf("got %+v, %v", e, err)
		}
		for ts, want := range map[string]time.Time{
			"1556890294344123":            time.UnixMicro(1556890294344123),
			"1556890294344123456":         time.Unix(0, 1556890294344123456),
			"2019-05-03T13:31:34.344123Z": time.UnixMicro(1556890294344123),
		} {
			e, err := o.DecodeRecord(str, []codecs.Header{{Key: "eventId", Value: []byte("p1")}, {Key: "type", Value: []byte("T")}, {Key: "timestamp", Value: []byte(ts)}})
			if err != nil || !e.Time.Equal(want) {
				t.Errorf("timestamp %s: time %v (%v), want %v", ts, e.Time, err, want)
			}
		}
	})
	t.Run("a structured CloudEvent payload is taken as it is", func(t *testing.T) {
		ce := mustEvent(t, "c1", customer{ID: "c1", Name: "Ada"})
		b, err := codecs.CloudEvents{}.Encode(ce)
		if err != nil {
			t.Fatal(err)
		}
		quoted, _ := json.Marshal(string(b))
		for _, v := range [][]byte{b, quoted} {
			e, err := codecs.DebeziumOutbox{}.DecodeRecord(v, headers)
			if err != nil {
				t.Fatal(err)
			}
			sameEvent(t, e, ce)
		}
	})
	t.Run("failures", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			value   []byte
			headers []codecs.Header
			want    error
		}{
			{"no id header", str, headers[1:], codecs.ErrNotCloudEvent},
			{"no type header", str, headers[:1], codecs.ErrNotCloudEvent},
			{"a tombstone", nil, headers, codecs.ErrTombstone},
			{"binary payload", []byte{0xff, 0xfe}, headers, codecs.ErrUnsupportedData},
			{"bad time", str, append(headers[:2:2], codecs.Header{Key: "ts", Value: []byte("yesterday")}), codecs.ErrInvalidEvent},
		} {
			_, err := codecs.DebeziumOutbox{TimeHeader: "ts"}.DecodeRecord(tt.value, tt.headers)
			if _, ok := errors.AsType[*codecs.DecodeError](err); !ok || !errors.Is(err, tt.want) {
				t.Errorf("%s: got %v, want a *DecodeError wrapping %v", tt.name, err, tt.want)
			}
		}
	})
}
