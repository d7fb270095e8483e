package queryapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/streamfold/streamfold/queryapi"
)

// fuzzBody is what a command body decodes into: strings, numbers, a nested
// object, a pointer and a list, like the shop's commands.
type fuzzBody struct {
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Quantity int               `json:"quantity,omitempty"`
	Price    float64           `json:"price,omitempty"`
	Expected *int64            `json:"expectedVersion,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Data     map[string]string `json:"data,omitempty"`
}

// FuzzDecodeJSON: any body and Content-Type either decode, and the value
// re-encodes and decodes to itself, or fail with a 400, 413 or 415 problem;
// never a panic, never a plain error.
func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"id":"c1","type":"AddItem","quantity":2,"data":{"productId":"apple"}}`, "application/json")
	f.Add(`{"id":"c1"} {"id":"c2"}`, "application/json")
	f.Add(`{"id":"c1","age":3}`, "")
	f.Add(`{"quantity":"two"}`, "application/merge-patch+json")
	f.Add(`{"name":`, "application/json; charset=utf-8")
	f.Add(`[]`, "text/plain")
	f.Add(`{"expectedVersion":-1,"tags":["a",null]}`, "application/json")
	f.Add(`{"price":1e400}`, "application/json")
	f.Add(``, "")
	f.Add("{\"id\":\"a\\u0000b\"}\n\n", "application/json")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		var v fuzzBody
		err := queryapi.DecodeJSON(req, &v)
		if err != nil {
			p, ok := errors.AsType[*queryapi.Problem](err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *Problem", err, err)
			}
			if p.Status != http.StatusBadRequest && p.Status != http.StatusRequestEntityTooLarge && p.Status != http.StatusUnsupportedMediaType {
				t.Fatalf("status %d for %q: %v", p.Status, body, err)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		var again fuzzBody
		if err := queryapi.DecodeJSON(httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(string(b))), &again); err != nil {
			t.Fatalf("re-encoded body %s does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed the value: %+v -> %s -> %+v", v, b, again)
		}
	})
}

// FuzzID: ValidateID accepts exactly the printable ids of at most MaxIDBytes,
// and the API answers any path segment either through the handler (a valid
// id, unescaped) or with a 400 problem, never a 5xx.
func FuzzID(f *testing.F) {
	for _, s := range []string{"c1", "a/b", "ünï-🛒", "a b", "", "a\x00b", "a\r\nb", "\a", "\x7f", "\xc2\x85", "\u2028", "\xff", strings.Repeat("a", 256), strings.Repeat("é", 129)} {
		f.Add(s)
	}
	api := queryapi.New()
	var got string
	api.Handle(http.MethodGet, "/carts/{id}", func(r *http.Request) (int, any, error) {
		got = queryapi.Vars(r)["id"]
		return http.StatusOK, map[string]string{"id": got}, nil
	})
	f.Fuzz(func(t *testing.T, id string) {
		err := queryapi.ValidateID("id", id)
		valid := id != "" && id != "." && id != ".." && len(id) <= queryapi.MaxIDBytes && utf8.ValidString(id) &&
			!strings.ContainsFunc(id, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Zl, unicode.Zp) })
		if (err == nil) != valid {
			t.Fatalf("ValidateID(%q) = %v, want valid=%v", id, err, valid)
		}
		if err != nil {
			if p, ok := errors.AsType[*queryapi.Problem](err); !ok || p.Status != http.StatusBadRequest {
				t.Fatalf("ValidateID(%q) = %v, want a 400 problem", id, err)
			}
		}
		if id == "" {
			return // no route has an empty segment
		}
		got = ""
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/carts/"+url.PathEscape(id), nil))
		switch {
		case valid && (rec.Code != http.StatusOK || got != id):
			t.Fatalf("valid id %q: status %d, handler got %q", id, rec.Code, got)
		case !valid && rec.Code != http.StatusBadRequest:
			t.Fatalf("invalid id %q: status %d, want 400", id, rec.Code)
		case !valid && got != "":
			t.Fatalf("invalid id %q reached the handler", id)
		}
	})
}

// FuzzCursor: a cursor the API did not hand out is a 400 and never reaches
// the Lister; one it did pages on.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"", "1", "1.", ".", "1.AAAAAAAAAAAAAAAAAAAAAA", "Y3VzdG9tZXItOTk5", "%zz", "1.!!"} {
		f.Add(s)
	}
	api, l := customersAPI()
	var first queryapi.Page
	do(f, api, "GET", "/customers?limit=1", "").wantJSON(f, http.StatusOK, &first)
	f.Add(first.Next)
	f.Fuzz(func(t *testing.T, cursor string) {
		before := len(l.queries)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/customers?limit=1&cursor="+url.QueryEscape(cursor), nil))
		switch {
		case cursor == "" || cursor == first.Next:
			if rec.Code != http.StatusOK {
				t.Fatalf("handed-out cursor %q: status %d", cursor, rec.Code)
			}
		case rec.Code != http.StatusBadRequest:
			t.Fatalf("cursor %q: status %d, want 400", cursor, rec.Code)
		case len(l.queries) != before:
			t.Fatalf("cursor %q reached the lister", cursor)
		}
	})
}
