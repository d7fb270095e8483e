package shop

import (
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// Every topic of the shop, declared once. Nothing else repeats a topic name or
// picks a codec; a group's table takes its name from the group's
// (processors.GroupTable).
var (
	// CustomerEvents is the customers' source of truth.
	CustomerEvents = tables.NewStream[codecs.Event]("customer-events", codecs.CloudEvents{})
	// CustomersTable is the customers group's snapshot table.
	CustomersTable = processors.GroupTable[Customer](CustomersGroup, CustomerStateIndex)
)

// CustomerStateIndex indexes customers by state (active, deleted).
var CustomerStateIndex = tables.IndexOf("state", codecs.JSON[Customer]{}, func(_ string, c Customer) []string {
	if c.State == "" {
		return nil
	}
	return []string{c.State}
})

// Products and carts.
var (
	// ProductEvents is the products' source of truth (any producer writes it).
	ProductEvents = tables.NewStream[codecs.Event]("product-events", codecs.CloudEvents{})
	// ProductsTable is the products group's table; carts look products up in it.
	ProductsTable = processors.GroupTable[Product](ProductsGroup)

	// CartCommands carries {commandId, type, expectedVersion?, data}, keyed by cart id.
	CartCommands = tables.NewStream[CartCommand]("cart-commands", codecs.JSON[CartCommand]{})
	// CartEvents is written by the carts group alone (the single writer).
	CartEvents = tables.NewStream[codecs.Event]("cart-events", codecs.CloudEvents{})
	// CartReplies answers each command, keyed by command id.
	CartReplies = tables.NewStream[processors.Reply]("cart-replies", codecs.JSON[processors.Reply]{})
	// CartsTable holds open carts' snapshots; a checked-out cart is tombstoned.
	CartsTable = processors.GroupTable[Cart](CartsGroup, CartProductIndex)
	// CartHistoryTable holds each cart's events in order, also after checkout.
	CartHistoryTable = processors.GroupTable[processors.Timeline](CartHistoryGroup)
)

// CartProductIndex indexes carts by the products they hold.
var CartProductIndex = tables.IndexOf("product", codecs.JSON[Cart]{}, cartProductIndexTerms)

// Product validation.
var (
	// ProductValidations carries ProductValidated / ProductRejected, keyed by
	// product id; the product-validator group is its single writer.
	ProductValidations = tables.NewStream[codecs.Event]("product-validations", codecs.CloudEvents{})
	// ValidatorTable is the product-validator's state (products and SKU owners).
	ValidatorTable = processors.GroupTable[ValidatorState](ValidatorGroup)
	// ValidatorLoop carries SKU claims from a product's key to its SKU's key.
	ValidatorLoop = tables.NewStream[SKUClaim]("product-validator-loop", codecs.JSON[SKUClaim]{})
)

// Customers' carts.
var (
	// CustomerCartEvents re-keys cart events by customer id.
	CustomerCartEvents = tables.NewStream[codecs.Event]("customer-cart-events", codecs.CloudEvents{})
	// CartOwnersTable remembers, per cart, its customer.
	CartOwnersTable = processors.GroupTable[CartOwner](CartCustomersGroup)
	// CustomerCartsTable lists each customer's carts.
	CustomerCartsTable = processors.GroupTable[CustomerCarts](CustomerCartsGroup)
)
