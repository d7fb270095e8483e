package streamfold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/processors"
)

// bootstrapTargets is the record kept in <group>-bootstrap.
type bootstrapTargets struct {
	Targets map[string]map[string]int64 `json:"targets"` // topic -> partition -> end offset at first start
}

// prepareBootstrap gives a bootstrap group its catch-up targets: the ones
// recorded at its first start, or — for a group deployed fresh against
// existing history — the inputs' end offsets now, recorded before anything runs.
func (rt *Runtime) prepareBootstrap(g *processors.Group) error {
	topic := g.BootstrapTopic().Name
	stored, ok, err := rt.readBootstrap(topic)
	if err != nil {
		return err
	}
	if !ok {
		fresh, err := rt.fresh(g)
		if err != nil {
			return err
		}
		if !fresh {
			rt.log.Info("bootstrap: group has history of its own; live", "group", g.Name())
			return g.CatchUp(nil)
		}
		stored = bootstrapTargets{Targets: map[string]map[string]int64{}}
		for _, e := range g.Edges() {
			if e.Role != processors.RoleInput {
				continue
			}
			parts := map[string]int64{}
			for p := range rt.partitions[e.Spec.Name] {
				end, err := rt.client.GetOffset(e.Spec.Name, int32(p), sarama.OffsetNewest)
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
		if _, err := rt.produce(context.Background(), topic, "targets", b, nil); err != nil {
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

// readBootstrap reads the last record of a bootstrap topic, if any.
func (rt *Runtime) readBootstrap(topic string) (bootstrapTargets, bool, error) {
	var bt bootstrapTargets
	end, err := rt.client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil || end == 0 {
		return bt, false, err
	}
	consumer, err := sarama.NewConsumerFromClient(rt.client)
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
func (rt *Runtime) fresh(g *processors.Group) (bool, error) {
	admin, err := sarama.NewClusterAdminFromClient(rt.client)
	if err != nil {
		return false, err
	}
	want := map[string][]int32{}
	for _, e := range g.Edges() {
		if e.Role == processors.RoleInput {
			for p := range rt.partitions[e.Spec.Name] {
				want[e.Spec.Name] = append(want[e.Spec.Name], int32(p))
			}
		}
	}
	resp, err := admin.ListConsumerGroupOffsets(g.Name(), want)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		resp, err = &sarama.OffsetFetchResponse{}, nil // a group the cluster has never seen
	}
	if err != nil {
		return false, fmt.Errorf("bootstrap %s: committed offsets: %w", g.Name(), err)
	}
	for _, parts := range resp.Blocks {
		for _, b := range parts {
			if b != nil && b.Offset >= 0 {
				return false, nil
			}
		}
	}
	if spec, _, ok := g.Table(); ok {
		for p := range rt.partitions[spec.Name] {
			end, err := rt.client.GetOffset(spec.Name, int32(p), sarama.OffsetNewest)
			if err != nil {
				return false, err
			}
			if end > 0 {
				return false, nil
			}
		}
	}
	return true, nil
}
