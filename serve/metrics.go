package serve

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamfold/streamfold/tables"
)

// readiness is /readyz over the runtime: ready once every table is
// restored, with the tables' progress and the groups' counters.
type readiness struct{ rt Runtime }

func (r readiness) Ready(context.Context) (bool, any) {
	return r.rt.Recovered(), map[string]any{"tables": r.rt.Progress(), "groups": r.rt.Stats()}
}

// lagTimeout bounds how long a scrape waits for the brokers' answer to
// the lag: well inside Prometheus' default scrape timeout (10 s), so a
// broker that does not answer costs the lag series, not the scrape.
const lagTimeout = 3 * time.Second

// newRegistry is a Server's Prometheus registry: the Go runtime's and the
// process's collectors, and the runtime's groups, lag and restores, each
// read at scrape time. One per Server, never the global default: several
// servers in one process (tests, an application serving two topologies)
// must not count into each other.
func newRegistry(rt Runtime, log *slog.Logger) (*prometheus.Registry, *lagCollector) {
	reg := prometheus.NewRegistry()
	lag := &lagCollector{rt: rt, log: log, timeout: lagTimeout}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		groupCollector{rt: rt, log: log},
		lag,
		restoreCollector{rt},
	)
	return reg, lag
}

var partitionLabels = []string{"group", "topic", "partition"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The groups' counters, per input topic and partition (processors.Snapshot).
var (
	descProcessed   = desc("streamfold_records_processed_total", "Records handed to a group's handlers, by group, input topic and partition.", partitionLabels...)
	descApplied     = desc("streamfold_records_applied_total", "Records a group's handlers applied.", partitionLabels...)
	descDuplicate   = desc("streamfold_records_duplicate_total", "Records a group skipped as already applied.", partitionLabels...)
	descDeleted     = desc("streamfold_records_deleted_total", "Records that deleted a group's table row (tombstones).", partitionLabels...)
	descSuppressed  = desc("streamfold_records_suppressed_total", "Outputs a bootstrap group held back while catching up on history.", partitionLabels...)
	descDeadLetters = desc("streamfold_dead_letters_total", "Records dead-lettered, by group, topic and partition they were read from, and error class.", append(partitionLabels, "class")...)
	descRetries     = desc("streamfold_retries_total", "Records retried: in place (kind=in-place) or sent to a retry topic (kind=later).", append(partitionLabels, "kind")...)
	descParked      = desc("streamfold_records_parked_total", "Records parked to wait for a missing dependency.", partitionLabels...)
	descReleased    = desc("streamfold_records_released_total", "Parked records released once their dependency arrived.", partitionLabels...)
	descParkedNow   = desc("streamfold_records_parked", "Records parked in this instance's stores now, waiting for a missing dependency, by group and the topic and partition they were read from.", partitionLabels...)
	descFailures    = desc("streamfold_failures_total", "A group's counters by reason, over all its partitions: retries, parking, re-drives, timers, late records, and its stores found broken, rebuilt or failing to write.", "group", "reason")
)

// groupCollector serves the groups' counters from rt.Stats, and the records
// parked now from rt.Parked, at scrape time.
type groupCollector struct {
	rt  Runtime
	log *slog.Logger
}

func (groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcessed, descApplied, descDuplicate, descDeleted, descSuppressed, descDeadLetters, descRetries, descParked, descReleased, descParkedNow, descFailures} {
		ch <- d
	}
}

func (c groupCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.rt.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, g := range slices.Sorted(maps.Keys(stats)) {
		s := stats[g]
		for _, p := range s.Partitions {
			part := strconv.Itoa(int(p.Partition))
			counter(descProcessed, p.Processed, g, p.Topic, part)
			counter(descApplied, p.Applied, g, p.Topic, part)
			counter(descDuplicate, p.Duplicates, g, p.Topic, part)
			counter(descDeleted, p.Deleted, g, p.Topic, part)
			counter(descSuppressed, p.Suppressed, g, p.Topic, part)
			counter(descRetries, p.Counters["retried-in-place"], g, p.Topic, part, "in-place")
			counter(descRetries, p.Counters["retried-later"], g, p.Topic, part, "later")
			counter(descParked, p.Counters["parked"], g, p.Topic, part)
			counter(descReleased, p.Counters["released"], g, p.Topic, part)
			for _, class := range slices.Sorted(maps.Keys(p.DeadLetters)) {
				counter(descDeadLetters, p.DeadLetters[class], g, p.Topic, part, class)
			}
		}
		for _, reason := range slices.Sorted(maps.Keys(s.Counters)) {
			counter(descFailures, s.Counters[reason], g, reason)
		}
	}
	c.collectParked(ch)
}

// collectParked counts the records parked in the local stores: a lookup of
// the parking index of each group that parks, no more than GET /parked does.
func (c groupCollector) collectParked(ch chan<- prometheus.Metric) {
	type where struct {
		topic     string
		partition int32
	}
	for _, g := range c.rt.GroupNames() {
		parked, err := c.rt.Parked(g)
		if err != nil {
			c.log.Debug("metrics: parked records left out", "group", g, "err", err)
			continue
		}
		n := map[where]int{}
		for _, p := range parked {
			n[where{p.Topic, p.Partition}]++
		}
		for w, count := range n {
			ch <- prometheus.MustNewConstMetric(descParkedNow, prometheus.GaugeValue, float64(count), g, w.topic, strconv.Itoa(int(w.partition)))
		}
	}
}

// Consumer lag (streamfold.Runtime.Lag), asked of the brokers at scrape time.
var (
	descLag        = desc("streamfold_consumer_lag_records", "Records a group has yet to commit on a partition it consumes: the end offset minus the committed one.", partitionLabels...)
	descCommitted  = desc("streamfold_consumer_committed_offset", "The next offset a group reads on a partition, as committed; absent before its first commit.", partitionLabels...)
	descEnd        = desc("streamfold_consumer_end_offset", "The end offset (high watermark) of a partition a group consumes.", partitionLabels...)
	descLagErrors  = desc("streamfold_lag_scrape_errors_total", "Scrapes whose consumer lag the brokers did not answer (in time); their lag series were left out.")
	descLagSeconds = desc("streamfold_lag_scrape_duration_seconds", "How long the last scrape waited for the consumer lag.")
)

// lagCollector serves the consumer lag. A broker that fails or is slow
// costs the lag series of that scrape (logged at debug, counted), never the
// scrape: the rest of /metrics is what an operator needs most then.
type lagCollector struct {
	rt      Runtime
	log     *slog.Logger
	timeout time.Duration
	errors  atomic.Int64
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descCommitted, descEnd, descLagErrors, descLagSeconds} {
		ch <- d
	}
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	lags, err := c.rt.Lag(ctx)
	ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, time.Since(start).Seconds())
	if err != nil {
		c.errors.Add(1)
		c.log.Debug("metrics: consumer lag left out", "err", err)
	}
	ch <- prometheus.MustNewConstMetric(descLagErrors, prometheus.CounterValue, float64(c.errors.Load()))
	if err != nil {
		return
	}
	for _, l := range lags {
		labels := []string{l.Group, l.Topic, strconv.Itoa(int(l.Partition))}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(l.Lag), labels...)
		ch <- prometheus.MustNewConstMetric(descEnd, prometheus.GaugeValue, float64(l.End), labels...)
		if l.Committed >= 0 {
			ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(l.Committed), labels...)
		}
	}
}

// Restore progress (Runtime.Progress), per table partition.
var (
	restoreLabels      = []string{"table", "partition"}
	descRestoreOffset  = desc("streamfold_restore_offset", "The last changelog offset a table partition's local store applied; -1 before any.", restoreLabels...)
	descRestoreEnd     = desc("streamfold_restore_end_offset", "The changelog's end offset a table partition's restore runs to (taken when its store opened).", restoreLabels...)
	descRestoreLeft    = desc("streamfold_restore_remaining_records", "Changelog records a table partition has yet to restore; 0 once restored.", restoreLabels...)
	descRestoreDone    = desc("streamfold_restore_recovered", "1 once a table partition's store is restored and serves, 0 while it restores.", restoreLabels...)
	descRestoreRecords = desc("streamfold_restore_records_total", "Writes a table partition's store applied since it opened.", restoreLabels...)
)

// restoreCollector serves the restore progress of the tables this instance
// keeps (its groups' and its views' replicas).
type restoreCollector struct{ rt Runtime }

func (restoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRestoreOffset, descRestoreEnd, descRestoreLeft, descRestoreDone, descRestoreRecords} {
		ch <- d
	}
}

func (c restoreCollector) Collect(ch chan<- prometheus.Metric) {
	progress := c.rt.Progress()
	gauge := func(d *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, table := range slices.Sorted(maps.Keys(progress)) {
		seen := map[int32]bool{} // a group's store and a view's replica of one table: the first
		for _, p := range progress[table] {
			if seen[p.Partition] {
				continue
			}
			seen[p.Partition] = true
			labels := []string{table, strconv.Itoa(int(p.Partition))}
			gauge(descRestoreOffset, float64(p.Offset), labels)
			if p.HighWatermark >= 0 {
				gauge(descRestoreEnd, float64(p.HighWatermark), labels)
			}
			gauge(descRestoreLeft, float64(remaining(p)), labels)
			done := 0.0
			if p.Recovered {
				done = 1
			}
			gauge(descRestoreDone, done, labels)
			ch <- prometheus.MustNewConstMetric(descRestoreRecords, prometheus.CounterValue, float64(p.Records), labels...)
		}
	}
}

// remaining is what a restore has left: from the record after the last one
// applied (or from where it started) to the end offset it runs to.
func remaining(p tables.Progress) int64 {
	if p.Recovered || p.HighWatermark < 0 {
		return 0
	}
	next := p.Offset + 1
	if p.Offset < 0 {
		next = max(p.StartOffset, 0)
	}
	return max(p.HighWatermark-next, 0)
}
