package shop

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
)

func event(t *testing.T, typ, id string, data any) codecs.Event {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", typ, id, data)
	require.NoError(t, err)
	return ev
}

func fold(t *testing.T, evs ...codecs.Event) *Customer {
	t.Helper()
	var c *Customer
	for _, ev := range evs {
		var err error
		c, err = EvolveCustomer(c, ev)
		require.NoError(t, err)
	}
	return c
}

func TestEvolveCustomer_GivenLifecycle_ThenVersionCountsEvents(t *testing.T) {
	name := "Ada L"
	c := fold(t,
		event(t, CustomerRegisteredType, "ada", CustomerRegistered{Name: "Ada", Email: "ada@example.com"}),
		event(t, CustomerUpdatedType, "ada", CustomerUpdated{Name: &name}),
		event(t, CustomerDeletedType, "ada", struct{}{}),
	)
	require.NotNil(t, c)
	assert.Equal(t, "ada", c.ID)
	assert.Equal(t, "Ada L", c.Name)
	assert.Equal(t, "ada@example.com", c.Email)
	assert.Equal(t, StateDeleted, c.State)
	assert.Equal(t, int64(3), c.Version)
	assert.WithinDuration(t, time.Now(), c.UpdatedAt, time.Minute)
}

func TestEvolveCustomer_GivenErase_ThenRemoved(t *testing.T) {
	c := fold(t,
		event(t, CustomerRegisteredType, "ada", CustomerRegistered{Name: "Ada", Email: "ada@example.com"}),
		event(t, CustomerErasedType, "ada", struct{}{}),
	)
	assert.Nil(t, c)
}

func TestEvolveCustomer_GivenUpdateOfUnknown_ThenError(t *testing.T) {
	_, err := EvolveCustomer(nil, event(t, CustomerUpdatedType, "x", CustomerUpdated{}))
	assert.ErrorIs(t, err, ErrUnknownCustomer)
	_, err = EvolveCustomer(nil, event(t, "CustomerTeleported", "x", struct{}{}))
	assert.ErrorIs(t, err, ErrUnknownEvent)
}

func TestRegisterEvent_GivenInvalidInput_ThenFieldErrors(t *testing.T) {
	_, err := RegisterEvent(RegisterCustomer{Name: " ", Email: "nope"})
	verr, ok := err.(*ValidationError)
	require.True(t, ok, "%v", err)
	assert.Contains(t, verr.Fields, "name")
	assert.Contains(t, verr.Fields, "email")

	for _, bad := range []string{"a@b", "Ada <ada@example.com>", "ada@", "@example.com", "ada@example."} {
		_, err := RegisterEvent(RegisterCustomer{Name: "Ada", Email: bad})
		assert.Error(t, err, bad)
	}
	ev, err := RegisterEvent(RegisterCustomer{Name: "Ada", Email: "ada@example.com"})
	require.NoError(t, err)
	assert.NotEmpty(t, ev.Subject, "an id is generated")
	assert.Equal(t, CustomerRegisteredType, ev.Type)
}

func TestCustomerStateIndex_GivenValue_ThenTermIsState(t *testing.T) {
	assert.Equal(t, []string{"deleted"}, CustomerStateIndex.Terms("k", []byte(`{"_meta":{},"state":"deleted"}`)))
	assert.Nil(t, CustomerStateIndex.Terms("k", []byte(`not json`)))
}

func TestTopology_GivenShop_ThenValidAndDescribed(t *testing.T) {
	topo := Topology(8, nil)
	require.NoError(t, topo.Validate())
	names := map[string]bool{}
	for _, ti := range topo.Topics() {
		names[ti.Name] = true
	}
	for _, want := range []string{"customer-events", "customers-table", "customers-dlq"} {
		assert.True(t, names[want], want)
	}
}
