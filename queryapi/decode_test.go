package queryapi_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/queryapi"
)

type command struct {
	Type string `json:"type"`
	Qty  int    `json:"qty"`
	Meta struct {
		Source string `json:"source"`
	} `json:"meta"`
}

func TestDecodeJSON(t *testing.T) {
	big := `{"type":"` + strings.Repeat("x", queryapi.MaxBodyBytes) + `"}`
	cases := []struct {
		name        string
		body        string
		contentType string
		status      int    // 0 = success
		detail      string // substring of the problem detail
	}{
		{name: "valid", body: `{"type":"AddItem","qty":2}`, contentType: "application/json"},
		{name: "valid without content type", body: `{"type":"AddItem"}`},
		{name: "valid with charset", body: `{"type":"AddItem"}`, contentType: "application/json; charset=utf-8"},
		{name: "valid +json type", body: `{"type":"AddItem"}`, contentType: "application/merge-patch+json"},
		{name: "trailing whitespace", body: "{\"type\":\"AddItem\"}\n \t\r\n"},
		{name: "malformed", body: `{"type": "AddItem",,}`, status: 400, detail: "body: invalid JSON at offset 20: invalid character ','"},
		{name: "truncated", body: `{"type": "Add`, status: 400, detail: "body: invalid JSON at offset"},
		{name: "unknown field", body: `{"type":"AddItem","foo":1}`, status: 400, detail: `body: unknown field "foo"`},
		{name: "unknown nested field", body: `{"meta":{"src":"x"}}`, status: 400, detail: `body: unknown field "src"`},
		{name: "wrong type", body: `{"qty":"two"}`, status: 400, detail: `body: field "qty" must be an integer, got JSON string`},
		{name: "wrong nested type", body: `{"meta":{"source":1}}`, status: 400, detail: `body: field "meta.source" must be a string, got JSON number`},
		{name: "not an object", body: `[1,2]`, status: 400, detail: "body: expected an object, got JSON array"},
		{name: "trailing garbage", body: `{"type":"AddItem"} xyz`, status: 400, detail: "body: unexpected data after the JSON document at offset 19"},
		{name: "two documents", body: `{"type":"a"}{"type":"b"}`, status: 400, detail: "body: unexpected data after the JSON document at offset 12"},
		{name: "empty", body: "", status: 400, detail: "body: empty"},
		{name: "only whitespace", body: "  \n", status: 400, detail: "body: empty"},
		{name: "too large", body: big, status: 413, detail: "body: larger than 1048576 bytes"},
		{name: "too large after document", body: `{"type":"a"}` + strings.Repeat(" ", queryapi.MaxBodyBytes), status: 413},
		{name: "wrong content type", body: `{"type":"AddItem"}`, contentType: "text/plain", status: 415, detail: `body: Content-Type must be application/json, got "text/plain"`},
		{name: "unparsable content type", body: `{}`, contentType: "application/json; =", status: 415},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest("POST", "/carts/1/commands", body)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			var cmd command

			err := queryapi.DecodeJSON(req, &cmd)

			if tc.status == 0 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if cmd.Type != "AddItem" {
					t.Fatalf("decoded %+v", cmd)
				}
				return
			}
			var p *queryapi.Problem
			if !errors.As(err, &p) {
				t.Fatalf("err = %v (%T), want a *Problem", err, err)
			}
			if p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("problem = %d %q, want %d containing %q", p.Status, p.Detail, tc.status, tc.detail)
			}
		})
	}
}

func TestDecodeJSON_GivenNonPointer_ThenPlainError(t *testing.T) {
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))

	err := queryapi.DecodeJSON(req, command{})

	var p *queryapi.Problem
	if err == nil || errors.As(err, &p) {
		t.Fatalf("err = %v, want a plain (500) error", err)
	}
}

func TestDecodeJSON_GivenTooLargeThroughAPI_Then413Problem(t *testing.T) {
	api := queryapi.New()
	api.Handle("POST", "/x", func(r *http.Request) (int, any, error) {
		var v map[string]any
		if err := queryapi.DecodeJSON(r, &v); err != nil {
			return 0, nil, err
		}
		return 0, v, nil
	})

	r := do(t, api, "POST", "/x", `{"a":"`+strings.Repeat("x", queryapi.MaxBodyBytes)+`"}`)

	r.wantProblem(t, http.StatusRequestEntityTooLarge)
}
