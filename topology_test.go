package streamfold_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

type state struct {
	N int `json:"n"`
}

func apply(s *state, _ codecs.Event) (*state, error) { return s, nil }

func group(name string, in tables.Stream[codecs.Event], table tables.Table[state]) *processors.Group {
	g := processors.NewGroup(name)
	processors.Project(g, in, apply, processors.Into(table))
	return g
}

var (
	events = tables.NewStream[codecs.Event]("events", codecs.CloudEvents{})
	table  = tables.NewTable[state]("counter-table", codecs.JSON[state]{})
)

func TestTopology_GivenValidGroup_ThenDescribesTopicsWithWritersAndReaders(t *testing.T) {
	topo := streamfold.NewTopology(streamfold.WithPartitions(3)).
		AddGroup(group("counter", events, table)).
		WrittenBy(events, "http")
	require.NoError(t, topo.Validate())

	var js struct {
		Topics []streamfold.TopicInfo `json:"topics"`
	}
	var buf bytes.Buffer
	require.NoError(t, topo.Describe(&buf, streamfold.FormatJSON))
	require.NoError(t, json.Unmarshal(buf.Bytes(), &js))
	byName := map[string]streamfold.TopicInfo{}
	for _, ti := range js.Topics {
		byName[ti.Name] = ti
	}
	require.Contains(t, byName, "events")
	assert.Equal(t, []string{"http"}, byName["events"].Writers)
	assert.Equal(t, []string{"counter"}, byName["events"].Readers)
	assert.Equal(t, "-1", byName["events"].Configs["retention.ms"])
	assert.Equal(t, "compact", byName["counter-table"].Configs["cleanup.policy"])
	assert.Equal(t, tables.KindTable, byName["counter-table"].Kind)
	assert.Equal(t, 3, byName["counter-dlq"].Partitions)

	buf.Reset()
	require.NoError(t, topo.Describe(&buf, streamfold.FormatMermaid))
	assert.Contains(t, buf.String(), "flowchart LR")
	assert.Contains(t, buf.String(), "p_counter --> t_counter_table")
	buf.Reset()
	require.NoError(t, topo.Describe(&buf, streamfold.FormatText))
	assert.Contains(t, buf.String(), "counter-table (table, 3 partitions)")
	assert.Error(t, topo.Describe(&buf, "yaml"))
}

func TestTopology_GivenMistakes_ThenValidateNamesEach(t *testing.T) {
	wrongTable := tables.NewTable[state]("not-the-group-table", codecs.JSON[state]{})
	bad := tables.NewStream[codecs.Event]("bad name!", codecs.CloudEvents{})
	eight := events
	eight.Name, eight.Partitions = "eight", 8

	cases := map[string]*streamfold.Topology{
		"table not named <group>-table": streamfold.NewTopology().AddGroup(group("counter", events, wrongTable)),
		"illegal topic name":            streamfold.NewTopology().AddGroup(group("counter", bad, table)),
		"group declared twice":          streamfold.NewTopology().AddGroup(group("counter", events, table), group("counter", events, table)),
		"not co-partitioned":            streamfold.NewTopology(streamfold.WithPartitions(4)).AddGroup(group("counter", eight, table)),
		"no inputs":                     streamfold.NewTopology().AddGroup(processors.NewGroup("idle")),
	}
	for name, topo := range cases {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, topo.Validate(), streamfold.ErrInvalidTopology)
		})
	}
}

func TestTopology_GivenAnAggregateGroup_ThenAddingItAddsItsRelay(t *testing.T) {
	type acct struct {
		N int `json:"n"`
	}
	g := processors.NewGroup("accounts")
	processors.HandleCommands(g, processors.Aggregate[acct, struct{}]{
		Commands: tables.NewStream[processors.Command[struct{}]]("account-commands", codecs.JSON[processors.Command[struct{}]]{}),
		Events:   tables.NewStream[codecs.Event]("account-events", codecs.CloudEvents{}),
		Replies:  tables.NewStream[processors.Reply]("account-replies", codecs.JSON[processors.Reply]{}),
		Decide: func(*processors.DecideContext, *acct, processors.Command[struct{}]) ([]processors.NewEvent, error) {
			return nil, nil
		},
		Evolve: func(a *acct, _ codecs.Event) (*acct, error) { return a, nil },
	})

	topo := streamfold.NewTopology().AddGroup(g, g)

	var names []string
	for _, gr := range topo.Groups() {
		names = append(names, gr.Name())
	}
	assert.Equal(t, []string{"accounts", "accounts-relay"}, names)
	require.NoError(t, topo.Validate())
}
