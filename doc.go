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
package streamfold
