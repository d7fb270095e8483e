package kafkaconf

import (
	"hash"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold/tables"
)

func TestPartitioner_GivenAPartitionKeyHeader_ThenTheRecordGoesToThePartitionOfThatKey(t *testing.T) {
	p := Partitioner(func() hash.Hash32 { return tables.NewHasher() })("t-windows")
	const n = 12
	for _, key := range []string{"customer-1", "customer-2", "k", "another key"} {
		part := tables.PartRecordKey(key, []byte{0x80, 0, 0, 0, 0, 0, 0, 1})
		got, err := p.Partition(&sarama.ProducerMessage{Topic: "t-windows", Key: sarama.ByteEncoder(part),
			Headers: []sarama.RecordHeader{{Key: []byte("other"), Value: []byte("x")}, {Key: []byte(tables.HeaderPartitionKey), Value: []byte(key)}}}, n)
		require.NoError(t, err)
		assert.Equal(t, tables.PartitionFor(key, n), got, "%s: a window lands in its key's partition", key)

		plain, err := p.Partition(&sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder(key)}, n)
		require.NoError(t, err)
		assert.Equal(t, tables.PartitionFor(key, n), plain, "%s: without the header, by the record key", key)
	}
	assert.True(t, p.RequiresConsistency())
}
