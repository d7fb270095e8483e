// Package shop is the reference event-sourced application built on streamfold:
// customers, products, carts and orders. Its topics are declared once, as typed
// handles, in topics.go; its folds and deciders are pure functions tested
// without Kafka; Topology assembles them into a streamfold topology.
//
// Customers: customer-events carries CloudEvents (CustomerRegistered,
// CustomerUpdated, CustomerDeleted, CustomerErased, or a Kafka tombstone); the
// customers group folds them into customers-table, with a secondary index on
// the customer's state so "all deleted customers" needs no scan.
package shop
