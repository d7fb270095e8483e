package shop

import (
	"log/slog"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
)

// Group names.
const CustomersGroup = "customers"

// Topology is the shop's topology with the given default partition count.
func Topology(partitions int, log *slog.Logger) *streamfold.Topology {
	customers := processors.NewGroup(CustomersGroup, processors.WithLogger(log))
	processors.Project(customers, CustomersTable, CustomerEvents, EvolveCustomer)

	return streamfold.NewTopology(streamfold.WithPartitions(partitions)).
		AddGroup(customers).
		WrittenBy(CustomerEvents, "http /customers").
		ReadBy(CustomersTable, "query api")
}
