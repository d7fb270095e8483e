package shop

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestProductRules_GivenFields_ThenTheReasonsTheyBreak(t *testing.T) {
	const (
		badName  = "name is required"
		badPrice = "price must be greater than 0 with at most two decimals"
		badSKU   = "sku must look like AAA-0000"
	)
	for _, tc := range []struct {
		name, price, sku string
		want             []string
	}{
		{"Tea", "1.50", "TEA-0001", nil},
		{"Tea", "10", "TEA-0001", nil},
		{"Tea", "0.01", "TEA-0001", nil},
		{"Tea", "1.5", "TEA-0001", nil},
		{"", "1.50", "TEA-0001", []string{badName}},
		{"  \t", "1.50", "TEA-0001", []string{badName}},
		{"Tea", "0", "TEA-0001", []string{badPrice}},
		{"Tea", "0.00", "TEA-0001", []string{badPrice}},
		{"Tea", "-1", "TEA-0001", []string{badPrice}},
		{"Tea", "1.234", "TEA-0001", []string{badPrice}},
		{"Tea", "1.", "TEA-0001", []string{badPrice}},
		{"Tea", "abc", "TEA-0001", []string{badPrice}},
		{"Tea", "", "TEA-0001", []string{badPrice}},
		{"Tea", "1.50", "tea-0001", []string{badSKU}},
		{"Tea", "1.50", "TEA0001", []string{badSKU}},
		{"Tea", "1.50", "TEAS-0001", []string{badSKU}},
		{"Tea", "1.50", "TEA-00011", []string{badSKU}},
		{"Tea", "1.50", "", []string{badSKU}},
		{"", "0", "x", []string{badName, badPrice, badSKU}},
	} {
		got := ProductRules(tc.name, tc.price, tc.sku)
		if assert.Len(t, got, len(tc.want), "%q %q %q: %v", tc.name, tc.price, tc.sku, got) {
			for i, w := range tc.want {
				assert.Contains(t, got[i], w, "%q %q %q", tc.name, tc.price, tc.sku)
			}
		}
	}
	assert.Equal(t, []string{`price must be greater than 0 with at most two decimals, got "1.234"`, `sku must look like AAA-0000, got "x"`},
		ProductRules("Tea", "1.234", "x"), "the reasons quote what was given")
}

func TestClaimID_GivenClaims_ThenTheSameProductEventsClaimIsRecognised(t *testing.T) {
	claim := SKUClaim{Op: "claim", ProductID: "p1", ProductEventID: "e1"}
	assert.Equal(t, claimID(claim), claimID(SKUClaim{Op: "claim", ProductID: "p1", ProductEventID: "e1", Reasons: []string{"x"}}))
	assert.NotEqual(t, claimID(claim), claimID(SKUClaim{Op: "release", ProductID: "p1", ProductEventID: "e1"}), "a release of the same event is another input")
	assert.NotEqual(t, claimID(claim), claimID(SKUClaim{Op: "claim", ProductID: "p1", ProductEventID: "e2"}))
}
