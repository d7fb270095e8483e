package promtext_test

import (
	"strings"
	"testing"

	"github.com/streamfold/streamfold/internal/promtext"
)

func TestParse_GivenAnExposition_ThenSamplesByLabels(t *testing.T) {
	fams, err := promtext.Parse(strings.NewReader(`# HELP a_total Things.
# TYPE a_total counter
a_total{group="x",reason="retry \"in\" place\\n"} 3
a_total{group="y",reason="r"} 4
# HELP d Durations.
# TYPE d histogram
d_bucket{route="/a",le="0.5"} 1
d_bucket{route="/a",le="+Inf"} 2
d_sum{route="/a"} 0.75
d_count{route="/a"} 2
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"a_total", []string{"group", "x", "reason", "retry \"in\" place\\n"}, 3, true},
		{"a_total", nil, 7, true},
		{"a_total", []string{"group", "z"}, 0, false},
		{"d", []string{"route", "/a"}, 2, true},
		{"nope", nil, 0, false},
	} {
		v, ok := fams.Sample(tc.name, tc.labels...)
		if v != tc.want || ok != tc.ok {
			t.Errorf("Sample(%s, %q) = %v, %v; want %v, %v", tc.name, tc.labels, v, ok, tc.want, tc.ok)
		}
	}
}

func TestParse_GivenWhatPrometheusRefusesOrReadsUntyped_ThenError(t *testing.T) {
	for name, text := range map[string]string{
		"bad name":       "# HELP 1x X.\n# TYPE 1x gauge\n1x 1\n",
		"unquoted label": "# HELP x X.\n# TYPE x gauge\nx{a=b} 1\n",
		"no TYPE":        "# HELP x X.\nx 1\n",
		"no HELP":        "# TYPE x gauge\nx 1\n",
		"bad value":      "# HELP x X.\n# TYPE x gauge\nx one\n",
	} {
		if _, err := promtext.Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%s: no error for %q", name, text)
		}
	}
}
