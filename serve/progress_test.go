package serve

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/streamfold/streamfold/tables"
)

func TestBarLine_GivenRestoringTables_ThenShowsShareRateAndETA(t *testing.T) {
	line, ok := barLine(map[string][]tables.Progress{
		"customers-table": {
			{StartOffset: 0, Offset: 499, HighWatermark: 1000, RatePerSec: 100},
			{StartOffset: 0, Offset: 999, HighWatermark: 1000, Recovered: true},
		},
		"carts-table": {{StartOffset: 100, Offset: 99, HighWatermark: 100, Recovered: true}},
	})
	assert.True(t, ok)
	assert.Contains(t, line, "restoring customers-table [###############...............]  50% 500/1000 records, 100/s, eta 5s")

	_, ok = barLine(map[string][]tables.Progress{"t": {{StartOffset: 0, Offset: 9, HighWatermark: 10, Recovered: true}}})
	assert.False(t, ok, "nothing left to restore")
}
