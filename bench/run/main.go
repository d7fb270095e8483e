// Command run runs every framework-versus-baseline benchmark at one size and
// prints one table (each work, both rates, the ratio, CPU per item, p50/p99
// where it applies, RSS) and the same rows as JSON lines for tools:
//
//	go run ./bench/run --size small   # under a few minutes on 2 cores
//	go run ./bench/run --size full    # the sizes of docs/BENCHMARKS.md
//
// Each benchmark runs in its own `go test -bench` process with its sizes in
// STREAMFOLD_BENCH_* variables; the figures are the benchmarks' own
// ReportMetric values. Rates swing with other load on a shared machine: read
// CPU per item beside them, and the ratio, which both sides share.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
)

// work is one benchmark and how to read its metrics into a row.
type work struct {
	Name, Bench, Pkg string
	Env              map[string]map[string]string // by size
	// Metric names of the row's columns ("" for none).
	Rate, Baseline, Ratio, CPU, BaselineCPU, P50, P99, BaselineP99, RSS string
	// CPUSecondsOver names the variable holding the item count when the CPU
	// metrics are seconds in all (turned into µs per item).
	CPUSecondsOver string
}

var works = []work{
	{Name: "fold customers", Bench: "BenchmarkFoldCustomers", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_EVENTS": "100000", "STREAMFOLD_BENCH_KEYS": "5000"},
			"full":  {"STREAMFOLD_BENCH_EVENTS": "1000000", "STREAMFOLD_BENCH_KEYS": "10000"},
		},
		Rate: "framework-ev/s", Baseline: "goka-ev/s", Ratio: "framework/goka", CPU: "framework-cpu-µs/ev", BaselineCPU: "goka-cpu-µs/ev",
		RSS: "framework-rss-growth-MB"},
	{Name: "decide cart commands", Bench: "BenchmarkCartCommands", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_COMMANDS": "10000", "STREAMFOLD_BENCH_CARTS": "1000"},
			"full":  {"STREAMFOLD_BENCH_COMMANDS": "200000", "STREAMFOLD_BENCH_CARTS": "10000"},
		},
		Rate: "framework-cmd/s", Baseline: "goka-cmd/s", Ratio: "framework/goka", CPU: "framework-cpu-µs/cmd", BaselineCPU: "goka-cpu-µs/cmd"},
	{Name: "POST commands over HTTP", Bench: "BenchmarkCartCommandsHTTP", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_HTTP_COMMANDS": "3000", "STREAMFOLD_BENCH_CLIENTS": "32"},
			"full":  {"STREAMFOLD_BENCH_HTTP_COMMANDS": "20000", "STREAMFOLD_BENCH_CLIENTS": "32"},
		},
		Rate: "cmd/s", CPU: "cpu-µs/cmd", P50: "p50-µs", P99: "p99-µs"},
	{Name: "GET by key", Bench: "BenchmarkGetCustomer", Pkg: "./bench/",
		Env: map[string]map[string]string{
			// The bare server runs in a process of its own, as the shop does,
			// not beside the load generator.
			"small": {"STREAMFOLD_BENCH_KEYS": "2000", "STREAMFOLD_BENCH_REQUESTS": "50000", "STREAMFOLD_BENCH_CLIENTS": "32", "STREAMFOLD_BENCH_BARE_PROCESS": "1"},
			"full":  {"STREAMFOLD_BENCH_KEYS": "10000", "STREAMFOLD_BENCH_REQUESTS": "200000", "STREAMFOLD_BENCH_CLIENTS": "32", "STREAMFOLD_BENCH_BARE_PROCESS": "1"},
		},
		Rate: "shop-req/s", Baseline: "bare-req/s", Ratio: "shop/bare", CPU: "shop-cpu-µs/req", BaselineCPU: "bare-cpu-µs/req",
		P50: "shop-p50-µs", P99: "shop-p99-µs", BaselineP99: "bare-p99-µs"},
	{Name: "restore a changelog", Bench: "BenchmarkRestore", Pkg: "./tables/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_RECORDS": "100000", "STREAMFOLD_BENCH_BUILDERS": "goka-default,engine-restorer"},
			"full":  {"STREAMFOLD_BENCH_RECORDS": "1000000", "STREAMFOLD_BENCH_BUILDERS": "goka-default,engine-restorer"},
		},
		Rate: "engine-restorer-rec/s", Baseline: "goka-default-rec/s", Ratio: "engine-restorer/goka-default", CPU: "engine-restorer-cpu-s", BaselineCPU: "goka-default-cpu-s",
		RSS:            "engine-restorer-rss-growth-MB",
		CPUSecondsOver: "STREAMFOLD_BENCH_RECORDS"},
	{Name: "windowed sum", Bench: "BenchmarkWindowedSum", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_WINDOW_EVENTS": "10000", "STREAMFOLD_BENCH_WINDOW_KEYS": "1000"},
			"full":  {"STREAMFOLD_BENCH_WINDOW_EVENTS": "1000000", "STREAMFOLD_BENCH_WINDOW_KEYS": "10000"},
		},
		Rate: "framework-ev/s", Baseline: "goka-ev/s", Ratio: "framework/goka", CPU: "framework-cpu-µs/ev", BaselineCPU: "goka-cpu-µs/ev"},
	{Name: "stream-stream join", Bench: "BenchmarkStreamJoin", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_JOIN_ORDERS": "5000"},
			"full":  {"STREAMFOLD_BENCH_JOIN_ORDERS": "500000"},
		},
		Rate: "framework-rec/s", Baseline: "goka-rec/s", Ratio: "framework/goka", CPU: "framework-cpu-µs/rec", BaselineCPU: "goka-cpu-µs/rec"},
	{Name: "memory against the log", Bench: "BenchmarkMemoryVersusLog", Pkg: "./bench/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_EVENTS": "20000", "STREAMFOLD_BENCH_ROUND": "5000"},
			"full":  {"STREAMFOLD_BENCH_EVENTS": "250000", "STREAMFOLD_BENCH_ROUND": "25000"},
		},
		RSS: "rss-MB"},
	// The outbox's pieces, each on its databases (a row each): a relay's
	// rate draining a backlog, then commit-to-acknowledgement latency of
	// single-row transactions at 200 a second; the sink's rate.
	{Name: "outbox polling relay", Bench: "BenchmarkOutboxPollingRelay", Pkg: "./outbox/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_OUTBOX_ROWS": "10000", "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS": "500"},
			"full":  {"STREAMFOLD_BENCH_OUTBOX_ROWS": "100000", "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS": "5000"},
		},
		Rate: "row/s", CPU: "cpu-µs/row", P50: "p50-µs", P99: "p99-µs"},
	{Name: "outbox log relay", Bench: "BenchmarkOutboxLogRelay", Pkg: "./outbox/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_OUTBOX_ROWS": "20000", "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS": "500"},
			"full":  {"STREAMFOLD_BENCH_OUTBOX_ROWS": "200000", "STREAMFOLD_BENCH_OUTBOX_LATENCY_ROWS": "5000"},
		},
		Rate: "row/s", CPU: "cpu-µs/row", P50: "p50-µs", P99: "p99-µs"},
	{Name: "outbox sink", Bench: "BenchmarkOutboxSink", Pkg: "./outbox/",
		Env: map[string]map[string]string{
			"small": {"STREAMFOLD_BENCH_SINK_RECORDS": "20000"},
			"full":  {"STREAMFOLD_BENCH_SINK_RECORDS": "200000"},
		},
		Rate: "rec/s", CPU: "cpu-µs/rec"},
}

// row is one work's figures; zero means not measured.
type row struct {
	Work        string             `json:"work"`
	Size        string             `json:"size"`
	Rate        float64            `json:"rate,omitempty"`
	Baseline    float64            `json:"baselineRate,omitempty"`
	Ratio       float64            `json:"ratio,omitempty"`
	CPU         float64            `json:"cpuPerItem,omitempty"`
	BaselineCPU float64            `json:"baselineCpuPerItem,omitempty"`
	P50         float64            `json:"p50Micros,omitempty"`
	P99         float64            `json:"p99Micros,omitempty"`
	BaselineP99 float64            `json:"baselineP99Micros,omitempty"`
	RSS         float64            `json:"rssMB,omitempty"`
	Metrics     map[string]float64 `json:"metrics"`
	Err         string             `json:"error,omitempty"`
}

func main() {
	size := flag.String("size", "small", "small or full")
	only := flag.String("only", "", "run only the benchmarks whose name contains this")
	flag.Parse()
	if *size != "small" && *size != "full" {
		fmt.Fprintln(os.Stderr, "run: --size must be small or full")
		os.Exit(2)
	}
	var rows []row
	for _, w := range works {
		if *only != "" && !strings.Contains(w.Bench, *only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "run: %s (%s)...\n", w.Bench, *size)
		out, err := runBench(w, *size)
		if err != nil {
			os.Stderr.Write(out)
			rows = append(rows, row{Work: w.Name, Size: *size, Err: err.Error()})
			continue
		}
		for _, res := range parseResults(out, w.Bench) {
			rows = append(rows, w.row(*size, res))
		}
	}
	printTable(os.Stdout, rows)
	enc := json.NewEncoder(os.Stdout)
	for _, r := range rows {
		_ = enc.Encode(r)
	}
}

// runBench runs one benchmark once in its own process.
func runBench(w work, size string) ([]byte, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^"+w.Bench+"$", "-benchtime", "1x", "-timeout", "60m", w.Pkg)
	cmd.Env = os.Environ()
	for k, v := range w.Env[size] {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd.CombinedOutput()
}

// result is one result line of go test: a benchmark (or sub-benchmark,
// Sub being what follows the benchmark's name) and its metrics.
type result struct {
	Sub     string
	Metrics map[string]float64
}

// parseResults reads the result lines of bench from go test's output: the
// name (with the GOMAXPROCS suffix), the iterations, then value-unit pairs.
func parseResults(out []byte, bench string) []result {
	var rs []result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], bench) {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		sub, ok := strings.CutPrefix(name, bench)
		if !ok || sub != "" && sub[0] != '/' {
			continue
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		rs = append(rs, result{Sub: strings.TrimPrefix(sub, "/"), Metrics: m})
	}
	return rs
}

func (w work) row(size string, res result) row {
	m := res.Metrics
	r := row{Work: strings.TrimSpace(w.Name + " " + res.Sub), Size: size, Metrics: m,
		Rate: m[w.Rate], Baseline: m[w.Baseline], Ratio: m[w.Ratio], CPU: m[w.CPU], BaselineCPU: m[w.BaselineCPU],
		P50: m[w.P50], P99: m[w.P99], BaselineP99: m[w.BaselineP99], RSS: m[w.RSS]}
	if w.CPUSecondsOver != "" {
		if n, err := strconv.ParseFloat(w.Env[size][w.CPUSecondsOver], 64); err == nil && n > 0 {
			r.CPU, r.BaselineCPU = r.CPU*1e6/n, r.BaselineCPU*1e6/n
		}
	}
	return r
}

func printTable(out io.Writer, rows []row) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "work\tstreamfold/s\tbaseline/s\tratio\tCPU/item\tbaseline CPU/item\tp50 ms\tp99 ms\tbaseline p99 ms\tRSS (growth) MB\t")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\t\t\t\t\t\t\t\t\n", r.Work, r.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Work,
			num(r.Rate, "%.0f"), num(r.Baseline, "%.0f"), num(r.Ratio, "%.2fx"), num(r.CPU, "%.1f"), num(r.BaselineCPU, "%.1f"),
			num(r.P50/1000, "%.1f"), num(r.P99/1000, "%.1f"), num(r.BaselineP99/1000, "%.1f"), num(r.RSS, "%.0f"))
	}
	_ = tw.Flush()
}

// num formats v, or "-" for a figure the work does not have.
func num(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}
