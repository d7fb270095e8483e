package shop

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// Group names of the order flow.
const (
	OrdersGroup           = "orders"
	OrderDetailsGroup     = "order-details-check"
	OrdersByProductGroup  = "orders-by-product"
	InventoryGroup        = "inventory-check"
	OrdersByCustomerGroup = "orders-by-customer"
	FraudGroup            = "fraud-check"
	FraudResultsGroup     = "fraud-results"
	AggregatorGroup       = "order-aggregator"
	OrderCustomersGroup   = "order-customers"
	OrderPaymentsGroup    = "order-payments"
	EmailerGroup          = "order-emails"
)

// The order flow's topics.
var (
	// Orders carries OrderCreated (POST /orders) and OrderValidated /
	// OrderFailed (the aggregator), keyed by order id.
	Orders = tables.NewStream[codecs.Event]("orders", codecs.CloudEvents{})
	// OrderValidations carries each check's result, keyed by order id.
	OrderValidations = tables.NewStream[codecs.Event]("order-validations", codecs.CloudEvents{})
	// WarehouseInventory is the units in stock per product ({"stock": N}),
	// compacted: PUT /inventory/{product} or any producer writes it.
	WarehouseInventory = tables.Stream[StockLevel]{Name: "warehouse-inventory", Codec: codecs.JSON[StockLevel]{},
		Configs: map[string]string{"cleanup.policy": "compact"}}
	// Payments carries PaymentReceived, keyed by order id.
	Payments = tables.NewStream[codecs.Event]("payments", codecs.CloudEvents{})
	// OrderPaymentsStream is a validated order paired with its payment.
	OrderPaymentsStream = tables.NewStream[OrderPayment]("order-payments-paired", codecs.JSON[OrderPayment]{})
	// Emails records each "order confirmed" e-mail as an EmailSent event.
	Emails = tables.NewStream[codecs.Event]("emails", codecs.CloudEvents{})
	// FraudSessions are the fraud check's sessions per customer, on every update.
	FraudSessions = tables.NewStream[processors.WindowResult[FraudSession]]("fraud-sessions", codecs.JSON[processors.WindowResult[FraudSession]]{})

	// OrdersTable is each order as its events left it.
	OrdersTable = processors.GroupTable[Order](OrdersGroup)
	// InventoryTable is the stock and reservations per product.
	InventoryTable = processors.GroupTable[Inventory](InventoryGroup)
	// EnrichedOrdersTable is each order with its customer's name and state.
	EnrichedOrdersTable = processors.GroupTable[EnrichedOrder](OrderCustomersGroup)
	// FraudTable is the fraud check's sessions per customer.
	FraudTable = processors.GroupTable[processors.Windowed[FraudSession]](FraudGroup)
)

// EnrichedOrder is an order with its customer, as GET /orders/{id} shows it.
type EnrichedOrder struct {
	Order
	Customer *OrderCustomer `json:"customer"`
}

// OrderCustomer is what an order shows of its customer.
type OrderCustomer struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// FraudSessionGap is the inactivity gap of a customer's fraud session.
const FraudSessionGap = time.Hour

// PaymentWindow is how long after its validation an order's payment is
// joined to it.
const PaymentWindow = 10 * time.Minute

// orderFlow declares the order flow's groups.
func orderFlow(opt func(string, ...processors.GroupOption) *processors.Group, fraudGap time.Duration) []*processors.Group {
	orders := opt(OrdersGroup)
	processors.Project(orders, Orders, EvolveOrder, processors.Into(OrdersTable))

	details := opt(OrderDetailsGroup)
	processors.Output(details, OrderValidations)
	processors.AddReactor(details, processors.Reactor[checked, codecs.Event]{
		Table: processors.GroupTable[checked](OrderDetailsGroup), Input: Orders, React: checkDetails,
	})

	byProduct := opt(OrdersByProductGroup)
	productOrders := processors.Repartition(byProduct, Orders, func(_ string, ev codecs.Event) (string, error) {
		o, err := orderOf(ev)
		return o.Product, err
	}, "orders")
	inventory := opt(InventoryGroup)
	processors.Output(inventory, OrderValidations)
	processors.AddReactor(inventory, processors.Reactor[Inventory, codecs.Event]{
		Table: InventoryTable, Input: productOrders, React: checkInventory,
	})
	processors.AddReactor(inventory, processors.Reactor[Inventory, StockLevel]{
		Table: InventoryTable, Input: WarehouseInventory, React: setStock,
	})

	byCustomer := opt(OrdersByCustomerGroup)
	customerOrders := processors.Repartition(byCustomer, Orders, func(_ string, ev codecs.Event) (string, error) {
		o, err := orderOf(ev)
		return o.CustomerID, err
	}, "orders")
	fraud := opt(FraudGroup)
	processors.AggregateWindows(fraud, processors.WindowedAggregation[codecs.Event, FraudSession]{
		Input:   customerOrders,
		Windows: processors.Sessions(fraudGap),
		Where:   func(_ string, ev codecs.Event) bool { return ev.Type == OrderCreatedType },
		Add: func(_ string, s FraudSession, ev codecs.Event) (FraudSession, error) {
			o, err := orderOf(ev)
			return AddToSession(s, o), err
		},
		Merge:   func(_ string, a, b FraudSession) (FraudSession, error) { return MergeSessions(a, b), nil },
		Results: FraudSessions,
	})
	fraudResults := opt(FraudResultsGroup)
	processors.Output(fraudResults, OrderValidations)
	processors.AddReactor(fraudResults, processors.Reactor[checked, processors.WindowResult[FraudSession]]{
		Table: processors.GroupTable[checked](FraudResultsGroup), Input: FraudSessions, React: fraudVerdict,
	})

	aggregator := opt(AggregatorGroup)
	processors.Output(aggregator, Orders)
	aggTable := processors.GroupTable[Pending](AggregatorGroup)
	processors.AddReactor(aggregator, processors.Reactor[Pending, codecs.Event]{
		Table: aggTable, Input: Orders, React: awaitChecks, OnTimer: validationTimedOut,
	})
	processors.AddReactor(aggregator, processors.Reactor[Pending, codecs.Event]{
		Table: aggTable, Input: OrderValidations, React: collectCheck,
	})

	enriched := opt(OrderCustomersGroup)
	processors.JoinForeign(enriched, OrdersTable, CustomersTable,
		func(_ string, o Order) (string, error) { return o.CustomerID, nil },
		func(_ string, o Order, c *Customer) (EnrichedOrder, error) {
			e := EnrichedOrder{Order: o}
			if c != nil {
				e.Customer = &OrderCustomer{Name: c.Name, State: c.State}
			}
			return e, nil
		}, processors.LeftJoin())

	paid := opt(OrderPaymentsGroup)
	processors.JoinStreams(paid, processors.StreamJoin[codecs.Event, codecs.Event, OrderPayment]{
		Left: Orders, Right: Payments, Within: PaymentWindow,
		LeftWhere:  func(_ string, ev codecs.Event) bool { return ev.Type == OrderValidatedType },
		RightWhere: func(_ string, ev codecs.Event) bool { return ev.Type == PaymentReceivedType },
		Join: func(_ string, o codecs.Event, p *codecs.Event) (OrderPayment, error) {
			order, err := orderOf(o)
			if err != nil {
				return OrderPayment{}, err
			}
			var pay PaymentReceived
			if err := p.DataAs(&pay); err != nil {
				return OrderPayment{}, err
			}
			return OrderPayment{Order: order, Payment: pay}, nil
		},
		Out: OrderPaymentsStream,
	})
	emailer := opt(EmailerGroup, processors.WithBootstrap())
	processors.Output(emailer, Emails)
	processors.Lookup(emailer, CustomersTable)
	processors.AddReactor(emailer, processors.Reactor[emailed, OrderPayment]{
		Table: processors.GroupTable[emailed](EmailerGroup), Input: OrderPaymentsStream, React: sendConfirmation,
	})
	return []*processors.Group{orders, details, byProduct, inventory, byCustomer, fraud, fraudResults, aggregator, enriched, paid, emailer}
}

// orderOf is the order an order event carries.
func orderOf(ev codecs.Event) (Order, error) {
	var o Order
	if err := ev.DataAs(&o); err != nil {
		return o, err
	}
	if o.ID == "" {
		o.ID = ev.Subject
	}
	return o, nil
}

// checked is a check's memory of an order: that it answered.
type checked struct {
	Result string `json:"result"`
}

func validation(rc *processors.ReactContext, orderID, check, result, reason string) error {
	_, err := rc.Emit(OrderValidations, orderID, OrderValidationType, Source,
		OrderValidation{OrderID: orderID, Check: check, Result: result, Reason: reason})
	return err
}

// checkDetails is the details check of each created order.
func checkDetails(rc *processors.ReactContext, c *checked, ev codecs.Event) (*checked, error) {
	if ev.Type != OrderCreatedType || c != nil {
		return c, nil
	}
	o, err := orderOf(ev)
	if err != nil {
		return nil, err
	}
	result, reason := CheckOrderDetails(o)
	return &checked{Result: result}, validation(rc, o.ID, CheckDetails, result, reason)
}

// checkInventory reserves stock for a created order (PASS) or fails it,
// and releases the reservation of an order that failed.
func checkInventory(rc *processors.ReactContext, inv *Inventory, ev codecs.Event) (*Inventory, error) {
	o, err := orderOf(ev)
	if err != nil {
		return nil, err
	}
	cur := Inventory{Product: rc.Key()}
	if inv != nil {
		cur = *inv
	}
	switch ev.Type {
	case OrderCreatedType:
		next, result, reason := Reserve(cur, o)
		return &next, validation(rc, o.ID, CheckInventory, result, reason)
	case OrderFailedType:
		next := Release(cur, o.ID)
		return &next, nil
	}
	return inv, nil
}

// setStock takes the warehouse's stock level of a product.
func setStock(rc *processors.ReactContext, inv *Inventory, s StockLevel) (*Inventory, error) {
	if s.Stock < 0 {
		return nil, fmt.Errorf("stock %d of %s is negative", s.Stock, rc.Key())
	}
	next := Inventory{Product: rc.Key()}
	if inv != nil {
		next = *inv
	}
	next.Stock = s.Stock
	return &next, nil
}

// fraudVerdict turns a customer's session update into the fraud check's
// result for the order that made it.
func fraudVerdict(rc *processors.ReactContext, c *checked, res processors.WindowResult[FraudSession]) (*checked, error) {
	if res.Removed || res.Final || res.Value.Last == "" {
		return c, nil
	}
	reason := ""
	if res.Value.Result == Fail {
		reason = fmt.Sprintf("customer's orders total %.2f within one session, at least %.0f", res.Value.Total, FraudLimit)
	}
	return &checked{Result: res.Value.Result}, validation(rc, res.Value.Last, CheckFraud, res.Value.Result, reason)
}

// awaitChecks starts waiting for a created order's results (ValidationWindow
// of stream time).
func awaitChecks(rc *processors.ReactContext, p *Pending, ev codecs.Event) (*Pending, error) {
	if ev.Type != OrderCreatedType {
		return p, nil
	}
	o, err := orderOf(ev)
	if err != nil {
		return nil, err
	}
	next := Pending{}
	if p != nil {
		next = *p
	}
	if next.Order != nil {
		return p, nil
	}
	next.Order = &o
	rc.SetStreamTimer("validation", ev.Time.Add(ValidationWindow))
	return decide(rc, next)
}

// collectCheck records one check's result and decides when it can.
func collectCheck(rc *processors.ReactContext, p *Pending, ev codecs.Event) (*Pending, error) {
	var v OrderValidation
	if err := ev.DataAs(&v); err != nil {
		return nil, err
	}
	next := Pending{}
	if p != nil {
		next = *p
	}
	if next.Decided != "" {
		return p, nil // decided once; later results do not flip it
	}
	if _, ok := next.Results[v.Check]; ok {
		return p, nil
	}
	next.Results = cloneSet(next.Results, v.Check, v.Result)
	next.Reasons = cloneSet(next.Reasons, v.Check, v.Reason)
	return decide(rc, next)
}

func cloneSet(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// decide sends the order's decision once its results allow one.
func decide(rc *processors.ReactContext, p Pending) (*Pending, error) {
	state, reason := p.Decide()
	if state == "" {
		return &p, nil
	}
	p.Decided = state
	rc.CancelTimer("validation")
	typ := OrderValidatedType
	if state == OrderFailed {
		typ = OrderFailedType
	}
	_, err := rc.Emit(Orders, p.Order.ID, typ, Source, decidedOrder(p, state, reason))
	return &p, err
}

// validationTimedOut fails an order whose checks did not all answer within
// ValidationWindow.
func validationTimedOut(rc *processors.ReactContext, p *Pending, _ processors.Timer) (*Pending, error) {
	if p == nil || p.Decided != "" || p.Order == nil {
		return p, nil
	}
	next := *p
	next.Decided = OrderFailed
	var missing []string
	for _, c := range Checks {
		if _, ok := p.Results[c]; !ok {
			missing = append(missing, c)
		}
	}
	_, err := rc.Emit(Orders, p.Order.ID, OrderFailedType, Source,
		decidedOrder(next, OrderFailed, fmt.Sprintf("no answer from %v within %s", missing, ValidationWindow)))
	return &next, err
}

// emailed is the e-mailer's memory of an order: the confirmation went out.
type emailed struct {
	Sent bool `json:"sent"`
}

// sendConfirmation sends one "order confirmed" e-mail per paid, validated
// order, to its customer; the EmailSent event is the e-mail's record (and
// its effect id the idempotency key a mail service would take).
func sendConfirmation(rc *processors.ReactContext, e *emailed, op OrderPayment) (*emailed, error) {
	if e != nil && e.Sent {
		return e, nil
	}
	c, err := processors.LookupFor(rc, CustomersTable, op.Order.CustomerID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, processors.MissingDependency("customer", op.Order.CustomerID)
	}
	if c.Email == "" {
		return nil, errors.New("customer has no e-mail address")
	}
	_, err = rc.Emit(Emails, rc.Key(), EmailSentType, Source, EmailSent{
		OrderID: rc.Key(), To: c.Email, Customer: c.Name, Amount: op.Payment.Amount,
		Subject: fmt.Sprintf("Order %s confirmed", rc.Key()), EffectID: rc.EffectID("confirmation"),
	})
	return &emailed{Sent: true}, err
}
