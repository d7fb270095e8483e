// Package topics is the runtime's admin work on topics before anything runs:
// creating a topology's missing topics (its partition counts, replication and
// configs: streams kept forever, tables compacted) and reading the real
// partition counts, and warning about committed offsets that fell out of a
// topic's log. offsets.go reads a group's committed offsets and the logs'
// first and end offsets (one request per broker) for that warning, the
// bootstrap's "deployed fresh" check and the consumer lag.
package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/tables"
)

// Ensure creates the missing topics of specs with their configs, partitions
// and replication, and returns every topic's real partition count (an
// existing topic keeps its own).
func Ensure(ctx context.Context, client sarama.Client, specs []tables.Spec, replication int, log *slog.Logger) (map[string]int, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	// Closing admin would close the shared client; it holds nothing else.
	existing, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	partitions := map[string]int{}
	for _, ti := range specs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if d, ok := existing[ti.Name]; ok {
			partitions[ti.Name] = int(d.NumPartitions)
			continue
		}
		detail := &sarama.TopicDetail{
			NumPartitions:     int32(ti.Partitions),
			ReplicationFactor: int16(replication),
			ConfigEntries:     map[string]*string{},
		}
		for k, v := range ti.Configs {
			detail.ConfigEntries[k] = &v
		}
		if err := admin.CreateTopic(ti.Name, detail, false); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s: %w", ti.Name, err)
		}
		log.Debug("created topic", "topic", ti.Name, "partitions", ti.Partitions, "kind", ti.Kind)
		partitions[ti.Name] = ti.Partitions
	}
	return partitions, client.RefreshMetadata()
}

// WarnOutOfRange logs, for each partition of group's inputs whose committed
// offset fell out of the log (retention, a recreated topic), how many records
// the reset to the earliest offset skips. sarama performs the reset itself.
// partitions are the real partition counts by topic.
func WarnOutOfRange(client sarama.Client, group string, inputs []string, partitions map[string]int, log *slog.Logger) {
	want := All(inputs, partitions)
	committed, err := Committed(client, group, want)
	if err != nil {
		return
	}
	oldest, err := LogOffsets(client, want, sarama.OffsetOldest)
	if err != nil {
		return
	}
	newest, err := LogOffsets(client, want, sarama.OffsetNewest)
	if err != nil {
		return
	}
	for topic, parts := range committed {
		for p, off := range parts {
			if off < 0 {
				continue
			}
			first, _ := oldest.Of(topic, p)
			end, _ := newest.Of(topic, p)
			switch {
			case off < first:
				log.Warn("committed offset out of range; resetting to earliest",
					"group", group, "topic", topic, "partition", p, "committed", off, "earliest", first, "skipped", first-off)
			case off > end:
				log.Warn("committed offset beyond the end of the log (topic recreated?); resetting to earliest",
					"group", group, "topic", topic, "partition", p, "committed", off, "end", end, "earliest", first)
			}
		}
	}
}
