package tables

import "hash"

// Murmur2 is Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2),
// the hash the Java client, Kafka Streams and librdkafka's murmur2 partitioners use.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// PartitionFor returns the partition Kafka's default partitioner (Java client,
// Kafka Streams) picks for a non-empty key: murmur2(key) & 0x7fffffff % partitions.
func PartitionFor(key string, partitions int) int32 {
	return int32((uint32(Murmur2([]byte(key))) & 0x7fffffff) % uint32(partitions))
}

// NewHasher returns a hash.Hash32 whose Sum32 is murmur2 & 0x7fffffff. Given to
// goka (WithHasher, WithViewHasher, WithEmitterHasher) and to sarama's custom hash
// partitioner it makes lookups and produces agree with Java clients: a positive
// Sum32 gives the same partition under goka's and every sarama modulo variant.
func NewHasher() hash.Hash32 { return &murmur2Hasher{} }

// murmur2Hasher buffers what is written; keys are short, so this costs one copy.
type murmur2Hasher struct{ buf []byte }

func (h *murmur2Hasher) Write(p []byte) (int, error) {
	h.buf = append(h.buf, p...)
	return len(p), nil
}

func (h *murmur2Hasher) Sum32() uint32 { return uint32(Murmur2(h.buf)) & 0x7fffffff }

func (h *murmur2Hasher) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

func (h *murmur2Hasher) Reset()         { h.buf = h.buf[:0] }
func (h *murmur2Hasher) Size() int      { return 4 }
func (h *murmur2Hasher) BlockSize() int { return 4 }
