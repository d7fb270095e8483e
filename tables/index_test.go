package tables_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/tables"
)

func TestIndexOf_GivenValues_ThenTermsComeFromTheDecodedValueAndUndecodableOnesHaveNone(t *testing.T) {
	type city struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	idx := tables.IndexOf("tag", codecs.JSON[city]{}, func(key string, c city) []string {
		return append([]string{key}, c.Tags...)
	})

	assert.Equal(t, "tag", idx.Name)
	assert.Equal(t, []string{"k", "old", "port"}, idx.Terms("k", []byte(`{"name":"Lisbon","tags":["old","port"]}`)))
	assert.Nil(t, idx.Terms("k", []byte(`not json`)))
	assert.Nil(t, idx.Terms("k", nil))
}
