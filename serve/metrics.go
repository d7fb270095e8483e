package serve

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/streamfold/streamfold/processors"
)

// readiness is /readyz over the runtime: ready once every table is
// restored, with the tables' progress and the groups' counters.
type readiness struct{ rt Runtime }

func (r readiness) Ready(context.Context) (bool, any) {
	return r.rt.Recovered(), map[string]any{"tables": r.rt.Progress(), "groups": r.rt.Stats()}
}

// metrics is the runtime's part of /metrics: the groups' counters.
type metrics struct{ rt Runtime }

// WriteMetrics writes one family at a time — HELP, TYPE, then every series
// of it — as the text format requires; groups and labels in a stable order.
func (m metrics) WriteMetrics(w io.Writer) error {
	return writeMetrics(w, m.rt.Stats())
}

func writeMetrics(w io.Writer, stats map[string]processors.Snapshot) error {
	groups := slices.Sorted(maps.Keys(stats))
	var err error
	printf := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	family := func(name, typ, help string, samples func(group string, s processors.Snapshot)) {
		printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, g := range groups {
			samples(g, stats[g])
		}
	}
	family("streamfold_records_processed_total", "counter", "Records handed to a group's handlers.", func(g string, s processors.Snapshot) {
		printf("streamfold_records_processed_total{group=%s} %d\n", label(g), s.Processed)
	})
	family("streamfold_records_applied_total", "counter", "Records a group's handlers applied.", func(g string, s processors.Snapshot) {
		printf("streamfold_records_applied_total{group=%s} %d\n", label(g), s.Applied)
	})
	family("streamfold_records_duplicate_total", "counter", "Records a group skipped as already applied.", func(g string, s processors.Snapshot) {
		printf("streamfold_records_duplicate_total{group=%s} %d\n", label(g), s.Duplicates)
	})
	family("streamfold_failures_total", "counter", "Records retried in place, moved to retry topics, parked and released; stores found broken, rebuilt, failed writes and processor restarts; by group.", func(g string, s processors.Snapshot) {
		for _, reason := range slices.Sorted(maps.Keys(s.Counters)) {
			printf("streamfold_failures_total{group=%s,reason=%s} %d\n", label(g), label(reason), s.Counters[reason])
		}
	})
	family("streamfold_dead_letters_total", "counter", "Records dead-lettered, by group and error class.", func(g string, s processors.Snapshot) {
		for _, class := range slices.Sorted(maps.Keys(s.DeadLetters)) {
			printf("streamfold_dead_letters_total{group=%s,class=%s} %d\n", label(g), label(class), s.DeadLetters[class])
		}
	})
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// label quotes a label value as the text format wants: only backslash,
// double quote and newline are escaped (Go's %q would escape more, in ways
// Prometheus does not read back).
func label(v string) string {
	return `"` + labelEscaper.Replace(v) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
