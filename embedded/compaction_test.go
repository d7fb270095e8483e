package embedded_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamfold/streamfold/embedded"
)

var compacted = map[string]*string{"cleanup.policy": ptr("compact")}

func ptr[T any](v T) *T { return &v }

// history writes several values per key, a tombstone, and then a record of
// another key, so that every superseded value is outside the newest batch,
// which compaction never touches. It returns what must survive.
func history(t *testing.T, c sarama.Client, topic string) map[coord]record {
	t.Helper()
	w := produce(t, c, topic,
		record{Key: "a", Value: "a1"}, record{Key: "b", Value: "b1"}, record{Key: "c", Value: "c1"},
		record{Key: "a", Value: "a2"}, record{Key: "c"}, record{Key: "b", Value: "b2"},
		record{Key: "a", Value: "a3"}, record{Key: "z", Value: "end"},
	)
	return map[coord]record{
		{0, 4}: w[coord{0, 4}], // c's tombstone, younger than delete.retention.ms
		{0, 5}: w[coord{0, 5}],
		{0, 6}: w[coord{0, 6}],
		{0, 7}: w[coord{0, 7}],
	}
}

func topicConfig(t *testing.T, c sarama.Client, topic, name string) string {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestGivenACompactedTopicWhenCompactingThenOnlyTheLatestValuePerKeyRemainsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	b := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "carts-table", 1, compacted)
	want := history(t, c, "carts-table")
	if got := readAll(t, c, "carts-table"); len(got) != 8 {
		t.Fatalf("compacted before Compact: %v", got)
	}

	b.Compact()
	sameRecords(t, readAll(t, c, "carts-table"), want)

	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c2 := newClient(t, b2)
	sameRecords(t, readAll(t, c2, "carts-table"), want)
	if got := topicConfig(t, c2, "carts-table", "cleanup.policy"); got != "compact" {
		t.Errorf("cleanup.policy after restart = %q", got)
	}
}

func TestGivenTheLatestValueIsInTheNewestBatchWhenCompactingThenAnOlderValueRemains(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	createTopic(t, c, "active-segment", 1, compacted)
	w := produce(t, c, "active-segment",
		record{Key: "a", Value: "a1"}, record{Key: "a", Value: "a2"}, record{Key: "a", Value: "a3"})
	b.Compact()
	// Like Kafka's active segment, the newest batch is not cleaned; the
	// latest value before it survives too.
	sameRecords(t, readAll(t, c, "active-segment"), map[coord]record{{0, 1}: w[coord{0, 1}], {0, 2}: w[coord{0, 2}]})
}

func TestGivenAShortCompactionIntervalThenTheBrokerCompactsOnItsOwnAlsoAfterARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := embedded.Config{Dir: dir, Listen: "127.0.0.1:0", CompactionInterval: 20 * time.Millisecond}
	b := start(t, cfg)
	c := newClient(t, b)
	createTopic(t, c, "customers-table", 1, compacted)
	want := history(t, c, "customers-table")
	eventually(t, "the broker compacted customers-table", func() bool {
		return len(readAll(t, c, "customers-table")) == len(want)
	})
	sameRecords(t, readAll(t, c, "customers-table"), want)
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, cfg)
	c2 := newClient(t, b2)
	w := produce(t, c2, "customers-table", record{Key: "a", Value: "a4"}, record{Key: "y", Value: "end"})
	delete(want, coord{0, 6}) // a3, superseded by a4
	want[coord{0, 8}], want[coord{0, 9}] = w[coord{0, 8}], w[coord{0, 9}]
	eventually(t, "the restarted broker compacted customers-table", func() bool {
		return len(readAll(t, c2, "customers-table")) == len(want)
	})
	sameRecords(t, readAll(t, c2, "customers-table"), want)
}
