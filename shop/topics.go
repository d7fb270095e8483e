package shop

import (
	"encoding/json"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

// Every topic of the shop, declared once. Nothing else repeats a topic name or
// picks a codec.
var (
	// CustomerEvents is the customers' source of truth.
	CustomerEvents = tables.NewStream[codecs.Event]("customer-events", codecs.CloudEvents{})
	// CustomersTable is the customers group's snapshot table.
	CustomersTable = tables.NewTable[Customer]("customers-table", codecs.JSON[Customer]{}, CustomerStateIndex)
)

// CustomerStateIndex indexes customers by state (active, deleted).
var CustomerStateIndex = tables.Index{
	Name: "state",
	Terms: func(_ string, value []byte) []string {
		var c struct {
			State string `json:"state"`
		}
		if json.Unmarshal(value, &c) != nil || c.State == "" {
			return nil
		}
		return []string{c.State}
	},
}
