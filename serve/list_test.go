package serve

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/streamfold/streamfold/queryapi"
)

func TestLister_GivenFilters_ThenBadOnesAre400sThatSayWhatIsSupported(t *testing.T) {
	states := &Lister[struct{}]{Filters: map[string]string{"state": "by-state"}, Terms: map[string][]string{"state": {"active", "deleted"}}}
	carts := &Lister[struct{}]{Filters: map[string]string{"product": "by-product"}, Filtered: true}
	for _, tc := range []struct {
		l interface {
			filter(map[string]string) (string, string, error)
		}
		filters map[string]string
		index   string
		detail  string // "" for no error
	}{
		{states, nil, "", ""},
		{states, map[string]string{"state": "active"}, "by-state", ""},
		{states, map[string]string{"state": "sleeping"}, "", `state must be one of ["active" "deleted"], got "sleeping"`},
		{states, map[string]string{"colour": "red"}, "", `unknown filter "colour" (supported: state)`},
		{carts, nil, "", "give exactly one filter of: product"},
		{carts, map[string]string{"product": ""}, "", "filter product needs a value"},
		{carts, map[string]string{"product": "pear", "x": "y"}, "", "at most one filter"},
		{carts, map[string]string{"product": "pear"}, "by-product", ""},
	} {
		index, _, err := tc.l.filter(tc.filters)
		if tc.detail == "" {
			assert.NoError(t, err, "%v", tc.filters)
			assert.Equal(t, tc.index, index)
			continue
		}
		p, ok := errors.AsType[*queryapi.Problem](err)
		if assert.True(t, ok, "%v: %v", tc.filters, err) {
			assert.Equal(t, http.StatusBadRequest, p.Status)
			assert.Contains(t, p.Detail, tc.detail)
		}
	}
	_, err := carts.List(context.Background(), queryapi.ListQuery{})
	assert.Error(t, err, "a bad filter never reaches the view")
}
