package promtext_test

import (
	"strings"
	"testing"

	"github.com/streamfold/streamfold/internal/promtext"
)

func TestCheck_GivenValidExposition_ThenNil(t *testing.T) {
	text := `# HELP a_total Things.
# TYPE a_total counter
a_total{group="x",reason="retry \"in\" place\\n"} 3
a_total{group="y"} 4
# HELP d Durations.
# TYPE d histogram
d_bucket{route="/a",le="0.5"} 1
d_bucket{route="/a",le="+Inf"} 2
d_sum{route="/a"} 0.75
d_count{route="/a"} 2
# TYPE g gauge
g 1 1700000000000
g{x="1"} NaN
`
	if err := promtext.Check(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
}

func TestCheck_GivenViolations_ThenErrorNamesIt(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"HELP and TYPE apart from samples": {"# HELP a x\n# TYPE a counter\n# HELP b y\n# TYPE b counter\na 1\nb 1\n", "appears again"},
		"no TYPE":                          {"# HELP a x\n# TYPE a counter\na 1\nb 2\n", "without a TYPE"},
		"TYPE after samples":               {"# TYPE a counter\na 1\n# HELP a x\n", "after its samples"},
		"second TYPE":                      {"# TYPE a counter\n# TYPE a gauge\n", "second TYPE"},
		"bad type":                         {"# TYPE a countr\n", "TYPE must be"},
		"bad value":                        {"# TYPE a gauge\na one\n", "value"},
		"unquoted label":                   {"# TYPE a gauge\na{x=1} 1\n", "not quoted"},
		"bad escape":                       {"# TYPE a gauge\na{x=\"\\t\"} 1\n", "invalid escape"},
		"duplicate sample":                 {"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "twice"},
		"histogram without +Inf":           {"# TYPE d histogram\nd_bucket{le=\"1\"} 1\nd_sum 1\nd_count 1\n", "+Inf"},
		"bad metric name":                  {"# TYPE 1a gauge\n", "invalid metric name"},
	} {
		t.Run(name, func(t *testing.T) {
			err := promtext.Check(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
