package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// The benchmarks of the shop, end to end on the embedded broker. They run
// whole scenarios once per invocation (use -benchtime=1x) and report their
// figures with ReportMetric and a summary log line; ns/op is only the time
// of the measured part and means little on its own. See docs/BENCHMARKS.md.
//
// Sizes come from the environment so that a quick run stays quick:
//
//	STREAMFOLD_BENCH_EVENTS    events folded by BenchmarkFoldCustomers (1,000,000)
//	STREAMFOLD_BENCH_KEYS      customers (10,000)
//	STREAMFOLD_BENCH_REQUESTS  GETs per server in BenchmarkGetCustomer (200,000)
//	STREAMFOLD_BENCH_CLIENTS   concurrent keep-alive clients (32)
//	STREAMFOLD_BENCH_BARE_PROCESS  1: BenchmarkGetCustomer's bare server runs
//	                           in a process of its own, as the shop does

const benchPartitions = 8

// benchPatience bounds every wait of the benchmarks: reached only when
// something is broken, never a performance threshold.
const benchPatience = 20 * time.Minute

// BenchmarkFoldCustomers folds customer events (one CustomerRegistered per
// customer, then CustomerUpdated for random customers) from customer-events
// on the embedded broker into a table, twice over the same topic: with the
// shop's customers group (the group shop.Topology declares, alone in a
// topology, through streamfold.Open + Runtime.Run) and with a plain goka
// processor doing the same fold (shop.EvolveCustomer) with goka's defaults.
// The events are produced before either runs; each fold is timed from Run
// until its handler has seen every event.
//
//	go test -run '^$' -bench BenchmarkFoldCustomers -benchtime=1x -timeout 30m ./bench/
//
// The profile of each side carries the label fold=framework or fold=goka
// (go tool pprof -tagfocus fold=framework); the broker's goroutines carry none.
func BenchmarkFoldCustomers(b *testing.B) {
	events := benchEnvInt(b, "STREAMFOLD_BENCH_EVENTS", 1_000_000)
	keys := min(benchEnvInt(b, "STREAMFOLD_BENCH_KEYS", 10_000), events)
	var framework, plain benchFold
	b.StopTimer()
	for range b.N {
		f, g := benchFoldOnce(b, events, keys)
		framework.add(f, b.N)
		plain.add(g, b.N)
	}
	ratio, steadyRatio := benchReportVersus(b, framework, plain, "ev")
	b.Logf("fold events=%d keys=%d partitions=%d: framework %.0f ev/s (%.2fs from Run, first record after %.2fs, steady %.0f ev/s, committed after %.2fs, %.1f µs CPU/event, stored values %d B); "+
		"goka %.0f ev/s (%.2fs from Run, first record after %.2fs, steady %.0f ev/s, committed after %.2fs, %.1f µs CPU/event, stored values %d B); framework/goka %.2fx (steady %.2fx)",
		events, keys, benchPartitions,
		framework.rate(), framework.total.Seconds(), framework.startup.Seconds(), framework.steadyRate(), framework.committed.Seconds(), framework.cpuPerEvent(), framework.valueBytes,
		plain.rate(), plain.total.Seconds(), plain.startup.Seconds(), plain.steadyRate(), plain.committed.Seconds(), plain.cpuPerEvent(), plain.valueBytes,
		ratio, steadyRatio)
}

// benchReportVersus reports the rates, their ratios and the CPU per item
// (unit: "ev", "cmd") of the framework's and plain goka's runs.
func benchReportVersus(b *testing.B, framework, plain benchFold, unit string) (ratio, steadyRatio float64) {
	ratio = framework.rate() / plain.rate()
	steadyRatio = framework.steadyRate() / plain.steadyRate()
	b.ReportMetric(framework.rate(), "framework-"+unit+"/s")
	b.ReportMetric(plain.rate(), "goka-"+unit+"/s")
	b.ReportMetric(ratio, "framework/goka")
	b.ReportMetric(framework.steadyRate(), "framework-steady-"+unit+"/s")
	b.ReportMetric(plain.steadyRate(), "goka-steady-"+unit+"/s")
	b.ReportMetric(steadyRatio, "framework/goka-steady")
	b.ReportMetric(framework.cpuPerEvent(), "framework-cpu-µs/"+unit)
	b.ReportMetric(plain.cpuPerEvent(), "goka-cpu-µs/"+unit)
	if framework.rssGrowth != 0 || plain.rssGrowth != 0 {
		b.ReportMetric(framework.rssGrowth, "framework-rss-growth-MB")
		b.ReportMetric(plain.rssGrowth, "goka-rss-growth-MB")
	}
	return ratio, steadyRatio
}

// benchFold is the timing of one fold: from Run until the handler had seen
// every event (total), until it saw the first (startup), and until the
// group's committed offsets reached the end of the topic (committed).
type benchFold struct {
	events                    int
	total, startup, committed time.Duration
	// cpu is the CPU time the whole process (broker included) used from Run
	// until the handler had seen every event.
	cpu time.Duration
	// valueBytes is the mean size of a stored table value (sampled).
	valueBytes int
	// rssGrowth is how much the process's resident memory grew during the
	// fold, in MB (0: not measured). The broker's log, produced before, is
	// already resident: what grows is the fold's.
	rssGrowth float64
}

func (f benchFold) rate() float64 { return float64(f.events) / f.total.Seconds() }

// cpuPerEvent is the process's CPU time per event, in microseconds: unlike
// the rates, it hardly moves when something else competes for the cores.
func (f benchFold) cpuPerEvent() float64 {
	return float64(f.cpu.Microseconds()) / float64(f.events)
}

// steadyRate leaves out the start (group join, store open, first fetch).
func (f benchFold) steadyRate() float64 {
	return float64(f.events) / (f.total - f.startup).Seconds()
}

// add averages n folds.
func (f *benchFold) add(g benchFold, n int) {
	f.events = g.events
	f.total += g.total / time.Duration(n)
	f.startup += g.startup / time.Duration(n)
	f.committed += g.committed / time.Duration(n)
	f.cpu += g.cpu / time.Duration(n)
	f.valueBytes += g.valueBytes / n
	f.rssGrowth += g.rssGrowth / float64(n)
}

func benchFoldOnce(b *testing.B, events, keys int) (framework, plain benchFold) {
	broker := benchBroker(b)
	defer broker.Close() // each fold gets its own broker; -benchtime=Nx must not keep N of them
	addrs := broker.Addrs()
	ctx := context.Background()

	// Open creates customer-events (and the group's topics) with the shop's
	// configs; nothing runs until Run.
	rt := benchOpen(b, ctx, addrs, benchCustomersTopology(b))
	defer rt.Close()

	versions := benchProduceCustomerEvents(b, addrs, events, keys)
	ends := benchEndOffsets(b, addrs, shop.CustomerEvents.Name)
	if sum := benchSum(ends); sum != int64(events) {
		b.Fatalf("customer-events holds %d records, want %d", sum, events)
	}

	framework = benchFoldFramework(b, rt, addrs, ends, events, versions)
	plain = benchFoldGoka(b, addrs, ends, events, versions)
	return framework, plain
}

// benchCustomersTopology is the shop's topology reduced to its customers
// group, exactly as shop.Topology declares it. The shop's other groups that
// read customer-events (customer-carts) would fold the same events at the
// same time and halve what the customers group gets of two cores.
func benchCustomersTopology(b *testing.B) *streamfold.Topology {
	for _, g := range shop.Topology(benchPartitions, nil).Groups() {
		if g.Name() == shop.CustomersGroup {
			return streamfold.NewTopology(streamfold.WithPartitions(benchPartitions)).
				AddGroup(g).
				WrittenBy(shop.CustomerEvents, "bench").
				ReadBy(shop.CustomersTable, "bench")
		}
	}
	b.Fatalf("shop.Topology has no group %q", shop.CustomersGroup)
	return nil
}

// benchFoldFramework runs the shop's customers group until it has folded
// every event, checks the table and stops the runtime.
func benchFoldFramework(b *testing.B, rt *streamfold.Runtime, addrs []string, ends map[int32]int64, events int, versions map[string]int64) benchFold {
	handled := func() int64 {
		s := rt.Stats()[shop.CustomersGroup]
		n := s.Applied + s.Duplicates + s.Deleted
		for _, d := range s.DeadLetters {
			n += d
		}
		return n
	}
	runtime.GC()
	b.StartTimer()
	start, cpu, rss := time.Now(), benchProcessCPU(), rssMB(b, os.Getpid())
	run := benchStart(pprof.Labels("fold", "framework"), rt.Run)
	defer run.stop()
	fold := benchAwaitFold(b, start, run, events, func() int64 { return rt.Stats()[shop.CustomersGroup].Processed }, handled)
	fold.cpu = benchProcessCPU() - cpu
	fold.rssGrowth = rssMB(b, os.Getpid()) - rss
	b.StopTimer()

	s := rt.Stats()[shop.CustomersGroup]
	if s.Applied != int64(events) || s.Duplicates != 0 || s.Deleted != 0 || len(s.DeadLetters) != 0 {
		b.Errorf("framework fold: applied %d of %d, duplicates %d, deleted %d, dead letters %v", s.Applied, events, s.Duplicates, s.Deleted, s.DeadLetters)
	}
	view := views.New(rt, shop.CustomersTable)
	fold.valueBytes = benchCheckVersions(b, "framework", versions, func(key string) (shop.Customer, int, error) {
		raw, err := view.GetRaw(context.Background(), key)
		if err != nil {
			return shop.Customer{}, 0, err
		}
		c, err := view.Get(context.Background(), key)
		return c, len(raw), err
	})
	fold.committed = benchAwaitCommitted(b, addrs, shop.CustomersGroup, shop.CustomerEvents.Name, ends, run).Sub(start)
	if err := run.stop(); err != nil {
		b.Errorf("framework run: %v", err)
	}
	return fold
}

// benchGokaGroup is the plain goka processor's group (and table prefix).
const benchGokaGroup = "bench-goka-customers"

// benchFoldGoka runs a plain goka processor doing the shop's customer fold
// until it has folded every event, checks its table and stops it. It uses
// goka's defaults except what it needs to work here: start from the oldest
// offset (goka's default, newest, would see nothing), the protocol version,
// replication 1, a storage directory, and murmur2 so that Get finds keys
// where Kafka's partitioner put them.
func benchFoldGoka(b *testing.B, addrs []string, ends map[int32]int64, events int, versions map[string]int64) benchFold {
	var processed, handled, failed atomic.Int64
	fold := func(ctx goka.Context, msg any) {
		processed.Add(1)
		defer handled.Add(1)
		ev, ok := msg.(codecs.Event)
		if !ok {
			failed.Add(1)
			return
		}
		var cur *shop.Customer
		if v, ok := ctx.Value().(shop.Customer); ok {
			cur = &v
		}
		next, err := shop.EvolveCustomer(cur, ev)
		switch {
		case err != nil:
			failed.Add(1)
		case next == nil:
			ctx.Delete()
		default:
			ctx.SetValue(*next)
		}
	}
	graph := goka.DefineGroup(benchGokaGroup,
		goka.Input(goka.Stream(shop.CustomerEvents.Name), plainJSON[codecs.Event]{}, fold),
		goka.Persist(plainJSON[shop.Customer]{}),
	)
	p := benchGokaProcessor(b, addrs, graph)
	runtime.GC()
	b.StartTimer()
	start, cpu, rss := time.Now(), benchProcessCPU(), rssMB(b, os.Getpid())
	run := benchStart(pprof.Labels("fold", "goka"), p.Run)
	defer run.stop()
	result := benchAwaitFold(b, start, run, events, processed.Load, handled.Load)
	result.cpu = benchProcessCPU() - cpu
	result.rssGrowth = rssMB(b, os.Getpid()) - rss
	b.StopTimer()

	if n := failed.Load(); n > 0 {
		b.Errorf("goka fold: %d of %d events failed", n, events)
	}
	result.valueBytes = benchCheckVersions(b, "goka", versions, func(key string) (shop.Customer, int, error) {
		v, err := p.Get(key)
		if err != nil {
			return shop.Customer{}, 0, err
		}
		c, ok := v.(shop.Customer)
		if !ok {
			return shop.Customer{}, 0, fmt.Errorf("goka table holds %T for %q", v, key)
		}
		// What goka stored: its codec's encoding of the value.
		raw, err := codecs.JSON[shop.Customer]{}.Encode(c)
		return c, len(raw), err
	})
	result.committed = benchAwaitCommitted(b, addrs, benchGokaGroup, shop.CustomerEvents.Name, ends, run).Sub(start)
	if err := run.stop(); err != nil {
		b.Errorf("goka run: %v", err)
	}
	return result
}

// benchGokaProcessor is a plain goka processor of graph with goka's
// defaults but for what the embedded broker needs (see benchFoldGoka).
func benchGokaProcessor(b *testing.B, addrs []string, graph *goka.GroupGraph) *goka.Processor {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	p, err := goka.NewProcessor(addrs, graph,
		goka.WithStorageBuilder(storage.DefaultBuilder(b.TempDir())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(benchGokaConfig(), tmc)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(benchGokaConfig())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(benchGokaConfig())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(benchGokaConfig())),
		goka.WithHasher(tables.NewHasher),
		goka.WithLogger(log.New(io.Discard, "", 0)),
	)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchGokaConfig is goka's default sarama config with what the embedded
// broker and an event-sourced input need. Every builder gets its own copy:
// goka's builders set the client id on the config they are given.
func benchGokaConfig() *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = kafkaconf.Version()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// benchAwaitFold polls until handled reaches events, and returns the time
// from start until then and until processed first moved.
func benchAwaitFold(b *testing.B, start time.Time, run *benchRunning, events int, processed, handled func() int64) benchFold {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(benchPatience)
	var startup time.Duration
	for {
		select {
		case <-run.done:
			b.Fatalf("processor stopped after %d of %d events: %v", handled(), events, run.err)
		case <-deadline:
			b.Fatalf("gave up after %v: %d of %d events handled", benchPatience, handled(), events)
		case now := <-tick.C:
			if startup == 0 && processed() > 0 {
				startup = now.Sub(start)
			}
			if handled() >= int64(events) {
				if startup == 0 {
					startup = now.Sub(start)
				}
				return benchFold{events: events, total: now.Sub(start), startup: startup}
			}
		}
	}
}

// benchAwaitCommitted polls the group's committed offsets of topic until
// they reach ends, and returns when that was. sarama commits every second, so this is
// a coarse figure.
func benchAwaitCommitted(b *testing.B, addrs []string, group, topic string, ends map[int32]int64, run *benchRunning) time.Time {
	client, err := sarama.NewClient(addrs, benchSaramaConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	parts := make([]int32, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(benchPatience)
	for {
		select {
		case <-run.done:
			b.Fatalf("group %s stopped before committing: %v", group, run.err)
		case <-deadline:
			b.Fatalf("group %s: offsets not committed after %v", group, benchPatience)
		case now := <-tick.C:
			resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
			if err != nil {
				continue
			}
			caughtUp := true
			for _, p := range parts {
				blk := resp.GetBlock(topic, p)
				if blk == nil || blk.Offset < ends[p] {
					caughtUp = false
					break
				}
			}
			if caughtUp {
				return now
			}
		}
	}
}

// benchCheckVersions checks that a sample of customers carries the version
// the fold must give them (one per event), and returns the mean size of
// their stored values.
func benchCheckVersions(b *testing.B, who string, versions map[string]int64, get func(key string) (c shop.Customer, stored int, err error)) int {
	checked, bytes := 0, 0
	for key, want := range versions {
		if checked == 200 {
			break
		}
		checked++
		c, n, err := get(key)
		if err != nil {
			b.Errorf("%s: get %q: %v", who, key, err)
			continue
		}
		bytes += n
		if c.ID != key || c.Version != want || c.State != shop.StateActive {
			b.Errorf("%s: customer %q is %+v, want version %d", who, key, c, want)
		}
	}
	return bytes / max(checked, 1)
}

// benchProduceCustomerEvents writes events customer events as the shop does
// (structured CloudEvents JSON, keyed by customer id, murmur2-partitioned):
// one CustomerRegistered per customer, then CustomerUpdated for random
// customers. It returns each customer's expected version.
func benchProduceCustomerEvents(b *testing.B, addrs []string, events, keys int) map[string]int64 {
	versions := make(map[string]int64, keys)
	ids := make([]string, keys)
	for k := range ids {
		ids[k] = fmt.Sprintf("customer-%06d", k)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ce codecs.CloudEvents
	pprof.Do(context.Background(), pprof.Labels("phase", "produce"), func(context.Context) {
		benchProduce(b, addrs, shop.CustomerEvents.Name, events, func(i int) (string, []byte) {
			var (
				ev  codecs.Event
				err error
			)
			if i < keys {
				id := ids[i]
				ev, err = codecs.NewEvent(shop.Source, shop.CustomerRegisteredType, id, shop.CustomerRegistered{
					Name:  fmt.Sprintf("Customer %d", i),
					Email: fmt.Sprintf("customer%d@example.com", i),
				})
			} else {
				k := rng.IntN(keys)
				var upd shop.CustomerUpdated
				if i%2 == 0 {
					name := fmt.Sprintf("Customer %d (%d)", k, i)
					upd.Name = &name
				} else {
					email := fmt.Sprintf("customer%d+%d@example.com", k, i)
					upd.Email = &email
				}
				ev, err = codecs.NewEvent(shop.Source, shop.CustomerUpdatedType, ids[k], upd)
			}
			if err != nil {
				b.Fatal(err)
			}
			value, err := ce.Encode(ev)
			if err != nil {
				b.Fatal(err)
			}
			versions[ev.Subject]++
			return ev.Subject, value
		})
	})
	return versions
}

// benchProduce writes n records made by record(i), in order, with franz-go
// (batched, lingering; its default partitioner is Kafka's murmur2) and
// returns once all are acknowledged.
func benchProduce(b *testing.B, addrs []string, topic string, n int, record func(i int) (key string, value []byte)) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.DefaultProduceTopic(topic),
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
	for i := range n {
		key, value := record(i)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: value}, cb)
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records failed to produce: %v", f, n, lastErr.Load())
	}
}

// benchEndOffsets returns the end offset of every partition of topic.
func benchEndOffsets(b *testing.B, addrs []string, topic string) map[int32]int64 {
	client, err := sarama.NewClient(addrs, benchSaramaConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		b.Fatal(err)
	}
	ends := make(map[int32]int64, len(parts))
	for _, p := range parts {
		if ends[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			b.Fatal(err)
		}
	}
	return ends
}

func benchSum(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func benchSaramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = kafkaconf.Version()
	c.ClientID = "bench-admin"
	return c
}

// BenchmarkGetCustomer loads GET /customers/{id} with C concurrent keep-alive
// clients over loopback: first the shop's HTTP API (the shop binary, built
// from cmd/shop and run as a child process on its own embedded broker, whose
// customers-table holds the customers), then a bare net/http server answering
// each request with one LevelDB Get of the same JSON documents. Each serves the
// same number of requests for random customers; the figures are the
// throughput and the p50 and p99 of the client-side latency.
//
//	go test -run '^$' -bench BenchmarkGetCustomer -benchtime=1x ./bench/
//
// In a profile of the benchmark the bare server's goroutines carry
// server=bare and the load generator's load=client; the shop is profiled
// apart (it is another process).
func BenchmarkGetCustomer(b *testing.B) {
	keys := benchEnvInt(b, "STREAMFOLD_BENCH_KEYS", 10_000)
	requests := benchEnvInt(b, "STREAMFOLD_BENCH_REQUESTS", 200_000)
	clients := benchEnvInt(b, "STREAMFOLD_BENCH_CLIENTS", 32)
	b.StopTimer()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kafka := freeAddr(b)
	p := runShopProcess(b, "--data-dir", b.TempDir(), "--kafka-listen", kafka, "--http", "127.0.0.1:0",
		"--partitions", strconv.Itoa(benchPartitions))
	defer benchStopShop(b, p.run)
	ids := make([]string, keys)
	for k := range ids {
		ids[k] = fmt.Sprintf("customer-%06d", k)
	}
	benchProduce(b, []string{kafka}, shop.CustomerEvents.Name, keys, func(i int) (string, []byte) {
		ev, err := codecs.NewEvent(shop.Source, shop.CustomerRegisteredType, ids[i], shop.CustomerRegistered{
			Name:  fmt.Sprintf("Customer %d", i),
			Email: fmt.Sprintf("customer%d@example.com", i),
		})
		if err != nil {
			b.Fatal(err)
		}
		value, err := codecs.CloudEvents{}.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		return ids[i], value
	})
	shopURL := p.base
	probe := newBenchClient(1)
	folded := 0 // customers found so far: a folded customer stays
	benchAwait(b, p.run, "customers folded and served", func() bool {
		for folded < len(ids) && benchStatus(probe, shopURL+"/customers/"+ids[folded]) == http.StatusOK {
			folded++
		}
		return folded == len(ids)
	})

	// The bare server answers with the very documents the shop serves.
	bareDir := b.TempDir()
	db, err := leveldb.OpenFile(bareDir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close() // a second Close is harmless
	fill := newBenchClient(1)
	var batch leveldb.Batch
	for _, id := range ids {
		body, status := benchGet(b, fill, shopURL+"/customers/"+id)
		if status != http.StatusOK {
			b.Fatalf("GET /customers/%s: %d %s", id, status, body)
		}
		batch.Put([]byte(id), body)
	}
	if err := db.Write(&batch, nil); err != nil {
		b.Fatal(err)
	}
	var bareURL string
	var bareCPU func() time.Duration // nil: the bare server shares this process
	if os.Getenv("STREAMFOLD_BENCH_BARE_PROCESS") == "1" {
		// Apart from the load generator, as the shop is: both then pay for
		// crossing processes, and the CPU of each can be read.
		benchMust(b, db.Close())
		bp := runBareProcess(b, bareDir)
		bareURL, bareCPU = bp.base, func() time.Duration { return benchChildCPU(bp.cmd.Process.Pid) }
	} else {
		bareURL = benchServe(b, ctx, "bare", bareHandler(db))
	}

	var shopLoad, bareLoad benchLoad
	for range b.N {
		shopLoad.add(benchGetLoad(b, shopURL, ids, requests, clients, func() time.Duration { return benchChildCPU(p.cmd.Process.Pid) }), b.N)
		bareLoad.add(benchGetLoad(b, bareURL, ids, requests, clients, bareCPU), b.N)
	}
	ratio := shopLoad.throughput / bareLoad.throughput
	b.ReportMetric(shopLoad.throughput, "shop-req/s")
	b.ReportMetric(float64(shopLoad.p50.Microseconds()), "shop-p50-µs")
	b.ReportMetric(float64(shopLoad.p99.Microseconds()), "shop-p99-µs")
	b.ReportMetric(shopLoad.cpuPerRequest, "shop-cpu-µs/req")
	b.ReportMetric(bareLoad.throughput, "bare-req/s")
	b.ReportMetric(float64(bareLoad.p50.Microseconds()), "bare-p50-µs")
	b.ReportMetric(float64(bareLoad.p99.Microseconds()), "bare-p99-µs")
	if bareCPU != nil {
		b.ReportMetric(bareLoad.cpuPerRequest, "bare-cpu-µs/req")
		// The steady figure: the bare server's CPU per request over the shop's.
		b.ReportMetric(bareLoad.cpuPerRequest/shopLoad.cpuPerRequest, "shop/bare-cpu")
	}
	b.ReportMetric(ratio, "shop/bare")
	b.Logf("GET /customers/{id} keys=%d requests=%d clients=%d: shop %.0f req/s p50 %v p99 %v (%.1f µs CPU/request in the shop process); bare net/http+LevelDB %.0f req/s p50 %v p99 %v; shop/bare %.2fx",
		keys, requests, clients,
		shopLoad.throughput, shopLoad.p50, shopLoad.p99, shopLoad.cpuPerRequest,
		bareLoad.throughput, bareLoad.p50, bareLoad.p99, ratio)
}

// bareHandler answers GET /customers/{id} with one LevelDB Get from db.
func bareHandler(db *leveldb.DB) http.Handler {
	bare := http.NewServeMux()
	bare.HandleFunc("GET /customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := db.Get([]byte(r.PathValue("id")), nil)
		switch {
		case errors.Is(err, leveldb.ErrNotFound):
			http.NotFound(w, r)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(v)
	})
	return bare
}

func benchMust(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// benchStatus is the status of GET u, 0 when there was no answer.
func benchStatus(c *http.Client, u string) int {
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// benchLoad is the result of one load run.
type benchLoad struct {
	throughput float64 // requests per second
	p50, p99   time.Duration
	// cpuPerRequest is the server's CPU time per request in µs, when the
	// server runs in a process of its own whose CPU can be read.
	cpuPerRequest float64
}

func (l *benchLoad) add(m benchLoad, n int) {
	l.throughput += m.throughput / float64(n)
	l.cpuPerRequest += m.cpuPerRequest / float64(n)
	l.p50 += m.p50 / time.Duration(n)
	l.p99 += m.p99 / time.Duration(n)
}

// benchGetLoad sends requests GETs of random customers from clients
// concurrent keep-alive clients, after a short unmeasured warm-up that
// opens the connections. serverCPU, when not nil, is the CPU time the server
// (a process apart from this one) has used so far.
func benchGetLoad(b *testing.B, baseURL string, ids []string, requests, clients int, serverCPU func() time.Duration) benchLoad {
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = baseURL + "/customers/" + id
	}
	client := newBenchClient(clients)
	defer client.CloseIdleConnections()
	run := func(n int, latencies []time.Duration) time.Duration {
		var (
			next    atomic.Int64
			wg      sync.WaitGroup
			failed  atomic.Int64
			lastErr atomic.Value
		)
		start := time.Now()
		for c := range clients {
			wg.Go(func() {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("load", "client")))
				rng := rand.New(rand.NewPCG(uint64(c), uint64(n)))
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					u := urls[rng.IntN(len(urls))]
					t0 := time.Now()
					resp, err := client.Get(u)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("GET %s: %s", u, resp.Status)
						}
					}
					if latencies != nil {
						latencies[i] = time.Since(t0)
					}
					if err != nil {
						failed.Add(1)
						lastErr.Store(err)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d of %d requests failed: %v", f, n, lastErr.Load())
		}
		return elapsed
	}
	run(clients*50, nil)
	runtime.GC()
	latencies := make([]time.Duration, requests)
	var cpu time.Duration
	if serverCPU != nil {
		cpu = serverCPU()
	}
	b.StartTimer()
	elapsed := run(requests, latencies)
	b.StopTimer()
	l := benchLoad{throughput: float64(requests) / elapsed.Seconds()}
	if serverCPU != nil {
		l.cpuPerRequest = float64((serverCPU() - cpu).Microseconds()) / float64(requests)
	}
	slices.Sort(latencies)
	l.p50, l.p99 = benchPercentile(latencies, 0.50), benchPercentile(latencies, 0.99)
	return l
}

// benchPercentile is the nearest-rank percentile of sorted latencies.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// newBenchClient is a keep-alive client for up to conns concurrent requests
// to one loopback host, never through a proxy.
func newBenchClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout: time.Minute,
	}
}

func benchGet(b *testing.B, c *http.Client, u string) ([]byte, int) {
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return body, resp.StatusCode
}

// benchServe serves h on a loopback port until ctx ends and returns its base
// URL. The server's goroutines carry the profiler label server=name.
func benchServe(b *testing.B, ctx context.Context, name string, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go pprof.Do(ctx, pprof.Labels("server", name), func(ctx context.Context) {
		served <- queryapi.ServeListener(ctx, ln, h, nil)
	})
	b.Cleanup(func() {
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// benchOpen opens topo on the benchmark's broker with a fresh state
// directory, running the named groups (all without any); the caller closes
// it.
func benchOpen(b *testing.B, ctx context.Context, addrs []string, topo *streamfold.Topology, groups ...string) *streamfold.Runtime {
	rt, err := streamfold.Open(ctx, topo, streamfold.Config{
		Brokers:        addrs,
		StateDir:       b.TempDir(),
		Replication:    1,
		ClientID:       "bench",
		Groups:         groups,
		TracerProvider: benchTracer(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// benchTracer is nil (tracing off, the default) unless
// STREAMFOLD_BENCH_TRACE is set: 1 traces every record (always sampled), a
// fraction such as 0.01 samples that share of the traces (parent-based on
// a trace id ratio, as OTEL_TRACES_SAMPLER=parentbased_traceidratio does).
// The spans go through the SDK's batching span processor to an exporter
// that drops them, so that a run costs what tracing costs short of the
// network.
func benchTracer(b *testing.B) trace.TracerProvider {
	v := os.Getenv("STREAMFOLD_BENCH_TRACE")
	if v == "" || v == "0" {
		return nil
	}
	ratio, err := strconv.ParseFloat(v, 64)
	if err != nil || ratio <= 0 || ratio > 1 {
		b.Fatalf("STREAMFOLD_BENCH_TRACE=%q: want 1 or a fraction in (0, 1]", v)
	}
	sampler := sdktrace.AlwaysSample()
	if ratio < 1 {
		sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithBatcher(benchDiscard{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// benchDiscard is a span exporter that drops what it is given.
type benchDiscard struct{}

func (benchDiscard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (benchDiscard) Shutdown(context.Context) error                             { return nil }

// benchRunning is a Run(ctx) in its own goroutine.
type benchRunning struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what it returned, once done is closed
}

// benchStart calls run in a goroutine carrying the profiler labels.
func benchStart(labels pprof.LabelSet, run func(context.Context) error) *benchRunning {
	ctx, cancel := context.WithCancel(context.Background())
	r := &benchRunning{cancel: cancel, done: make(chan struct{})}
	go pprof.Do(ctx, labels, func(ctx context.Context) {
		defer close(r.done)
		r.err = run(ctx)
	})
	return r
}

// stop cancels the run and waits for it; a cancelled run is no error. It
// may be called more than once.
func (r *benchRunning) stop() error {
	r.cancel()
	<-r.done
	if errors.Is(r.err, context.Canceled) {
		return nil
	}
	return r.err
}

// benchAwait polls cond until it holds.
func benchAwait(b testing.TB, run *benchRunning, what string, cond func() bool) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(benchPatience)
	for !cond() {
		select {
		case <-run.done:
			b.Fatalf("stopped before %s: %v", what, run.err)
		case <-deadline:
			b.Fatalf("gave up waiting for %s after %v", what, benchPatience)
		case <-tick.C:
		}
	}
}

// benchBroker starts an embedded broker with its log in a temp directory on
// a free loopback port.
func benchBroker(b *testing.B) *embedded.Broker {
	broker, err := embedded.Start(embedded.Config{
		Dir:        b.TempDir(),
		Listen:     "127.0.0.1:0",
		Partitions: benchPartitions,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := broker.Close(); err != nil {
			b.Errorf("close broker: %v", err)
		}
	})
	return broker
}

func benchEnvInt(b *testing.B, name string, def int) int {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// plainJSON is the goka codec a plain goka user writes: encoding/json both
// ways, into the value type. The baselines use it rather than streamfold's
// codecs (which decode with a faster JSON package and validate CloudEvents),
// so that they stay what goka alone gives.
type plainJSON[T any] struct{}

func (plainJSON[T]) Encode(v any) ([]byte, error) {
	t, ok := v.(T)
	if !ok {
		return nil, fmt.Errorf("plainJSON: got %T, want %T", v, t)
	}
	return json.Marshal(t)
}

func (plainJSON[T]) Decode(b []byte) (any, error) {
	var t T
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return t, nil
}
