package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/streamfold/streamfold/shop"
)

func TestRouting_GivenRequests_ThenKeyRoutesNameTheirTableAndKey(t *testing.T) {
	for _, c := range []struct {
		method, path string
		table, key   string // table "" means not routed
	}{
		{http.MethodGet, "/customers/ada", shop.CustomersTable.Name, "ada"},
		{http.MethodGet, "/customers/a%2Fb", shop.CustomersTable.Name, "a/b"},
		{http.MethodPatch, "/customers/ada", shop.CustomersTable.Name, "ada"},
		{http.MethodDelete, "/customers/ada", shop.CustomersTable.Name, "ada"},
		{http.MethodPost, "/customers", shop.CustomersTable.Name, ""}, // the key is in the body
		{http.MethodGet, "/customers/ada/carts", shop.CustomerCartsTable.Name, "ada"},
		{http.MethodGet, "/products/apple", shop.ProductsTable.Name, "apple"},
		{http.MethodGet, "/carts/c1", shop.CartsTable.Name, "c1"},
		{http.MethodGet, "/carts/c1/events", shop.CartHistoryTable.Name, "c1"},
		{http.MethodPost, "/carts/c1/commands", "", ""},
		{http.MethodGet, "/customers", "", ""},
		{http.MethodGet, "/carts", "", ""},
		{http.MethodGet, "/carts/c1/nope", "", ""},
		{http.MethodGet, "/customers//carts", "", ""},
		{http.MethodGet, "/readyz", "", ""},
		{http.MethodGet, "/", "", ""},
		{http.MethodPost, "/customers/ada", "", ""},
	} {
		kr, key, ok := matchKeyRoute(httptest.NewRequest(c.method, c.path, nil))
		if c.table == "" {
			assert.False(t, ok, "%s %s is routed to %s", c.method, c.path, kr.table)
			continue
		}
		if assert.True(t, ok, "%s %s is not routed", c.method, c.path) {
			assert.Equal(t, c.table, kr.table, "%s %s", c.method, c.path)
			assert.Equal(t, c.key, key, "%s %s", c.method, c.path)
		}
	}
}
