package envelope

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplit_GivenValuesOfTheJSONForm_ThenTheStateWithoutMetaAsDecodeFindsIt(t *testing.T) {
	for name, value := range map[string]string{
		"nested meta":        `{"_meta":{"offsets":{"t/0":5},"ids":["a","b"],"commands":[{"reply":{"events":[{"data":{"x":[1,{"y":"}"}]}}]}}]},"id":"c1","items":[{"p":"q"}]}`,
		"braces in strings":  `{"_meta":{"last":"a}b]c{","why":"say \"}\" twice \\"},"name":"x"}`,
		"empty state":        `{"_meta":{"version":3}}`,
		"white space":        `{"_meta": {"version":3} , "a":1}`,
		"scalar meta":        `{"_meta":7,"a":true}`,
		"no meta":            `{"a":1}`,
		"meta-like but not":  `{"_metadata":{},"a":1}`,
		"unicode and escape": `{"_meta":{"s":"\u00e9\\\\"},"b":"é"}`,
	} {
		t.Run(name, func(t *testing.T) {
			meta, got, err := Split([]byte(value))
			require.NoError(t, err)
			var m any
			want, err := Decode([]byte(value), &m)
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got))
			if meta != nil {
				var back any
				require.NoError(t, json.Unmarshal(meta, &back))
				assert.Equal(t, m, back, "the bookkeeping Split returns is what Decode decodes")
			}
		})
	}
}

func TestSplit_GivenAValueOfAnotherProducer_ThenItIsAllState(t *testing.T) {
	for _, value := range []string{`{"id":"a","_meta":{"absent":true}}`, `[1,2]`, `"x"`, ``, `{`} {
		meta, state, err := Split([]byte(value))
		require.NoError(t, err, value)
		assert.Nil(t, meta, value)
		assert.Equal(t, value, string(state))

		var m Meta
		state, err = Decode([]byte(value), &m)
		require.NoError(t, err, value)
		assert.Equal(t, value, string(state))
		assert.Equal(t, Meta{}, m)
		assert.False(t, Absent([]byte(value)))
		assert.False(t, HasParked([]byte(value)))
		parked, err := ParkedOf([]byte(value))
		require.NoError(t, err)
		assert.Empty(t, parked)
	}
}

func TestSplit_GivenATruncatedValueOfTheJSONForm_ThenAnError(t *testing.T) {
	for _, value := range []string{
		`{"_meta":{"a":"b"`,
		`{"_meta":{"a":"b}`,
		`{"_meta":{"a":[1,2}`,
		`{"_meta":`,
		`{"_meta":{}`,
		`{"_meta":{}x"a":1}`,
		`{"_meta":]`,
		`{"_meta":,"a":1}`,
	} {
		_, _, err := Split([]byte(value))
		assert.ErrorIs(t, err, ErrMalformed, value)
		var m any
		_, err = Decode([]byte(value), &m)
		assert.Error(t, err, value)
		assert.False(t, Absent([]byte(value)), value)
		assert.False(t, HasParked([]byte(value)), value)
	}
}

func TestJoin_GivenMetaAndState_ThenSplitAndDecodeGiveThemBack(t *testing.T) {
	m := Meta{Offsets: map[string]int64{"events": 41}, IDs: []string{"id-1"}, At: 1764590400000}
	for name, state := range map[string]string{
		"members":      `{"id":"a","balance":3}`,
		"empty":        `{}`,
		"white space":  " {  \"id\" : \"a\" } \n",
		"empty padded": `{ }`,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Join(m, []byte(state))
			require.NoError(t, err)
			assert.Equal(t, byte(0xF5), b[0], "the frame's magic byte")
			assert.True(t, Framed(b))

			_, got, err := Split(b)
			require.NoError(t, err)
			assert.Equal(t, state, string(got), "the state's bytes as the codec wrote them")
			assert.Same(t, &b[len(b)-1], &got[len(got)-1], "a sub-slice of the value, not a copy")

			var decoded Meta
			got, err = Decode(b, &decoded)
			require.NoError(t, err)
			assert.Equal(t, state, string(got))
			assert.Equal(t, m, decoded)

			decoded = Meta{}
			require.NoError(t, DecodeMeta(b, &decoded))
			assert.Equal(t, m, decoded)

			// Join of a pointer writes the same bytes.
			again, err := Join(&m, []byte(state))
			require.NoError(t, err)
			assert.Equal(t, b, again)
		})
	}
}

// Changelogs keep what Join writes: these bytes must stay readable, so a
// change of the binary form is a new format version, never an edit.
func TestJoin_GivenMeta_ThenTheBytesOfTheChangelog(t *testing.T) {
	b, err := Join(Meta{Offsets: map[string]int64{"events": 3}, IDs: []string{"e"}, At: 5}, []byte(`{"id":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, "f501010e"+"0a"+ // magic, version, fold, len(meta) 14, len(state) 10
		"00"+"01"+"066576656e7473"+"06"+ // flags, one offset: "events" 3
		"01"+"0165"+"0a"+ // one id "e", at 5
		hex.EncodeToString([]byte(`{"id":"a"}`)), hex.EncodeToString(b))

	b, err = Join(Meta{Absent: true}, []byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, "f501010402"+"01000000"+"7b7d", hex.EncodeToString(b))

	off := int64(7)
	b, err = Join(Aggregate{Version: 2, Last: "c", Offset: &off, Commands: []Command{
		{ID: "c", Topic: "t", Offset: 7, Status: "accepted", Version: 2, Events: json.RawMessage(`[]`)},
	}}, []byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, "f501021a02"+
		"04"+"0163"+"010e"+"01"+ // version 2, last "c", offset 7, one command:
		"0163"+"0174"+"0e"+"086163636570746564"+"04"+"00"+"025b5d"+"00"+ // c, t, 7, accepted, 2, "", [], none
		"7b7d", hex.EncodeToString(b))

	b, err = Join(map[string]int{"n": 1}, []byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, "f501030702"+hex.EncodeToString([]byte(`{"n":1}{}`)), hex.EncodeToString(b))
}

func TestJoin_GivenAggregateBookkeeping_ThenDecodeGivesItBack(t *testing.T) {
	off := int64(41)
	m := Aggregate{Version: 9, Last: "c2", Offset: &off, Commands: []Command{
		{ID: "c1", Topic: "cmds", Offset: 40, Status: "rejected", Version: 8, Reason: "no such product"},
		{ID: "c2", Topic: "cmds", Offset: 41, Status: "accepted", Version: 9, Events: json.RawMessage(`[{"type":"added","data":{"x":1}}]`)},
		{ID: "old", Reply: json.RawMessage(`{"commandId":"old","status":"accepted"}`)},
	}}
	b, err := Join(&m, []byte(`{"items":[]}`))
	require.NoError(t, err)

	var back Aggregate
	state, err := Decode(b, &back)
	require.NoError(t, err)
	assert.Equal(t, `{"items":[]}`, string(state))
	assert.Equal(t, m, back)

	// A fold's reader does not take an aggregate's bookkeeping for its own.
	var fold Meta
	_, err = Decode(b, &fold)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.False(t, Absent(b))
	assert.False(t, HasParked(b))
	ids, _ := Applied(b)
	assert.Empty(t, ids)

	// An aggregate's value of the JSON form still reads.
	var old Aggregate
	state, err = Decode([]byte(`{"_meta":{"version":3,"last":"c","offset":5,"commands":[{"id":"c","topic":"t","offset":5,"reply":{"status":"accepted"}}]},"items":["x"]}`), &old)
	require.NoError(t, err)
	assert.JSONEq(t, `{"items":["x"]}`, string(state))
	five := int64(5)
	assert.Equal(t, Aggregate{Version: 3, Last: "c", Offset: &five, Commands: []Command{
		{ID: "c", Topic: "t", Offset: 5, Reply: json.RawMessage(`{"status":"accepted"}`)},
	}}, old)
}

func TestJoin_GivenOtherBookkeeping_ThenItTravelsAsJSONInTheFrame(t *testing.T) {
	type effects struct {
		Offsets map[string]int64 `json:"offsets"`
	}
	b, err := Join(effects{Offsets: map[string]int64{"in": 3}}, []byte(`{"n":1}`))
	require.NoError(t, err)
	meta, state, err := Split(b)
	require.NoError(t, err)
	assert.JSONEq(t, `{"offsets":{"in":3}}`, string(meta))
	assert.Equal(t, `{"n":1}`, string(state))
	var back effects
	state, err = Decode(b, &back)
	require.NoError(t, err)
	assert.Equal(t, `{"n":1}`, string(state))
	assert.Equal(t, map[string]int64{"in": 3}, back.Offsets)
	assert.False(t, Absent(b))

	absent, err := Join(map[string]bool{"absent": true}, []byte(`{}`))
	require.NoError(t, err)
	assert.True(t, Absent(absent))
}

func TestJoin_GivenAStateThatIsNoObject_ThenErrNotObject(t *testing.T) {
	for _, state := range []string{`3`, `[]`, `"{}"`, ``, `{`} {
		_, err := Join(Meta{}, []byte(state))
		assert.ErrorIs(t, err, ErrNotObject, state)
	}
	_, err := Join(func() {}, []byte(`{}`))
	assert.Error(t, err, "bookkeeping JSON cannot encode")
	_, err = Join(Meta{Parked: []Parked{{Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}, []byte(`{}`))
	assert.Error(t, err, "a parked record JSON cannot encode")
}

func TestSplit_GivenAFrameCutShortOrLengthened_ThenErrMalformed(t *testing.T) {
	off := int64(1)
	for name, meta := range map[string]any{
		"fold":      Meta{Offsets: map[string]int64{"a": 1, "b": 2}, IDs: []string{"x", "y"}, At: 9, Absent: true, Parked: []Parked{{Topic: "a", Kind: "k"}}},
		"aggregate": Aggregate{Version: 1, Last: "c", Offset: &off, Commands: []Command{{ID: "c", Events: json.RawMessage(`[]`)}}},
		"json":      map[string]int{"n": 1},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Join(meta, []byte(`{"id":"a"}`))
			require.NoError(t, err)
			for n := 1; n < len(b); n++ { // (no byte at all is an empty state)
				_, _, err := Split(b[:n])
				assert.ErrorIs(t, err, ErrMalformed, "cut at %d", n)
				assert.False(t, Framed(b[:n]))
				var m Meta
				_, err = Decode(b[:n], &m)
				assert.Error(t, err, "cut at %d", n)
				assert.False(t, Absent(b[:n]))
				assert.False(t, HasParked(b[:n]))
				ids, _ := Applied(b[:n])
				assert.Empty(t, ids)
			}
			_, _, err = Split(append(b, ' '))
			assert.ErrorIs(t, err, ErrMalformed, "a byte more than the lengths say")

			other := bytes.Clone(b)
			other[1] = 2
			_, _, err = Split(other)
			assert.ErrorIs(t, err, ErrMalformed, "a format version this one does not know")
		})
	}
}

func TestAbsent_GivenValues_ThenOnlyBookkeepingMarkedAbsentIs(t *testing.T) {
	for value, want := range map[string]bool{
		`{"_meta":{"parked":[{"topic":"t"}],"absent":true}}`: true,
		`{"_meta":{"absent":true},"id":"a"}`:                 true,
		`{"_meta":{"absent":false},"id":"a"}`:                false,
		`{"_meta":{"ids":["x"]},"absent":true}`:              false, // the state's member
		`{"_meta":{"x":"\"absent\":true"}}`:                  false, // inside a string
		`{"id":"a","absent":true}`:                           false,
		`{"_meta":{"absent":true`:                            false,
		``:                                                   false,
	} {
		assert.Equal(t, want, Absent([]byte(value)), value)
	}
}

func TestParkedOf_GivenParkedRecords_ThenTheirCoordinatesAndSinceInOrder(t *testing.T) {
	since := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := Meta{Offsets: map[string]int64{"events": 7}, Absent: true, Parked: []Parked{
		{Topic: "events", Partition: 2, Offset: 5, Value: []byte(`{"id":"x"}`), Since: since, Kind: "customer", ID: "x"},
		{Topic: "events", Partition: 2, Offset: 7, Headers: map[string]string{"ce_type": "T"}, Since: since.Add(time.Second), Kind: "customer"},
	}}
	b, err := Join(m, []byte(`{}`))
	require.NoError(t, err)

	assert.True(t, HasParked(b))
	assert.True(t, Absent(b))
	got, err := ParkedOf(b)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i := range got {
		assert.True(t, m.Parked[i].Since.Equal(got[i].Since))
		got[i].Since, got[i].Timestamp = m.Parked[i].Since, m.Parked[i].Timestamp
	}
	assert.Equal(t, m.Parked, got)

	_, err = ParkedOf([]byte(`{"_meta":{"parked":[{"topic":`))
	assert.Error(t, err)

	none, err := Join(Meta{IDs: []string{"a"}}, []byte(`{"note":"\"parked\":[{"}`))
	require.NoError(t, err)
	assert.False(t, HasParked(none), "the state's text is not bookkeeping")
	assert.False(t, HasParked([]byte(`{"_meta":{"parked":[]}}`)))
}

func TestApplied_GivenValues_ThenTheIDsOfTheWriteAndItsTime(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b, err := Join(Meta{IDs: []string{"id-3"}, At: at.UnixMilli(), Parked: []Parked{{ID: "id-2"}}}, []byte(`{"id":"a"}`))
	require.NoError(t, err)
	ids, got := Applied(b)
	assert.Equal(t, []string{"id-3"}, ids, "parked records are not applied")
	assert.True(t, at.Equal(got))

	// A value of before (the last four ids, no time) still reads.
	ids, got = Applied([]byte(`{"_meta":{"offsets":{"events":9},"ids":["a","b","c","d"]},"id":"a"}`))
	assert.Equal(t, []string{"a", "b", "c", "d"}, ids)
	assert.True(t, got.IsZero())

	for _, value := range []string{`{"id":"a"}`, `{"_meta":{"ids":[`, `{"_meta":{"ids":"x"}}`, `{"_meta":{}}`} {
		ids, got = Applied([]byte(value))
		assert.Empty(t, ids, value)
		assert.True(t, got.IsZero(), value)
	}
}

func TestDecodeMeta_GivenAValue_ThenOnlyTheLeadingBookkeepingIsRead(t *testing.T) {
	var m Meta
	require.NoError(t, DecodeMeta([]byte(`{"_meta":{"offsets":{"t":4}},"broken":`), &m))
	assert.Equal(t, map[string]int64{"t": 4}, m.Offsets)

	m = Meta{IDs: []string{"kept"}}
	require.NoError(t, DecodeMeta([]byte(`{"id":"a"}`), &m))
	assert.Equal(t, []string{"kept"}, m.IDs, "a value without bookkeeping leaves m")

	assert.Error(t, DecodeMeta([]byte(`{"_meta":{"offsets":`), &m))
}

func FuzzSplit(f *testing.F) {
	for _, seed := range []string{
		`{"_meta":{"offsets":{"t":5},"ids":["a"]},"id":"c1"}`,
		`{"_meta":{"last":"a}b]c{","why":"say \"}\" twice \\"},"name":"x"}`,
		`{"_meta":7,"a":true}`,
		`{"_meta":{}}`,
		`{"_meta": [1, {"a":"]"}] , "x":null}`,
		`{"_meta":`,
		`{"a":1}`,
	} {
		f.Add([]byte(seed))
	}
	for _, b := range frameSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		meta, state, err := Split(value)
		Absent(value)
		HasParked(value)
		Applied(value)
		_, _ = ParkedOf(value)
		if err != nil {
			return
		}
		if meta == nil {
			if string(state) != string(value) {
				t.Fatalf("a value without bookkeeping comes back whole: %q -> %q", value, state)
			}
			return
		}
		if Framed(value) {
			// Its header accounts for every byte: the state is its tail.
			if !bytes.HasSuffix(value, state) || len(meta)+len(state) >= len(value) {
				t.Fatalf("split frame %q into meta %q and state %q", value, meta, state)
			}
			return
		}
		if !json.Valid(value) {
			return
		}
		// encoding/json wrote it: both readers agree, and the parts are JSON.
		if !json.Valid(meta) || !json.Valid(state) {
			t.Fatalf("split %q into meta %q and state %q", value, meta, state)
		}
		var m any
		decoded, err := Decode(value, &m)
		if err != nil {
			t.Fatalf("Split reads %q, Decode does not: %v", value, err)
		}
		if string(decoded) != string(state) {
			t.Fatalf("Split and Decode disagree on %q: %q, %q", value, state, decoded)
		}
		joined, err := Join(json.RawMessage(meta), state)
		if err != nil {
			t.Fatalf("join of %q and %q: %v", meta, state, err)
		}
		var back any
		if _, err := Decode(joined, &back); err != nil {
			t.Fatalf("join of %q and %q does not decode: %v", meta, state, err)
		}
	})
}

// frameSeeds are values of the binary form, one per kind of bookkeeping.
func frameSeeds(f *testing.F) [][]byte {
	off := int64(3)
	var out [][]byte
	for _, meta := range []any{
		Meta{Offsets: map[string]int64{"t": 5, "u": -1}, IDs: []string{"a", "b"}, At: 1764590400000},
		Meta{Absent: true, Parked: []Parked{{Topic: "t", Offset: 4, Value: []byte(`{}`), Kind: "customer", ID: "x"}}},
		Aggregate{Version: 4, Last: "c", Offset: &off, Commands: []Command{{ID: "c", Topic: "t", Offset: 3, Status: "accepted", Events: json.RawMessage(`[{"type":"x"}]`)}}},
		map[string]any{"effects": []any{}},
	} {
		b, err := Join(meta, []byte(`{"id":"k"}`))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecode: no bytes make the binary form's readers panic or allocate
// beyond the value's size, and what they accept writes back to the same
// bookkeeping.
func FuzzDecode(f *testing.F) {
	for _, b := range frameSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		var m Meta
		if state, err := Decode(value, &m); err == nil && Framed(value) {
			b, err := Join(m, state)
			if err != nil {
				return // a state that is no object, or parked records JSON cannot write
			}
			var back Meta
			if _, err := Decode(b, &back); err != nil || !reflect.DeepEqual(normalMeta(m), normalMeta(back)) {
				t.Fatalf("%q decoded to %+v, written back and read as %+v (%v)", value, m, back, err)
			}
		}
		var a Aggregate
		if state, err := Decode(value, &a); err == nil && Framed(value) {
			b, err := Join(a, state)
			if err != nil {
				return
			}
			var back Aggregate
			if _, err := Decode(b, &back); err != nil || !reflect.DeepEqual(a, back) {
				t.Fatalf("%q decoded to %+v, written back and read as %+v (%v)", value, a, back, err)
			}
		}
	})
}

// normalMeta makes parked records comparable after a round trip through
// JSON (times lose their monotonic reading and location).
func normalMeta(m Meta) Meta {
	b, _ := json.Marshal(m.Parked)
	m.Parked = nil
	var p []Parked
	_ = json.Unmarshal(b, &p)
	if len(p) > 0 {
		m.Parked = p
	}
	return m
}
