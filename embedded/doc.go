// Package embedded runs a Kafka-protocol broker inside the process: the
// backing store of the one-command local run and of integration tests.
//
// It is a thin wrapper over franz-go's kfake
// (github.com/twmb/franz-go/pkg/kfake), which speaks the real wire protocol:
// produce, fetch, consumer groups and their offset commits, transactions,
// topic admin, DescribeConfigs. Any Kafka client (sarama, goka, franz-go,
// kcat, Java) connects to it the way it connects to Kafka. What Start adds:
//
//   - Addresses. kfake alone always binds 127.0.0.1 and advertises whatever
//     its listener reports. Here broker i listens on Config.Listen (i = 0)
//     or on a free port of the same host (i > 0), and metadata names the
//     host of Listen with the bound port, so kcat -b localhost:9092 or a Java
//     client pointed at Listen keep talking to the address they were given.
//     A Listen on every interface (0.0.0.0:9092) advertises 127.0.0.1
//     unless Config.AdvertisedHost says otherwise.
//   - Durability. With Config.Dir set, the broker appends to that directory
//     as things happen: log segments as batches arrive, topics and their
//     configs, consumer group commits, producer ids. Acknowledged records and
//     commits therefore survive a killed process (kill -9, no Close); they
//     sit in the page cache, so they survive a machine crash only with
//     Config.SyncWrites. Close also writes partition snapshots (the next
//     Start then skips replaying every segment), idempotent-producer
//     sequence state and group sessions, and syncs everything: call it on a
//     clean shutdown. The next Start with the same Dir loads it all.
//   - Compaction. Topics with cleanup.policy=compact are compacted every
//     Config.CompactionInterval (kfake's log.cleaner.backoff.ms, which kfake
//     only arms when a topic is created or reconfigured, so after a restart
//     Start runs the same schedule itself). As in Kafka, the newest batch of a
//     partition (the active segment) is never cleaned: a key whose latest
//     value is in it may still show one older value.
//   - Group members waiting in a join. Kafka keeps a member that has sent
//     JoinGroup until the rebalance timeout; kfake drops it a session timeout
//     after its last heartbeat and never answers its join, which stalls the
//     member until its client's read timeout (30 s in sarama). The broker
//     heartbeats for such a member, with its generation, until its join is
//     answered (joins.go).
//
// Differences from a production cluster worth knowing: there is no
// replication, so a topic on a one-broker cluster has replication factor 1
// and must be created with 1 (goka's topic manager defaults to 2); with
// several brokers, each partition still lives on one leader. Topics are not
// created automatically: the topology creates every topic explicitly, with
// its configuration, as it would on real Kafka. Config.Partitions is used
// only when a create request leaves the partition count to the broker.
//
// Clients may speak any protocol version sarama offers (V0_11_0_0 through
// V4_1_0_0 pass this package's tests, goka's default V2_0_0_0 included).
//
// A Broker is safe for concurrent use.
package embedded
