package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/shop"
)

// BenchmarkMemoryVersusLog runs the whole shop as a process on its embedded
// broker (the one-command run), folds customer events into it in rounds
// and prints its resident memory against the size of the broker's log after
// each round: what outside testing saw grow from 78 MB to 1 GB. Rounds of
// STREAMFOLD_BENCH_ROUND events (default 25,000) for 2,000 customers, up to
// STREAMFOLD_BENCH_EVENTS (default 250,000).
//
//	go test -run '^$' -bench BenchmarkMemoryVersusLog -benchtime=1x ./bench/
func BenchmarkMemoryVersusLog(b *testing.B) {
	events, round, keys := benchEnvInt(b, "STREAMFOLD_BENCH_EVENTS", 250_000), benchEnvInt(b, "STREAMFOLD_BENCH_ROUND", 25_000), 2_000
	for range b.N {
		dir := b.TempDir()
		kafka := freeAddr(b)
		p := runShopProcess(b, "--data-dir", dir, "--kafka-listen", kafka, "--http", "127.0.0.1:0")
		cl := kafkaClient(b, []string{kafka}, kgo.ProducerLinger(5*time.Millisecond))
		fmt.Printf("%10s %10s %12s\n", "events", "rss MB", "log MB")
		fmt.Printf("%10d %10.0f %12.1f\n", 0, rssMB(b, p.cmd.Process.Pid), dirMB(filepath.Join(dir, "kafka")))
		var rss float64
		for done := 0; done < events; done += round {
			last := produceCustomerRound(b, cl, done, round, keys)
			require.Eventually(b, func() bool { return customerName(p.base, last.id) == last.name }, benchRoundWait, 50*time.Millisecond,
				"the fold never reached event %d", done+round)
			rss = rssMB(b, p.cmd.Process.Pid)
			fmt.Printf("%10d %10.0f %12.1f\n", done+round, rss, dirMB(filepath.Join(dir, "kafka")))
		}
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(dirMB(filepath.Join(dir, "kafka")), "log-MB")
		p.kill()
	}
}

// benchRoundWait bounds a round of BenchmarkMemoryVersusLog: reached only
// when something is broken.
const benchRoundWait = time.Minute

type lastCustomer struct{ id, name string }

// produceCustomerRound produces n customer events from event number from
// on: each customer's first is its registration, the rest updates.
func produceCustomerRound(b *testing.B, cl *kgo.Client, from, n, keys int) lastCustomer {
	ctx, cancel := context.WithTimeout(context.Background(), benchRoundWait)
	defer cancel()
	var last lastCustomer
	errs := make(chan error, 1)
	for i := from; i < from+n; i++ {
		id := "m" + strconv.Itoa(i%keys)
		typ, data := shop.CustomerUpdatedType, map[string]any{"name": "Name " + strconv.Itoa(i)}
		if i < keys {
			typ, data = shop.CustomerRegisteredType, map[string]any{"name": "Name " + strconv.Itoa(i), "email": id + "@example.com"}
		}
		ev, err := codecs.NewEvent("urn:bench", typ, id, data)
		require.NoError(b, err)
		v, err := codecs.CloudEvents{}.Encode(ev)
		require.NoError(b, err)
		cl.Produce(ctx, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
		last = lastCustomer{id, "Name " + strconv.Itoa(i)}
	}
	require.NoError(b, cl.Flush(ctx))
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return last
}

func customerName(base, id string) string {
	resp, err := http.Get(base + "/customers/" + id)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var c shop.Customer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&c) != nil {
		return ""
	}
	return c.Name
}

func rssMB(b *testing.B, pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("no /proc here: %v", err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}

func dirMB(dir string) float64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return float64(n) / (1 << 20)
}
