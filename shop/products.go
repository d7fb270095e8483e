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
	Version    int64       `json:"version"`
	UpdatedAt  time.Time   `json:"updatedAt"`
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
		next := Product{ID: ev.Subject, Name: d.Name, Price: d.Price, SKU: d.SKU, Validation: ProductPending}
		if p != nil {
			next.Version, next.Validation, next.Reasons = p.Version, p.Validation, p.Reasons
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
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEvent, ev.Type)
	}
}

func stampProduct(p Product, ev codecs.Event) *Product {
	p.Version++
	p.UpdatedAt = ev.Time
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now().UTC()
	}
	return &p
}
