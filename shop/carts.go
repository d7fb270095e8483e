package shop

import (
	"fmt"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// Cart command types.
const (
	AddItemType    = "AddItem"
	RemoveItemType = "RemoveItem"
	CheckOutType   = "CheckOut"
)

// Cart event types.
const (
	CartCreatedType    = "CartCreated"
	ItemAddedType      = "ItemAdded"
	ItemRemovedType    = "ItemRemoved"
	CartCheckedOutType = "CartCheckedOut"
)

// Cart statuses.
const (
	CartOpen       = "open"
	CartCheckedOut = "checkedOut"
)

// Quantity bounds of one cart line.
const (
	MinQuantity = 1
	MaxQuantity = 99
)

// Cart is the carts-table value: the snapshot of one cart.
type Cart struct {
	ID         string     `json:"id"`
	CustomerID string     `json:"customerId,omitempty"`
	Items      []CartItem `json:"items"`
	Status     string     `json:"status"`
	Version    int64      `json:"version"`
	UpdatedAt  time.Time  `json:"updatedAt"`
}

// SetVersion lets the aggregate block record the number of events applied.
func (c *Cart) SetVersion(v int64) { c.Version = v }

// CartItem is one line of a cart.
type CartItem struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

// CartCommandData is the data of every cart command; each type uses its part.
type CartCommandData struct {
	ProductID  string `json:"productId,omitempty"`
	Quantity   int    `json:"quantity,omitempty"`
	CustomerID string `json:"customerId,omitempty"`
}

// CartCommand is one command on cart-commands.
type CartCommand = processors.Command[CartCommandData]

// CartCreated is the data of CartCreated.
type CartCreated struct {
	CustomerID string `json:"customerId,omitempty"`
}

// ItemAdded is the data of ItemAdded.
type ItemAdded struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

// ItemRemoved is the data of ItemRemoved.
type ItemRemoved struct {
	ProductID string `json:"productId"`
}

// ProductLookup finds a product by id (nil when absent).
type ProductLookup func(id string) (*Product, error)

// HistoryLookup reports whether a cart id already has a history (it was used
// and checked out before: its snapshot is gone but its events are not).
type HistoryLookup func(cartID string) (bool, error)

// ValidateCartCommand checks a command's shape: a known type with the data it
// needs. A command failing it is malformed (the HTTP layer answers 400 and
// produces nothing); the rules that need state are DecideCart's.
func ValidateCartCommand(cmd CartCommand) error {
	switch cmd.Type {
	case AddItemType, RemoveItemType:
		if cmd.Data.ProductID == "" {
			return fmt.Errorf("%s needs data.productId", cmd.Type)
		}
	case CheckOutType:
	default:
		return fmt.Errorf("unknown command type %q (AddItem, RemoveItem, CheckOut)", cmd.Type)
	}
	if cmd.ExpectedVersion != nil && *cmd.ExpectedVersion < 0 {
		return fmt.Errorf("expectedVersion must not be negative")
	}
	return nil
}

// DecideCart applies the cart rules to a command. cart is nil for a cart that
// does not exist (never did, or was checked out and tombstoned).
func DecideCart(cart *Cart, cmd CartCommand, id string, product ProductLookup, used HistoryLookup) ([]processors.NewEvent, error) {
	if err := ValidateCartCommand(cmd); err != nil {
		return nil, processors.Reject("%s", err.Error())
	}
	if cart == nil {
		if was, err := used(id); err != nil {
			return nil, err
		} else if was {
			return nil, processors.Reject("cart %s is checked out: no changes after checkout", id)
		}
	} else if cart.Status == CartCheckedOut {
		return nil, processors.Reject("cart %s is checked out: no changes after checkout", id)
	}
	switch cmd.Type {
	case AddItemType:
		if q := cmd.Data.Quantity; q < MinQuantity || q > MaxQuantity {
			return nil, processors.Reject("quantity must be %d..%d, got %d", MinQuantity, MaxQuantity, q)
		}
		p, err := product(cmd.Data.ProductID)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, processors.Reject("product %s does not exist", cmd.Data.ProductID)
		}
		if p.Validation != ProductValidated {
			return nil, processors.Reject("product %s is not validated (%s)", cmd.Data.ProductID, p.Validation)
		}
		var evs []processors.NewEvent
		if cart == nil {
			evs = append(evs, processors.NewEvent{Type: CartCreatedType, Data: CartCreated{CustomerID: cmd.Data.CustomerID}})
		} else if cart.has(cmd.Data.ProductID) {
			return nil, processors.Reject("product %s is already in the cart", cmd.Data.ProductID)
		}
		return append(evs, processors.NewEvent{Type: ItemAddedType, Data: ItemAdded{ProductID: cmd.Data.ProductID, Quantity: cmd.Data.Quantity}}), nil
	case RemoveItemType:
		if cart == nil || !cart.has(cmd.Data.ProductID) {
			return nil, processors.Reject("product %s is not in the cart", cmd.Data.ProductID)
		}
		return []processors.NewEvent{{Type: ItemRemovedType, Data: ItemRemoved{ProductID: cmd.Data.ProductID}}}, nil
	default: // CheckOut
		if cart == nil || len(cart.Items) == 0 {
			return nil, processors.Reject("cannot check out an empty cart")
		}
		return []processors.NewEvent{{Type: CartCheckedOutType, Data: struct{}{}}}, nil
	}
}

func (c *Cart) has(productID string) bool {
	for _, it := range c.Items {
		if it.ProductID == productID {
			return true
		}
	}
	return false
}

// EvolveCart folds cart events into the cart.
func EvolveCart(c *Cart, ev codecs.Event) (*Cart, error) {
	var next Cart
	if c != nil {
		next = *c
		next.Items = append([]CartItem(nil), c.Items...)
	}
	switch ev.Type {
	case CartCreatedType:
		var d CartCreated
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next = Cart{ID: ev.Subject, CustomerID: d.CustomerID, Items: []CartItem{}, Status: CartOpen}
	case ItemAddedType:
		var d ItemAdded
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next.Items = append(next.Items, CartItem(d))
	case ItemRemovedType:
		var d ItemRemoved
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		for i, it := range next.Items {
			if it.ProductID == d.ProductID {
				next.Items = append(next.Items[:i], next.Items[i+1:]...)
				break
			}
		}
	case CartCheckedOutType:
		next.Status = CartCheckedOut
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEvent, ev.Type)
	}
	next.UpdatedAt = ev.Time
	return &next, nil
}

func cartProductIndexTerms(_ string, c Cart) []string {
	terms := make([]string, 0, len(c.Items))
	for _, it := range c.Items {
		terms = append(terms, it.ProductID)
	}
	return terms
}
