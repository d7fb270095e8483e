package envelope

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplit_GivenValues_ThenTheStateWithoutMetaAsDecodeFindsIt(t *testing.T) {
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

func TestSplit_GivenATruncatedValue_ThenAnError(t *testing.T) {
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
			assert.True(t, json.Valid(b), string(b))

			meta, got, err := Split(b)
			require.NoError(t, err)
			assert.JSONEq(t, state, string(got))
			var back Meta
			require.NoError(t, json.Unmarshal(meta, &back))
			assert.Equal(t, m, back)

			var decoded Meta
			got, err = Decode(b, &decoded)
			require.NoError(t, err)
			assert.JSONEq(t, state, string(got))
			assert.Equal(t, m, decoded)

			// A reader that knows nothing of the bookkeeping decodes the state.
			var plain, want map[string]any
			require.NoError(t, json.Unmarshal(b, &plain))
			require.NoError(t, json.Unmarshal([]byte(state), &want))
			delete(plain, "_meta")
			assert.Equal(t, want, plain)
		})
	}
}

// The changelog holds values written by earlier versions: Join must keep
// writing exactly these bytes.
func TestJoin_GivenMeta_ThenTheBytesOfTheChangelog(t *testing.T) {
	b, err := Join(Meta{Offsets: map[string]int64{"events": 3}, IDs: []string{"e"}, At: 5}, []byte(`{"id":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, `{"_meta":{"offsets":{"events":3},"ids":["e"],"at":5},"id":"a"}`, string(b))

	b, err = Join(Meta{Absent: true}, []byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, `{"_meta":{"absent":true}}`, string(b))
}

func TestJoin_GivenAStateThatIsNoObject_ThenErrNotObject(t *testing.T) {
	for _, state := range []string{`3`, `[]`, `"{}"`, ``, `{`} {
		_, err := Join(Meta{}, []byte(state))
		assert.ErrorIs(t, err, ErrNotObject, state)
	}
	_, err := Join(func() {}, []byte(`{}`))
	assert.Error(t, err, "bookkeeping JSON cannot encode")
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
		var a, b any
		if json.Unmarshal(value, &a) != nil || json.Unmarshal(joined, &b) != nil {
			t.Fatalf("join of %q and %q is not JSON: %q", meta, state, joined)
		}
	})
}
