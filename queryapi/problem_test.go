package queryapi_test

import (
	"encoding/json"
	"testing"

	"github.com/streamfold/streamfold/queryapi"
)

func TestProblem_WhenMarshalled_ThenStandardMembersFirstAndExtrasFlattened(t *testing.T) {
	p := queryapi.Conflict("expected version 3", map[string]any{"actualVersion": 4, "status": 200, "detail": "ignored"})

	b, err := json.Marshal(p)

	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"about:blank","title":"Conflict","status":409,"detail":"expected version 3","actualVersion":4}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestProblem_WhenRoundTripped_ThenEqual(t *testing.T) {
	in := &queryapi.Problem{Type: "https://streamfold.dev/problems/x", Title: "X", Status: 422, Detail: "d", Instance: "/a", Extras: map[string]any{"k": "v"}}

	b, _ := json.Marshal(in)
	var out queryapi.Problem
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}

	if out.Type != in.Type || out.Title != in.Title || out.Status != in.Status || out.Detail != in.Detail ||
		out.Instance != in.Instance || out.Extras["k"] != "v" || len(out.Extras) != 1 {
		t.Fatalf("out = %+v", out)
	}
}

func TestProblem_Error(t *testing.T) {
	for _, tc := range []struct {
		p    *queryapi.Problem
		want string
	}{
		{queryapi.BadRequest("body: empty"), "Bad Request (400): body: empty"},
		{&queryapi.Problem{}, "Internal Server Error (500)"},
		{&queryapi.Problem{Status: 422, Title: "Cart Closed", Detail: "checked out"}, "Cart Closed (422): checked out"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestProblem_GivenUnmarshallableExtra_WhenReturned_ThenProblemWithoutExtras(t *testing.T) {
	api := queryapi.New()
	api.Handle("GET", "/x", errFor(queryapi.Unprocessable("nope", map[string]any{"ch": make(chan int)})))

	p := do(t, api, "GET", "/x", "").wantProblem(t, 422)

	if p.Detail != "nope" || p.Extras != nil {
		t.Fatalf("problem = %+v", p)
	}
}
