// Package envelope owns the byte layout of a group table's stored value: the
// application's state with the framework's bookkeeping in front of it.
//
// Join writes the binary form (frame.go): a small header (the byte 0xF5,
// which no JSON document starts with, a format version, the kind of
// bookkeeping and two lengths), the bookkeeping in a compact binary form, and
// the state's bytes exactly as the state's codec wrote them. The framework
// reads its bookkeeping without parsing JSON, and a reader of the state
// (Split: a view, a GET) gets a sub-slice of the value, neither scanned nor
// copied. A Kafka consumer of the changelog that knows nothing of the frame
// sees its header before the state's JSON.
//
// Readers also read the JSON form that earlier versions wrote, which
// changelogs and stores still hold (jsonform.go),
//
//	{"_meta":{<bookkeeping>}, <the state's members>}
//
// and a value with neither (written by another producer) is all state. Every
// other package asks this one (Split, Join, Decode, Absent, ParkedOf,
// Applied) instead of looking at the bytes: a change of the layout is a
// change here.
//
// What the bookkeeping means (which offsets were applied, when a parked record
// is released) is the processors package's business; this package only
// reads and writes it.
//
// All functions are safe for concurrent use; none keeps or changes its input.
// What they return may share the input's bytes (Split's state, a decoded
// Command's Events and Reply): do not change the input while using it.
package envelope
