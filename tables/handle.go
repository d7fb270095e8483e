package tables

import (
	"fmt"
	"maps"
	"reflect"

	"github.com/streamfold/streamfold/codecs"
)

// Kind says whether a topic is an append-only stream or a compacted table.
type Kind string

const (
	KindStream Kind = "stream"
	KindTable  Kind = "table"
)

// Spec is the untyped description of a topic: what the topology creates and
// describes. Partitions 0 means the topology's default.
type Spec struct {
	Name       string            `json:"name"`
	Kind       Kind              `json:"kind"`
	Partitions int               `json:"partitions"`
	Configs    map[string]string `json:"configs"`
	ValueType  string            `json:"valueType"`
	Indexes    []string          `json:"indexes,omitempty"`
}

// Topic is implemented by every typed handle, so untyped code (the topology, the
// DSL's group graph) can read a handle's spec without knowing its value type.
type Topic interface {
	Spec() Spec
}

// Stream is a typed handle on an event or command topic: declared once, used by
// every reader and writer, so no code repeats a topic name or picks a codec.
// Event topics are the source of truth: infinite retention, never compacted.
type Stream[V any] struct {
	Name  string
	Codec codecs.Codec[V]
	// Partitions overrides the topology default when > 0.
	Partitions int
	// Configs are extra topic configs; they override the defaults.
	Configs map[string]string
}

// NewStream declares a stream topic.
func NewStream[V any](name string, codec codecs.Codec[V]) Stream[V] {
	return Stream[V]{Name: name, Codec: codec}
}

// StreamConfigs are the configs every stream topic is created with.
func StreamConfigs() map[string]string {
	return map[string]string{
		"cleanup.policy":  "delete",
		"retention.ms":    "-1",
		"retention.bytes": "-1",
	}
}

// Spec implements Topic.
func (s Stream[V]) Spec() Spec {
	cfg := StreamConfigs()
	maps.Copy(cfg, s.Configs)
	return Spec{Name: s.Name, Kind: KindStream, Partitions: s.Partitions, Configs: cfg, ValueType: typeName[V]()}
}

// Table is a typed handle on a compacted changelog topic and its local store:
// the value codec and the secondary indexes the storage engine keeps for it.
// A null value (tombstone) deletes a key.
type Table[V any] struct {
	Name       string
	Codec      codecs.Codec[V]
	Indexes    []Index
	Partitions int
	Configs    map[string]string
}

// NewTable declares a table topic with its secondary indexes.
func NewTable[V any](name string, codec codecs.Codec[V], indexes ...Index) Table[V] {
	return Table[V]{Name: name, Codec: codec, Indexes: indexes}
}

// TableConfigs are the configs every table topic is created with: compacted, and
// with segments small and cleaner settings eager enough that compaction really
// happens, so a restore replays about one record per key.
func TableConfigs() map[string]string {
	return map[string]string{
		"cleanup.policy":            "compact",
		"segment.ms":                "600000",   // roll every 10 minutes so closed segments exist to clean
		"segment.bytes":             "67108864", // 64 MiB
		"min.cleanable.dirty.ratio": "0.1",
		"delete.retention.ms":       "86400000", // tombstones visible to restoring readers for a day
	}
}

// Spec implements Topic.
func (t Table[V]) Spec() Spec {
	cfg := TableConfigs()
	maps.Copy(cfg, t.Configs)
	idx := make([]string, 0, len(t.Indexes))
	for _, i := range t.Indexes {
		idx = append(idx, i.Name)
	}
	return Spec{Name: t.Name, Kind: KindTable, Partitions: t.Partitions, Configs: cfg, ValueType: typeName[V](), Indexes: idx}
}

func typeName[V any]() string {
	t := reflect.TypeFor[V]()
	if t.PkgPath() == "" {
		return t.String()
	}
	return fmt.Sprintf("%s.%s", t.PkgPath(), t.Name())
}
