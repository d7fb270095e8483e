// Package bootstrap gives a group declared WithBootstrap its catch-up
// targets: the end offsets of its inputs at its first start, below which its
// effects are suppressed. They are kept in the group's one-partition
// <group>-bootstrap topic, so that a restart during the catch-up resumes it
// instead of going live early; a group that has history of its own (committed
// offsets or a table) goes live at once.
package bootstrap

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/internal/topics"
)

// bootstrapTargets is the record kept in <group>-bootstrap.
type bootstrapTargets struct {
	Targets map[string]map[string]int64 `json:"targets"` // topic -> partition -> end offset at first start
}

// Prepare gives a bootstrap group its catch-up targets: the ones recorded at
// its first start, or — for a group deployed fresh against existing history —
// the inputs' end offsets now, recorded (with record) before anything runs.
// partitions are the real partition counts by topic.
func Prepare(client sarama.Client, g groups.Hooks, partitions map[string]int,
	record func(topic, key string, value []byte) error, log *slog.Logger,
) error {
	topic := g.BootstrapTopic()
	stored, ok, err := read(client, topic)
	if err != nil {
		return err
	}
	if !ok {
		fresh, err := fresh(client, g, partitions)
		if err != nil {
			return err
		}
		if !fresh {
			log.Info("bootstrap: group has history of its own; live", "group", g.Name())
			return g.CatchUp(nil)
		}
		stored = bootstrapTargets{Targets: map[string]map[string]int64{}}
		for _, e := range g.Edges() {
			if e.Role != groups.RoleInput {
				continue
			}
			parts := map[string]int64{}
			for p := range partitions[e.Spec.Name] {
				end, err := client.GetOffset(e.Spec.Name, int32(p), sarama.OffsetNewest)
				if err != nil {
					return fmt.Errorf("bootstrap %s: %w", g.Name(), err)
				}
				parts[strconv.Itoa(p)] = end
			}
			stored.Targets[e.Spec.Name] = parts
		}
		b, err := json.Marshal(stored)
		if err != nil {
			return err
		}
		if err := record(topic, "targets", b); err != nil {
			return fmt.Errorf("bootstrap %s: record targets: %w", g.Name(), err)
		}
	}
	targets := map[string]map[int32]int64{}
	for t, parts := range stored.Targets {
		targets[t] = map[int32]int64{}
		for p, off := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bootstrap %s: bad partition %q", g.Name(), p)
			}
			targets[t][int32(n)] = off
		}
	}
	return g.CatchUp(targets)
}

// read reads the last record of a bootstrap topic, if any.
func read(client sarama.Client, topic string) (bootstrapTargets, bool, error) {
	var bt bootstrapTargets
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil || end == 0 {
		return bt, false, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return bt, false, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, end-1)
	if err != nil {
		return bt, false, err
	}
	defer pc.Close()
	select {
	case msg := <-pc.Messages():
		if err := json.Unmarshal(msg.Value, &bt); err != nil {
			return bt, false, fmt.Errorf("read %s: %w", topic, err)
		}
		return bt, true, nil
	case err := <-pc.Errors():
		return bt, false, err
	}
}

// fresh reports a group with no committed offsets and an empty table: deployed
// fresh, or one whose table was lost with its changelog.
func fresh(client sarama.Client, g groups.Hooks, partitions map[string]int) (bool, error) {
	committed, err := topics.Committed(client, g.Name(), topics.All(groups.Inputs(g), partitions))
	if err != nil {
		return false, fmt.Errorf("bootstrap %s: %w", g.Name(), err)
	}
	for _, ps := range committed {
		for _, off := range ps {
			if off >= 0 {
				return false, nil
			}
		}
	}
	if spec, _, ok := g.Table(); ok {
		ends, err := topics.LogOffsets(client, topics.All([]string{spec.Name}, partitions), sarama.OffsetNewest)
		if err != nil {
			return false, fmt.Errorf("bootstrap %s: %w", g.Name(), err)
		}
		for _, end := range ends[spec.Name] {
			if end > 0 {
				return false, nil
			}
		}
	}
	return true, nil
}
