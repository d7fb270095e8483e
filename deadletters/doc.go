// Package deadletters reads and re-drives a processor group's dead letters.
//
// A group that cannot process a record (undecodable, a handler error or panic,
// a missing dependency past its wait) writes it to <group>-dlq exactly as it
// arrived, with headers naming where it came from and why (see the Header*
// constants of package processors). This package is the operator's side of
// that topic, over a plain Kafka client, so it works against the embedded
// broker of a running shop or any cluster:
//
//   - Client.List pages through <group>-dlq in (partition, offset) order with
//     an opaque cursor; Client.Get reads one dead letter. Reads stop at the end
//     offsets taken when the call starts: they never wait for new records.
//     Each dead letter carries its Redrive state (below), if it has one.
//   - Client.Redrive produces the selected dead letters (one, a range of
//     offsets on a partition, or all) back to their original topic with their
//     original key, value and headers, partitioned by key with Kafka's murmur2
//     (tables.NewHasher), so they land where the group and its views look.
//     Each carries streamfold-attempts, streamfold-first-failure,
//     streamfold-redriven-from (<dlq-topic>/<partition>/<offset>) and
//     streamfold-redrive-of (the original <topic>/<partition>/<offset>) and
//     streamfold-redrive-group (other groups reading the topic handled the
//     original already, and skip it).
//     Re-driving never deletes anything: the dead letters stay in the topic.
//
// Re-drive cannot go back in time, and cannot multiply. Every re-drive is
// recorded in the group's compacted <group>-dlq-state, keyed by the record's
// original coordinates (processors.RedriveStates): Redrive writes "redriven"
// before the record goes out; the group then writes the outcome: "applied",
// "stale" (a projection refuses a record whose key it applied a write to after
// the original offset: the newer state wins) or "failed-again" (in place of a
// second dead letter, with the attempt count and the error). So one record
// keeps one dead letter however often it is re-driven, and Redrive skips,
// with a reason, what is applied, stale or awaiting its outcome. Stale and
// awaiting ones go with Selection.Forced; applied ones never do, and a
// tombstone or a deletion is never applied over a newer write, forced or not.
// The group sees newer writes only while the key has state; a key deleted
// since is Redrive's to catch: it reads the original partition from the
// original offset and refuses an update whose key's newest write is a
// tombstone (unless forced). Between that read and the group a deletion can
// still slip in: the check narrows that race, the group cannot close it.
//
// DeadLetter marshals to JSON with camelCase fields; its value is a string
// when it is valid UTF-8 and base64 (with "valueBase64": true) otherwise.
//
// Imports: processors (the header names) and tables (the murmur2 hasher),
// which brings codecs along. The package reads no environment and does no I/O
// beyond the Kafka connections of a Client.
package deadletters
