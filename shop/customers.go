package shop

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// Customer event types (CloudEvents "type").
const (
	CustomerRegisteredType = "CustomerRegistered"
	CustomerUpdatedType    = "CustomerUpdated"
	CustomerDeletedType    = "CustomerDeleted"
	CustomerErasedType     = "CustomerErased"
)

// Customer states.
const (
	StateActive  = "active"
	StateDeleted = "deleted"
)

// Source is the CloudEvents source of events the shop writes.
const Source = "urn:streamfold:shop"

// Customer is the customers-table value.
type Customer struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	State     string    `json:"state"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// CustomerRegistered is the data of a CustomerRegistered event.
type CustomerRegistered struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// CustomerUpdated is the data of a CustomerUpdated event; absent fields stay.
type CustomerUpdated struct {
	Name  *string `json:"name,omitempty"`
	Email *string `json:"email,omitempty"`
}

// ErrUnknownCustomer: an update or delete for a customer that does not exist.
var ErrUnknownCustomer = errors.New("unknown customer")

// ErrUnknownEvent: an event type the fold does not know.
var ErrUnknownEvent = errors.New("unknown event type")

// EvolveCustomer folds one customer event into the customer's state. A nil
// result erases the customer.
func EvolveCustomer(c *Customer, ev codecs.Event) (*Customer, error) {
	switch ev.Type {
	case CustomerRegisteredType:
		var d CustomerRegistered
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := Customer{ID: ev.Subject, Name: d.Name, Email: d.Email, State: StateActive}
		if c != nil {
			next.ID, next.Version = c.ID, c.Version
		}
		if next.ID == "" {
			return nil, errors.New("CustomerRegistered without subject")
		}
		return stamp(next, ev), nil
	case CustomerUpdatedType:
		if c == nil {
			return nil, fmt.Errorf("%w %q: update", ErrUnknownCustomer, ev.Subject)
		}
		var d CustomerUpdated
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := *c
		if d.Name != nil {
			next.Name = *d.Name
		}
		if d.Email != nil {
			next.Email = *d.Email
		}
		return stamp(next, ev), nil
	case CustomerDeletedType:
		if c == nil {
			return nil, fmt.Errorf("%w %q: delete", ErrUnknownCustomer, ev.Subject)
		}
		next := *c
		next.State = StateDeleted
		return stamp(next, ev), nil
	case CustomerErasedType:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEvent, ev.Type)
	}
}

func stamp(c Customer, ev codecs.Event) *Customer {
	c.Version++
	c.UpdatedAt = ev.Time
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now().UTC()
	}
	return &c
}

// ValidationError lists what is wrong with a request, field by field.
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for f, msg := range e.Fields {
		parts = append(parts, f+": "+msg)
	}
	return "invalid: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	e.Fields[field] = msg
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// RegisterCustomer is the body of POST /customers.
type RegisterCustomer struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// UpdateCustomer is the body of PATCH /customers/{id}.
type UpdateCustomer struct {
	Name  *string `json:"name,omitempty"`
	Email *string `json:"email,omitempty"`
}

// RegisterEvent validates a registration and returns its event; without an id,
// one is generated.
func RegisterEvent(cmd RegisterCustomer) (codecs.Event, error) {
	var verr ValidationError
	cmd.Name = strings.TrimSpace(cmd.Name)
	cmd.Email = strings.TrimSpace(cmd.Email)
	if cmd.Name == "" {
		verr.add("name", "required")
	}
	if msg := checkEmail(cmd.Email); msg != "" {
		verr.add("email", msg)
	}
	if msg := checkID(cmd.ID); msg != "" {
		verr.add("id", msg)
	}
	if err := verr.orNil(); err != nil {
		return codecs.Event{}, err
	}
	if cmd.ID == "" {
		cmd.ID = codecs.NewID()
	}
	return codecs.NewEvent(Source, CustomerRegisteredType, cmd.ID, CustomerRegistered{Name: cmd.Name, Email: cmd.Email})
}

// UpdateEvent validates an update and returns its event.
func UpdateEvent(id string, cmd UpdateCustomer) (codecs.Event, error) {
	var verr ValidationError
	if cmd.Name == nil && cmd.Email == nil {
		verr.add("body", "nothing to update: give name and/or email")
	}
	if cmd.Name != nil {
		n := strings.TrimSpace(*cmd.Name)
		if n == "" {
			verr.add("name", "must not be empty")
		}
		cmd.Name = &n
	}
	if cmd.Email != nil {
		e := strings.TrimSpace(*cmd.Email)
		if msg := checkEmail(e); msg != "" {
			verr.add("email", msg)
		}
		cmd.Email = &e
	}
	if err := verr.orNil(); err != nil {
		return codecs.Event{}, err
	}
	return codecs.NewEvent(Source, CustomerUpdatedType, id, CustomerUpdated(cmd))
}

// DeleteEvent returns a soft delete (or, with erase, an erasure) event.
func DeleteEvent(id string, erase bool) (codecs.Event, error) {
	typ := CustomerDeletedType
	if erase {
		typ = CustomerErasedType
	}
	return codecs.NewEvent(Source, typ, id, struct{}{})
}

func checkEmail(e string) string {
	if e == "" {
		return "required"
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e {
		return "not an e-mail address"
	}
	at := strings.LastIndexByte(e, '@')
	if domain := e[at+1:]; !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return "domain must be a full host name"
	}
	return ""
}

func checkID(id string) string {
	if len(id) > 200 {
		return "longer than 200 characters"
	}
	if strings.ContainsAny(id, "/?#") || strings.TrimSpace(id) != id {
		return "must not contain '/', '?', '#' or surrounding spaces"
	}
	return ""
}
