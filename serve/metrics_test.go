package serve

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/internal/promtext"
	"github.com/streamfold/streamfold/processors"
)

func TestMetrics_GivenGroupStats_ThenValidExpositionInAStableOrder(t *testing.T) {
	var b strings.Builder
	require.NoError(t, writeMetrics(&b, map[string]processors.Snapshot{
		"b":    {Processed: 3, Applied: 2, Duplicates: 1, Counters: map[string]int64{"parked": 1, "released": 1}},
		"a\"x": {DeadLetters: map[string]int64{"decode": 4}},
	}))
	assert.NoError(t, promtext.Check(strings.NewReader(b.String())), b.String())
	assert.Equal(t, `# HELP streamfold_records_processed_total Records handed to a group's handlers.
# TYPE streamfold_records_processed_total counter
streamfold_records_processed_total{group="a\"x"} 0
streamfold_records_processed_total{group="b"} 3
# HELP streamfold_records_applied_total Records a group's handlers applied.
# TYPE streamfold_records_applied_total counter
streamfold_records_applied_total{group="a\"x"} 0
streamfold_records_applied_total{group="b"} 2
# HELP streamfold_records_duplicate_total Records a group skipped as already applied.
# TYPE streamfold_records_duplicate_total counter
streamfold_records_duplicate_total{group="a\"x"} 0
streamfold_records_duplicate_total{group="b"} 1
# HELP streamfold_failures_total Records retried in place, moved to retry topics, parked and released; stores found broken, rebuilt, failed writes and processor restarts; by group.
# TYPE streamfold_failures_total counter
streamfold_failures_total{group="b",reason="parked"} 1
streamfold_failures_total{group="b",reason="released"} 1
# HELP streamfold_dead_letters_total Records dead-lettered, by group and error class.
# TYPE streamfold_dead_letters_total counter
streamfold_dead_letters_total{group="a\"x",class="decode"} 4
`, b.String())
}

func TestReadiness_GivenTheRuntime_ThenReadyzFollowsItsRestore(t *testing.T) {
	rt := &fakeRuntime{stats: map[string]processors.Snapshot{"g": {Processed: 1}}}
	srv, err := New(rt, Options{Listener: listen(t)})
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, do(srv, http.MethodGet, "/readyz", "").Code)
	rt.recovered.Store(true)
	assert.Equal(t, http.StatusOK, do(srv, http.MethodGet, "/readyz", "").Code)
	rec := do(srv, http.MethodGet, "/metrics", "")
	assert.Contains(t, rec.Body.String(), `streamfold_records_processed_total{group="g"} 1`)
}
