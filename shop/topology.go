package shop

import (
	"log/slog"

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
)

// Topology is the shop's topology with the given default partition count.
func Topology(partitions int, log *slog.Logger) *streamfold.Topology {
	opt := processors.WithLogger(log)

	customers := processors.NewGroup(CustomersGroup, opt)
	processors.Project(customers, CustomersTable, CustomerEvents, EvolveCustomer)

	products := processors.NewGroup(ProductsGroup, opt)
	processors.Project(products, ProductsTable, ProductEvents, EvolveProduct)
	processors.Project(products, ProductsTable, ProductValidations, EvolveProduct)

	validator := processors.NewGroup(ValidatorGroup, opt, processors.WithBootstrap())
	processors.Output(validator, ProductValidations)
	processors.AddReactor(validator, processors.Reactor[ValidatorState, codecs.Event]{
		Table: ValidatorTable, Input: ProductEvents, React: validateProduct,
	})
	processors.AddReactor(validator, processors.Reactor[ValidatorState, SKUClaim]{
		Table: ValidatorTable, Input: ValidatorLoop, Loop: true, React: settleSKU, ID: claimID,
	})

	carts := processors.NewGroup(CartsGroup, opt)
	processors.Lookup(carts, ProductsTable)
	processors.Lookup(carts, CartHistoryTable)
	cartsRelay := processors.HandleCommands(carts, processors.Aggregate[Cart, CartCommandData]{
		Commands: CartCommands,
		Events:   CartEvents,
		Replies:  CartReplies,
		Table:    CartsTable,
		Decide:   decideCart,
		Evolve:   EvolveCart,
		Final:    func(c *Cart) bool { return c.Status == CartCheckedOut },
		Source:   Source,
	})

	history := processors.NewGroup(CartHistoryGroup, opt)
	processors.History(history, CartHistoryTable, CartEvents)

	return streamfold.NewTopology(streamfold.WithPartitions(partitions)).
		AddGroup(customers, products, validator, carts, cartsRelay, history).
		WrittenBy(CustomerEvents, "http /customers").
		WrittenBy(ProductEvents, "any producer").
		WrittenBy(CartCommands, "http /carts/{id}/commands").
		ReadBy(CartReplies, "http /carts/{id}/commands").
		ReadBy(CustomersTable, "query api").
		ReadBy(ProductsTable, "query api").
		ReadBy(CartsTable, "query api").
		ReadBy(CartHistoryTable, "query api")
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
