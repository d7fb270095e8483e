// Package processors is the typed DSL over goka and the building blocks made
// with it.
//
// A Group declares one goka processor group: its input streams, its table
// (<group>-table, a compacted changelog backed by the tables storage engine),
// its outputs and its dead-letter topic (<group>-dlq). Typed helpers such as
// Project adapt user functions to goka's untyped callbacks in exactly one place
// (record.go): goka only ever sees bytes, so an undecodable record is
// dead-lettered by us instead of stopping the partition the way goka's own
// decode errors do.
//
// Handlers return errors and never need to panic. The framework turns a
// returned error, a recovered panic, an undecodable record and a record that
// arrived on the wrong partition for its key into a dead letter carrying the
// record's coordinates; the partition keeps flowing and the input offset is
// committed only after the dead letter (and every table write) is acknowledged.
//
// A dead letter re-driven to its topic (package deadletters) carries its
// original coordinates (HeaderRedriveOf); redrive.go decides what becomes of
// it and records that in the compacted <group>-dlq-state (RedriveStates): a
// projection refuses one whose key was written after the original offset
// (unless forced; a tombstone or deletion never), and one that fails again
// updates its state instead of becoming a second dead letter. Counters:
// redrive-refused, redrive-failed-again.
//
// A projection applies an event id at most once within Policy.DedupHorizon:
// the ids live in the table's stores beside the state (tables.WithSeen, bound
// and configured by the runtime through the group's hooks), written
// in the same batch as the snapshot, and in <group>-seen, from which a store
// that opens empty gets them back. Aggregates and reactors keep their own
// bounded memory of commands and inputs in their snapshots.
//
// Joins (join.go) are groups like any other: JoinTable joins a stream to a
// table by key, Repartition re-keys a stream through an internal topic, and
// JoinForeign keeps two tables joined on a foreign key with a partner group
// keyed by that key, talking over subscription and response topics.
//
// Time (eventtime.go, window.go, window_join.go, timer.go): a record's event
// time is its CloudEvents time or its Kafka timestamp; a partition's stream
// time, the greatest event time seen on it, is kept with the state (each
// write records it, an internal index finds the greatest). AggregateWindows
// folds records into tumbling, hopping or session windows per key, closed
// on stream time after a grace period, each window an entry of its own
// keyed by (key, start): a part of the key's value in the stores
// (tables.Parts, window_parts.go) and a record of <group>-windows;
// JoinStreams pairs two streams' records
// within a time window. Both keep timers in their keys' bookkeeping, as do
// reactors that set their own (SetTimer, SetStreamTimer, OnTimer); the
// runtime finds due timers through the index and sends each key a request
// through <group>-loop, handled on the key's partition like a record.
//
// Tracing (tracing.go), when the runtime gives the group a tracer
// provider: each record is handled in a consumer span, a child of the W3C
// trace context in its headers (ce_traceparent, the CloudEvents
// distributed-tracing extension, or a plain traceparent); everything the
// handler writes meanwhile (emits, the table's changelog record) carries
// the span's context, so a trace follows a command through its decision
// and relay to the projections; a retry or a dead letter keeps the trace
// headers it arrived with. Without a provider the
// callback does one nil check and nothing else.
//
// What the runtime needs of a Group (its goka graph, its topics and roles,
// its stores, counters, sweeping and bootstrap) is not part of Group's
// methods: the runtime reaches it through internal/groups (hooks.go).
package processors
