package tables

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEngine_GivenAMemoryBudgetSharedByManyStores_ThenEachStoreGetsItsShareWithinBounds(t *testing.T) {
	for _, c := range []struct {
		budget, stores int
		want           storeMemory
	}{
		{128 << 20, 64, storeMemory{writeBuffer: 1536 << 10, blockCache: 512 << 10}},
		{128 << 20, 1000, storeMemory{writeBuffer: storeMinWriteBuffer, blockCache: storeMinBlockCache}},
		{1 << 30, 8, storeMemory{writeBuffer: storeMaxWriteBuffer, blockCache: storeMaxBlockCache}},
	} {
		assert.Equal(t, c.want, memoryPerStore(c.budget, c.stores), "%d bytes for %d stores", c.budget, c.stores)
	}
	_, err := NewEngine(t.TempDir(), WithMemory(0, 8))
	assert.Error(t, err, "a zero budget is refused")
}
