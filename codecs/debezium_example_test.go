package codecs_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/streamfold/streamfold/codecs"
)

// A Debezium change event — here one of PostgreSQL, as the JSON converter
// writes it without schemas — decodes into a typed Change, and into the
// CloudEvent a fold reads: its id is the change's place in the database's
// log, so a change Debezium sends again has the same id. The tombstone after
// a delete is no change: it says the key is gone.
func ExampleDecodeChange() {
	type Customer struct {
		ID        int    `json:"id"`
		FirstName string `json:"first_name"`
	}
	value := []byte(`{"before":null,"after":{"id":1005,"first_name":"Bob"},
		"source":{"version":"2.1.4.Final","connector":"postgresql","name":"dbserver1","ts_ms":1733906311010,
		"snapshot":"false","db":"postgres","schema":"inventory","table":"customers","txId":767,"lsn":34466480},
		"op":"c","ts_ms":1733906311190}`)

	c, err := codecs.DecodeChange[Customer](value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Op, c.After.FirstName, c.Source.Schema+"."+c.Source.Table, c.Source.LSN)

	key, _ := codecs.KeyString([]byte(`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"dbserver1.inventory.customers.Key"},"payload":{"id":1005}}`))
	fmt.Println("key", key)

	e, err := codecs.DebeziumEvents{TypePrefix: "customers"}.Decode(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Type, e.Time.Format("2006-01-02T15:04:05.000Z07:00"), string(e.Data))
	fmt.Println(e.ID[:strings.Index(e.ID, ";rows:")])

	_, err = codecs.DecodeChange[Customer](nil)
	fmt.Println(errors.Is(err, codecs.ErrTombstone))
	// Output:
	// c Bob inventory.customers 34466480
	// key 1005
	// customers.created 2024-12-11T08:38:31.010Z {"id":1005,"first_name":"Bob"}
	// name:dbserver1;db:postgres;schema:inventory;table:customers;lsn:34466480;op:c
	// true
}

// A record routed by Debezium's outbox event router: the value is the outbox
// row's payload, the id and the type travel in headers, the key is the
// aggregate id.
func ExampleDebeziumOutbox() {
	headers := []codecs.Header{
		{Key: "id", Value: []byte("4d47e190-0402-4048-bc2c-89dd54343cdc")},
		{Key: "eventType", Value: []byte("OrderCreated")},
	}
	value := []byte(`"{\"id\": 1, \"customerId\": 123}"`) // a text payload column, as the JSON converter writes it
	e, err := codecs.DebeziumOutbox{}.DecodeOutbox([]byte("1"), value, headers)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.ID, e.Type, e.Subject, string(e.Data))
	// Output:
	// 4d47e190-0402-4048-bc2c-89dd54343cdc OrderCreated 1 {"id": 1, "customerId": 123}
}
