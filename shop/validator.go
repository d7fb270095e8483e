package shop

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
)

// Validation event types, written to product-validations by the
// product-validator group alone.
const (
	ProductValidatedType = "ProductValidated"
	ProductRejectedType  = "ProductRejected"
)

// ProductValidation is the data of ProductValidated and ProductRejected: which
// product event was judged, and why it was rejected.
type ProductValidation struct {
	ProductEventID string   `json:"productEventId"`
	Reasons        []string `json:"reasons,omitempty"`
}

// ValidatorState is the product-validator's table value. It holds two kinds of
// keys: a product id (the product as last seen) and "sku:<SKU>" (which product
// owns the SKU) — the second reached through the group's loopback, because two
// products with one SKU live on different partitions.
type ValidatorState struct {
	Name  string `json:"name,omitempty"`
	Price string `json:"price,omitempty"`
	SKU   string `json:"sku,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// SKUClaim is what a product sends, through the loopback, to its SKU's key.
type SKUClaim struct {
	Op             string   `json:"op"` // claim or release
	ProductID      string   `json:"productId"`
	ProductEventID string   `json:"productEventId"`
	Reasons        []string `json:"reasons,omitempty"`
}

var (
	skuPattern   = regexp.MustCompile(`^[A-Z]{3}-[0-9]{4}$`)
	pricePattern = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,2})?$`)
)

// ProductRules checks a product's own fields (everything but SKU uniqueness).
func ProductRules(name, price, sku string) []string {
	var reasons []string
	if strings.TrimSpace(name) == "" {
		reasons = append(reasons, "name is required")
	}
	if !pricePattern.MatchString(price) || strings.Trim(strings.ReplaceAll(price, ".", ""), "0") == "" {
		reasons = append(reasons, fmt.Sprintf("price must be greater than 0 with at most two decimals, got %q", price))
	}
	if !skuPattern.MatchString(sku) {
		reasons = append(reasons, fmt.Sprintf("sku must look like AAA-0000, got %q", sku))
	}
	return reasons
}

func skuKey(sku string) string { return "sku:" + sku }

// validateProduct handles product-events: it checks the product's own rules
// and sends a claim to the SKU's key (or rejects at once when the SKU itself
// is malformed).
func validateProduct(rc *processors.ReactContext, st *ValidatorState, ev codecs.Event) (*ValidatorState, error) {
	next := ValidatorState{}
	if st != nil {
		next = *st
	}
	prevSKU := next.SKU
	switch ev.Type {
	case ProductAddedType:
		var d ProductAdded
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		next.Name, next.Price, next.SKU = d.Name, d.Price.String(), d.SKU
	case ProductUpdatedType:
		var d ProductUpdated
		if err := ev.DataAs(&d); err != nil {
			return nil, err
		}
		if d.Name != nil {
			next.Name = *d.Name
		}
		if d.Price != nil {
			next.Price = d.Price.String()
		}
		if d.SKU != nil {
			next.SKU = *d.SKU
		}
	default:
		return st, nil // not ours to judge
	}
	id := rc.Key()
	reasons := ProductRules(next.Name, next.Price, next.SKU)
	if prevSKU != "" && prevSKU != next.SKU && skuPattern.MatchString(prevSKU) {
		if err := processors.Loopback(rc, ValidatorLoop, skuKey(prevSKU), SKUClaim{Op: "release", ProductID: id, ProductEventID: ev.ID}); err != nil {
			return nil, err
		}
	}
	if !skuPattern.MatchString(next.SKU) {
		_, err := rc.Emit(ProductValidations, id, ProductRejectedType, Source, ProductValidation{ProductEventID: ev.ID, Reasons: reasons})
		return &next, err
	}
	err := processors.Loopback(rc, ValidatorLoop, skuKey(next.SKU), SKUClaim{Op: "claim", ProductID: id, ProductEventID: ev.ID, Reasons: reasons})
	return &next, err
}

// settleSKU handles claims at a SKU's key: the first valid product to claim a
// SKU keeps it; the verdict goes to product-validations under the product's id.
func settleSKU(rc *processors.ReactContext, st *ValidatorState, c SKUClaim) (*ValidatorState, error) {
	owner := ""
	if st != nil {
		owner = st.Owner
	}
	sku := strings.TrimPrefix(rc.Key(), "sku:")
	if c.Op == "release" {
		if owner == c.ProductID {
			owner = ""
		}
		return &ValidatorState{Owner: owner}, nil
	}
	reasons := c.Reasons
	if owner != "" && owner != c.ProductID {
		reasons = append(reasons, fmt.Sprintf("sku %s already belongs to product %s", sku, owner))
	}
	if len(reasons) > 0 {
		_, err := rc.Emit(ProductValidations, c.ProductID, ProductRejectedType, Source, ProductValidation{ProductEventID: c.ProductEventID, Reasons: reasons})
		return &ValidatorState{Owner: owner}, err
	}
	_, err := rc.Emit(ProductValidations, c.ProductID, ProductValidatedType, Source, ProductValidation{ProductEventID: c.ProductEventID})
	return &ValidatorState{Owner: c.ProductID}, err
}

// claimID names a claim for deduplication: the same product event's claim
// (re-sent after a crash) is recognised at the SKU's key.
func claimID(c SKUClaim) string { return c.Op + "/" + c.ProductEventID }
