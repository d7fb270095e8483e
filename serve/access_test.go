package serve

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/queryapi"
)

func TestAccess_GivenTokensAndListener_ThenWhoMayDoWhat(t *testing.T) {
	req := func(method, path, auth string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		return r
	}
	status := func(err error) int {
		if p, ok := errors.AsType[*queryapi.Problem](err); ok {
			return p.Status
		}
		require.NoError(t, err)
		return http.StatusOK
	}
	op := map[string]bool{"/dlq": true, "/dlq/{group}": true, "/dlq/{group}/redrive": true, "/parked/{group}": true}
	cases := []struct {
		name   string
		access access
		method string
		route  string
		auth   string
		want   int
	}{
		{"no token, loopback: operator served", access{loopback: true}, http.MethodGet, "/dlq/{group}", "", 200},
		{"no token, network: operator forbidden", access{}, http.MethodPost, "/dlq/{group}/redrive", "", 403},
		{"no token, network: parked forbidden", access{}, http.MethodGet, "/parked/{group}", "", 403},
		{"no token, network: queries open", access{}, http.MethodGet, "/customers/{id}", "", 200},
		{"no token, network: writes open", access{}, http.MethodPost, "/customers", "", 200},
		{"admin token, loopback: still required", access{admin: "a", loopback: true}, http.MethodGet, "/dlq", "", 401},
		{"admin token given", access{admin: "a"}, http.MethodGet, "/dlq/{group}", "a", 200},
		{"write token for a write", access{write: "w"}, http.MethodPatch, "/customers/{id}", "", 401},
		{"write token given", access{write: "w"}, http.MethodDelete, "/customers/{id}", "w", 200},
		{"write token: reads open", access{write: "w"}, http.MethodGet, "/carts/{id}", "", 200},
		{"write token is no admin token", access{admin: "a", write: "w"}, http.MethodGet, "/dlq/{group}", "w", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.access.operator = op
			assert.Equal(t, tc.want, status(tc.access.guard(req(tc.method, "/x", tc.auth), tc.route)))
		})
	}
}

func TestOperatorEndpoints_GivenAServer_ThenBehindTheAdminTokenWithItsRealm(t *testing.T) {
	rt := &fakeRuntime{parked: map[string][]streamfold.ParkedRecord{"g": nil}}
	srv, err := New(rt, Options{Listener: listen(t), Name: "app", AdminToken: "secret", WriteToken: "w"})
	require.NoError(t, err)
	srv.OperatorEndpoints()
	srv.Handle(http.MethodPost, "/reindex", func(*http.Request) (int, any, error) { return http.StatusNoContent, nil, nil }, AdminOnly())

	for _, path := range []string{"/dlq", "/dlq/g", "/parked/g"} {
		rec := do(srv, http.MethodGet, path, "")
		assert.Equal(t, http.StatusUnauthorized, rec.Code, path)
		assert.Equal(t, `Bearer realm="app-admin"`, rec.Header().Get("WWW-Authenticate"), path)
	}
	rec := do(srv, http.MethodPost, "/reindex", "", "Authorization", "Bearer w")
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "the write token is no admin token")

	rec = do(srv, http.MethodGet, "/dlq", "", "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"groups":[{"group":"g","topic":"g-dlq"}]}`, rec.Body.String())
	rec = do(srv, http.MethodGet, "/parked/g", "", "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"items":[]}`, rec.Body.String())
	rec = do(srv, http.MethodGet, "/parked/nope", "", "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	rec = do(srv, http.MethodGet, "/dlq/nope", "", "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	rec = do(srv, http.MethodGet, "/dlq/g", "", "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "no brokers known: Kafka is unavailable")
	assert.Equal(t, "5", rec.Header().Get("Retry-After"))
}

func TestOperatorEndpoints_GivenNoAdminToken_ThenOnlyOnLoopback(t *testing.T) {
	rt := &fakeRuntime{parked: map[string][]streamfold.ParkedRecord{"g": nil}}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	srv.OperatorEndpoints()
	assert.Equal(t, http.StatusOK, do(srv, http.MethodGet, "/parked/g", "").Code, "a loopback listener")

	err = access{name: "app", hint: "--admin-token", operator: map[string]bool{"/dlq": true}}.guard(httptest.NewRequest(http.MethodGet, "/dlq", nil), "/dlq")
	p, ok := errors.AsType[*queryapi.Problem](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, http.StatusForbidden, p.Status)
	assert.Equal(t, "operator endpoints are disabled: this app listens beyond loopback and has no --admin-token", p.Detail)
}

func TestRedriveRequest_GivenBodies_ThenOneSelectionOrWhyNot(t *testing.T) {
	p, o, from, to, yes, no := int32(1), int64(5), int64(2), int64(4), true, false
	for _, tc := range []struct {
		req  RedriveRequest
		want string // selection, or the error
	}{
		{RedriveRequest{Partition: &p, Offset: &o}, ""},
		{RedriveRequest{Partition: &p, From: &from, To: &to, Force: true}, ""},
		{RedriveRequest{All: &yes}, ""},
		{RedriveRequest{All: &no}, "all must be true"},
		{RedriveRequest{All: &yes, Partition: &p}, "give it alone"},
		{RedriveRequest{Offset: &o}, "no partition"},
		{RedriveRequest{Partition: &p, Offset: &o, From: &from}, "ambiguous"},
	} {
		_, err := tc.req.Selection()
		if tc.want == "" {
			assert.NoError(t, err, "%+v", tc.req)
			continue
		}
		assert.ErrorContains(t, err, tc.want)
	}
}
