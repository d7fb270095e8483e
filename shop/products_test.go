package shop

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
)

// productEvent is an event about product p1 with a fixed id and time.
func productEvent(t *testing.T, typ, id string, data any) codecs.Event {
	t.Helper()
	ev := event(t, typ, "p1", data)
	ev.ID = id
	ev.Time = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	return ev
}

func foldProduct(t *testing.T, evs ...codecs.Event) *Product {
	t.Helper()
	var p *Product
	for _, ev := range evs {
		var err error
		p, err = EvolveProduct(p, ev)
		require.NoError(t, err, ev.Type)
	}
	return p
}

func added(t *testing.T, id string) codecs.Event {
	return productEvent(t, ProductAddedType, id, ProductAdded{Name: "Tea", Price: "1.50", SKU: "TEA-0001"})
}

func verdict(t *testing.T, typ, of string, reasons ...string) codecs.Event {
	return productEvent(t, typ, "v-"+of, ProductValidation{ProductEventID: of, Reasons: reasons})
}

func TestEvolveProduct_GivenAddAndPartialUpdate_ThenFieldsVersionAndPendingValidation(t *testing.T) {
	name, price := "Green tea", json.Number("2.25")
	p := foldProduct(t, added(t, "e1"), productEvent(t, ProductUpdatedType, "e2", ProductUpdated{Name: &name, Price: &price}))

	assert.Equal(t, Product{
		ID: "p1", Name: "Green tea", Price: "2.25", SKU: "TEA-0001",
		Validation: ProductPending, LastEventID: "e2", Version: 2,
		UpdatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
	}, *p)
}

func TestEvolveProduct_GivenVerdicts_ThenTheValidationOfTheCurrentVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		evs     func(t *testing.T) []codecs.Event
		want    string
		reasons []string
		judged  string // ValidatedEventID
	}{
		{"validated", func(t *testing.T) []codecs.Event {
			return []codecs.Event{added(t, "e1"), verdict(t, ProductValidatedType, "e1")}
		}, ProductValidated, nil, "e1"},
		{"rejected with reasons", func(t *testing.T) []codecs.Event {
			return []codecs.Event{added(t, "e1"), verdict(t, ProductRejectedType, "e1", "sku taken")}
		}, ProductRejected, []string{"sku taken"}, "e1"},
		{"a verdict on an older version leaves the newer one pending", func(t *testing.T) []codecs.Event {
			return []codecs.Event{added(t, "e1"), productEvent(t, ProductUpdatedType, "e2", ProductUpdated{}), verdict(t, ProductValidatedType, "e1")}
		}, ProductPending, nil, "e1"},
		{"a late verdict on an older version does not undo the current one", func(t *testing.T) []codecs.Event {
			return []codecs.Event{added(t, "e1"), productEvent(t, ProductUpdatedType, "e2", ProductUpdated{}),
				verdict(t, ProductValidatedType, "e2"), verdict(t, ProductRejectedType, "e1", "old")}
		}, ProductValidated, nil, "e2"},
		{"an update makes a validated product pending again", func(t *testing.T) []codecs.Event {
			return []codecs.Event{added(t, "e1"), verdict(t, ProductValidatedType, "e1"), productEvent(t, ProductUpdatedType, "e2", ProductUpdated{})}
		}, ProductPending, nil, "e1"},
		{"a verdict that arrives before its event counts once the event is folded", func(t *testing.T) []codecs.Event {
			return []codecs.Event{verdict(t, ProductValidatedType, "e1"), added(t, "e1")}
		}, ProductValidated, nil, "e1"},
		{"a rejection that arrives before its event counts too", func(t *testing.T) []codecs.Event {
			return []codecs.Event{verdict(t, ProductRejectedType, "e1", "bad sku"), added(t, "e1")}
		}, ProductRejected, []string{"bad sku"}, "e1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := foldProduct(t, tc.evs(t)...)
			assert.Equal(t, tc.want, p.Validation)
			assert.Equal(t, tc.reasons, p.Reasons)
			assert.Equal(t, tc.judged, p.ValidatedEventID)
			assert.Equal(t, "p1", p.ID)
		})
	}
}

func TestEvolveProduct_GivenVerdictsAndEvents_ThenOnlyProductEventsCountAsVersions(t *testing.T) {
	p := foldProduct(t, verdict(t, ProductValidatedType, "e1"), added(t, "e1"), verdict(t, ProductValidatedType, "e1"))
	assert.Equal(t, int64(1), p.Version)
}

func TestEvolveProduct_GivenAnEventWithoutTime_ThenStampedNow(t *testing.T) {
	ev := added(t, "e1")
	ev.Time = time.Time{}
	p := foldProduct(t, ev)
	assert.WithinDuration(t, time.Now(), p.UpdatedAt, time.Minute)
}

func TestEvolveProduct_GivenUnknownProductsAndEvents_ThenErrors(t *testing.T) {
	_, err := EvolveProduct(nil, productEvent(t, ProductUpdatedType, "e1", ProductUpdated{}))
	assert.ErrorIs(t, err, ErrUnknownProduct)
	_, err = EvolveProduct(nil, productEvent(t, "ProductTeleported", "e1", struct{}{}))
	assert.ErrorIs(t, err, ErrUnknownEvent)
	for _, typ := range []string{ProductAddedType, ProductUpdatedType, ProductValidatedType, ProductRejectedType} {
		_, err := EvolveProduct(foldProduct(t, added(t, "e0")), productEvent(t, typ, "e1", []int{1}))
		assert.Error(t, err, typ)
	}
}
