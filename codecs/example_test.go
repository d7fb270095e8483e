package codecs_test

import (
	"encoding/json"
	"fmt"

	"github.com/streamfold/streamfold/codecs"
)

type CustomerRegistered struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// A record written by a producer in binary mode (attributes in ce_* headers)
// decodes into the same Event as one written in structured mode, and the
// registry turns its data into the Go type registered for its event type.
// An upcaster migrates events of a retired schema on the way.
func ExampleDecodeEvent() {
	reg := codecs.NewRegistry()
	codecs.Register[CustomerRegistered](reg, "CustomerRegistered.v2")
	// v1 had a single "fullName" field.
	reg.Upcast("CustomerRegistered", func(e codecs.Event) (codecs.Event, error) {
		var v1 struct {
			FullName string `json:"fullName"`
		}
		if err := e.DataAs(&v1); err != nil {
			return e, err
		}
		data, err := json.Marshal(CustomerRegistered{Name: v1.FullName})
		e.Type, e.Data = "CustomerRegistered.v2", data
		return e, err
	})

	headers := []codecs.Header{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("0b7ee3c6-4ad6-4b1f-9d1c-2f1a8c4f0e11")},
		{Key: "ce_source", Value: []byte("/crm")},
		{Key: "ce_type", Value: []byte("CustomerRegistered")},
		{Key: "ce_subject", Value: []byte("customer-42")},
		{Key: "content-type", Value: []byte("application/json")},
	}
	e, err := codecs.DecodeEvent([]byte(`{"fullName":"Ada Lovelace"}`), headers)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Type, e.Subject)

	v, err := reg.Decode(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := v.(CustomerRegistered)
	fmt.Printf("%T %q\n", c, c.Name)

	_, err = codecs.DecodeEvent([]byte(`{"fullName":"Ada Lovelace"}`), headers[1:])
	fmt.Println(err)
	// Output:
	// CustomerRegistered customer-42
	// codecs_test.CustomerRegistered "Ada Lovelace"
	// codecs: decode cloudevents: not a cloudevent: JSON object without specversion and no ce_specversion header
}
