package processors

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
)

func TestTimeMetaOf_GivenEveryBookkeepingThatKeepsTime_ThenItReadsWhatEncodingJSONWouldDecode(t *testing.T) {
	state := []byte(`{"k":1}`)
	for name, m := range map[string]any{
		"window":           windowMeta{timeMeta: timeMeta{StreamTime: 1700000000000, Due: 1700000060000}, Offsets: map[string]int64{"due": 5}, IDs: []string{`"due":1`}},
		"join, wall only":  joinMeta{timeMeta: timeMeta{WallDue: 42}, Emits: [][]byte{[]byte(`{"streamTime":9}`)}},
		"reactor, all":     reactMeta{timeMeta: timeMeta{StreamTime: 1, Due: 2, WallDue: 3}, Timers: []Timer{{Name: "x"}}},
		"reactor, none":    reactMeta{Effects: []effectRecord{{Input: "streamTime"}}},
		"negative numbers": windowMeta{timeMeta: timeMeta{StreamTime: -5}},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := encodeWithMeta(codecs.JSON[map[string]int]{}, map[string]int{"k": 1}, m)
			require.NoError(t, err)
			var want timeMeta
			require.NoError(t, envelope.DecodeMeta(v, &want))
			assert.Equal(t, want, timeMetaOf(v))
		})
	}
	fold, err := envelope.Join(envelope.Meta{Offsets: map[string]int64{"t": 1}}, state)
	require.NoError(t, err)
	assert.Equal(t, timeMeta{}, timeMetaOf(fold), "a fold's binary bookkeeping keeps no time")
	assert.Equal(t, timeMeta{}, timeMetaOf(state), "a bare state has no bookkeeping")
	assert.Equal(t, timeMeta{}, timeMetaOf(nil))
}
