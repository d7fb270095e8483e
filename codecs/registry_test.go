package codecs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/streamfold/streamfold/codecs"
)

type productAdded struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Cents int64  `json:"priceCents"`
}

type productRemoved struct {
	SKU string `json:"sku"`
}

func rawEvent(typ, data string) codecs.Event {
	e := codecs.Event{SpecVersion: "1.0", ID: "e-" + typ, Source: "/test", Type: typ}
	if data != "" {
		e.Data = json.RawMessage(data)
	}
	return e
}

// reshape returns an upcaster that renames the type and rewrites the data
// with fn.
func reshape(to string, fn func(map[string]any)) func(codecs.Event) (codecs.Event, error) {
	return func(e codecs.Event) (codecs.Event, error) {
		var m map[string]any
		if err := json.Unmarshal(e.Data, &m); err != nil {
			return e, err
		}
		fn(m)
		b, err := json.Marshal(m)
		if err != nil {
			return e, err
		}
		e.Type, e.Data = to, b
		return e, nil
	}
}

func newShopRegistry() *codecs.Registry {
	r := codecs.NewRegistry()
	codecs.Register[productAdded](r, "ProductAdded.v3")
	codecs.Register[productRemoved](r, "ProductRemoved")
	// v1 named the SKU "id"; v2 had a price in whole units.
	r.Upcast("ProductAdded", reshape("ProductAdded.v2", func(m map[string]any) {
		m["sku"] = m["id"]
		delete(m, "id")
	}))
	r.Upcast("ProductAdded.v2", reshape("ProductAdded.v3", func(m map[string]any) {
		m["priceCents"] = m["price"].(float64) * 100
		delete(m, "price")
	}))
	return r
}

func TestGivenRegisteredTypesWhenDecodingThenDataBecomesTheRegisteredType(t *testing.T) {
	r := newShopRegistry()
	for _, tc := range []struct {
		event codecs.Event
		want  any
	}{
		{rawEvent("ProductAdded.v3", `{"sku":"s1","name":"Mug","priceCents":250}`), productAdded{SKU: "s1", Name: "Mug", Cents: 250}},
		{rawEvent("ProductRemoved", `{"sku":"s1"}`), productRemoved{SKU: "s1"}},
		{rawEvent("ProductRemoved", ""), productRemoved{}},
	} {
		got, err := r.Decode(tc.event)
		if err != nil {
			t.Fatalf("%s: %v", tc.event.Type, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.event.Type, got, tc.want)
		}
	}
	if got, want := r.Types(), []string{"ProductAdded.v3", "ProductRemoved"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
}

func TestGivenAnOldEventWhenDecodingThenUpcasterChainYieldsTheCurrentType(t *testing.T) {
	r := newShopRegistry()
	old := rawEvent("ProductAdded", `{"id":"s1","name":"Mug","price":2.5}`)
	got, err := r.Decode(old)
	if err != nil {
		t.Fatal(err)
	}
	if want := (productAdded{SKU: "s1", Name: "Mug", Cents: 250}); got != want {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	if old.Type != "ProductAdded" || !strings.Contains(string(old.Data), `"id"`) {
		t.Errorf("upcasting changed the caller's event: %+v", old)
	}
}

func TestGivenUndecodableEventsWhenDecodingThenDecodeError(t *testing.T) {
	r := newShopRegistry()
	r.Upcast("Loop.a", func(e codecs.Event) (codecs.Event, error) { e.Type = "Loop.b"; return e, nil })
	r.Upcast("Loop.b", func(e codecs.Event) (codecs.Event, error) { e.Type = "Loop.a"; return e, nil })
	r.Upcast("Retired", func(e codecs.Event) (codecs.Event, error) { e.Type = "Nowhere"; return e, nil })
	broken := errors.New("cannot migrate")
	r.Upcast("Broken", func(e codecs.Event) (codecs.Event, error) { return e, broken })
	for _, tc := range []struct {
		event    codecs.Event
		sentinel error
		says     string
	}{
		{rawEvent("CustomerRegistered", `{}`), codecs.ErrUnknownEventType, `"CustomerRegistered"`},
		{rawEvent("Retired", `{}`), codecs.ErrUnknownEventType, "upcast from Retired"},
		{rawEvent("Loop.a", `{}`), codecs.ErrUpcastCycle, "Loop.a -> Loop.b -> Loop.a"},
		{rawEvent("Broken", `{}`), broken, "upcast Broken"},
		{rawEvent("ProductRemoved", `{"sku":7}`), nil, "ProductRemoved"},
		{rawEvent("ProductAdded", `[]`), nil, "upcast ProductAdded"},
	} {
		_, err := r.Decode(tc.event)
		var de *codecs.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want a *DecodeError", tc.event.Type, err)
			continue
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: %q does not wrap %v", tc.event.Type, err, tc.sentinel)
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %q does not say %q", tc.event.Type, err, tc.says)
		}
	}
}

func TestGivenConflictingRegistrationsWhenRegisteringThenPanic(t *testing.T) {
	noop := func(e codecs.Event) (codecs.Event, error) { return e, nil }
	for name, register := range map[string]func(*codecs.Registry){
		"type twice":            func(r *codecs.Registry) { codecs.Register[productRemoved](r, "ProductRemoved") },
		"upcaster for a type":   func(r *codecs.Registry) { r.Upcast("ProductRemoved", noop) },
		"upcaster twice":        func(r *codecs.Registry) { r.Upcast("ProductAdded", noop) },
		"type with an upcaster": func(r *codecs.Registry) { codecs.Register[productAdded](r, "ProductAdded") },
		"empty type":            func(r *codecs.Registry) { codecs.Register[productAdded](r, "") },
		"nil upcaster":          func(r *codecs.Registry) { r.Upcast("X", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			register(newShopRegistry())
		}()
	}
}

func TestGivenARegistryWhenDecodingConcurrentlyThenNoRace(t *testing.T) {
	r := newShopRegistry()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				e := rawEvent("ProductAdded", fmt.Sprintf(`{"id":"s%d-%d","price":1}`, g, i))
				if _, err := r.Decode(e); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	codecs.Register[customer](r, "CustomerRegistered") // registering while others decode is safe
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
