package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// The benchmarks of time: a windowed aggregation and a stream–stream join
// (issue 13), each against a hand-written plain goka processor doing the
// same work. Sizes, besides those of bench_test.go:
//
//	STREAMFOLD_BENCH_WINDOW_EVENTS  readings summed by BenchmarkWindowedSum (1,000,000)
//	STREAMFOLD_BENCH_WINDOW_KEYS    sensors they come from (10,000)
//	STREAMFOLD_BENCH_WINDOW_RETAIN  how long the framework keeps a closed window, a Go duration (its size);
//	                                an hour keeps every window of the hour: many windows per key
//	STREAMFOLD_BENCH_JOIN_ORDERS    orders, and as many payments, joined by BenchmarkStreamJoin (500,000)
//	STREAMFOLD_BENCH_JOIN_GRACE     the join's grace, a Go duration (1h, see benchJoinGrace)
//
// Event times are CloudEvents times spread over one hour of event time from
// benchEpoch, produced in event-time order (the windows' readings with a
// jitter within the grace).

// benchEpoch is where the benchmarks' hour of event time starts.
var benchEpoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// benchEventHour is the span of event time the records cover.
const benchEventHour = time.Hour

// benchSource is the CloudEvents source of the benchmarks' own events.
const benchSource = "urn:streamfold:bench"

const (
	benchWindowGroup     = "bench-windows"
	benchGokaWindowGroup = "bench-goka-windows"
	benchWindowSize      = time.Minute
	// benchWindowGrace is the windows' grace; readings come up to
	// benchWindowJitter earlier than their place in the hour, so none is late.
	benchWindowGrace  = 5 * time.Second
	benchWindowJitter = 3 * time.Second
)

var (
	benchReadings    = tables.NewStream[codecs.Event]("bench-readings", codecs.CloudEvents{})
	benchWindowSums  = tables.NewStream[processors.WindowResult[int]]("bench-window-sums", codecs.JSON[processors.WindowResult[int]]{})
	benchGokaSumsOut = tables.NewStream[benchWindowResult]("bench-goka-window-sums", codecs.JSON[benchWindowResult]{})
)

// benchReading is a reading's data.
type benchReading struct {
	N int `json:"n"`
}

// benchWindowResult is a window's sum as both sides send it: the JSON of
// processors.WindowResult[int], which the plain goka processor writes with
// its own type.
type benchWindowResult struct {
	Key   string    `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value int       `json:"value"`
	Final bool      `json:"final,omitempty"`
}

// BenchmarkWindowedSum sums readings (CloudEvents keyed by sensor, their
// data {"n": 1..9}) per sensor in 1-minute tumbling windows with a 5 s
// grace, in update mode: every reading sends its window's new sum, and a
// window that closes (stream time past its end and grace) sends its sum
// once more, marked final. The readings' event times run in order over one
// hour, each up to 3 s early (within the grace: none is late). Twice over
// the same topic, produced before either runs:
//
//   - framework: processors.AggregateWindows (processors.Tumbling(time.Minute).Grace(5s),
//     Results, not FinalOnly) alone in a topology, through streamfold.Open + Runtime.Run,
//     with the default policy (due timers looked for every second);
//   - goka: a plain goka.DefineGroup keeping a sensor's open and recently
//     closed windows in its table value (JSON via encoding/json), stream time
//     per partition in memory, closing and purging a sensor's windows on its
//     next reading (goka has no timers) and emitting the same results.
//
// Closed windows stay one window size, then are purged, on both sides. Each
// side is timed from Run until its handler has seen every reading; then the
// results topics are read back and the last sum of every window of a sample
// of sensors must be the sum of its readings, on both sides. Records read
// again after a rebalance (seen under heavy load) are not applied twice:
// the framework knows them by offset in its state, the baselines skip them
// (benchReadAgain).
//
//	go test -run '^$' -bench BenchmarkWindowedSum -benchtime=1x -timeout 30m ./bench/
//
// The profile of each side carries the label windows=framework or
// windows=goka.
func BenchmarkWindowedSum(b *testing.B) {
	events := benchEnvInt(b, "STREAMFOLD_BENCH_WINDOW_EVENTS", 1_000_000)
	keys := min(benchEnvInt(b, "STREAMFOLD_BENCH_WINDOW_KEYS", 10_000), events)
	windows := processors.Tumbling(benchWindowSize).Grace(benchWindowGrace)
	if v := os.Getenv("STREAMFOLD_BENCH_WINDOW_RETAIN"); v != "" {
		retain, err := time.ParseDuration(v)
		if err != nil || retain < 0 {
			b.Fatalf("STREAMFOLD_BENCH_WINDOW_RETAIN=%q: want a duration, not negative", v)
		}
		windows = windows.Retain(retain)
	}
	var framework, plain benchFold
	var fwResults, gokaResults int64
	b.StopTimer()
	for range b.N {
		f, g, fr, gr := benchWindowsOnce(b, events, keys, windows)
		framework.add(f, b.N)
		plain.add(g, b.N)
		fwResults, gokaResults = fr, gr
	}
	ratio, steadyRatio := benchReportVersus(b, framework, plain, "ev")
	b.Logf("windowed sum events=%d keys=%d windows=%v grace=%v partitions=%d: framework %.0f ev/s (%.2fs from Run, first record after %.2fs, steady %.0f ev/s, committed after %.2fs, %.1f µs CPU/event, %d results); "+
		"goka %.0f ev/s (%.2fs from Run, first record after %.2fs, steady %.0f ev/s, committed after %.2fs, %.1f µs CPU/event, %d results); framework/goka %.2fx (steady %.2fx)",
		events, keys, benchWindowSize, benchWindowGrace, benchPartitions,
		framework.rate(), framework.total.Seconds(), framework.startup.Seconds(), framework.steadyRate(), framework.committed.Seconds(), framework.cpuPerEvent(), fwResults,
		plain.rate(), plain.total.Seconds(), plain.startup.Seconds(), plain.steadyRate(), plain.committed.Seconds(), plain.cpuPerEvent(), gokaResults,
		ratio, steadyRatio)
}

// benchWindowSumsByKey are the expected sums of a sample of sensors: by
// sensor, by window start (unix ms).
type benchWindowSumsByKey map[string]map[int64]int

func benchWindowsOnce(b *testing.B, events, keys int, windows processors.Windows) (framework, plain benchFold, fwResults, gokaResults int64) {
	broker := benchBroker(b)
	defer broker.Close() // each run gets its own broker; -benchtime=Nx must not keep N of them
	addrs := broker.Addrs()
	ctx := context.Background()

	g := processors.NewGroup(benchWindowGroup)
	processors.AggregateWindows(g, processors.WindowedAggregation[codecs.Event, int]{
		Input:   benchReadings,
		Windows: windows,
		Add: func(_ string, sum int, ev codecs.Event) (int, error) {
			var r benchReading
			if err := ev.DataAs(&r); err != nil {
				return 0, err
			}
			return sum + r.N, nil
		},
		Results: benchWindowSums,
	})
	// The baseline's results topic is declared here too, so that Open
	// creates it like the framework's.
	topo := streamfold.NewTopology(streamfold.WithPartitions(benchPartitions)).
		AddGroup(g).
		WrittenBy(benchReadings, "bench").
		WrittenBy(benchGokaSumsOut, benchGokaWindowGroup).
		ReadBy(benchWindowSums, "bench")
	rt := benchOpen(b, ctx, addrs, topo)
	defer rt.Close()

	want := benchProduceReadings(b, addrs, events, keys)
	ends := benchEndOffsets(b, addrs, benchReadings.Name)
	if sum := benchSum(ends); sum != int64(events) {
		b.Fatalf("%s holds %d records, want %d", benchReadings.Name, sum, events)
	}

	framework = benchWindowsFramework(b, rt, addrs, ends, events)
	fwResults = benchCheckWindowSums(b, "framework", addrs, benchWindowSums.Name, want)
	plain = benchWindowsGoka(b, addrs, ends, events)
	gokaResults = benchCheckWindowSums(b, "goka", addrs, benchGokaSumsOut.Name, want)
	return framework, plain, fwResults, gokaResults
}

// benchReadingTime is the event time of reading i of n: its place in the
// hour, up to benchWindowJitter earlier.
func benchReadingTime(i, n int, rng *rand.Rand) time.Time {
	at := benchEpoch.Add(time.Duration(int64(i) * int64(benchEventHour) / int64(n)))
	return at.Add(-time.Duration(rng.Int64N(int64(benchWindowJitter))))
}

// benchProduceReadings writes events readings for random sensors to
// bench-readings and returns the sums every window of the first 100 sensors
// must have.
func benchProduceReadings(b *testing.B, addrs []string, events, keys int) benchWindowSumsByKey {
	ids := make([]string, keys)
	for k := range ids {
		ids[k] = fmt.Sprintf("sensor-%05d", k)
	}
	want := benchWindowSumsByKey{}
	for _, id := range ids[:min(100, keys)] {
		want[id] = map[int64]int{}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var ce codecs.CloudEvents
	size := benchWindowSize.Milliseconds()
	pprof.Do(context.Background(), pprof.Labels("phase", "produce"), func(context.Context) {
		benchProduce(b, addrs, benchReadings.Name, events, func(i int) (string, []byte) {
			id, n := ids[rng.IntN(keys)], 1+i%9
			ev, err := codecs.NewEvent(benchSource, "ReadingTaken", id, benchReading{N: n})
			if err != nil {
				b.Fatal(err)
			}
			ev.Time = benchReadingTime(i, events, rng)
			value, err := ce.Encode(ev)
			if err != nil {
				b.Fatal(err)
			}
			if sums, ok := want[id]; ok {
				t := ev.Time.UnixMilli()
				sums[t-t%size] += n
			}
			return id, value
		})
	})
	return want
}

// benchRunTimeGroup runs rt (one group, label its pprof label) until the
// group has handled items records, and checks that it applied every one:
// none late, none dead-lettered. Duplicates are records read again (after a
// rebalance, from the last commit), not new records. The caller stops run.
func benchRunTimeGroup(b *testing.B, rt *streamfold.Runtime, group, label string, items int) (benchFold, time.Time, *benchRunning) {
	handled := func() int64 {
		s := rt.Stats()[group]
		n := s.Applied + s.Counters["late"]
		for _, d := range s.DeadLetters {
			n += d
		}
		return n
	}
	runtime.GC()
	b.StartTimer()
	start, cpu := time.Now(), benchProcessCPU()
	run := benchStart(pprof.Labels(label, "framework"), rt.Run)
	result := benchAwaitFold(b, start, run, items, func() int64 { return rt.Stats()[group].Processed }, handled)
	result.cpu = benchProcessCPU() - cpu
	b.StopTimer()
	if s := rt.Stats()[group]; s.Applied != int64(items) || s.Counters["late"] != 0 || len(s.DeadLetters) != 0 {
		b.Errorf("framework %s: applied %d of %d, late %d, dead letters %v", label, s.Applied, items, s.Counters["late"], s.DeadLetters)
	}
	return result, start, run
}

// benchRunGoka runs the plain goka processor p (label its pprof label)
// until handled counts items records.
func benchRunGoka(b *testing.B, p *goka.Processor, label string, items int, processed, handled *atomic.Int64) (benchFold, time.Time, *benchRunning) {
	runtime.GC()
	b.StartTimer()
	start, cpu := time.Now(), benchProcessCPU()
	run := benchStart(pprof.Labels(label, "goka"), p.Run)
	result := benchAwaitFold(b, start, run, items, processed.Load, handled.Load)
	result.cpu = benchProcessCPU() - cpu
	b.StopTimer()
	return result, start, run
}

// benchWindowsFramework runs the windowed aggregation until it has applied
// every reading, checks its counters and stops the runtime.
func benchWindowsFramework(b *testing.B, rt *streamfold.Runtime, addrs []string, ends map[int32]int64, events int) benchFold {
	result, start, run := benchRunTimeGroup(b, rt, benchWindowGroup, "windows", events)
	defer run.stop()
	if d := rt.Stats()[benchWindowGroup].Duplicates; d > 0 {
		b.Logf("framework windows: %d records read again (a rebalance), not applied again", d)
	}
	result.committed = benchAwaitCommitted(b, addrs, benchWindowGroup, benchReadings.Name, ends, run).Sub(start)
	// The runtime sends its timer requests through the group's loop topic;
	// one finds a window to close, or finds it closed already by a later
	// record of the key.
	requests := benchSum(benchEndOffsets(b, addrs, benchWindowGroup+"-loop"))
	b.Logf("framework windows: %d timer requests sent so far, %d windows closed by one", requests, rt.Stats()[benchWindowGroup].Counters["windows-closed"])
	if err := run.stop(); err != nil {
		b.Errorf("framework run: %v", err)
	}
	return result
}

// benchGokaWindow is one window of a sensor in the plain goka processor's
// table: its start (unix ms) and sum; a closed window stays until purged.
type benchGokaWindow struct {
	Start  int64 `json:"start"`
	Sum    int   `json:"sum"`
	Closed bool  `json:"closed,omitempty"`
}

// benchGokaWindows is a sensor's windows in start order.
type benchGokaWindows struct {
	Windows []benchGokaWindow `json:"windows"`
}

// benchWindowsGoka runs a plain goka processor summing the readings in the
// same windows with the same results until it has seen every reading, and
// stops it.
func benchWindowsGoka(b *testing.B, addrs []string, ends map[int32]int64, events int) benchFold {
	var processed, handled, failed, late atomic.Int64
	var again benchReadAgain
	// Stream time per partition, in memory: each partition's callbacks run
	// on one goroutine, the array is only shared to be read at the end.
	var streamTimes [benchPartitions]atomic.Int64
	size, grace := benchWindowSize.Milliseconds(), benchWindowGrace.Milliseconds()
	out := goka.Stream(benchGokaSumsOut.Name)
	emit := func(ctx goka.Context, w benchGokaWindow, final bool) {
		ctx.Emit(out, ctx.Key(), benchWindowResult{Key: ctx.Key(), Start: time.UnixMilli(w.Start).UTC(), End: time.UnixMilli(w.Start + size).UTC(), Value: w.Sum, Final: final})
	}
	sum := func(ctx goka.Context, msg any) {
		processed.Add(1)
		if again.seen(ctx) {
			return
		}
		defer handled.Add(1)
		ev, ok := msg.(codecs.Event)
		if !ok {
			failed.Add(1)
			return
		}
		var r benchReading
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			failed.Add(1)
			return
		}
		t := ev.Time.UnixMilli()
		st := &streamTimes[ctx.Partition()]
		stream := max(st.Load(), t)
		st.Store(stream)
		var ws benchGokaWindows
		if v, ok := ctx.Value().(benchGokaWindows); ok {
			ws = v
		}
		start := t - t%size
		if start+size+grace <= stream {
			late.Add(1)
			return
		}
		i, found := slices.BinarySearchFunc(ws.Windows, start, func(w benchGokaWindow, s int64) int { return cmp.Compare(w.Start, s) })
		if found && ws.Windows[i].Closed {
			late.Add(1)
			return
		}
		if !found {
			ws.Windows = slices.Insert(ws.Windows, i, benchGokaWindow{Start: start})
		}
		ws.Windows[i].Sum += r.N
		emit(ctx, ws.Windows[i], false)
		// Close what stream time has passed, purge what closed a window
		// size ago.
		kept := ws.Windows[:0]
		for _, w := range ws.Windows {
			closeAt := w.Start + size + grace
			switch {
			case w.Closed && closeAt+size <= stream:
				continue
			case !w.Closed && closeAt <= stream:
				w.Closed = true
				emit(ctx, w, true)
			}
			kept = append(kept, w)
		}
		ws.Windows = kept
		if len(ws.Windows) == 0 {
			ctx.Delete()
			return
		}
		ctx.SetValue(ws)
	}
	graph := goka.DefineGroup(benchGokaWindowGroup,
		goka.Input(goka.Stream(benchReadings.Name), plainJSON[codecs.Event]{}, sum),
		goka.Output(out, plainJSON[benchWindowResult]{}),
		goka.Persist(plainJSON[benchGokaWindows]{}),
	)
	p := benchGokaProcessor(b, addrs, graph)
	result, start, run := benchRunGoka(b, p, "windows", events, &processed, &handled)
	defer run.stop()

	if n, l := failed.Load(), late.Load(); n > 0 || l > 0 {
		b.Errorf("goka windows: %d of %d readings failed, %d late", n, events, l)
	}
	if n := again.count.Load(); n > 0 {
		b.Logf("goka windows: %d records read again (a rebalance), skipped", n)
	}
	result.committed = benchAwaitCommitted(b, addrs, benchGokaWindowGroup, benchReadings.Name, ends, run).Sub(start)
	if err := run.stop(); err != nil {
		b.Errorf("goka run: %v", err)
	}
	return result
}

// benchCheckWindowSums reads the results topic back and checks that the
// last sum sent for every window of the sampled sensors is the sum of its
// readings, and that every window got a result. It returns how many
// results the topic holds.
func benchCheckWindowSums(b *testing.B, who string, addrs []string, topic string, want benchWindowSumsByKey) int64 {
	got := map[string]map[int64]int{}
	n := benchReadTopic(b, addrs, topic, func(r *kgo.Record) {
		if _, ok := want[string(r.Key)]; !ok {
			return
		}
		var res benchWindowResult
		if err := json.Unmarshal(r.Value, &res); err != nil {
			b.Errorf("%s: result %s: %v", who, r.Value, err)
			return
		}
		if got[res.Key] == nil {
			got[res.Key] = map[int64]int{}
		}
		got[res.Key][res.Start.UnixMilli()] = res.Value
	})
	wrong := 0
	for key, sums := range want {
		for start, sum := range sums {
			if got[key][start] != sum {
				wrong++
				if wrong <= 5 {
					b.Errorf("%s: %s window %s: last sum %d, want %d", who, key, time.UnixMilli(start).UTC().Format(time.TimeOnly), got[key][start], sum)
				}
			}
		}
	}
	if wrong > 0 {
		b.Errorf("%s: %d windows of %d sampled sensors with a wrong sum", who, wrong, len(want))
	}
	return n
}

// benchReadTopic reads topic from its start to its end offsets as they are
// now, calling each for every record, and returns how many it read.
func benchReadTopic(b *testing.B, addrs []string, topic string, each func(*kgo.Record)) int64 {
	ends := benchEndOffsets(b, addrs, topic)
	total := benchSum(ends)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), benchPatience)
	defer cancel()
	var read int64
	for read < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("read %s: %d of %d records after %v", topic, read, total, benchPatience)
		}
		fs.EachError(func(_ string, _ int32, err error) { b.Fatalf("read %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				read++
				each(r)
			}
		})
	}
	return read
}

const (
	benchJoinGroup     = "bench-join"
	benchGokaJoinGroup = "bench-goka-join"
	benchJoinWithin    = 10 * time.Minute
	// benchJoinGrace is the join's default grace. It covers the skew
	// between the two input topics: both are produced before the join
	// runs, and goka reads each topic's partitions on their own, with no
	// choice of the record of least event time across topics, so on such a
	// backlog one topic may run ahead of the other by up to the hour they
	// span. With a grace shorter than that skew, records of the lagging
	// topic are late (not joined): 1,058 of 100,000 with no grace in one run
	// of 50,000 orders.
	benchJoinGrace = benchEventHour
	// benchPaymentDelay bounds how long after its order a payment comes.
	benchPaymentDelay = 5 * time.Minute
)

var (
	benchOrders   = tables.NewStream[codecs.Event]("bench-orders", codecs.CloudEvents{})
	benchPayments = tables.NewStream[codecs.Event]("bench-payments", codecs.CloudEvents{})
	benchPaid     = tables.NewStream[benchPaidOrder]("bench-paid-orders", codecs.JSON[benchPaidOrder]{})
	benchGokaPaid = tables.NewStream[benchPaidOrder]("bench-goka-paid-orders", codecs.JSON[benchPaidOrder]{})
)

// benchPaidOrder is a pair of the join: an order and its payment (their
// CloudEvents ids) and the amount paid.
type benchPaidOrder struct {
	Order   string `json:"order"`
	Payment string `json:"payment"`
	Amount  int    `json:"amount"`
}

// benchPayment is a payment's data.
type benchPayment struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

// benchPair is the join's output for an order and its payment; payment's
// data is decoded with decode (each side its own JSON package).
func benchPair(order, payment codecs.Event, decode func(codecs.Event, any) error) (benchPaidOrder, error) {
	var p benchPayment
	if err := decode(payment, &p); err != nil {
		return benchPaidOrder{}, err
	}
	return benchPaidOrder{Order: order.ID, Payment: payment.ID, Amount: p.Amount}, nil
}

// BenchmarkStreamJoin joins orders with their payments: N OrderPlaced
// CloudEvents on bench-orders and N PaymentReceived on bench-payments, both
// keyed by order id, the orders' event times spread in order over one hour,
// each payment 0 to 5 minutes after its order. An inner join within 10
// minutes (grace 1 hour, see benchJoinGrace) must pair every order with its
// payment, once. Twice over the same topics, produced before either runs:
//
//   - framework: processors.JoinStreams (InnerJoin, Within 10 min) alone in
//     a topology, through streamfold.Open + Runtime.Run, default policy;
//   - goka: a plain goka.DefineGroup with both topics as inputs, buffering
//     each side's events per key in its table value (JSON via
//     encoding/json), stream time per partition in memory, pairing a record
//     with the other side's buffered records within 10 minutes, dropping a
//     re-sent id, and expiring buffered records on the key's next record.
//
// With the default grace nothing expires during the run on either side:
// every window closes an hour after the last record's time. Each side is timed from
// Run until its handlers have seen every record (2N); then each output
// topic must hold a pair for every order, with its own payment, and no
// other (the framework sends a step's pairs again for a record read again
// after a rebalance: those come twice).
//
//	go test -run '^$' -bench BenchmarkStreamJoin -benchtime=1x -timeout 30m ./bench/
//
// The profile of each side carries the label join=framework or join=goka.
func BenchmarkStreamJoin(b *testing.B) {
	orders := benchEnvInt(b, "STREAMFOLD_BENCH_JOIN_ORDERS", 500_000)
	grace := benchJoinGrace
	if v := os.Getenv("STREAMFOLD_BENCH_JOIN_GRACE"); v != "" {
		var err error
		if grace, err = time.ParseDuration(v); err != nil || grace < 0 {
			b.Fatalf("STREAMFOLD_BENCH_JOIN_GRACE=%q: want a duration, not negative", v)
		}
	}
	var framework, plain benchFold
	b.StopTimer()
	for range b.N {
		f, g := benchJoinOnce(b, orders, grace)
		framework.add(f, b.N)
		plain.add(g, b.N)
	}
	ratio, steadyRatio := benchReportVersus(b, framework, plain, "rec")
	b.Logf("stream join orders=%d payments=%d within=%v grace=%v partitions=%d: framework %.0f rec/s (%.2fs from Run, first record after %.2fs, steady %.0f rec/s, committed after %.2fs, %.1f µs CPU/record); "+
		"goka %.0f rec/s (%.2fs from Run, first record after %.2fs, steady %.0f rec/s, committed after %.2fs, %.1f µs CPU/record); framework/goka %.2fx (steady %.2fx)",
		orders, orders, benchJoinWithin, grace, benchPartitions,
		framework.rate(), framework.total.Seconds(), framework.startup.Seconds(), framework.steadyRate(), framework.committed.Seconds(), framework.cpuPerEvent(),
		plain.rate(), plain.total.Seconds(), plain.startup.Seconds(), plain.steadyRate(), plain.committed.Seconds(), plain.cpuPerEvent(),
		ratio, steadyRatio)
}

func benchJoinOnce(b *testing.B, orders int, grace time.Duration) (framework, plain benchFold) {
	broker := benchBroker(b)
	defer broker.Close() // each run gets its own broker; -benchtime=Nx must not keep N of them
	addrs := broker.Addrs()
	ctx := context.Background()

	g := processors.NewGroup(benchJoinGroup)
	processors.JoinStreams(g, processors.StreamJoin[codecs.Event, codecs.Event, benchPaidOrder]{
		Left: benchOrders, Right: benchPayments,
		Within: benchJoinWithin, Grace: grace,
		Join: func(_ string, o codecs.Event, p *codecs.Event) (benchPaidOrder, error) {
			return benchPair(o, *p, codecs.Event.DataAs)
		},
		Out: benchPaid,
	})
	topo := streamfold.NewTopology(streamfold.WithPartitions(benchPartitions)).
		AddGroup(g).
		WrittenBy(benchOrders, "bench").
		WrittenBy(benchPayments, "bench").
		WrittenBy(benchGokaPaid, benchGokaJoinGroup).
		ReadBy(benchPaid, "bench")
	rt := benchOpen(b, ctx, addrs, topo)
	defer rt.Close()

	benchProduceOrdersAndPayments(b, addrs, orders)
	ends := map[string]map[int32]int64{}
	for _, s := range []tables.Stream[codecs.Event]{benchOrders, benchPayments} {
		ends[s.Name] = benchEndOffsets(b, addrs, s.Name)
		if sum := benchSum(ends[s.Name]); sum != int64(orders) {
			b.Fatalf("%s holds %d records, want %d", s.Name, sum, orders)
		}
	}

	framework = benchJoinFramework(b, rt, addrs, ends, 2*orders)
	benchCheckPairs(b, "framework", addrs, benchPaid.Name, orders, rt.Stats()[benchJoinGroup].Duplicates > 0)
	plain = benchJoinGoka(b, addrs, ends, 2*orders, grace)
	benchCheckPairs(b, "goka", addrs, benchGokaPaid.Name, orders, false)
	return framework, plain
}

func benchOrderID(i int) string   { return fmt.Sprintf("order-%07d", i) }
func benchPaymentID(i int) string { return fmt.Sprintf("pay-%07d", i) }

// benchOrderTime is the event time of order i of n: its place in the hour.
func benchOrderTime(i, n int) time.Time {
	return benchEpoch.Add(time.Duration(int64(i) * int64(benchEventHour) / int64(n)))
}

// benchProduceOrdersAndPayments writes n orders to bench-orders, then their
// payments to bench-payments, each 0 to 5 minutes after its order in event
// time.
func benchProduceOrdersAndPayments(b *testing.B, addrs []string, n int) {
	var ce codecs.CloudEvents
	event := func(eventType, id, key string, when time.Time, data any) []byte {
		ev, err := codecs.NewEvent(benchSource, eventType, key, data)
		if err != nil {
			b.Fatal(err)
		}
		ev.ID, ev.Time = id, when
		value, err := ce.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		return value
	}
	delay := func(i int) time.Duration { return time.Duration(i*7919) * time.Second % benchPaymentDelay }
	pprof.Do(context.Background(), pprof.Labels("phase", "produce"), func(context.Context) {
		benchProduce(b, addrs, benchOrders.Name, n, func(i int) (string, []byte) {
			id := benchOrderID(i)
			return id, event("OrderPlaced", id, id, benchOrderTime(i, n), map[string]any{"product": "p-1", "quantity": 1 + i%5, "price": 10})
		})
		benchProduce(b, addrs, benchPayments.Name, n, func(i int) (string, []byte) {
			id := benchOrderID(i)
			return id, event("PaymentReceived", benchPaymentID(i), id, benchOrderTime(i, n).Add(delay(i)),
				benchPayment{OrderID: id, Amount: 10 * (1 + i%5)})
		})
	})
}

// benchJoinFramework runs the join until it has handled every record,
// checks its counters and stops the runtime.
func benchJoinFramework(b *testing.B, rt *streamfold.Runtime, addrs []string, ends map[string]map[int32]int64, records int) benchFold {
	result, start, run := benchRunTimeGroup(b, rt, benchJoinGroup, "join", records)
	defer run.stop()
	if d := rt.Stats()[benchJoinGroup].Duplicates; d > 0 {
		// A step read again sends its outputs again: its pairs may be in the
		// output twice (at least once), never a different pair.
		b.Logf("framework join: %d records read again (a rebalance), their pairs sent again", d)
	}
	for topic, e := range ends {
		result.committed = max(result.committed, benchAwaitCommitted(b, addrs, benchJoinGroup, topic, e, run).Sub(start))
	}
	if err := run.stop(); err != nil {
		b.Errorf("framework run: %v", err)
	}
	return result
}

// benchGokaJoinBuffer is a key's buffered records in the plain goka
// processor's table, each side in arrival order.
type benchGokaJoinBuffer struct {
	Orders   []codecs.Event `json:"orders,omitempty"`
	Payments []codecs.Event `json:"payments,omitempty"`
}

// benchJoinGoka runs a plain goka processor joining the same topics into
// the same pairs until it has seen every record, and stops it.
func benchJoinGoka(b *testing.B, addrs []string, ends map[string]map[int32]int64, records int, grace time.Duration) benchFold {
	var processed, handled, failed, late, duplicates atomic.Int64
	var again benchReadAgain
	var streamTimes [benchPartitions]atomic.Int64 // see benchWindowsGoka
	within, closeAfter := benchJoinWithin.Milliseconds(), (benchJoinWithin + grace).Milliseconds()
	out := goka.Stream(benchGokaPaid.Name)
	decode := func(ev codecs.Event, v any) error { return json.Unmarshal(ev.Data, v) }
	join := func(isOrder bool) goka.ProcessCallback {
		return func(ctx goka.Context, msg any) {
			processed.Add(1)
			if again.seen(ctx) {
				return
			}
			defer handled.Add(1)
			ev, ok := msg.(codecs.Event)
			if !ok {
				failed.Add(1)
				return
			}
			t := ev.Time.UnixMilli()
			st := &streamTimes[ctx.Partition()]
			stream := max(st.Load(), t)
			st.Store(stream)
			if t+closeAfter <= stream {
				late.Add(1)
				return
			}
			var buf benchGokaJoinBuffer
			if v, ok := ctx.Value().(benchGokaJoinBuffer); ok {
				buf = v
			}
			own, other := &buf.Orders, &buf.Payments
			if !isOrder {
				own, other = &buf.Payments, &buf.Orders
			}
			if slices.ContainsFunc(*own, func(e codecs.Event) bool { return e.ID == ev.ID }) {
				duplicates.Add(1)
				return
			}
			for _, o := range *other {
				ot := o.Time.UnixMilli()
				if max(ot-t, t-ot) > within || ot+closeAfter <= stream {
					continue
				}
				order, payment := ev, o
				if !isOrder {
					order, payment = o, ev
				}
				pair, err := benchPair(order, payment, decode)
				if err != nil {
					failed.Add(1)
					return
				}
				ctx.Emit(out, ctx.Key(), pair)
			}
			*own = append(*own, ev)
			expired := func(e codecs.Event) bool { return e.Time.UnixMilli()+closeAfter <= stream }
			buf.Orders = slices.DeleteFunc(buf.Orders, expired)
			buf.Payments = slices.DeleteFunc(buf.Payments, expired)
			if len(buf.Orders) == 0 && len(buf.Payments) == 0 {
				ctx.Delete()
				return
			}
			ctx.SetValue(buf)
		}
	}
	graph := goka.DefineGroup(benchGokaJoinGroup,
		goka.Input(goka.Stream(benchOrders.Name), plainJSON[codecs.Event]{}, join(true)),
		goka.Input(goka.Stream(benchPayments.Name), plainJSON[codecs.Event]{}, join(false)),
		goka.Output(out, plainJSON[benchPaidOrder]{}),
		goka.Persist(plainJSON[benchGokaJoinBuffer]{}),
	)
	p := benchGokaProcessor(b, addrs, graph)
	result, start, run := benchRunGoka(b, p, "join", records, &processed, &handled)
	defer run.stop()

	if n, l, d := failed.Load(), late.Load(), duplicates.Load(); n > 0 || l > 0 || d > 0 {
		b.Errorf("goka join: %d of %d records failed, %d late, %d duplicates", n, records, l, d)
	}
	if n := again.count.Load(); n > 0 {
		b.Logf("goka join: %d records read again (a rebalance), skipped", n)
	}
	for topic, e := range ends {
		result.committed = max(result.committed, benchAwaitCommitted(b, addrs, benchGokaJoinGroup, topic, e, run).Sub(start))
	}
	if err := run.stop(); err != nil {
		b.Errorf("goka run: %v", err)
	}
	return result
}

// benchCheckPairs reads the join's output topic back: it must hold one pair
// per order, of the order with its own payment and amount; the same pair
// more than once only when resent (records were read again).
func benchCheckPairs(b *testing.B, who string, addrs []string, topic string, orders int, resent bool) {
	seen := make(map[string]bool, orders)
	wrong, twice := 0, 0
	n := benchReadTopic(b, addrs, topic, func(r *kgo.Record) {
		var p benchPaidOrder
		if err := json.Unmarshal(r.Value, &p); err != nil {
			b.Errorf("%s: pair %s: %v", who, r.Value, err)
			return
		}
		var i int
		if seen[p.Order] {
			twice++
		}
		if _, err := fmt.Sscanf(p.Order, "order-%d", &i); err != nil || p.Order != string(r.Key) ||
			p.Payment != benchPaymentID(i) || p.Amount != 10*(1+i%5) || (seen[p.Order] && !resent) {
			wrong++
			if wrong <= 5 {
				b.Errorf("%s: pair %+v under key %s: not the order's own payment, or a second pair", who, p, r.Key)
			}
		}
		seen[p.Order] = true
	})
	if n != int64(orders+twice) || len(seen) != orders || wrong > 0 {
		b.Errorf("%s: %d pairs for %d orders (%d orders paired, %d wrong), want one each", who, n, orders, len(seen), wrong)
	}
	if twice > 0 {
		b.Logf("%s: %d pairs sent again", who, twice)
	}
}

// benchReadAgain tells the records a plain goka processor reads again: after
// a rebalance (seen under heavy load) goka reads from the last committed
// offset, and a plain processor would apply those records twice. The
// baselines skip them, so that their results stay comparable; they keep
// this memory only for the run, as the framework keeps it in its state.
type benchReadAgain struct {
	// last is the last offset seen per partition and topic; a partition's
	// map is used only by the goroutine of that partition.
	last  [benchPartitions]map[string]int64
	count atomic.Int64
}

// seen reports (and counts) whether ctx's record was seen already.
func (a *benchReadAgain) seen(ctx goka.Context) bool {
	p, topic := ctx.Partition(), string(ctx.Topic())
	if a.last[p] == nil {
		a.last[p] = map[string]int64{}
	}
	if last, ok := a.last[p][topic]; ok && ctx.Offset() <= last {
		a.count.Add(1)
		return true
	}
	a.last[p][topic] = ctx.Offset()
	return false
}
