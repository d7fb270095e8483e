package serve

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/streamfold/streamfold/tables"
)

// restoreBar draws restore progress on a terminal until every table is
// restored: one line, redrawn in place. Off a terminal the storage engine's
// periodic log lines say the same.
func restoreBar(ctx context.Context, w io.Writer, progress func() map[string][]tables.Progress, recovered func() bool) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	drawn := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if recovered() {
			if drawn {
				fmt.Fprintln(w)
			}
			return
		}
		line, ok := barLine(progress())
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\r%s", line)
		drawn = true
	}
}

// barLine renders the tables still restoring; ok is false when none has work.
func barLine(byTable map[string][]tables.Progress) (string, bool) {
	var done, total int64
	var rate float64
	var restoring []string
	for _, name := range slices.Sorted(maps.Keys(byTable)) {
		for _, p := range byTable[name] {
			if p.Recovered || p.HighWatermark <= p.StartOffset || p.StartOffset < 0 {
				continue
			}
			done += max(p.Offset+1-p.StartOffset, 0)
			total += p.HighWatermark - p.StartOffset
			rate += p.RatePerSec
			if !slices.Contains(restoring, name) {
				restoring = append(restoring, name)
			}
		}
	}
	if total == 0 {
		return "", false
	}
	const width = 30
	filled := int(float64(width) * float64(done) / float64(total))
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("restoring %s [%s%s] %3.0f%% %d/%d records, %.0f/s, eta %s ",
		strings.Join(restoring, ","), strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		100*float64(done)/float64(total), done, total, rate, eta), true
}
