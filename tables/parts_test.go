package tables

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partsTestValue is a value of a table kept in parts, for these tests: the
// parts it puts and deletes.
type partsTestValue struct {
	Put map[string]string `json:"put,omitempty"`
	Del []string          `json:"del,omitempty"`
}

func partsTestEncode(t *testing.T, put map[string]string, del ...string) []byte {
	t.Helper()
	b, err := json.Marshal(partsTestValue{Put: put, Del: del})
	require.NoError(t, err)
	return b
}

// partsTestConfig reads partsTestValues; Join appends the parts as
// "|sub=value" to the value.
func partsTestConfig(topic string) Parts {
	return Parts{
		Changes: func(_ string, v []byte) (puts []Part, dels [][]byte) {
			var pv partsTestValue
			if json.Unmarshal(v, &pv) != nil {
				return nil, nil
			}
			for sub, val := range pv.Put {
				puts = append(puts, Part{Sub: []byte(sub), Value: []byte(val)})
			}
			for _, sub := range pv.Del {
				dels = append(dels, []byte(sub))
			}
			return puts, dels
		},
		Join: func(_ string, v []byte, parts []Part) ([]byte, error) {
			var b strings.Builder
			b.WriteString("value")
			for _, p := range parts {
				fmt.Fprintf(&b, "|%s=%s", p.Sub, p.Value)
			}
			return []byte(b.String()), nil
		},
		Topic: topic,
	}
}

// partsOf lists a key's parts as "sub=value".
func partsOf(t *testing.T, s *Store, key string) []string {
	t.Helper()
	ps, err := s.PartsOf(key)
	require.NoError(t, err)
	out := []string{}
	for _, p := range ps {
		out = append(out, string(p.Sub)+"="+string(p.Value))
	}
	return out
}

func TestParts_GivenWritesThatChangeParts_ThenEachWriteAppliesItsChangesAndADeleteDropsThemAll(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithParts("t", partsTestConfig("")))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	require.NoError(t, s.Set("k", partsTestEncode(t, map[string]string{"a": "1", "b": "1"})))
	require.NoError(t, s.Set("k", partsTestEncode(t, map[string]string{"c": "1"}, "a")))
	require.NoError(t, s.Set("other", partsTestEncode(t, map[string]string{"a": "x"})))

	assert.Equal(t, []string{"b=1", "c=1"}, partsOf(t, s, "k"), "the second write deleted a and kept b")
	v, err := s.Part("k", []byte("b"))
	require.NoError(t, err)
	assert.Equal(t, "1", string(v))
	v, err = s.Part("k", []byte("a"))
	require.NoError(t, err)
	assert.Nil(t, v)
	whole, err := s.Read("k")
	require.NoError(t, err)
	assert.Equal(t, "value|b=1|c=1", string(whole), "a reader gets the value joined with its parts")

	require.NoError(t, s.Delete("k"))
	assert.Equal(t, []string{}, partsOf(t, s, "k"), "a tombstone drops every part of its key")
	assert.Equal(t, []string{"a=x"}, partsOf(t, s, "other"), "and no other key's")
	whole, err = s.Read("k")
	require.NoError(t, err)
	assert.Nil(t, whole)
}

func TestParts_GivenARestoreThatWritesAKeyManyTimesPerBatch_ThenEveryWritesChangesApplyInOrder(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithParts("t", partsTestConfig("")), WithBatchSize(3))
	s := storeTestOpen(t, e, "t", 0)

	// Given goka's recovery writing k seven times, in batches of three:
	// the batches keep only k's last value, but every value's changes.
	writes := [][]byte{
		partsTestEncode(t, map[string]string{"a": "1"}),
		partsTestEncode(t, map[string]string{"a": "2", "b": "1"}),
		partsTestEncode(t, map[string]string{"c": "1"}),
		partsTestEncode(t, nil, "c"),
		nil, // a tombstone: drops a and b
		partsTestEncode(t, map[string]string{"d": "1"}),
		partsTestEncode(t, map[string]string{"e": "1"}, "d"),
	}
	for i, w := range writes {
		if w == nil {
			require.NoError(t, s.Delete("k"))
		} else {
			require.NoError(t, s.Set("k", w))
		}
		require.NoError(t, s.SetOffset(int64(i)))
	}
	require.NoError(t, s.MarkRecovered())

	assert.Equal(t, []string{"e=1"}, partsOf(t, s, "k"))
}

func TestParts_GivenAStoreWithoutItsParts_WhenItOpens_ThenThePartsTopicIsReadFirstAndTheCompactedChangelogOnTop(t *testing.T) {
	log := &seenTestLog{topics: map[string][]Record{}, reads: map[string]int{}}
	// The parts topic as compaction may leave it: a's two values, c put
	// and then purged (a tombstone), b's first value.
	log.append("t-parts", string(PartRecordKey("k", []byte("a"))), []byte("a1"))
	log.append("t-parts", string(PartRecordKey("k", []byte("b"))), []byte("b1"))
	log.append("t-parts", string(PartRecordKey("k", []byte("a"))), []byte("a2"))
	log.append("t-parts", string(PartRecordKey("k", []byte("c"))), []byte("c1"))
	log.append("t-parts", string(PartRecordKey("k", []byte("c"))), nil)
	// The changelog compacted to k's last value, whose record of b in the
	// parts topic a crash lost (its step is read again and sends it later).
	log.append("t", "k", partsTestEncode(t, map[string]string{"b": "b2"}))
	dir := t.TempDir()
	e := storeTestEngine(t, dir, append(log.options(), WithParts("t", partsTestConfig("t-parts")))...)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	assert.Equal(t, []string{"a=a2", "b=b2"}, partsOf(t, s, "k"), "each part as its last write says")
	assert.Equal(t, 1, log.reads["t-parts"])

	// When the intact store opens again, it does not read the topic again.
	require.NoError(t, s.Close())
	s = storeTestOpen(t, e, "t", 0)
	assert.Equal(t, 1, log.reads["t-parts"])
	assert.Equal(t, []string{"a=a2", "b=b2"}, partsOf(t, s, "k"))
}

func TestParts_GivenAStoreWrittenBeforeItsTableKeptParts_WhenItOpens_ThenItIsRebuiltWithThem(t *testing.T) {
	log := &seenTestLog{topics: map[string][]Record{}, reads: map[string]int{}}
	log.append("t-parts", string(PartRecordKey("k", []byte("a"))), []byte("a1"))
	log.append("t", "k", partsTestEncode(t, nil))
	dir := t.TempDir()
	// Given a store of the table written without parts.
	e := storeTestEngine(t, dir, log.options()...)
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	require.NoError(t, e.Close())

	// When it opens with them, it is rebuilt: the parts topic, then the
	// changelog.
	e = storeTestEngine(t, dir, append(log.options(), WithParts("t", partsTestConfig("t-parts")))...)
	s = storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())
	assert.Equal(t, []string{"a=a1"}, partsOf(t, s, "k"))
	assert.Equal(t, int64(1), e.Stats().Rebuilt)
}

func TestPartRecordKey_GivenAKeyAndASub_ThenSplitGivesThemBack(t *testing.T) {
	rk := PartRecordKey("order-1", []byte{0, 1, 0xff})
	key, sub, ok := SplitPartRecordKey(rk)
	require.True(t, ok)
	assert.Equal(t, "order-1", key)
	assert.Equal(t, []byte{0, 1, 0xff}, sub, "the sub may hold NUL bytes: the first NUL ends the key")
	_, _, ok = SplitPartRecordKey([]byte("no-separator"))
	assert.False(t, ok)
}
