// Package codecs turns bytes on the wire into typed Go values and back.
//
// Everything that reads or writes a Kafka record value goes through a
// [Codec]: [JSON] for state and command payloads, [Bytes] and [String] for
// raw values, [CloudEvents] for the event envelope every event topic carries.
// goka only knows an untyped codec; [Goka] adapts a typed codec to it in
// exactly one place, so the rest of the project never type-asserts a value.
//
// Events are CloudEvents 1.0. We write the structured JSON mode (the whole
// envelope is the record value) and read both modes: [DecodeEvent] also takes
// binary-mode records, whose attributes travel in ce_* headers, so records
// from any standard CloudEvents producer are accepted. The event id is the
// idempotency key downstream; [NewEvent] gives every event a fresh random one.
//
// Change events from databases arrive as Debezium envelopes. [DecodeChange]
// reads one (with or without the JSON converter's schema wrapper; op c, u,
// d, r or t) into a typed [Change], and [DecodeKey] its key. As a stream's
// codec, [DebeziumEvents] maps each envelope to a CloudEvent whose id is the
// change's position in the database's log, so a table folds a Debezium topic
// like any event stream and drops what Debezium sends twice. Records routed
// by Debezium's outbox event router decode with [DebeziumOutbox]. Codecs
// that need a record's headers implement [RecordDecoder].
//
// Event schemas evolve. A [Registry] maps each current event type to the Go
// type its data decodes into, and upcasters rewrite events of retired types
// (or retired shapes) into current ones before decoding, so handlers only
// ever see the current schema while the topic keeps its full history.
//
// Failures are typed: every decode failure is a *[DecodeError] and every
// encode failure an *[EncodeError], each wrapping its cause, so a caller can
// dead-letter undecodable records with errors.As and tell the conditions
// apart with errors.Is and the sentinels ([ErrNotCloudEvent],
// [ErrInvalidEvent], [ErrWrongType], [ErrUnknownEventType],
// [ErrNotChangeEvent], [ErrTombstone], ...).
//
// Codecs are stateless values and safe for concurrent use.
package codecs
