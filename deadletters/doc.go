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
//   - Client.Redrive produces the selected dead letters (one, a range of
//     offsets on a partition, or all) back to their original topic with their
//     original key, value and headers, partitioned by key with Kafka's murmur2
//     (tables.NewHasher), so they land where the group and its views look.
//     Each carries streamfold-attempts (the dead letter's attempts + 1),
//     streamfold-first-failure and streamfold-redriven-from
//     (<dlq-topic>/<partition>/<offset>); the group keeps the first two when it
//     dead-letters the record again, so a record that keeps failing shows a
//     growing attempt count. Re-driving never deletes anything: the dead
//     letters stay in the topic, history stays whole.
//
// DeadLetter marshals to JSON with camelCase fields; its value is a string
// when it is valid UTF-8 and base64 (with "valueBase64": true) otherwise.
//
// Imports: processors (the header names) and tables (the murmur2 hasher),
// which brings codecs along. The package reads no environment and does no I/O
// beyond the Kafka connections of a Client.
package deadletters
