package shop

import (
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// Customer-cart event types, on customer-cart-events (keyed by customer id).
const (
	CustomerCartOpenedType     = "CustomerCartOpened"
	CustomerCartCheckedOutType = "CustomerCartCheckedOut"
)

// CustomerCartEvent is the data of both customer-cart events.
type CustomerCartEvent struct {
	CartID string `json:"cartId"`
}

// CartOwner is the cart-customers group's state, per cart: whose cart it is.
type CartOwner struct {
	CustomerID string `json:"customerId,omitempty"`
}

// CustomerCarts is the customer-carts-table value: a customer's carts.
type CustomerCarts struct {
	CustomerID string         `json:"customerId"`
	Carts      []CustomerCart `json:"carts"`
}

// CustomerCart is one cart of a customer.
type CustomerCart struct {
	CartID string `json:"cartId"`
	Status string `json:"status"`
}

// rekeyCart re-keys cart events by customer: CartCreated carries the customer
// id; CartCheckedOut is sent to the customer the cart was created for.
func rekeyCart(rc *processors.ReactContext, st *CartOwner, ev codecs.Event) (*CartOwner, error) {
	owner := CartOwner{}
	if st != nil {
		owner = *st
	}
	switch ev.Type {
	case CartCreatedType:
		var d CartCreated
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		if d.CustomerID == "" {
			return &owner, nil // an anonymous cart belongs to nobody's list
		}
		owner.CustomerID = d.CustomerID
		_, err := rc.Emit(CustomerCartEvents, d.CustomerID, CustomerCartOpenedType, Source, CustomerCartEvent{CartID: ev.Subject})
		return &owner, err
	case CartCheckedOutType:
		if owner.CustomerID != "" {
			_, err := rc.Emit(CustomerCartEvents, owner.CustomerID, CustomerCartCheckedOutType, Source, CustomerCartEvent{CartID: ev.Subject})
			return &owner, err
		}
	}
	return st, nil
}

// EvolveCustomerCarts folds customers and their carts. A cart for a customer
// that is not registered (yet) is a missing dependency: the framework parks it
// under the customer's key until CustomerRegistered arrives.
func EvolveCustomerCarts(cc *CustomerCarts, ev codecs.Event) (*CustomerCarts, error) {
	switch ev.Type {
	case CustomerRegisteredType:
		if cc == nil {
			return &CustomerCarts{CustomerID: ev.Subject, Carts: []CustomerCart{}}, nil
		}
		return cc, nil
	case CustomerErasedType:
		return nil, nil
	case CustomerUpdatedType, CustomerDeletedType:
		return cc, nil
	case CustomerCartOpenedType, CustomerCartCheckedOutType:
		if cc == nil {
			return nil, processors.MissingDependency("customer", ev.Subject)
		}
		var d CustomerCartEvent
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := *cc
		next.Carts = append([]CustomerCart(nil), cc.Carts...)
		status := CartOpen
		if ev.Type == CustomerCartCheckedOutType {
			status = CartCheckedOut
		}
		for i, c := range next.Carts {
			if c.CartID == d.CartID {
				next.Carts[i].Status = status
				return &next, nil
			}
		}
		next.Carts = append(next.Carts, CustomerCart{CartID: d.CartID, Status: status})
		return &next, nil
	default:
		return cc, nil
	}
}
