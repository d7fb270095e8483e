package codecs

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry maps event types to the Go types their data decodes into, and
// rewrites events of retired types into current ones (upcasting) before
// decoding. Register and Upcast are meant for program start; all methods are
// safe for concurrent use.
//
// Misconfiguration (an empty type, a type registered twice, an upcaster for a
// type that also decodes directly) panics, like http.ServeMux does for a
// duplicate pattern: it is a programming error that must fail at start.
type Registry struct {
	mu        sync.RWMutex
	decoders  map[string]func(Event) (any, error)
	upcasters map[string]func(Event) (Event, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		decoders:  make(map[string]func(Event) (any, error)),
		upcasters: make(map[string]func(Event) (Event, error)),
	}
}

// Register makes data of events of eventType decode into a T (a value, not a
// pointer). An event without data decodes into the zero T.
func Register[T any](r *Registry, eventType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkFree(eventType)
	r.decoders[eventType] = func(e Event) (any, error) {
		var v T
		if len(e.Data) == 0 {
			return v, nil
		}
		if err := e.DataAs(&v); err != nil {
			return nil, err
		}
		return v, nil
	}
}

// Upcast registers fn to rewrite events of fromType, typically into the
// current type with reshaped data. The result may itself be of a type with
// an upcaster, so old schemas can be migrated one version at a time.
func (r *Registry) Upcast(fromType string, fn func(Event) (Event, error)) {
	if fn == nil {
		panic("codecs: nil upcaster for event type " + fromType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkFree(fromType)
	r.upcasters[fromType] = fn
}

func (r *Registry) checkFree(eventType string) {
	if eventType == "" {
		panic("codecs: empty event type")
	}
	if _, ok := r.decoders[eventType]; ok {
		panic("codecs: event type " + eventType + " already registered")
	}
	if _, ok := r.upcasters[eventType]; ok {
		panic("codecs: event type " + eventType + " already has an upcaster")
	}
}

// Decode applies the upcasters for e's type, in a chain, then unmarshals the
// data into a new value of the type registered for the resulting event type.
// Every failure is a *DecodeError; it wraps ErrUnknownEventType when no type
// is registered, ErrUpcastCycle when upcasters loop, and the upcaster's own
// error when one fails.
func (r *Registry) Decode(e Event) (any, error) {
	var chain []string
	for {
		up, ok := r.upcaster(e.Type)
		if !ok {
			break
		}
		if slices.Contains(chain, e.Type) {
			return nil, decodeErr("registry", "%w: %s -> %s", ErrUpcastCycle, strings.Join(chain, " -> "), e.Type)
		}
		chain = append(chain, e.Type)
		from, id := e.Type, e.ID
		var err error
		if e, err = up(e); err != nil {
			return nil, &DecodeError{Codec: "registry", Err: fmt.Errorf("upcast %s (id %s): %w", from, id, err)}
		}
	}
	dec, ok := r.decoder(e.Type)
	if !ok {
		if len(chain) > 0 {
			return nil, decodeErr("registry", "%w %q (upcast from %s)", ErrUnknownEventType, e.Type, strings.Join(chain, " -> "))
		}
		return nil, decodeErr("registry", "%w %q", ErrUnknownEventType, e.Type)
	}
	return dec(e)
}

func (r *Registry) upcaster(t string) (func(Event) (Event, error), bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.upcasters[t]
	return fn, ok
}

func (r *Registry) decoder(t string) (func(Event) (any, error), bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.decoders[t]
	return fn, ok
}

// Types returns the registered event types (those Decode produces values
// for, not those only upcast from), sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.decoders))
	for t := range r.decoders {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}
