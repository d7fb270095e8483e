package tables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkRestore measures how fast a goka view restores a changelog
// (not compacted, ~200-byte JSON values, 8 partitions) from an in-process
// kfake broker into goka's default LevelDB storage, into this engine
// restored by goka ("engine") or by itself through a KafkaRestorer in Open
// ("engine-restorer"), and into goka's in-memory storage and a plain map
// (the ceilings of goka's recovery). The timer runs from View.Run until the
// view is recovered; the CPU time the process used meanwhile (kfake
// included) is reported too, as it is far less noisy on a shared machine.
//
//	go test -run '^$' -bench BenchmarkRestore -benchtime 1x ./tables/
//
// STREAMFOLD_BENCH_RECORDS sets the changelog size (default 1,000,000),
// STREAMFOLD_BENCH_BUILDERS a comma-separated subset of the builders.
func BenchmarkRestore(b *testing.B) {
	records := restoreBenchRecords(b)
	for _, keys := range []int{10_000, 1_000_000} {
		keys = min(keys, records)
		b.Run(fmt.Sprintf("records=%d/keys=%d", records, keys), func(b *testing.B) {
			restoreBench(b, records, keys)
		})
	}
}

const restoreBenchTopic = "bench-table"

// restoreBenchRecords is STREAMFOLD_BENCH_RECORDS, the changelog size
// (default 1,000,000).
func restoreBenchRecords(b *testing.B) int {
	v := os.Getenv("STREAMFOLD_BENCH_RECORDS")
	if v == "" {
		return 1_000_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("STREAMFOLD_BENCH_RECORDS=%q: want a positive integer", v)
	}
	return n
}

func restoreBench(b *testing.B, records, keys int) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, restoreBenchTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	restoreBenchProduce(b, addrs, records, keys)

	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V3_6_0_0
	if v := os.Getenv("STREAMFOLD_BENCH_CHANNEL_BUFFER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("STREAMFOLD_BENCH_CHANNEL_BUFFER=%q: want a positive integer", v)
		}
		cfg.ChannelBufferSize = n
	}

	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()

	builders := []struct {
		name  string
		build func(dir string) (storage.Builder, func())
	}{
		{"goka-default", func(dir string) (storage.Builder, func()) {
			return storage.DefaultBuilder(dir), func() {}
		}},
		{"engine", func(dir string) (storage.Builder, func()) {
			e, err := NewEngine(dir)
			if err != nil {
				b.Fatal(err)
			}
			return e.Builder(), func() { _ = e.Close() }
		}},
		{"engine-restorer", func(dir string) (storage.Builder, func()) {
			e, err := NewEngine(dir, WithWatermarks(SaramaWatermarks(client)),
				WithRestorer(NewKafkaRestorer(addrs, "bench-restore")), WithLogger(restoreBenchLogger()))
			if err != nil {
				b.Fatal(err)
			}
			return e.Builder(), func() { _ = e.Close() }
		}},
		{"memory", func(string) (storage.Builder, func()) {
			return storage.MemoryBuilder(), func() {}
		}},
		{"map", func(string) (storage.Builder, func()) {
			return func(string, int32) (storage.Storage, error) { return newRestoreBenchMap(), nil }, func() {}
		}},
	}
	// goka's memory storage sorts its key slice on every new key, which is
	// quadratic: with a million keys it would run for many minutes. "map"
	// (a plain locked map) is the storage-free ceiling of goka's recovery
	// in every case; "engine-restorer" bypasses that recovery.
	only := map[string]bool{"goka-default": true, "engine": true, "engine-restorer": true, "memory": keys <= 100_000, "map": true}
	if v := os.Getenv("STREAMFOLD_BENCH_BUILDERS"); v != "" {
		only = map[string]bool{}
		for _, name := range strings.Split(v, ",") {
			only[name] = true
		}
	}
	rates, cpus, rssGrowth := map[string]float64{}, map[string]float64{}, map[string]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, bl := range builders {
			if !only[bl.name] {
				continue
			}
			builder, done := bl.build(b.TempDir())
			stopRSS := restoreBenchPeakRSS()
			stopProfile := restoreBenchProfile(b, bl.name, keys)
			cpu := restoreBenchCPU()
			d := restoreBenchView(b, addrs, cfg, builder)
			stopProfile()
			done()
			cpu = restoreBenchCPU() - cpu
			rss := stopRSS()
			rates[bl.name] += float64(records) / d.Seconds() / float64(b.N)
			cpus[bl.name] += cpu.Seconds() / float64(b.N)
			rssGrowth[bl.name] = max(rssGrowth[bl.name], rss)
		}
	}
	line := fmt.Sprintf("records=%d keys=%d:", records, keys)
	for _, bl := range builders {
		if r, ok := rates[bl.name]; ok {
			b.ReportMetric(r, bl.name+"-rec/s")
			b.ReportMetric(cpus[bl.name], bl.name+"-cpu-s")
			line += fmt.Sprintf(" %s %.0f rec/s (%.2f s CPU", bl.name, r, cpus[bl.name])
			if g, ok := rssGrowth[bl.name]; ok && g > 0 {
				b.ReportMetric(g, bl.name+"-rss-growth-MB")
				line += fmt.Sprintf(", RSS +%.0f MB", g)
			}
			line += ");"
		}
	}
	for _, eng := range []string{"engine", "engine-restorer"} {
		for _, base := range []string{"goka-default", "memory", "map"} {
			if r, ok := rates[base]; ok && rates[eng] > 0 {
				b.ReportMetric(rates[eng]/r, eng+"/"+base)
				line += fmt.Sprintf(" %s/%s %.2fx;", eng, base, rates[eng]/r)
			}
		}
	}
	b.Log(line)
}

// restoreBenchLogger logs the engine's restore (per partition: records,
// duration, rate) to stderr when STREAMFOLD_BENCH_LOG is set, else nowhere.
func restoreBenchLogger() *slog.Logger {
	if os.Getenv("STREAMFOLD_BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// restoreBenchPeakRSS starts sampling the process's resident memory every
// 10 ms, after a garbage collection that returns the produce phase's
// garbage to the OS; the returned stop gives how far the peak rose above
// the start, in MiB (0 where not measured). The broker's log is in the
// start: what rises is the restore's (the client's buffers, the store's
// batches and memtables, or goka's in-memory storages).
func restoreBenchPeakRSS() (stop func() float64) {
	debug.FreeOSMemory()
	start := restoreBenchRSS()
	peak := start
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, restoreBenchRSS())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-finished
		if start == 0 {
			return 0
		}
		return float64(peak-start) / (1 << 20)
	}
}

// restoreBenchProfile profiles the restore alone, without the produce
// phase, when STREAMFOLD_BENCH_CPUPROFILE names a file prefix:
// <prefix>-<builder>-<keys>.prof.
func restoreBenchProfile(b *testing.B, builder string, keys int) func() {
	prefix := os.Getenv("STREAMFOLD_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-%s-%d.prof", prefix, builder, keys))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// restoreBenchProduce writes records values over keys distinct keys.
func restoreBenchProduce(b *testing.B, addrs []string, records, keys int) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.DefaultProduceTopic(restoreBenchTopic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(100_000),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var (
		wg      sync.WaitGroup
		failed  atomic.Int64
		lastErr atomic.Value
	)
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			lastErr.Store(err)
		}
		wg.Done()
	}
	ctx := context.Background()
	for i := range records {
		key, value := restoreBenchRecord(i, keys)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: key, Value: value}, cb)
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed to produce: %v", n, lastErr.Load())
	}
}

// restoreBenchRecord returns the key and value of the i-th changelog
// record over keys distinct keys.
func restoreBenchRecord(i, keys int) (key, value []byte) {
	k := i % keys
	key = fmt.Appendf(nil, "customer-%07d", k)
	value = fmt.Appendf(nil, `{"id":"customer-%07d","seq":%d,"name":"Customer %d","email":"customer%d@example.com","address":{"street":"%d Main Street","city":"Springfield","zip":"%05d"},"balance":%d.%02d,"status":"active"}`,
		k, i, k, k, k%999, k%100000, i%100000, i%100)
	return key, value
}

// BenchmarkRestoreStore measures the storage side of a restore alone: 8
// stores of one engine restore in parallel from an in-memory changelog
// (the records of BenchmarkRestore, split over the partitions by murmur2
// like a producer would, passed on in chunks of 4,096 like the
// KafkaRestorer), with no broker and no Kafka client. It reports the CPU
// time of the process per record, steadier than BenchmarkRestore's on a
// shared machine, to weigh changes to staging and committing, and how far
// resident memory rose during the restore.
//
//	go test -run '^$' -bench BenchmarkRestoreStore -benchtime 3x ./tables/
//
// STREAMFOLD_BENCH_RECORDS sets the changelog size (default 1,000,000),
// over 10,000 keys and over as many keys as records.
func BenchmarkRestoreStore(b *testing.B) {
	records := restoreBenchRecords(b)
	const partitions = 8
	for _, keys := range []int{10_000, records} {
		keys = min(keys, records)
		b.Run(fmt.Sprintf("records=%d/keys=%d", records, keys), func(b *testing.B) {
			// Each partition's log is one buffer of key-value pairs,
			// outside the Go heap, and their ends: the garbage collector
			// neither scans a million records the store never sees nor
			// lets the heap grow by their size, which would hide the
			// store's own memory in the RSS measured.
			type benchLog struct {
				data []byte
				ends []int // key end, value end, per record
			}
			logs := make([]benchLog, partitions)
			for p := range logs {
				// A record takes less than 256 bytes; a partition gets
				// about an eighth of them.
				logs[p].data = restoreBenchBuffer(256 * (records/partitions + records/10 + 100))
			}
			for i := range records {
				key, value := restoreBenchRecord(i, keys)
				l := &logs[(Murmur2(key)&0x7fffffff)%partitions]
				l.data = append(l.data, key...)
				l.ends = append(l.ends, len(l.data))
				l.data = append(l.data, value...)
				l.ends = append(l.ends, len(l.data))
			}
			r := RestorerFunc(func(ctx context.Context, _ string, p int32, from, to int64, apply func([]Record) error) error {
				l := &logs[p]
				batch := make([]Record, 0, 4096)
				for off := from; off < to; off++ {
					start := 0
					if off > 0 {
						start = l.ends[2*off-1]
					}
					k, v := l.ends[2*off], l.ends[2*off+1]
					batch = append(batch, Record{Key: l.data[start:k:k], Value: l.data[k:v:v], Offset: off})
					if len(batch) == cap(batch) || off == to-1 {
						if err := apply(batch); err != nil {
							return err
						}
						batch = batch[:0]
					}
				}
				return nil
			})
			wm := WatermarksFunc(func(_ string, p int32) (int64, int64, error) { return 0, int64(len(logs[p].ends) / 2), nil })
			var cpu, elapsed time.Duration
			var rssGrowth float64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				e, err := NewEngine(b.TempDir(), WithWatermarks(wm), WithRestorer(r))
				if err != nil {
					b.Fatal(err)
				}
				stopRSS := restoreBenchPeakRSS()
				b.StartTimer()
				stopProfile := restoreBenchProfile(b, "store", keys)
				c, start := restoreBenchCPU(), time.Now()
				var wg sync.WaitGroup
				errs := make([]error, partitions)
				for p := range int32(partitions) {
					wg.Go(func() {
						st, err := e.Builder()(restoreBenchTopic, p)
						if err == nil {
							err = st.Open()
						}
						if err == nil {
							err = st.MarkRecovered()
						}
						errs[p] = err
					})
				}
				wg.Wait()
				elapsed += time.Since(start)
				cpu += restoreBenchCPU() - c
				stopProfile()
				rssGrowth = max(rssGrowth, stopRSS())
				b.StopTimer()
				if err := errors.Join(append(errs, e.Close())...); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/float64(records), "cpu-µs/rec")
			b.ReportMetric(float64(records)*float64(b.N)/elapsed.Seconds(), "rec/s")
			b.ReportMetric(rssGrowth, "rss-growth-MB")
		})
	}
}

// restoreBenchView times a view from Run until it is recovered.
func restoreBenchView(b *testing.B, addrs []string, cfg *sarama.Config, builder storage.Builder) time.Duration {
	view, err := goka.NewView(addrs, goka.Table(restoreBenchTopic), new(codec.Bytes),
		goka.WithViewStorageBuilder(builder),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, goka.NewTopicManagerConfig())),
		goka.WithViewLogger(log.New(io.Discard, "", 0)),
	)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- view.Run(ctx) }()
	select {
	case <-view.WaitRunning():
	case err := <-done:
		cancel()
		b.Fatalf("view stopped before recovering: %v", err)
	}
	d := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return d
}

// restoreBenchMap is the cheapest storage goka can restore into: a locked
// map that keeps no order. Iterators are not needed to restore.
type restoreBenchMap struct {
	mu     sync.RWMutex
	m      map[string][]byte
	offset int64
}

func newRestoreBenchMap() *restoreBenchMap {
	return &restoreBenchMap{m: map[string][]byte{}, offset: -1}
}

func (s *restoreBenchMap) Open() error  { return nil }
func (s *restoreBenchMap) Close() error { return nil }

func (s *restoreBenchMap) Has(key string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[key]
	return ok, nil
}

func (s *restoreBenchMap) Get(key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[key], nil
}

func (s *restoreBenchMap) Set(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = value
	return nil
}

func (s *restoreBenchMap) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *restoreBenchMap) GetOffset(def int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.offset < 0 {
		return def, nil
	}
	return s.offset, nil
}

func (s *restoreBenchMap) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset = offset
	return nil
}

func (s *restoreBenchMap) MarkRecovered() error { return nil }

func (s *restoreBenchMap) Iterator() (storage.Iterator, error) {
	return nil, errors.New("restore bench map: no iterator")
}

func (s *restoreBenchMap) IteratorWithRange([]byte, []byte) (storage.Iterator, error) {
	return nil, errors.New("restore bench map: no iterator")
}
