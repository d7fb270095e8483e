package queryapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/queryapi"
)

func TestIDs_GivenControlCharactersOrOverlongIDInPath_Then400AndHandlerNotCalled(t *testing.T) {
	for name, seg := range map[string]string{
		"NUL":       "c%00x",
		"CR":        "c%0Dx",
		"LF":        "c%0Ax",
		"BEL":       "c%07",
		"DEL":       "c%7F",
		"C1":        "c%C2%85",
		"U+2028":    "c%E2%80%A8",
		"bad UTF-8": "c%FFx",
		"257 bytes": strings.Repeat("a", queryapi.MaxIDBytes+1),
	} {
		t.Run(name, func(t *testing.T) {
			api := queryapi.New()
			called := false
			api.Handle(http.MethodPost, "/carts/{id}/commands", func(*http.Request) (int, any, error) {
				called = true
				return http.StatusAccepted, nil, nil
			})

			p := do(t, api, "POST", "/carts/"+seg+"/commands", `{}`).wantProblem(t, http.StatusBadRequest)

			wantContains(t, "detail", p.Detail, "path segment {id}")
			if called {
				t.Fatal("handler called with an invalid id")
			}
		})
	}
}

func TestIDs_GivenPrintableIDs_ThenAccepted(t *testing.T) {
	for _, id := range []string{"c1", "a b", "ünïcödé-🛒", "a/b", strings.Repeat("a", queryapi.MaxIDBytes)} {
		if err := queryapi.ValidateID("id", id); err != nil {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "a\x00", "a\r\nLocation: x", "\a", "\xff"} {
		err := queryapi.ValidateID("body: field \"id\"", id)
		p, ok := err.(*queryapi.Problem)
		if !ok || p.Status != http.StatusBadRequest {
			t.Errorf("ValidateID(%q) = %v, want a 400 problem", id, err)
		}
	}
}

func TestList_GivenForgedOrGarbledCursor_Then400AndListerNotCalled(t *testing.T) {
	api, _ := customersAPI()
	var p1 queryapi.Page
	do(t, api, "GET", "/customers?limit=1", "").wantJSON(t, http.StatusOK, &p1)
	other, _ := customersAPI() // another process: another key

	for name, c := range map[string]string{
		"random base64":     "Y3VzdG9tZXItOTk5",
		"lister's own form": "1",
		"tampered":          "2" + p1.Next[1:],
		"truncated":         p1.Next[:len(p1.Next)-2],
		"garbled mac":       p1.Next + "!",
		"empty mac":         "1.",
	} {
		t.Run(name, func(t *testing.T) {
			api, l := customersAPI()
			if name == "tampered" {
				api = other
				l = nil
			}
			p := do(t, api, "GET", "/customers?limit=1&cursor="+c, "").wantProblem(t, http.StatusBadRequest)
			wantContains(t, "detail", p.Detail, "cursor")
			if l != nil && len(l.queries) != 0 {
				t.Fatalf("lister called with %+v", l.queries)
			}
		})
	}
	t.Run("another process's cursor", func(t *testing.T) {
		do(t, other, "GET", "/customers?limit=1&cursor="+p1.Next, "").wantProblem(t, http.StatusBadRequest)
	})
	t.Run("shared key", func(t *testing.T) {
		key := []byte("0123456789abcdef0123456789abcdef")
		a, _ := customersAPI(queryapi.WithCursorKey(key))
		b, l := customersAPI(queryapi.WithCursorKey(key))
		var p queryapi.Page
		do(t, a, "GET", "/customers?limit=1", "").wantJSON(t, http.StatusOK, &p)
		do(t, b, "GET", "/customers?limit=1&cursor="+p.Next, "").wantJSON(t, http.StatusOK, nil)
		if q := l.lastQuery(t); q.Cursor != "1" {
			t.Fatalf("lister got cursor %q, want its own %q", q.Cursor, "1")
		}
	})
}

func TestGuard_GivenBearerGuard_ThenMissingOrWrongTokenIs401WithChallenge(t *testing.T) {
	api := queryapi.New(queryapi.WithGuard(func(r *http.Request, route string) error {
		if strings.HasPrefix(route, "/admin") {
			return queryapi.RequireBearer(r, "shop-admin", "s3cret")
		}
		return nil
	}))
	api.Handle(http.MethodGet, "/admin/{group}", func(*http.Request) (int, any, error) { return http.StatusOK, "ok", nil })
	api.Handle(http.MethodGet, "/open", func(*http.Request) (int, any, error) { return http.StatusOK, "ok", nil })

	for name, auth := range map[string]string{"missing": "", "wrong": "Bearer nope", "prefix": "Bearer s3cre", "basic": "Basic s3cret", "bare": "s3cret"} {
		t.Run(name, func(t *testing.T) {
			var hdr []string
			if auth != "" {
				hdr = []string{"Authorization", auth}
			}
			r := do(t, api, "GET", "/admin/customers", "", hdr...)
			r.wantProblem(t, http.StatusUnauthorized)
			wantContains(t, "WWW-Authenticate", r.header.Get("WWW-Authenticate"), `Bearer realm="shop-admin"`)
		})
	}
	do(t, api, "GET", "/admin/customers", "", "Authorization", "Bearer s3cret").wantJSON(t, http.StatusOK, nil)
	do(t, api, "GET", "/open", "").wantJSON(t, http.StatusOK, nil)
}

func TestGuard_GivenEscapedVariables_ThenGuardAndHandlerSeeThemUnescapedOnce(t *testing.T) {
	var guarded, handled string
	api := queryapi.New(queryapi.WithGuard(func(r *http.Request, route string) error {
		guarded = queryapi.Vars(r)["group"]
		return nil
	}))
	api.Handle(http.MethodGet, "/admin/{group}", func(r *http.Request) (int, any, error) {
		handled = queryapi.Vars(r)["group"]
		return http.StatusOK, "ok", nil
	})
	do(t, api, "GET", "/admin/a%2Fb%2541", "").wantJSON(t, http.StatusOK, nil)
	if guarded != "a/b%41" || handled != "a/b%41" {
		t.Fatalf("guard saw %q, handler %q, want %q for both", guarded, handled, "a/b%41")
	}
}

func TestMetrics_GivenRequests_ThenExpositionIsValidText(t *testing.T) {
	api, _ := customersAPI()
	do(t, api, "GET", "/customers/c1", "")
	do(t, api, "GET", "/customers/ghost", "")
	do(t, api, "GET", "/nowhere", "")

	scrape(t, api) // parsed strictly, as Prometheus reads it
}
