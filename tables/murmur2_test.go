package tables

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The vectors of Kafka's own UtilsTest.testMurmur2.
func TestMurmur2_GivenKafkaVectors_ThenMatchesJava(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		assert.Equal(t, want, Murmur2([]byte(in)), in)
	}
}

// franz-go's default partitioner is the Java client's; ours must pick the same partition.
func TestPartitionFor_GivenManyKeys_ThenAgreesWithFranzGo(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 8, 12} {
		for i := range 2000 {
			key := fmt.Sprintf("customer-%d", i)
			want := p.Partition(&kgo.Record{Key: []byte(key)}, n)
			require.Equal(t, int32(want), PartitionFor(key, n), "key %s over %d partitions", key, n)
		}
	}
}

func TestHasher_GivenReset_ThenHashesOnlyNewInput(t *testing.T) {
	h := NewHasher()
	_, _ = h.Write([]byte("foo"))
	h.Reset()
	_, _ = h.Write([]byte("bar"))
	assert.Equal(t, uint32(Murmur2([]byte("bar")))&0x7fffffff, h.Sum32())
	assert.Len(t, h.Sum(nil), 4)
}
