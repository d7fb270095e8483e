package processors

import (
	"errors"
	"testing"

	"github.com/streamfold/streamfold/codecs"
)

func TestMirrorRows_GivenEachOp_ThenTheRowAfterTheChange(t *testing.T) {
	type row struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	old := &row{ID: 1, Name: "Anne"}
	d := codecs.DebeziumEvents{TypePrefix: "inventory.customers"}
	ev := func(op codecs.Op, data string) codecs.Event {
		return codecs.Event{SpecVersion: "1.0", ID: "e", Source: "s", Type: d.Type(op), Data: []byte(data)}
	}
	tests := []struct {
		name  string
		ev    codecs.Event
		state *row
		want  *row
	}{
		{"a create sets the row", ev(codecs.OpCreate, `{"id":1,"name":"Anne"}`), nil, &row{1, "Anne"}},
		{"a snapshot read sets the row", ev(codecs.OpRead, `{"id":1,"name":"Anne"}`), nil, &row{1, "Anne"}},
		{"an update replaces the row", ev(codecs.OpUpdate, `{"id":1,"name":"Anne Marie"}`), old, &row{1, "Anne Marie"}},
		{"a delete removes the key", ev(codecs.OpDelete, `{"id":1}`), old, nil},
		{"a delete without the old row removes the key", ev(codecs.OpDelete, ``), old, nil},
		{"a truncate keeps the key", ev(codecs.OpTruncate, ``), old, old},
	}
	for _, tt := range tests {
		got, err := MirrorRows(tt.state, tt.ev)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if _, err := MirrorRows(old, codecs.Event{ID: "x", Type: "CustomerRegistered"}); err == nil {
		t.Error("an event of another type: no error")
	}
	_, err := MirrorRows[row](nil, ev(codecs.OpCreate, `{"id":"one"}`))
	if _, ok := errors.AsType[*codecs.DecodeError](err); !ok {
		t.Errorf("a row that does not fit: %v, want a *DecodeError", err)
	}
}
