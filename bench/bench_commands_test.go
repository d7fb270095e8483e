package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// The cart command benchmarks. Sizes, besides those of bench_test.go:
//
//	STREAMFOLD_BENCH_COMMANDS       AddItem commands of BenchmarkCartCommands (200,000)
//	STREAMFOLD_BENCH_CARTS          carts they go to (10,000)
//	STREAMFOLD_BENCH_HTTP_COMMANDS  POSTs of BenchmarkCartCommandsHTTP (20,000)
//
// Every command is accepted: a cart gets AddItem for products 0, 1, 2, ...
// in order, each product once, all of them validated beforehand.

// benchCartsRelay is the group HandleCommands returns for the carts group:
// it relays the decisions stored in carts-table to cart-events and
// cart-replies, so the carts' commands are answered only when it runs too.
const benchCartsRelay = shop.CartsGroup + "-relay"

// BenchmarkCartCommands decides AddItem commands pre-produced to
// cart-commands on the embedded broker, twice over the same topic: with the
// shop's carts group and its relay (shop.Topology, through streamfold.Open +
// Runtime.Run) and with a plain goka processor doing the same work
// (shop.DecideCart with products-table and cart-history-table as lookups,
// shop.EvolveCart, the cart persisted, its events and a reply emitted). The
// products are added and validated by the shop's products and validator
// groups before either runs. Each side is timed from Run until its reply
// topic holds one reply per command (end offsets, acknowledged records).
//
//	go test -run '^$' -bench 'BenchmarkCartCommands$' -benchtime=1x ./bench/
//
// (the $ keeps BenchmarkCartCommandsHTTP out).
//
// The framework does more per command than the plain processor: it keeps
// the last commands' replies in the snapshot (idempotency), and its events
// and replies leave through the snapshot's changelog (the outbox relay)
// rather than straight from the handler.
//
// The profile of each side carries the label commands=framework or
// commands=goka; the broker's goroutines carry none.
func BenchmarkCartCommands(b *testing.B) {
	commands := benchEnvInt(b, "STREAMFOLD_BENCH_COMMANDS", 200_000)
	carts := min(benchEnvInt(b, "STREAMFOLD_BENCH_CARTS", 10_000), commands)
	var framework, plain benchFold
	b.StopTimer()
	for range b.N {
		f, g := benchCartCommandsOnce(b, commands, carts)
		framework.add(f, b.N)
		plain.add(g, b.N)
	}
	ratio, steadyRatio := benchReportVersus(b, framework, plain, "cmd")
	b.Logf("cart commands=%d carts=%d products=%d partitions=%d: framework %.0f cmd/s (%.2fs from Run, first command after %.2fs, steady %.0f cmd/s, %.1f µs CPU/command, stored carts %d B); "+
		"goka %.0f cmd/s (%.2fs from Run, first command after %.2fs, steady %.0f cmd/s, %.1f µs CPU/command, stored carts %d B); framework/goka %.2fx (steady %.2fx)",
		commands, carts, benchCartItems(commands, carts, 0), benchPartitions,
		framework.rate(), framework.total.Seconds(), framework.startup.Seconds(), framework.steadyRate(), framework.cpuPerEvent(), framework.valueBytes,
		plain.rate(), plain.total.Seconds(), plain.startup.Seconds(), plain.steadyRate(), plain.cpuPerEvent(), plain.valueBytes,
		ratio, steadyRatio)
}

func benchCartCommandsOnce(b *testing.B, commands, carts int) (framework, plain benchFold) {
	broker := benchBroker(b)
	defer broker.Close() // each run gets its own broker; -benchtime=Nx must not keep N of them
	addrs := broker.Addrs()

	// The most items a cart gets is the number of products needed.
	products := benchProducts(b, addrs, benchCartItems(commands, carts, 0))
	pprof.Do(context.Background(), pprof.Labels("phase", "produce"), func(context.Context) {
		benchProduce(b, addrs, shop.CartCommands.Name, commands, func(i int) (string, []byte) {
			cart, item := i%carts, i/carts
			value, err := shop.CartCommands.Codec.Encode(benchAddItem(products[item], i))
			if err != nil {
				b.Fatal(err)
			}
			return benchCartID(cart), value
		})
	})
	if sum := benchSum(benchEndOffsets(b, addrs, shop.CartCommands.Name)); sum != int64(commands) {
		b.Fatalf("cart-commands holds %d records, want %d", sum, commands)
	}
	want := func(cart int) int { return benchCartItems(commands, carts, cart) }

	framework = benchCommandsFramework(b, addrs, commands, carts, products, want)
	plain = benchCommandsGoka(b, addrs, commands, carts, products, want)
	return framework, plain
}

// benchCartItems is the share of cart (or client) c when n commands are
// dealt round-robin to k of them: the first ones get one more.
func benchCartItems(n, k, c int) int {
	share := n / k
	if c < n%k {
		share++
	}
	return share
}

func benchCartID(c int) string { return fmt.Sprintf("cart-%06d", c) }

// benchAddItem is an AddItem command with a fresh id and a quantity in
// 1..99 derived from i.
func benchAddItem(product string, i int) shop.CartCommand {
	return shop.CartCommand{
		ID:   codecs.NewID(),
		Type: shop.AddItemType,
		Data: shop.CartCommandData{ProductID: product, Quantity: shop.MinQuantity + i%shop.MaxQuantity},
	}
}

// benchProducts runs the shop's products and validator groups, adds n
// products as any producer would (ProductAdded CloudEvents on
// product-events, each with its own well-formed SKU), waits until every
// product reads back validated from products-table, stops the groups and
// returns the product ids.
func benchProducts(b *testing.B, addrs []string, n int) []string {
	ctx := context.Background()
	rt := benchOpen(b, ctx, addrs, shop.Topology(benchPartitions, nil), shop.ProductsGroup, shop.ValidatorGroup)
	defer rt.Close()
	run := benchStart(pprof.Labels("run", "products"), rt.Run)
	defer run.stop()
	// The validator is a bootstrap group: deployed fresh, it folds the
	// products that were there before it started without judging them. The
	// products come once it runs.
	benchAwait(b, run, "products and validator groups running", rt.Recovered)
	ids := benchProduceProducts(b, addrs, n)
	view := views.New(rt, shop.ProductsTable)
	benchAwait(b, run, "every product validated in products-table", func() bool {
		return benchValidated(ids, func(id string) (shop.Product, error) { return view.Get(ctx, id) })
	})
	if err := run.stop(); err != nil {
		b.Fatalf("products run: %v", err)
	}
	return ids
}

// benchProduceProducts writes one ProductAdded per product to product-events,
// keyed by product id, and returns the ids. The SKUs (AAA-0000) are unique.
func benchProduceProducts(b *testing.B, addrs []string, n int) []string {
	ids := make([]string, n)
	benchProduce(b, addrs, shop.ProductEvents.Name, n, func(i int) (string, []byte) {
		ids[i] = fmt.Sprintf("product-%05d", i)
		block := i / 10_000
		sku := fmt.Sprintf("%c%c%c-%04d", 'A'+rune(block/676%26), 'A'+rune(block/26%26), 'A'+rune(block%26), i%10_000)
		ev, err := codecs.NewEvent(shop.Source, shop.ProductAddedType, ids[i], shop.ProductAdded{
			Name:  fmt.Sprintf("Product %d", i),
			Price: "9.99",
			SKU:   sku,
		})
		if err != nil {
			b.Fatal(err)
		}
		value, err := shop.ProductEvents.Codec.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		return ids[i], value
	})
	return ids
}

// benchValidated reports whether get finds every product validated; an
// error (not found, a store still restoring) means not yet.
func benchValidated(ids []string, get func(id string) (shop.Product, error)) bool {
	for _, id := range ids {
		p, err := get(id)
		if err != nil || p.Validation != shop.ProductValidated {
			return false
		}
	}
	return true
}

// benchCommandsFramework runs the shop's carts group and its relay until
// cart-replies holds a reply per command, checks the groups' counters, the
// replies and the carts, and stops the runtime.
func benchCommandsFramework(b *testing.B, addrs []string, commands, carts int, products []string, want func(cart int) int) benchFold {
	ctx := context.Background()
	topo := shop.Topology(benchPartitions, nil)
	if !slices.ContainsFunc(topo.Groups(), func(g *processors.Group) bool { return g.Name() == benchCartsRelay }) {
		b.Fatalf("shop.Topology has no group %q (the carts group's relay)", benchCartsRelay)
	}
	rt := benchOpen(b, ctx, addrs, topo, shop.CartsGroup, benchCartsRelay)
	defer rt.Close()
	// The relay's counter is cheap to poll; the end offsets, which say the
	// replies are in Kafka, are asked for only once it has relayed them all.
	replied := func() int64 {
		if n := rt.Stats()[benchCartsRelay].Applied; n < int64(commands) {
			return n
		}
		return benchSum(benchEndOffsets(b, addrs, shop.CartReplies.Name))
	}
	runtime.GC()
	b.StartTimer()
	start, cpu := time.Now(), benchProcessCPU()
	run := benchStart(pprof.Labels("commands", "framework"), rt.Run)
	defer run.stop()
	result := benchAwaitFold(b, start, run, commands, func() int64 { return rt.Stats()[shop.CartsGroup].Processed }, replied)
	result.cpu = benchProcessCPU() - cpu
	b.StopTimer()

	s, relay := rt.Stats()[shop.CartsGroup], rt.Stats()[benchCartsRelay]
	// Applied counts accepted commands only: a rejection or a conflict is
	// answered without it.
	if s.Applied != int64(commands) || s.Duplicates != 0 || s.Deleted != 0 || len(s.DeadLetters) != 0 {
		b.Errorf("framework: carts accepted %d of %d commands, duplicates %d, deleted %d, dead letters %v", s.Applied, commands, s.Duplicates, s.Deleted, s.DeadLetters)
	}
	if relay.Applied != int64(commands) || len(relay.DeadLetters) != 0 {
		b.Errorf("framework: relay relayed %d of %d decisions, dead letters %v", relay.Applied, commands, relay.DeadLetters)
	}
	benchCheckCommandTopics(b, run, "framework", addrs, shop.CartEvents.Name, shop.CartReplies.Name, commands, carts)
	view := views.New(rt, shop.CartsTable)
	result.valueBytes = benchCheckCarts(b, "framework", carts, products, want, func(id string) (shop.Cart, int, error) {
		raw, err := view.GetRaw(ctx, id)
		if err != nil {
			return shop.Cart{}, 0, err
		}
		c, err := view.Get(ctx, id)
		return c, len(raw), err
	})
	if err := run.stop(); err != nil {
		b.Errorf("framework run: %v", err)
	}
	return result
}

// The plain goka processor's group and output topics.
const (
	benchGokaCartsGroup  = "bench-goka-carts"
	benchGokaCartEvents  = "bench-goka-cart-events"
	benchGokaCartReplies = "bench-goka-cart-replies"
)

// benchCommandsGoka runs a plain goka processor deciding the same commands
// with the shop's rules until its reply topic holds a reply per command,
// checks its counters, replies and carts, and stops it. Its builders are
// benchFoldGoka's: goka's defaults but what the embedded broker needs.
func benchCommandsGoka(b *testing.B, addrs []string, commands, carts int, products []string, want func(cart int) int) benchFold {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	// goka creates its group table, not the topics it emits to.
	tm, err := goka.NewTopicManager(addrs, benchGokaConfig(), tmc)
	if err != nil {
		b.Fatal(err)
	}
	for _, topic := range []string{benchGokaCartEvents, benchGokaCartReplies} {
		if err := tm.EnsureStreamExists(topic, benchPartitions); err != nil {
			b.Fatal(err)
		}
	}
	if err := tm.Close(); err != nil {
		b.Fatal(err)
	}

	var (
		processed, handled, rejected, failed atomic.Int64
		lastFailure                          atomic.Value
	)
	fail := func(err error) {
		failed.Add(1)
		lastFailure.Store(err.Error())
	}
	decide := func(ctx goka.Context, msg any) {
		processed.Add(1)
		defer handled.Add(1)
		cmd, ok := msg.(shop.CartCommand)
		if !ok {
			fail(fmt.Errorf("cart-commands delivered %T", msg))
			return
		}
		key := ctx.Key()
		var cur *shop.Cart
		if v, ok := ctx.Value().(shop.Cart); ok {
			cur = &v
		}
		product := func(id string) (*shop.Product, error) {
			switch v := ctx.Lookup(goka.Table(shop.ProductsTable.Name), id).(type) {
			case nil:
				return nil, nil
			case shop.Product:
				return &v, nil
			default:
				return nil, fmt.Errorf("products-table holds %T for %q", v, id)
			}
		}
		used := func(id string) (bool, error) {
			t, ok := ctx.Lookup(goka.Table(shop.CartHistoryTable.Name), id).(processors.Timeline)
			return ok && len(t.Events) > 0, nil
		}
		rep := processors.Reply{CommandID: cmd.ID, AggregateID: key, Status: processors.ReplyAccepted}
		if cur != nil {
			rep.Version = cur.Version
		}
		news, err := shop.DecideCart(cur, cmd, key, product, used)
		if rej, ok := errors.AsType[*processors.RejectedError](err); ok {
			rejected.Add(1)
			rep.Status, rep.Reason = processors.ReplyRejected, rej.Reason
		} else if err != nil {
			fail(err)
			rep.Status, rep.Reason = processors.ReplyFailed, err.Error()
		} else {
			next := cur
			for _, ne := range news {
				ev, err := codecs.NewEvent(shop.Source, ne.Type, key, ne.Data)
				if err == nil {
					next, err = shop.EvolveCart(next, ev)
				}
				if err != nil {
					fail(err)
					return
				}
				rep.Events = append(rep.Events, ev)
			}
			if next != nil {
				rep.Version += int64(len(rep.Events))
				next.SetVersion(rep.Version)
				ctx.SetValue(*next)
			}
			for _, ev := range rep.Events {
				ctx.Emit(goka.Stream(benchGokaCartEvents), key, ev)
			}
		}
		ctx.Emit(goka.Stream(benchGokaCartReplies), cmd.ID, rep)
	}
	graph := goka.DefineGroup(benchGokaCartsGroup,
		goka.Input(goka.Stream(shop.CartCommands.Name), plainJSON[shop.CartCommand]{}, decide),
		// Both are the shop's group tables: their values carry the
		// framework's bookkeeping in front of the state.
		goka.Lookup(goka.Table(shop.ProductsTable.Name), codecs.Goka(processors.StateCodec(shop.ProductsTable.Codec))),
		goka.Lookup(goka.Table(shop.CartHistoryTable.Name), codecs.Goka(processors.StateCodec(shop.CartHistoryTable.Codec))),
		goka.Persist(plainJSON[shop.Cart]{}),
		goka.Output(goka.Stream(benchGokaCartEvents), plainJSON[codecs.Event]{}),
		goka.Output(goka.Stream(benchGokaCartReplies), plainJSON[processors.Reply]{}),
	)
	p := benchGokaProcessor(b, addrs, graph)
	replied := func() int64 {
		if n := handled.Load(); n < int64(commands) {
			return n
		}
		return benchSum(benchEndOffsets(b, addrs, benchGokaCartReplies))
	}
	runtime.GC()
	b.StartTimer()
	start, cpu := time.Now(), benchProcessCPU()
	run := benchStart(pprof.Labels("commands", "goka"), p.Run)
	defer run.stop()
	result := benchAwaitFold(b, start, run, commands, processed.Load, replied)
	result.cpu = benchProcessCPU() - cpu
	b.StopTimer()

	if n, r := failed.Load(), rejected.Load(); n != 0 || r != 0 {
		b.Errorf("goka: %d of %d commands failed (last: %v), %d rejected", n, commands, lastFailure.Load(), r)
	}
	benchCheckCommandTopics(b, run, "goka", addrs, benchGokaCartEvents, benchGokaCartReplies, commands, carts)
	result.valueBytes = benchCheckCarts(b, "goka", carts, products, want, func(id string) (shop.Cart, int, error) {
		v, err := p.Get(id)
		if err != nil {
			return shop.Cart{}, 0, err
		}
		c, ok := v.(shop.Cart)
		if !ok {
			return shop.Cart{}, 0, fmt.Errorf("goka table holds %T for %q", v, id)
		}
		// What goka stored: its codec's encoding of the value.
		raw, err := shop.CartsTable.Codec.Encode(c)
		return c, len(raw), err
	})
	if err := run.stop(); err != nil {
		b.Errorf("goka run: %v", err)
	}
	return result
}

// benchCheckCommandTopics checks that the reply topic holds exactly one
// reply per command, that the event topic comes to hold a CartCreated per
// cart and an ItemAdded per command (the events and the last replies leave
// on different partitions, so it waits for them), and that a sample of
// replies are acceptances.
func benchCheckCommandTopics(b *testing.B, run *benchRunning, who string, addrs []string, eventsTopic, repliesTopic string, commands, carts int) {
	if n := benchSum(benchEndOffsets(b, addrs, repliesTopic)); n != int64(commands) {
		b.Errorf("%s: %s holds %d replies, want %d", who, repliesTopic, n, commands)
	}
	events := int64(commands + carts)
	benchAwait(b, run, fmt.Sprintf("%s: %d events in %s", who, events, eventsTopic), func() bool {
		return benchSum(benchEndOffsets(b, addrs, eventsTopic)) >= events
	})
	if n := benchSum(benchEndOffsets(b, addrs, eventsTopic)); n != events {
		b.Errorf("%s: %s holds %d events, want %d", who, eventsTopic, n, events)
	}
	for _, rep := range benchReadReplies(b, addrs, repliesTopic, 2_000) {
		if rep.Status != processors.ReplyAccepted || rep.Duplicate || len(rep.Events) == 0 {
			b.Errorf("%s: reply %+v, want an acceptance with events", who, rep)
			return
		}
	}
}

// benchReadReplies reads the first replies (at most n) of partition 0 of
// topic from its start. It knows how many there are (the end offset), so it
// never waits for records that will not come.
func benchReadReplies(b *testing.B, addrs []string, topic string, n int) []processors.Reply {
	want := min(int(benchEndOffsets(b, addrs, topic)[0]), n)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), benchPatience)
	defer cancel()
	replies := make([]processors.Reply, 0, want)
	for len(replies) < want {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("read %s: %d of %d replies after %v", topic, len(replies), want, benchPatience)
		}
		fetches.EachError(func(t string, p int32, err error) { b.Fatalf("read %s/%d: %v", t, p, err) })
		for _, r := range fetches.Records() {
			rep, err := shop.CartReplies.Codec.Decode(r.Value)
			if err != nil {
				b.Fatalf("reply at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			replies = append(replies, rep)
		}
	}
	return replies[:want]
}

// benchCheckCarts checks that a sample of carts holds its products in order,
// one event per item and one for the creation, and returns the mean size of
// their stored values.
func benchCheckCarts(b *testing.B, who string, carts int, products []string, want func(cart int) int, get func(id string) (c shop.Cart, stored int, err error)) int {
	const sample = 200
	checked, bytes := 0, 0
	for i := range min(sample, carts) {
		c := i * carts / min(sample, carts)
		id := benchCartID(c)
		cart, n, err := get(id)
		if err != nil {
			b.Errorf("%s: get cart %q: %v", who, id, err)
			continue
		}
		checked++
		bytes += n
		items := want(c)
		ok := cart.ID == id && cart.Status == shop.CartOpen && len(cart.Items) == items && cart.Version == int64(items+1)
		for j := 0; ok && j < items; j++ {
			ok = cart.Items[j].ProductID == products[j]
		}
		if !ok {
			b.Errorf("%s: cart %q is %+v, want %d items (products 0..%d) at version %d", who, id, cart, items, items-1, items+1)
		}
	}
	return bytes / max(checked, 1)
}

// benchHTTPItems is the number of products of BenchmarkCartCommandsHTTP and
// the number of items each of its carts gets.
const benchHTTPItems = 20

// BenchmarkCartCommandsHTTP posts AddItem commands to the whole shop (the
// shop binary, built from cmd/shop and run as a child process with its own
// embedded broker and every group) through POST /carts/{id}/commands, with C
// concurrent keep-alive clients, each filling its own carts one after the
// other with the products in order, one command at a time. Every command
// must be answered 200 (accepted) with the cart's next version. The figures
// are the accepted commands per second, the p50 and p99 of the client-side
// latency and the CPU time per command of the shop process and the
// benchmark's (the clients') together.
//
//	go test -run '^$' -bench BenchmarkCartCommandsHTTP -benchtime=1x ./bench/
//
// In a profile of the benchmark the load generator's goroutines carry
// load=client; the shop is profiled apart (it is another process).
func BenchmarkCartCommandsHTTP(b *testing.B) {
	total := benchEnvInt(b, "STREAMFOLD_BENCH_HTTP_COMMANDS", 20_000)
	clients := min(benchEnvInt(b, "STREAMFOLD_BENCH_CLIENTS", 32), total)
	b.StopTimer()

	kafka := freeAddr(b)
	// The reply timeout is a bound for a broken shop, not a threshold: a
	// command not answered in time fails the benchmark.
	p := runShopProcess(b, "--data-dir", b.TempDir(), "--kafka-listen", kafka, "--http", "127.0.0.1:0",
		"--partitions", strconv.Itoa(benchPartitions), "--reply-timeout", "1m")
	defer benchStopShop(b, p.run)
	base := p.base

	probe := newBenchClient(1)
	defer probe.CloseIdleConnections()
	products := benchProduceProducts(b, []string{kafka}, benchHTTPItems)
	benchAwait(b, p.run, "every product validated (GET /products/{id})", func() bool {
		return benchValidated(products, func(id string) (shop.Product, error) {
			var p shop.Product
			resp, err := probe.Get(base + "/products/" + id)
			if err != nil {
				return p, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return p, fmt.Errorf("GET /products/%s: %s", id, resp.Status)
			}
			return p, json.NewDecoder(resp.Body).Decode(&p)
		})
	})
	// The carts group decides against its own copy of products-table (a
	// lookup table, which may lag the products group's): a probe cart per
	// product is retried until the carts group accepts the product too.
	// A refused AddItem on a new cart leaves nothing behind.
	accepted := 0
	benchAwait(b, p.run, "every product accepted by the carts group (a probe cart per product)", func() bool {
		for accepted < len(products) {
			body, err := json.Marshal(benchAddItem(products[accepted], 0))
			if err != nil {
				b.Fatal(err)
			}
			resp, err := probe.Post(base+"/carts/probe-"+products[accepted]+"/commands", "application/json", bytes.NewReader(body))
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
			accepted++
		}
		return true
	})

	var load benchLoad
	var cpu float64
	for r := range b.N {
		l, c := benchCommandLoad(b, base, p.cmd.Process.Pid, products, fmt.Sprintf("round%d", r), total, clients)
		load.add(l, b.N)
		cpu += c / float64(b.N)
	}
	b.ReportMetric(load.throughput, "cmd/s")
	b.ReportMetric(float64(load.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(load.p99.Microseconds()), "p99-µs")
	b.ReportMetric(cpu, "cpu-µs/cmd")
	b.Logf("POST /carts/{id}/commands commands=%d clients=%d items/cart=%d partitions=%d: %.0f accepted cmd/s, p50 %v, p99 %v, %.1f µs CPU/command (clients included)",
		total, clients, benchHTTPItems, benchPartitions, load.throughput, load.p50, load.p99, cpu)
}

// benchCommandLoad sends total AddItem commands from clients concurrent
// keep-alive clients, after an unmeasured warm-up (a cart per client) that
// opens the connections. It returns the load's figures and the CPU time per
// command, in microseconds, of this process and the shop's (process shopPID).
func benchCommandLoad(b *testing.B, base string, shopPID int, products []string, round string, total, clients int) (benchLoad, float64) {
	hc := newBenchClient(clients)
	defer hc.CloseIdleConnections()
	// send posts n commands for client c to its carts named prefix-c-k,
	// in order, and records their latencies; it stops at the first failure.
	send := func(prefix string, c, n int, latencies []time.Duration) error {
		for k := range n {
			cart, item := fmt.Sprintf("%s-%02d-%05d", prefix, c, k/len(products)), k%len(products)
			body, err := json.Marshal(benchAddItem(products[item], k))
			if err != nil {
				return err
			}
			t0 := time.Now()
			resp, err := hc.Post(base+"/carts/"+cart+"/commands", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			answer, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if latencies != nil {
				latencies[k] = time.Since(t0)
			}
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("POST /carts/%s/commands: %s %s", cart, resp.Status, answer)
			}
			var accepted struct {
				Version int64 `json:"version"`
			}
			if err := json.Unmarshal(answer, &accepted); err != nil {
				return fmt.Errorf("POST /carts/%s/commands: %w: %s", cart, err, answer)
			}
			if want := int64(item + 2); accepted.Version != want { // CartCreated, then one ItemAdded per item
				return fmt.Errorf("POST /carts/%s/commands: version %d, want %d", cart, accepted.Version, want)
			}
		}
		return nil
	}
	load := func(prefix string, share func(c int) int, latencies [][]time.Duration) time.Duration {
		var (
			wg     sync.WaitGroup
			failed atomic.Int64
			last   atomic.Value
		)
		start := time.Now()
		for c := range clients {
			wg.Go(func() {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("load", "client")))
				var lat []time.Duration
				if latencies != nil {
					lat = latencies[c]
				}
				if err := send(prefix, c, share(c), lat); err != nil {
					failed.Add(1)
					last.Store(err.Error())
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d of %d clients failed; last: %v", f, clients, last.Load())
		}
		return elapsed
	}
	load(round+"-warm", func(int) int { return len(products) }, nil)

	share := func(c int) int { return benchCartItems(total, clients, c) }
	latencies := make([][]time.Duration, clients)
	for c := range latencies {
		latencies[c] = make([]time.Duration, share(c))
	}
	runtime.GC()
	b.StartTimer()
	cpu := benchProcessCPU() + benchChildCPU(shopPID)
	elapsed := load(round, share, latencies)
	cpu = benchProcessCPU() + benchChildCPU(shopPID) - cpu
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	return benchLoad{
		throughput: float64(total) / elapsed.Seconds(),
		p50:        benchPercentile(all, 0.50),
		p99:        benchPercentile(all, 0.99),
	}, float64(cpu.Microseconds()) / float64(total)
}

// benchStopShop cancels the shop's run and waits for it to return cleanly.
func benchStopShop(b *testing.B, run *benchRunning) {
	run.cancel()
	select {
	case <-run.done:
		if run.err != nil {
			b.Errorf("shop stopped with an error: %v", run.err)
		}
	case <-time.After(benchPatience):
		b.Errorf("shop did not stop within %v", benchPatience)
	}
}
