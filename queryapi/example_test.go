package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/streamfold/streamfold/queryapi"
)

// mapReader is a Reader over a map, standing in for a view.
type mapReader map[string]string

func (m mapReader) GetJSON(_ context.Context, key string) (json.RawMessage, error) {
	doc, ok := m[key]
	if !ok {
		return nil, queryapi.NotFound(fmt.Sprintf("customer %q not found", key))
	}
	return json.RawMessage(doc), nil
}

func ExampleAPI_Resource() {
	api := queryapi.New()
	api.Resource("customers", mapReader{"c1": `{"id":"c1","name":"Ada"}`}, nil)

	for _, target := range []string{"/customers/c1", "/customers/c2"} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
		fmt.Println(rec.Body.String())
	}
	// Output:
	// 200 application/json
	// {"id":"c1","name":"Ada"}
	// 404 application/problem+json
	// {"type":"about:blank","title":"Not Found","status":404,"detail":"customer \"c2\" not found","instance":"/customers/c2"}
}

func ExampleWithGuard() {
	// Operator routes need a bearer token; everything else is open.
	api := queryapi.New(queryapi.WithGuard(func(r *http.Request, route string) error {
		if strings.HasPrefix(route, "/admin/") {
			return queryapi.RequireBearer(r, "admin", "s3cret")
		}
		return nil
	}))
	api.Handle(http.MethodGet, "/admin/{group}", func(*http.Request) (int, any, error) {
		return http.StatusOK, map[string]string{"ok": "yes"}, nil
	})

	for _, auth := range []string{"", "Bearer s3cret"} {
		req := httptest.NewRequest(http.MethodGet, "/admin/customers", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Output:
	// 401 Bearer realm="admin"
	// 200
}
