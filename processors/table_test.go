package processors

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

var pageViews = tables.NewStream[codecs.Event]("page-views", codecs.CloudEvents{})

type hits struct {
	N int `json:"n"`
}

func countHit(h *hits, _ codecs.Event) (*hits, error) {
	if h == nil {
		h = &hits{}
	}
	h.N++
	return h, nil
}

func TestProject_GivenNoHandle_ThenTheGroupTableIsDerivedAndReturned(t *testing.T) {
	g := NewGroup("clicks")

	counts := Project(g, pageViews, countHit)

	assert.Equal(t, "clicks-table", counts.Name)
	assert.Equal(t, GroupTable[hits]("clicks"), counts)
	require.NoError(t, g.validate())
	spec, _, ok := g.tableSpec()
	require.True(t, ok)
	assert.Equal(t, "clicks-table", spec.Name)
}

func TestProject_GivenTwoInputs_ThenBothFoldIntoOneTableWithTheIndexesOfBoth(t *testing.T) {
	g := NewGroup("clicks")
	byN := tables.Index{Name: "n", Terms: func(string, []byte) []string { return nil }}
	other := tables.NewStream[codecs.Event]("other-views", codecs.CloudEvents{})

	first := Project(g, pageViews, countHit, Indexed(byN))
	second := Project(g, other, countHit)

	assert.Equal(t, first.Spec(), second.Spec())
	assert.Equal(t, []string{"n"}, second.Spec().Indexes)
	require.NoError(t, g.validate())
}

func TestProject_GivenIntoAHandleNamedForAnotherGroup_ThenTheGroupDoesNotValidate(t *testing.T) {
	g := NewGroup("clicks")

	Project(g, pageViews, countHit, Into(GroupTable[hits]("views")))

	err := g.validate()
	require.ErrorIs(t, err, ErrInvalidGroup)
	assert.Contains(t, err.Error(), "table must be named clicks-table, not views-table")
}

func TestProject_GivenIntoAHandleOfAnotherValueType_ThenTheGroupDoesNotValidate(t *testing.T) {
	g := NewGroup("clicks")

	Project(g, pageViews, countHit, Into(GroupTable[account]("clicks")))

	err := g.validate()
	require.ErrorIs(t, err, ErrInvalidGroup)
	assert.Contains(t, err.Error(), "does not hold the fold's state")
}

func TestHandleCommands_GivenNoTable_ThenTheGroupTableIsReturnedAndTheRelayIsNeeded(t *testing.T) {
	g := NewGroup("accounts")

	table := HandleCommands(g, Aggregate[account, struct{}]{
		Commands: tables.NewStream[Command[struct{}]]("account-commands", codecs.JSON[Command[struct{}]]{}),
		Events:   tables.NewStream[codecs.Event]("account-events", codecs.CloudEvents{}),
		Replies:  tables.NewStream[Reply]("account-replies", codecs.JSON[Reply]{}),
		Decide:   func(*DecideContext, *account, Command[struct{}]) ([]NewEvent, error) { return nil, nil },
		Evolve:   func(a *account, _ codecs.Event) (*account, error) { return a, nil },
	})

	assert.Equal(t, GroupTable[account]("accounts"), table)
	require.NoError(t, g.validate())
	needs := g.needs
	require.Len(t, needs, 1)
	assert.Equal(t, "accounts-relay", needs[0].Name())
	require.NoError(t, needs[0].validate())
}
