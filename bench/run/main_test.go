package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseResults_GivenGoTestOutput_ThenTheResultLinesOfThatBenchmark(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkGetCustomer-2   	       1	7867695433 ns/op	      1487 bare-p50-µs	     19306 bare-req/s	     9474 shop-req/s	         0.4907 shop/bare
--- BENCH: BenchmarkGetCustomer-2
    bench_test.go:635: GET /customers/{id} keys=2000: shop 9474 req/s
BenchmarkOther-2 1 5 ns/op 7 x/s
BenchmarkGetCustomerTwice-2 1 5 ns/op 7 x/s
PASS
`)
	rs := parseResults(out, "BenchmarkGetCustomer")

	assert.Equal(t, []result{{Metrics: map[string]float64{"ns/op": 7867695433, "bare-p50-µs": 1487, "bare-req/s": 19306, "shop-req/s": 9474, "shop/bare": 0.4907}}}, rs)
}

func TestParseResults_GivenSubBenchmarks_ThenARowEachWithCPUPerItem(t *testing.T) {
	out := []byte(`BenchmarkRestore/records=100000/keys=10000-2 1 1541980639 ns/op 0.3110 engine-restorer-cpu-s 513119 engine-restorer-rec/s 3.789 engine-restorer/goka-default 1.079 goka-default-cpu-s 135431 goka-default-rec/s
BenchmarkRestore/records=100000/keys=100000-2 1 1549399636 ns/op 0.5309 engine-restorer-cpu-s 337112 engine-restorer-rec/s 2.158 engine-restorer/goka-default 0.9284 goka-default-cpu-s 156228 goka-default-rec/s
`)
	rs := parseResults(out, "BenchmarkRestore")
	assert.Len(t, rs, 2)
	r := works[4].row("small", rs[1])

	assert.Equal(t, "restore a changelog records=100000/keys=100000", r.Work)
	assert.Equal(t, 2.158, r.Ratio)
	assert.InDelta(t, 5.309, r.CPU, 1e-9) // µs per record: 0.5309 s / 100,000
	assert.InDelta(t, 9.284, r.BaselineCPU, 1e-9)
}

func TestTable_GivenRows_ThenEachWorkWithItsFiguresAndDashesForNone(t *testing.T) {
	var w bytes.Buffer
	printTable(&w, []row{
		works[3].row("small", result{Metrics: map[string]float64{"shop-req/s": 9474, "bare-req/s": 19306, "shop/bare": 0.49, "shop-p50-µs": 2914, "shop-p99-µs": 12113, "bare-p99-µs": 8020, "shop-cpu-µs/req": 71.5}}),
		{Work: "broken", Err: "exit status 1"},
	})

	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	assert.Len(t, lines, 3)
	assert.Equal(t, []string{"GET", "by", "key", "9474", "19306", "0.49x", "71.5", "-", "2.9", "12.1", "8.0", "-"}, strings.Fields(lines[1]))
	assert.Contains(t, lines[2], "failed: exit status 1")
}

func TestRow_GivenTheTimeBenchmarksOutput_ThenTheirRowsCarryBothRatesAndCPUPerItem(t *testing.T) {
	out := []byte(`BenchmarkWindowedSum-2 1 8108871875 ns/op 177.0 framework-cpu-µs/ev 3344 framework-ev/s 0.3545 framework/goka 67.56 goka-cpu-µs/ev 9434 goka-ev/s
BenchmarkStreamJoin-2 1 2705211047 ns/op 109.2 framework-cpu-µs/rec 5780 framework-rec/s 0.5607 framework/goka 60.5 goka-cpu-µs/rec 10309 goka-rec/s
`)
	for _, bench := range []string{"BenchmarkWindowedSum", "BenchmarkStreamJoin"} {
		i := slices.IndexFunc(works, func(w work) bool { return w.Bench == bench })
		assert.GreaterOrEqual(t, i, 0, bench)
		rs := parseResults(out, bench)
		assert.Len(t, rs, 1, bench)
		r := works[i].row("small", rs[0])

		assert.NotZero(t, r.Rate, bench)
		assert.NotZero(t, r.Baseline, bench)
		assert.NotZero(t, r.Ratio, bench)
		assert.NotZero(t, r.CPU, bench)
		assert.NotZero(t, r.BaselineCPU, bench)
	}
}

func TestRow_GivenTheOutboxBenchmarksOutput_ThenARowPerDatabaseWithRateCPUAndLatencyWhereMeasured(t *testing.T) {
	out := []byte(`BenchmarkOutboxPollingRelay/sqlite-2 1 3530399023 ns/op 48.73 cpu-µs/row 62649 p50-µs 148226 p99-µs 13774 row/s
BenchmarkOutboxPollingRelay/postgres-2 1 3202708511 ns/op 46.53 cpu-µs/row 58477 p50-µs 109308 p99-µs 15390 row/s
BenchmarkOutboxLogRelay/postgres-2 1 4550273414 ns/op 64.43 cpu-µs/row 3484 p50-µs 6352 p99-µs 9778 row/s
--- BENCH: BenchmarkOutboxLogRelay/postgres-2
BenchmarkOutboxSink/sqlite-2 1 1015682257 ns/op 37.07 cpu-µs/rec 20678 rec/s
BenchmarkOutboxSink/postgres-2 1 4785474839 ns/op 128.6 cpu-µs/rec 4389 rec/s
`)
	for _, tc := range []struct {
		bench   string
		rows    []string
		latency bool
	}{
		{"BenchmarkOutboxPollingRelay", []string{"outbox polling relay sqlite", "outbox polling relay postgres"}, true},
		{"BenchmarkOutboxLogRelay", []string{"outbox log relay postgres"}, true},
		{"BenchmarkOutboxSink", []string{"outbox sink sqlite", "outbox sink postgres"}, false},
	} {
		i := slices.IndexFunc(works, func(w work) bool { return w.Bench == tc.bench })
		if !assert.GreaterOrEqual(t, i, 0, tc.bench) {
			continue
		}
		rs := parseResults(out, tc.bench)
		if !assert.Len(t, rs, len(tc.rows), tc.bench) {
			continue
		}
		for j, res := range rs {
			r := works[i].row("small", res)

			assert.Equal(t, tc.rows[j], r.Work)
			assert.NotZero(t, r.Rate, r.Work)
			assert.NotZero(t, r.CPU, r.Work)
			assert.Equal(t, tc.latency, r.P50 != 0 && r.P99 != 0, r.Work)
		}
	}
}
