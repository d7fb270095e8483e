// Package promtext reads a /metrics page for tests with Prometheus' own
// text parser (expfmt, whose rules the Prometheus server's scrape shares),
// strictly: legacy metric names, every family with HELP and TYPE. Sample
// finds one series' value in what Parse returned.
package promtext

import (
	"fmt"
	"io"
	"maps"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one exposition, by name.
type Families map[string]*dto.MetricFamily

// Parse reads an exposition in the text format (0.0.4). It fails on what
// Prometheus would refuse, and on a family without HELP or TYPE (which
// Prometheus reads as untyped).
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse exposition: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		f := fams[name]
		if f.GetHelp() == "" {
			return nil, fmt.Errorf("parse exposition: family %s has no HELP", name)
		}
		if f.GetType() == dto.MetricType_UNTYPED {
			return nil, fmt.Errorf("parse exposition: family %s has no TYPE", name)
		}
	}
	return fams, nil
}

// Sample is the value of the series of family name whose labels include
// labels (name, value pairs): a counter's or gauge's value, a histogram's
// count. ok is false when no series matches; when several do, their sum.
func (fs Families) Sample(name string, labels ...string) (v float64, ok bool) {
	f := fs[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

// Series are the label sets of family name's series, each as a map.
func (fs Families) Series(name string) []map[string]string {
	var out []map[string]string
	for _, m := range fs[name].GetMetric() {
		ls := map[string]string{}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		out = append(out, ls)
	}
	return out
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
