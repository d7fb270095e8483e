package shop

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/codecs"
)

// Product event types.
const (
	ProductAddedType   = "ProductAdded"
	ProductUpdatedType = "ProductUpdated"
)

// Product validation statuses.
const (
	ProductPending   = "pending"
	ProductValidated = "validated"
	ProductRejected  = "rejected"
)

// Product is the products-table value.
type Product struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Price      json.Number `json:"price"`
	SKU        string      `json:"sku"`
	Validation string      `json:"validation"`
	Reasons    []string    `json:"reasons,omitempty"`
	// LastEventID is the last product event folded; ValidatedEventID the one
	// the current validation judged. They differ while a change awaits its verdict.
	LastEventID      string    `json:"lastEventId,omitempty"`
	ValidatedEventID string    `json:"validatedEventId,omitempty"`
	Version          int64     `json:"version"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// ProductAdded is the data of a ProductAdded event.
type ProductAdded struct {
	Name  string      `json:"name"`
	Price json.Number `json:"price"`
	SKU   string      `json:"sku"`
}

// ProductUpdated is the data of a ProductUpdated event; absent fields stay.
type ProductUpdated struct {
	Name  *string      `json:"name,omitempty"`
	Price *json.Number `json:"price,omitempty"`
	SKU   *string      `json:"sku,omitempty"`
}

// ErrUnknownProduct: an update for a product that does not exist.
var ErrUnknownProduct = errors.New("unknown product")

// EvolveProduct folds product events into the product.
func EvolveProduct(p *Product, ev codecs.Event) (*Product, error) {
	switch ev.Type {
	case ProductAddedType:
		var d ProductAdded
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := Product{ID: ev.Subject, Name: d.Name, Price: d.Price, SKU: d.SKU}
		if p != nil {
			next.Version, next.Validation, next.Reasons, next.ValidatedEventID = p.Version, p.Validation, p.Reasons, p.ValidatedEventID
		}
		return stampProduct(next, ev), nil
	case ProductUpdatedType:
		if p == nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownProduct, ev.Subject)
		}
		var d ProductUpdated
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := *p
		if d.Name != nil {
			next.Name = *d.Name
		}
		if d.Price != nil {
			next.Price = *d.Price
		}
		if d.SKU != nil {
			next.SKU = *d.SKU
		}
		return stampProduct(next, ev), nil
	case ProductValidatedType, ProductRejectedType:
		var d ProductValidation
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next := Product{ID: ev.Subject}
		if p != nil {
			next = *p
		}
		if next.LastEventID != "" && next.LastEventID != d.ProductEventID && next.ValidatedEventID == next.LastEventID {
			return &next, nil // a verdict on an older version of the product
		}
		next.ValidatedEventID, next.Reasons = d.ProductEventID, d.Reasons
		next.Validation = ProductValidated
		if ev.Type == ProductRejectedType {
			next.Validation = ProductRejected
		}
		if next.LastEventID != "" && next.LastEventID != d.ProductEventID {
			next.Validation = ProductPending // the verdict is on an older version
		}
		return &next, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEvent, ev.Type)
	}
}

func stampProduct(p Product, ev codecs.Event) *Product {
	p.LastEventID = ev.ID
	p.Validation = ProductPending
	if p.ValidatedEventID == ev.ID { // the verdict arrived before the event was folded
		p.Validation = ProductValidated
		if len(p.Reasons) > 0 {
			p.Validation = ProductRejected
		}
	}
	p.Version++
	p.UpdatedAt = ev.Time
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now().UTC()
	}
	return &p
}
