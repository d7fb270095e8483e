package tables

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStore_GivenFixedWidthTerms_WhenTermsAndLastTermAskARange_ThenTheyAnswerInTermOrder(t *testing.T) {
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", storeTestColor), WithIndex("t", storeTestTags))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.MarkRecovered())

	require.NoError(t, s.Set("a", []byte("tags=d020,t005")))
	require.NoError(t, s.Set("b", []byte("tags=d010,t007")))
	require.NoError(t, s.Set("c", []byte("tags=d010;color=d999")))

	due, err := s.Terms("tags", "d", "d015", 0)
	require.NoError(t, err)
	assert.Equal(t, []TermKey{{"d010", "b"}, {"d010", "c"}}, due, "terms below the bound, keys in order within a term")

	all, err := s.Terms("tags", "d", "e", 2)
	require.NoError(t, err)
	assert.Equal(t, []TermKey{{"d010", "b"}, {"d010", "c"}}, all, "at most limit entries")

	last, ok, err := s.LastTerm("tags", "t", "u")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "t007", last, "the greatest term of the range, not of another index")

	require.NoError(t, s.Set("b", []byte("tags=d010")))
	last, ok, err = s.LastTerm("tags", "t", "u")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "t005", last, "a replaced value's terms are gone")

	require.NoError(t, s.Delete("a"))
	_, ok, err = s.LastTerm("tags", "t", "u")
	require.NoError(t, err)
	assert.False(t, ok)

	open, err := s.Terms("tags", "d010", "", 0)
	require.NoError(t, err)
	assert.Equal(t, []TermKey{{"d010", "b"}, {"d010", "c"}}, open, "an empty to has no upper bound, and the term itself is in [from, to)")

	_, err = s.Terms("size", "", "", 0)
	assert.ErrorIs(t, err, ErrUnknownIndex)
	_, _, err = s.LastTerm("tags", "a\x00", "")
	assert.ErrorIs(t, err, ErrInvalidTerm)
}
