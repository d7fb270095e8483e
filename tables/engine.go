package tables

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka/storage"
)

// Default settings of the storage engine.
const (
	// DefaultBatchSize is the most records a restore batch stages. Most
	// batches fill by bytes first (engineBatchBytes); records end the
	// batches of a changelog that rewrites few keys, where a larger batch
	// writes each key once for more records: with 10,000 keys, 50,000
	// records per batch took the store's CPU per restored record from
	// 0.46 to 0.27 µs against 10,000 (BenchmarkRestoreStore, 1M records).
	// It also bounds what a crash makes the restore read again.
	DefaultBatchSize        = 50000
	DefaultProgressInterval = 5 * time.Second

	// engineBatchBytes commits a restore batch once what it will write
	// (each staged key with its last value, and the seen ids) reaches this
	// size, whatever the record count. With 1,000,000 distinct keys the
	// store's CPU per record rose with the batch from about 1 MiB up
	// (1 MiB 2.6 µs, 2.3 MiB 2.7 µs, 4 MiB 3.2 µs in one loaded sitting of
	// BenchmarkRestoreStore; 0.5 MiB no better than 1 MiB): a batch's
	// sort, index and LevelDB batch stay in the caches.
	engineBatchBytes = 1 << 20
)

// Errors returned by the storage engine. They are wrapped with context; test
// for them with errors.Is.
var (
	// ErrEngineClosed is returned when building or opening a store of a closed Engine.
	ErrEngineClosed = errors.New("storage engine closed")
	// ErrStoreOpen is returned by Open when the engine already has an open
	// store for the same topic and partition.
	ErrStoreOpen = errors.New("store already open")
	// ErrStoreNotOpen is returned by a Store whose Open has not succeeded yet.
	ErrStoreNotOpen = errors.New("store not open")
	// ErrStoreClosed is returned by writes to a closed Store.
	ErrStoreClosed = errors.New("store closed")
	// ErrUnknownIndex is returned by Lookup and Count for an index not
	// configured for the store's topic.
	ErrUnknownIndex = errors.New("unknown index")
	// ErrInvalidTerm is returned by Lookup and Count for a term containing a
	// NUL byte, which the index key layout cannot hold.
	ErrInvalidTerm = errors.New("invalid index term")
)

// Watermarks reports a topic partition's oldest offset and high watermark (next offset to be written).
type Watermarks interface {
	Watermarks(topic string, partition int32) (oldest, hwm int64, err error)
}

// WatermarksFunc adapts a function to the Watermarks interface.
type WatermarksFunc func(topic string, partition int32) (oldest, hwm int64, err error)

// Watermarks calls f.
func (f WatermarksFunc) Watermarks(topic string, partition int32) (int64, int64, error) {
	return f(topic, partition)
}

// SaramaWatermarks reads watermarks through a sarama client, which asks the
// partition leader on every call. The client stays owned by the caller.
func SaramaWatermarks(client sarama.Client) Watermarks {
	return WatermarksFunc(func(topic string, partition int32) (int64, int64, error) {
		oldest, err := client.GetOffset(topic, partition, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, fmt.Errorf("get oldest offset of %s/%d: %w", topic, partition, err)
		}
		hwm, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, fmt.Errorf("get high watermark of %s/%d: %w", topic, partition, err)
		}
		return oldest, hwm, nil
	})
}

// Index derives secondary-index terms from a stored record.
//
// Terms is called by the store's single writer for every value written, so
// it must be a pure function of its arguments; it must not keep value. The
// terms are stored with the value, and a write that replaces or deletes it
// removes those (the value being replaced is not decoded again). A term containing a NUL byte cannot be indexed and is
// skipped with a warning; a Terms that panics indexes the record under no
// term, with a warning, so that one bad record cannot stop a restore.
type Index struct {
	Name  string
	Terms func(key string, value []byte) []string
}

// EngineOption configures an Engine.
type EngineOption func(*engineOptions)

type engineOptions struct {
	logger           *slog.Logger
	watermarks       Watermarks
	restorer         Restorer
	indexes          map[string][]Index
	seen             map[string]*Seen
	parts            map[string]*Parts
	batchSize        int
	progressInterval time.Duration
	memory           storeMemory
	onFault          func(topic string, partition int32, err error)
	errs             []error
}

// storeMemory is what one store's LevelDB may hold in memory.
type storeMemory struct {
	writeBuffer int // the memtable, allocated at this size
	blockCache  int
}

// Bounds of a store's share of the memory budget. Below 1 MiB a memtable
// flushes a small table for every restore batch; above 8 MiB restores got no
// faster (measured with BenchmarkRestore).
const (
	storeMinWriteBuffer = 1 << 20
	storeMaxWriteBuffer = 8 << 20
	storeMinBlockCache  = 256 << 10
	storeMaxBlockCache  = 8 << 20
)

func memoryPerStore(budget, stores int) storeMemory {
	per := budget / max(stores, 1)
	return storeMemory{
		writeBuffer: min(max(per*3/4, storeMinWriteBuffer), storeMaxWriteBuffer),
		blockCache:  min(max(per/4, storeMinBlockCache), storeMaxBlockCache),
	}
}

// WithLogger sets the engine's logger; nil discards.
func WithLogger(l *slog.Logger) EngineOption {
	return func(o *engineOptions) { o.logger = l }
}

// WithWatermarks lets every store compare its offset with the changelog when
// it opens and rebuild when the local state is ahead of it. nil (the default)
// disables the check.
func WithWatermarks(w Watermarks) EngineOption {
	return func(o *engineOptions) { o.watermarks = w }
}

// WithIndex maintains idx for every store of topic. It may be given several
// times; index names must be unique per topic, non-empty and free of NUL bytes.
func WithIndex(topic string, idx Index) EngineOption {
	return func(o *engineOptions) {
		switch {
		case idx.Name == "" || strings.IndexByte(idx.Name, 0) >= 0:
			o.errs = append(o.errs, fmt.Errorf("index %q of topic %s: name must be non-empty without NUL bytes", idx.Name, topic))
			return
		case idx.Terms == nil:
			o.errs = append(o.errs, fmt.Errorf("index %q of topic %s: nil Terms", idx.Name, topic))
			return
		}
		for _, have := range o.indexes[topic] {
			if have.Name == idx.Name {
				o.errs = append(o.errs, fmt.Errorf("index %q of topic %s given twice", idx.Name, topic))
				return
			}
		}
		if o.indexes == nil {
			o.indexes = make(map[string][]Index)
		}
		o.indexes[topic] = append(o.indexes[topic], idx)
	}
}

// WithMemory gives each store an equal share of budget bytes, as if stores
// stores shared it (a process holds every partition of every table of
// every engine it runs: pass them all): three quarters for the LevelDB
// memtable, a quarter for its block cache, the memtable between 1 and 8 MiB
// whatever the budget. Without it every store gets the most: an 8 MiB
// memtable and an 8 MiB block cache. goleveldb allocates a memtable at its
// full size, so this is what bounds resident memory, however long the
// changelog grows.
func WithMemory(budget, stores int) EngineOption {
	return func(o *engineOptions) {
		if budget <= 0 || stores <= 0 {
			o.errs = append(o.errs, fmt.Errorf("memory budget %d for %d stores: both must be positive", budget, stores))
			return
		}
		o.memory = memoryPerStore(budget, stores)
	}
}

// WithBatchSize sets the most records a restore stages per LevelDB batch
// (default DefaultBatchSize). A batch is committed earlier once the writes
// it holds (each key's last value) reach about 1 MiB.
func WithBatchSize(records int) EngineOption {
	return func(o *engineOptions) {
		if records <= 0 {
			o.errs = append(o.errs, fmt.Errorf("batch size %d: must be positive", records))
			return
		}
		o.batchSize = records
	}
}

// WithProgressInterval sets how often a restoring store logs its progress
// (default DefaultProgressInterval).
func WithProgressInterval(d time.Duration) EngineOption {
	return func(o *engineOptions) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("progress interval %v: must be positive", d))
			return
		}
		o.progressInterval = d
	}
}

// Engine is the LevelDB storage engine for goka tables. It builds one Store
// per topic partition, each in its own LevelDB under <dir>/<topic>.<partition>,
// and keeps track of the stores that are open so that readers (views,
// queries) can reach them.
//
// Restores are batched and resumable: a restore commits its writes every
// batch together with the changelog offset they reach, so a process killed
// halfway continues from there. With a Restorer (WithRestorer) a store
// restores itself in Open, reading the changelog in bulk up to the high
// watermark, and leaves goka's recovery only what arrived since. During
// processing a record costs one LevelDB write, which carries the latest
// acknowledged changelog offset. With WithSeen a table's stores also keep
// the event ids its writes applied, for a horizon (see Seen); with
// WithParts its values are kept in parts, each value saying what it
// changed (see Parts).
//
// All methods of Engine are safe for concurrent use. Stores are keyed by
// topic and partition, so one engine can serve several goka components as
// long as they hold different tables; two components holding the same table
// (a processor and a view of its table) need engines in different
// directories. Close the engine after the components using it have stopped.
type Engine struct {
	dir  string
	opts engineOptions

	mu sync.Mutex
	// stores holds the stores being opened (not yet visible to Store and
	// Stores) and the open ones.
	stores map[engineStoreID]engineEntry
	closed bool
	// brokenStores are the stores found broken in this process, with the
	// reason: the next Open rebuilds them even without their marker file.
	brokenStores map[engineStoreID]string

	broken, failedWrites, rebuilt atomic.Int64
}

type engineEntry struct {
	store *Store
	open  bool
}

type engineStoreID struct {
	topic     string
	partition int32
}

// NewEngine returns an engine keeping its stores under dir, which is created
// if missing. dir is required.
func NewEngine(dir string, opts ...EngineOption) (*Engine, error) {
	if dir == "" {
		return nil, errors.New("new storage engine: directory required")
	}
	o := engineOptions{
		batchSize:        DefaultBatchSize,
		progressInterval: DefaultProgressInterval,
		memory:           storeMemory{writeBuffer: storeMaxWriteBuffer, blockCache: storeMaxBlockCache},
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.restorer != nil && o.watermarks == nil {
		o.errs = append(o.errs, errors.New("a restorer needs watermarks (WithWatermarks) to know where the changelog ends"))
	}
	for topic, sn := range o.seen {
		if sn.Topic != "" && o.restorer == nil {
			o.errs = append(o.errs, fmt.Errorf("seen ids of topic %s: the ids topic %s needs a restorer (WithRestorer)", topic, sn.Topic))
		}
	}
	for topic, p := range o.parts {
		if p.Topic != "" && o.restorer == nil {
			o.errs = append(o.errs, fmt.Errorf("parts of topic %s: the parts topic %s needs a restorer (WithRestorer)", topic, p.Topic))
		}
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, fmt.Errorf("new storage engine: %w", err)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("new storage engine: %w", err)
	}
	return &Engine{dir: dir, opts: o, stores: make(map[engineStoreID]engineEntry)}, nil
}

// Builder returns the goka storage builder of the engine, for
// goka.WithStorageBuilder and goka.WithViewStorageBuilder. The stores it
// builds open their LevelDB in Open, as goka calls it.
func (e *Engine) Builder() storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return e.newStore(topic, partition)
	}
}

func (e *Engine) newStore(topic string, partition int32) (*Store, error) {
	if topic == "" || topic == "." || topic == ".." || strings.ContainsAny(topic, `/\`) || partition < 0 {
		return nil, fmt.Errorf("build store %s/%d: invalid topic or partition", topic, partition)
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("build store %s/%d: %w", topic, partition, ErrEngineClosed)
	}
	return &Store{
		engine:    e,
		topic:     topic,
		partition: partition,
		path:      filepath.Join(e.dir, fmt.Sprintf("%s.%d", topic, partition)),
		indexes:   e.opts.indexes[topic],
		seen:      e.opts.seen[topic],
		parts:     e.opts.parts[topic],
		log:       e.opts.logger.With("topic", topic, "partition", partition),
	}, nil
}

// Store returns the currently open store of a topic partition, if any.
func (e *Engine) Store(topic string, partition int32) (*Store, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.stores[engineStoreID{topic, partition}]
	if !ok || !en.open {
		return nil, false
	}
	return en.store, true
}

// Stores returns the open stores of a topic, sorted by partition.
func (e *Engine) Stores(topic string) []*Store {
	e.mu.Lock()
	var out []*Store
	for id, en := range e.stores {
		if id.topic == topic && en.open {
			out = append(out, en.store)
		}
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b *Store) int { return int(a.partition) - int(b.partition) })
	return out
}

// Close closes the stores still open and makes the engine refuse new ones.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	open := make([]*Store, 0, len(e.stores))
	for _, en := range e.stores {
		open = append(open, en.store)
	}
	e.mu.Unlock()

	var errs []error
	for _, s := range open {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close storage engine: %w", err)
	}
	return nil
}

func (e *Engine) register(s *Store) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrEngineClosed
	}
	id := engineStoreID{s.topic, s.partition}
	if _, ok := e.stores[id]; ok {
		return ErrStoreOpen
	}
	e.stores[id] = engineEntry{store: s}
	return nil
}

// publish makes a registered store visible once it is open.
func (e *Engine) publish(s *Store) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := engineStoreID{s.topic, s.partition}
	if e.stores[id].store == s {
		e.stores[id] = engineEntry{store: s, open: true}
	}
}

func (e *Engine) unregister(s *Store) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := engineStoreID{s.topic, s.partition}
	if e.stores[id].store == s {
		delete(e.stores, id)
	}
}
