// Package envelope owns the byte layout of a group table's stored value: the
// application's state with the framework's bookkeeping in front of it,
//
//	{"_meta":{<bookkeeping>}, <the state's members>}
//
// so that a reader decoding the value as its state type (a view, any Kafka
// consumer of the changelog) ignores the bookkeeping, and the framework finds
// it without decoding the state. Every other package asks this one (Split,
// Join, Decode, Absent, ParkedOf, Applied) instead of looking at the bytes: a
// change of the layout is a change here.
//
// What the bookkeeping means (which offsets were applied, when a parked record
// is released) is the processors package's business; this package only
// reads and writes it. A value without the leading bookkeeping member (written
// by another producer) is all state.
//
// All functions are safe for concurrent use; none keeps or changes its input.
package envelope
