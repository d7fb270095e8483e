// Package streamfold is a Kafka-Streams-style stream processing framework in
// pure Go, built on goka, sarama and LevelDB.
//
// A Topology is data: it declares the streams, tables and processor groups of
// an application (built with package processors over the typed handles of
// package tables), is validated before anything runs, and describes itself as
// text, Mermaid or JSON. Open connects a Topology to Kafka: it creates the topics
// with the right configs (streams keep events forever, tables are compacted),
// checks co-partitioning against the real partition counts and opens the local
// storage engine. Runtime.Run then supervises every processor group until its
// context ends or one fails.
//
// Everything partitions with Kafka's murmur2, so records produced by Java
// clients, Kafka Streams or kcat (-X partitioner=murmur2_random) land where the
// views look.
//
// The root holds what users call: Topology, Open and Runtime, Place, Emitter
// and Replies, and the Config and Security they fill in. The Kafka plumbing
// lives under internal/: kafkaconf (the sarama configuration and goka
// builders), rejoin (rejoining a group after a rebalance), commits (in-order
// offset commits), membership (who owns which partition, from the group
// coordinators), restart (restarting a processor or replica after a storage
// fault), bootstrap (a bootstrap group's catch-up targets) and groups (the
// one seam through which the runtime reaches a processors.Group's hooks).
package streamfold
