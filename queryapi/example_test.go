package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/streamfold/streamfold/queryapi"
)

// mapReader is a Reader over a map, standing in for a view.
type mapReader map[string]string

func (m mapReader) Get(_ context.Context, key string) (json.RawMessage, error) {
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
