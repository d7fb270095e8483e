package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/views"
)

// Lister answers a resource's listing (GET /{name}, see Resource) from a
// view: without a filter every key, with param=term the keys whose
// secondary index has term; at most one filter, in key order across all
// partitions. A *Lister is safe for concurrent use once built.
type Lister[V any] struct {
	// View is the view listed.
	View *views.View[V]
	// Filters maps a query parameter to the secondary index it filters by.
	Filters map[string]string
	// Terms, for a parameter that has them, are the only terms it takes.
	Terms map[string][]string
	// Filtered: a listing needs a filter (the table is too large, or too
	// private, to list whole).
	Filtered bool
}

// List implements queryapi.Lister.
func (l *Lister[V]) List(ctx context.Context, q queryapi.ListQuery) (queryapi.Page, error) {
	index, term, err := l.filter(q.Filters)
	if err != nil {
		return queryapi.Page{}, err
	}
	page, err := l.View.List(ctx, index, term, q.Cursor, q.Limit)
	if errors.Is(err, views.ErrBadCursor) {
		return queryapi.Page{}, queryapi.BadRequest("cursor is not one this API handed out")
	}
	if err != nil {
		return queryapi.Page{}, err
	}
	out := queryapi.Page{Next: page.Next, Items: make([]json.RawMessage, 0, len(page.Items))}
	for _, it := range page.Items {
		// The value without the framework's bookkeeping, as GetJSON.
		b, err := json.Marshal(it.Value)
		if err != nil {
			return queryapi.Page{}, fmt.Errorf("%s: encode %q: %w", l.View.Name(), it.Key, err)
		}
		out.Items = append(out.Items, b)
	}
	return out, nil
}

// filter is the index and term the query's filters select; none for no
// filter.
func (l *Lister[V]) filter(filters map[string]string) (index, term string, err error) {
	supported := strings.Join(slices.Sorted(maps.Keys(l.Filters)), ", ")
	if len(filters) == 0 && l.Filtered {
		return "", "", queryapi.BadRequest(fmt.Sprintf("give exactly one filter of: %s", supported))
	}
	if len(filters) > 1 {
		return "", "", queryapi.BadRequest(fmt.Sprintf("give at most one filter of: %s", supported))
	}
	for param, t := range filters {
		idx, ok := l.Filters[param]
		switch terms := l.Terms[param]; {
		case !ok:
			return "", "", queryapi.BadRequest(fmt.Sprintf("unknown filter %q (supported: %s)", param, supported))
		case t == "":
			return "", "", queryapi.BadRequest(fmt.Sprintf("filter %s needs a value", param))
		case terms != nil && !slices.Contains(terms, t):
			return "", "", queryapi.BadRequest(fmt.Sprintf("%s must be one of %q, got %q", param, terms, t))
		}
		index, term = idx, t
	}
	return index, term, nil
}
