package shop

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// Orders and their validation, after the Kafka Streams microservices
// examples: an order is created, three checks (inventory, fraud, details)
// each send PASS or FAIL, and the aggregator decides VALIDATED (all three
// pass) or FAILED (any fails, or not all answered within ValidationWindow).

// Order event types on the orders topic; each carries the order as it is
// after the event.
const (
	OrderCreatedType   = "OrderCreated"
	OrderValidatedType = "OrderValidated"
	OrderFailedType    = "OrderFailed"
)

// Order states.
const (
	OrderCreated   = "CREATED"
	OrderValidated = "VALIDATED"
	OrderFailed    = "FAILED"
)

// Order is the orders-table value and the data of every order event.
type Order struct {
	ID         string  `json:"id"`
	CustomerID string  `json:"customerId"`
	Product    string  `json:"product"`
	Quantity   int     `json:"quantity"`
	Price      float64 `json:"price"`
	State      string  `json:"state"`
	// Reason says why a FAILED order failed.
	Reason string `json:"reason,omitempty"`
	// Checks are the results the aggregator had when it decided.
	Checks map[string]string `json:"checks,omitempty"`
}

// Total is the order's value, quantity × price.
func (o Order) Total() float64 { return float64(o.Quantity) * o.Price }

// The checks and their results.
const (
	CheckInventory = "inventory"
	CheckFraud     = "fraud"
	CheckDetails   = "details"

	Pass = "PASS"
	Fail = "FAIL"

	OrderValidationType = "OrderValidationResult"
)

// Checks are the checks every order passes through.
var Checks = []string{CheckInventory, CheckFraud, CheckDetails}

// OrderValidation is one check's result for an order (order-validations,
// keyed by order id).
type OrderValidation struct {
	OrderID string `json:"orderId"`
	Check   string `json:"check"`
	Result  string `json:"result"`
	Reason  string `json:"reason,omitempty"`
}

// NewOrder is the order a POST /orders body asks for, checked for its
// shape (a 400 otherwise); whether the shop accepts it is the checks'
// business, so a quantity of 0 is created and then FAILED by the details
// check, as the reference flow does.
func NewOrder(id string, o Order) (Order, error) {
	switch {
	case o.CustomerID == "":
		return Order{}, errors.New("customerId is required")
	case o.Product == "":
		return Order{}, errors.New("product is required")
	}
	o.ID, o.State, o.Reason, o.Checks = id, OrderCreated, "", nil
	return o, nil
}

// EvolveOrder folds an order event into the orders table.
func EvolveOrder(o *Order, ev codecs.Event) (*Order, error) {
	var d Order
	if err := ev.DataAs(&d); err != nil {
		return nil, err
	}
	switch ev.Type {
	case OrderCreatedType:
		if o != nil {
			return o, nil // created once; a second creation changes nothing
		}
	case OrderValidatedType, OrderFailedType:
		if o != nil && o.State != OrderCreated {
			return o, nil // decided once
		}
	default:
		return o, nil
	}
	d.ID = ev.Subject
	return &d, nil
}

// CheckOrderDetails is the details check: a positive quantity and price,
// a customer and a product.
func CheckOrderDetails(o Order) (result, reason string) {
	switch {
	case o.Quantity <= 0:
		return Fail, fmt.Sprintf("quantity %d is not positive", o.Quantity)
	case o.Price <= 0:
		return Fail, fmt.Sprintf("price %v is not positive", o.Price)
	case o.CustomerID == "" || o.Product == "":
		return Fail, "customer and product are required"
	}
	return Pass, ""
}

// Inventory is the inventory check's state per product: the stock the
// warehouse reports and the units reserved for passed orders, by order
// (so an order reserves once, however often it is read).
type Inventory struct {
	Product  string         `json:"product"`
	Stock    int            `json:"stock"`
	Reserved int            `json:"reserved"`
	Orders   map[string]int `json:"orders,omitempty"`
}

// StockLevel is a warehouse-inventory value: the units in stock.
type StockLevel struct {
	Stock int `json:"stock"`
}

// Reserve is the inventory check of an order against inv: PASS and the
// quantity reserved when stock − reserved ≥ quantity, FAIL otherwise. An
// order that holds a reservation already passes again without reserving
// twice.
func Reserve(inv Inventory, o Order) (next Inventory, result, reason string) {
	if _, ok := inv.Orders[o.ID]; ok {
		return inv, Pass, ""
	}
	if avail := inv.Stock - inv.Reserved; avail < o.Quantity || o.Quantity <= 0 {
		return inv, Fail, fmt.Sprintf("%d of product %s available, %d ordered", max(avail, 0), o.Product, o.Quantity)
	}
	next = inv
	next.Orders = maps.Clone(inv.Orders)
	if next.Orders == nil {
		next.Orders = map[string]int{}
	}
	next.Orders[o.ID] = o.Quantity
	next.Reserved += o.Quantity
	return next, Pass, ""
}

// Release returns a failed order's reservation, if it has one.
func Release(inv Inventory, orderID string) Inventory {
	q, ok := inv.Orders[orderID]
	if !ok {
		return inv
	}
	next := inv
	next.Orders = maps.Clone(inv.Orders)
	delete(next.Orders, orderID)
	next.Reserved -= q
	return next
}

// FraudLimit is the total of a customer's orders within one session at
// which the fraud check fails them.
const FraudLimit = 2000.0

// FraudSession is the fraud check's value per customer and session: the
// running total of its CREATED orders and the last order's verdict.
type FraudSession struct {
	Total  float64 `json:"total"`
	Last   string  `json:"last,omitempty"`
	Result string  `json:"result,omitempty"`
}

// AddToSession adds an order to a customer's session; the order fails the
// fraud check when the running total reaches FraudLimit.
func AddToSession(s FraudSession, o Order) FraudSession {
	s.Total += o.Total()
	s.Last, s.Result = o.ID, Pass
	if s.Total >= FraudLimit {
		s.Result = Fail
	}
	return s
}

// MergeSessions merges two sessions of a customer that an order bridged.
func MergeSessions(a, b FraudSession) FraudSession {
	return FraudSession{Total: a.Total + b.Total, Last: b.Last, Result: b.Result}
}

// ValidationWindow is how long after its creation an order's three results
// are awaited; an order still missing one then fails.
const ValidationWindow = 5 * time.Minute

// Pending is the aggregator's state per order.
type Pending struct {
	Order   *Order            `json:"order,omitempty"`
	Results map[string]string `json:"results,omitempty"`
	Reasons map[string]string `json:"reasons,omitempty"`
	Decided string            `json:"decided,omitempty"`
}

// Decide returns the order's state once its results allow one: FAILED at
// the first FAIL, VALIDATED when every check passed, "" while undecided
// (or decided already: a decision is made once).
func (p Pending) Decide() (state, reason string) {
	if p.Decided != "" || p.Order == nil {
		return "", ""
	}
	for _, c := range Checks {
		if p.Results[c] == Fail {
			return OrderFailed, fmt.Sprintf("%s check failed: %s", c, p.Reasons[c])
		}
	}
	for _, c := range Checks {
		if p.Results[c] != Pass {
			return "", ""
		}
	}
	return OrderValidated, ""
}

// decidedOrder is the order as its decision event carries it.
func decidedOrder(p Pending, state, reason string) Order {
	o := *p.Order
	o.State, o.Reason, o.Checks = state, reason, maps.Clone(p.Results)
	return o
}

// OrderPayment is a validated order joined with its payment.
type OrderPayment struct {
	Order   Order           `json:"order"`
	Payment PaymentReceived `json:"payment"`
}

// PaymentReceivedType is the payments topic's event type.
const PaymentReceivedType = "PaymentReceived"

// PaymentReceived is the data of a PaymentReceived event (payments, keyed
// by order id).
type PaymentReceived struct {
	OrderID  string  `json:"orderId"`
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
}

// EmailSentType is the event that records the "order confirmed" e-mail.
const EmailSentType = "EmailSent"

// EmailSent is the data of an EmailSent event (emails, keyed by order id).
type EmailSent struct {
	OrderID  string  `json:"orderId"`
	To       string  `json:"to,omitempty"`
	Customer string  `json:"customer"`
	Subject  string  `json:"subject"`
	Amount   float64 `json:"amount"`
	EffectID string  `json:"effectId"`
}
