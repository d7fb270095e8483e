package shop

import (
	"log/slog"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// Group names.
const (
	CustomersGroup   = "customers"
	ProductsGroup    = "products"
	CartsGroup       = "carts"
	CartHistoryGroup = "cart-history"
	ValidatorGroup   = "product-validator"
	// CartCustomersGroup re-keys cart events by customer; CustomerCartsGroup
	// lists each customer's carts, parking carts of unregistered customers.
	CartCustomersGroup = "cart-customers"
	CustomerCartsGroup = "customer-carts"
)

// Option tunes the shop's topology.
type Option func(*options)

type options struct {
	policy   processors.Policy
	fraudGap time.Duration
}

// WithPolicy sets the failure policy of every group (retries, parking wait).
func WithPolicy(p processors.Policy) Option { return func(o *options) { o.policy = p } }

// WithFraudSessionGap sets the inactivity gap of the fraud check's sessions
// (default FraudSessionGap).
func WithFraudSessionGap(d time.Duration) Option { return func(o *options) { o.fraudGap = d } }

// Topology is the shop's topology with the given default partition count.
func Topology(partitions int, log *slog.Logger, opts ...Option) *streamfold.Topology {
	o := options{policy: processors.DefaultPolicy(), fraudGap: FraudSessionGap}
	for _, f := range opts {
		f(&o)
	}
	opt := func(name string, more ...processors.GroupOption) *processors.Group {
		return processors.NewGroup(name, append([]processors.GroupOption{processors.WithLogger(log), processors.WithPolicy(o.policy)}, more...)...)
	}

	customers := opt(CustomersGroup)
	processors.Project(customers, CustomerEvents, EvolveCustomer, processors.Into(CustomersTable))

	products := opt(ProductsGroup)
	processors.Project(products, ProductEvents, EvolveProduct, processors.Into(ProductsTable))
	processors.Project(products, ProductValidations, EvolveProduct, processors.Into(ProductsTable))

	validator := opt(ValidatorGroup, processors.WithBootstrap())
	processors.Output(validator, ProductValidations)
	processors.AddReactor(validator, processors.Reactor[ValidatorState, codecs.Event]{
		Table: ValidatorTable, Input: ProductEvents, React: validateProduct,
	})
	processors.AddReactor(validator, processors.Reactor[ValidatorState, SKUClaim]{
		Table: ValidatorTable, Input: ValidatorLoop, Loop: true, React: settleSKU, ID: claimID,
	})

	carts := opt(CartsGroup)
	processors.Lookup(carts, ProductsTable)
	processors.Lookup(carts, CartHistoryTable)
	processors.HandleCommands(carts, processors.Aggregate[Cart, CartCommandData]{
		Commands: CartCommands,
		Events:   CartEvents,
		Replies:  CartReplies,
		Table:    CartsTable,
		Decide:   decideCart,
		Evolve:   EvolveCart,
		Final:    func(c *Cart) bool { return c.Status == CartCheckedOut },
		Source:   Source,
	})

	history := opt(CartHistoryGroup)
	processors.History(history, CartEvents, processors.Into(CartHistoryTable))

	cartOwners := opt(CartCustomersGroup)
	processors.Output(cartOwners, CustomerCartEvents)
	processors.AddReactor(cartOwners, processors.Reactor[CartOwner, codecs.Event]{
		Table: CartOwnersTable, Input: CartEvents, React: rekeyCart,
	})
	customerCarts := opt(CustomerCartsGroup)
	processors.Project(customerCarts, CustomerEvents, EvolveCustomerCarts, processors.Into(CustomerCartsTable))
	processors.Project(customerCarts, CustomerCartEvents, EvolveCustomerCarts, processors.Into(CustomerCartsTable))

	flow := orderFlow(opt, o.fraudGap)

	return streamfold.NewTopology(streamfold.WithPartitions(partitions)).
		AddGroup(customers, products, validator, carts, history, cartOwners, customerCarts).
		AddGroup(flow...).
		WrittenBy(Orders, "http /orders").
		WrittenBy(WarehouseInventory, "http /inventory/{product}, any producer").
		WrittenBy(Payments, "the payments service, any producer").
		WrittenBy(OutboxDeadLetters, "the payments outbox's log-tailing relay").
		ReadBy(EnrichedOrdersTable, "query api").
		ReadBy(InventoryTable, "query api").
		ReadBy(Emails, "mail service").
		WrittenBy(CustomerEvents, "http /customers").
		WrittenBy(ProductEvents, "any producer").
		WrittenBy(CartCommands, "http /carts/{id}/commands").
		ReadBy(CartReplies, "http /carts/{id}/commands").
		ReadBy(CustomersTable, "query api").
		ReadBy(ProductsTable, "query api").
		ReadBy(CartsTable, "query api").
		ReadBy(CartHistoryTable, "query api").
		ReadBy(CustomerCartsTable, "query api")
}

// decideCart adapts DecideCart to the aggregate block: lookups come from the
// carts group's lookup tables.
func decideCart(dc *processors.DecideContext, cart *Cart, cmd CartCommand) ([]processors.NewEvent, error) {
	products := func(id string) (*Product, error) { return processors.LookupValue(dc, ProductsTable, id) }
	used := func(id string) (bool, error) {
		t, err := processors.LookupValue(dc, CartHistoryTable, id)
		return t != nil && len(t.Events) > 0, err
	}
	return DecideCart(cart, cmd, dc.Key(), products, used)
}
