package streamfold_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// Windowed aggregations against the embedded broker, with event times the
// test controls (the CloudEvents time of each number).

var sums = tables.NewStream[processors.WindowResult[int]]("sums", codecs.JSON[processors.WindowResult[int]]{})

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus an offset like "1m05s".
func at(t *testing.T, offset string) time.Time {
	t.Helper()
	d, err := time.ParseDuration(offset)
	require.NoError(t, err)
	return t0.Add(d)
}

// numberAt is a Number event for key with value n and event time when.
func numberAt(t *testing.T, key string, n int, when time.Time) *kgo.Record {
	t.Helper()
	ev, err := codecs.NewEvent("urn:test", "Number", key, map[string]int{"n": n})
	require.NoError(t, err)
	ev.ID = fmt.Sprintf("%s-%d-%d", key, n, when.UnixMilli())
	ev.Time = when
	b, err := codecs.CloudEvents{}.Encode(ev)
	require.NoError(t, err)
	return &kgo.Record{Topic: numbers.Name, Key: []byte(key), Value: b}
}

func sumOf(_ string, sum int, ev codecs.Event) (int, error) {
	var d struct{ N int }
	if err := ev.DataAs(&d); err != nil {
		return 0, err
	}
	return sum + d.N, nil
}

// windowGroup sums numbers per key and window, checking for due timers
// every 20 ms.
func windowGroup(w processors.Windows, finalOnly bool) *processors.Group {
	policy := processors.DefaultPolicy()
	policy.TimerInterval = 20 * time.Millisecond
	g := processors.NewGroup("windows", processors.WithPolicy(policy))
	processors.AggregateWindows(g, processors.WindowedAggregation[codecs.Event, int]{
		Input: numbers, Windows: w, Add: sumOf,
		Merge:   func(_ string, a, b int) (int, error) { return a + b, nil },
		Results: sums, FinalOnly: finalOnly,
	})
	return g
}

// startOn runs g on broker with its state in dir until the returned stop.
func startOn(t *testing.T, broker *embedded.Broker, g *processors.Group, dir string) (*streamfold.Runtime, func()) {
	t.Helper()
	return startJoins(t, broker, streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test"), dir)
}

// windowsOf reads key's windows from the local store, the key's value
// joined with its windows.
func windowsOf(t *testing.T, rt *streamfold.Runtime, key string) []processors.Window[int] {
	t.Helper()
	table := "windows-table"
	s, ok := rt.Store(table, tables.PartitionFor(key, rt.PartitionsOf(table)))
	if !ok {
		return nil
	}
	b, err := s.Read(key)
	require.NoError(t, err)
	if b == nil {
		return nil
	}
	_, state, err := envelope.Split(b)
	require.NoError(t, err)
	var w processors.Windowed[int]
	require.NoError(t, json.Unmarshal(state, &w))
	return w.Windows
}

// readResults reads key k's results from the sums topic, from the start,
// until until says it has what it waits for, and returns what it read.
type result struct {
	Start, End string
	Value      int
	Final      bool
	Removed    bool
}

func readResults(t *testing.T, brokers []string, until func([]result) bool) []result {
	t.Helper()
	var got []result
	consumeUntil(t, brokers, sums.Name, func(recs []*kgo.Record) bool {
		got = got[:0]
		for _, r := range recs {
			res, err := sums.Codec.Decode(r.Value)
			require.NoError(t, err)
			if string(r.Key) == "k" {
				got = append(got, result{Start: res.Start.Format("15:04:05"), End: res.End.Format("15:04:05"), Value: res.Value, Final: res.Final, Removed: res.Removed})
			}
		}
		return until(got)
	})
	return got
}

func hasFinal(start string) func([]result) bool {
	return func(rs []result) bool {
		for _, r := range rs {
			if r.Final && r.Start == start {
				return true
			}
		}
		return false
	}
}

// samePartition returns a key other than key on key's partition (of n).
func samePartition(key string, n int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("other-%d", i)
		if tables.PartitionFor(k, n) == tables.PartitionFor(key, n) {
			return k
		}
	}
}

func TestWindows_GivenTumblingWindowsWithGrace_WhenRecordsArriveOutOfOrderAndLate_ThenFinalResultsComeOnceAndLateRecordsAreRouted(t *testing.T) {
	broker := startBroker(t)
	rt, _ := startOn(t, broker, windowGroup(processors.Tumbling(time.Minute).Grace(10*time.Second), true), t.TempDir())
	other := samePartition("k", 2)

	produceAll(t, broker.Addrs(),
		numberAt(t, "k", 1, at(t, "10s")),
		numberAt(t, "k", 2, at(t, "50s")),
		numberAt(t, "k", 4, at(t, "1m05s")),  // stream time 12:01:05: [12:00, 12:01) open until 12:01:10
		numberAt(t, "k", 8, at(t, "59s")),    // out of order, within grace: applied
		numberAt(t, "k", 16, at(t, "1m20s")), // stream time 12:01:20 closes [12:00, 12:01)
		numberAt(t, "k", 32, at(t, "30s")),   // later than the grace: late
		numberAt(t, "k", 64, at(t, "2m30s")), // closes [12:01, 12:02)
	)
	// Stream time moved on by another key of the partition: k's last window
	// closes by its timer, with no record of k.
	produceAll(t, broker.Addrs(), numberAt(t, other, 1, at(t, "4m")))

	got := readResults(t, broker.Addrs(), hasFinal("12:02:00"))
	assert.Equal(t, []result{
		{Start: "12:00:00", End: "12:01:00", Value: 11, Final: true},
		{Start: "12:01:00", End: "12:02:00", Value: 20, Final: true},
		{Start: "12:02:00", End: "12:03:00", Value: 64, Final: true},
	}, got, "one final result per window, the out-of-order record in it, the late one not")

	late := lateRecords(t, broker.Addrs(), "windows", 1)
	assert.Equal(t, "k-32-"+fmt.Sprint(at(t, "30s").UnixMilli()), eventID(t, late[0]))
	assert.Equal(t, numbers.Name, header(late[0], processors.HeaderOriginalTopic))
	assert.Equal(t, "5", header(late[0], processors.HeaderOriginalOffset))
	assert.Equal(t, at(t, "1m20s").Format(time.RFC3339Nano), header(late[0], processors.HeaderStreamTime))
	assert.Equal(t, int64(1), rt.Stats()["windows"].Counters["late"])
}

func TestWindows_GivenSessions_WhenARecordBridgesTwo_ThenTheyMergeIntoOne(t *testing.T) {
	broker := startBroker(t)
	// (a grace of 5 minutes keeps the first session open until 12:10)
	rt, _ := startOn(t, broker, windowGroup(processors.Sessions(5*time.Minute).Grace(5*time.Minute), false), t.TempDir())

	produceAll(t, broker.Addrs(),
		numberAt(t, "k", 1, at(t, "0s")),
		numberAt(t, "k", 2, at(t, "8m")), // 8 minutes later: a second session
		numberAt(t, "k", 4, at(t, "4m")), // within 5 minutes of both: bridges them
	)
	got := readResults(t, broker.Addrs(), func(rs []result) bool { return len(rs) >= 4 })
	assert.Equal(t, []result{
		{Start: "12:00:00", End: "12:00:00", Value: 1},
		{Start: "12:08:00", End: "12:08:00", Value: 2},
		{Start: "12:00:00", End: "12:08:00", Value: 7},
		{Start: "12:08:00", End: "00:00:00", Removed: true},
	}, got)
	ws := windowsOf(t, rt, "k")
	require.Len(t, ws, 1)
	assert.Equal(t, 7, ws[0].Value)
	assert.Equal(t, at(t, "8m"), ws[0].End.UTC())
}

func lateRecords(t *testing.T, brokers []string, group string, n int) []*kgo.Record {
	t.Helper()
	return consumeN(t, brokers, group+"-late", n)
}

func eventID(t *testing.T, r *kgo.Record) string {
	t.Helper()
	ev, err := codecs.DecodeEvent(r.Value, nil)
	require.NoError(t, err)
	return ev.ID
}

func finals(rs []result) []result {
	var out []result
	for _, r := range rs {
		if r.Final {
			out = append(out, r)
		}
	}
	return out
}

func TestWindows_GivenAWindowAndASessionOpen_WhenTheProcessRestartsOnAnEmptyDisk_ThenResultsAreTheSameAndStreamTimeIsKept(t *testing.T) {
	t.Run("tumbling", func(t *testing.T) {
		broker := startBroker(t)
		w := processors.Tumbling(time.Minute)
		_, stop := startOn(t, broker, windowGroup(w, true), t.TempDir())
		produceAll(t, broker.Addrs(),
			numberAt(t, "k", 1, at(t, "10s")),
			numberAt(t, "k", 2, at(t, "20s")),
			numberAt(t, "k", 4, at(t, "1m30s")), // closes [12:00, 12:01); [12:01, 12:02) open
		)
		readResults(t, broker.Addrs(), hasFinal("12:00:00"))
		stop()

		// A new instance on an empty disk restores the windows and the
		// stream time from the changelog.
		rt, _ := startOn(t, broker, windowGroup(w, true), t.TempDir())
		produceAll(t, broker.Addrs(),
			numberAt(t, "k", 8, at(t, "50s")), // late by the stream time before the restart
			numberAt(t, "k", 16, at(t, "1m40s")),
			numberAt(t, samePartition("k", 2), 1, at(t, "4m")),
		)
		got := readResults(t, broker.Addrs(), hasFinal("12:01:00"))
		assert.Equal(t, []result{
			{Start: "12:00:00", End: "12:01:00", Value: 3, Final: true},
			{Start: "12:01:00", End: "12:02:00", Value: 20, Final: true},
		}, finals(got))
		assert.Equal(t, int64(1), rt.Stats()["windows"].Counters["late"])
	})
	t.Run("session", func(t *testing.T) {
		broker := startBroker(t)
		w := processors.Sessions(time.Minute)
		_, stop := startOn(t, broker, windowGroup(w, true), t.TempDir())
		produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "0s")), numberAt(t, "k", 2, at(t, "30s")))
		require.Eventually(t, func() bool { return len(changelog(t, broker.Addrs(), "windows-table")) == 2 }, wait, 10*time.Millisecond)
		stop()

		startOn(t, broker, windowGroup(w, true), t.TempDir())
		produceAll(t, broker.Addrs(),
			numberAt(t, "k", 4, at(t, "1m")), // within the gap: the same session
			numberAt(t, samePartition("k", 2), 1, at(t, "3m")),
		)
		got := readResults(t, broker.Addrs(), hasFinal("12:00:00"))
		assert.Equal(t, []result{{Start: "12:00:00", End: "12:01:00", Value: 7, Final: true}}, finals(got))
	})
}

func TestWindows_GivenAPendingTimer_WhenItsPartitionMovesToAnotherInstance_ThenItFiresOnceThere(t *testing.T) {
	broker := startBroker(t)
	w := processors.Tumbling(time.Minute)
	rtA, stopA := startOn(t, broker, windowGroup(w, true), t.TempDir())
	produceAll(t, broker.Addrs(), numberAt(t, "k", 5, at(t, "10s")))
	require.Eventually(t, func() bool { return len(windowsOf(t, rtA, "k")) == 1 }, wait, 10*time.Millisecond)

	// A second instance joins, then the first leaves: every partition,
	// k's with its pending timer, is the second's.
	rtB, _ := startOn(t, broker, windowGroup(w, true), t.TempDir())
	stopA()
	require.Eventually(t, func() bool {
		_, ok := rtB.Store("windows-table", tables.PartitionFor("k", 2))
		return ok && rtB.Recovered()
	}, wait, 10*time.Millisecond)

	produceAll(t, broker.Addrs(), numberAt(t, samePartition("k", 2), 1, at(t, "5m")))
	got := readResults(t, broker.Addrs(), hasFinal("12:00:00"))
	// A later record of k's partition: any second firing would come before it.
	produceAll(t, broker.Addrs(), numberAt(t, "k", 7, at(t, "6m10s")), numberAt(t, samePartition("k", 2), 1, at(t, "9m")))
	got = readResults(t, broker.Addrs(), hasFinal("12:06:00"))
	assert.Equal(t, []result{
		{Start: "12:00:00", End: "12:01:00", Value: 5, Final: true},
		{Start: "12:06:00", End: "12:07:00", Value: 7, Final: true},
	}, finals(got), "the pending window's final result exactly once")
	assert.Zero(t, rtA.Stats()["windows"].Counters["windows-closed"], "the first instance left before the timer was due")
}

func TestWindows_GivenAWindowedTableServedOverHTTP_WhenAskedForARange_ThenTheWindowsInItAndA400ForABadTime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker := startBroker(t)
	g := processors.NewGroup("windows")
	table := processors.AggregateWindows(g, processors.WindowedAggregation[codecs.Event, int]{
		Input: numbers, Windows: processors.Tumbling(time.Minute).Retain(time.Hour), Add: sumOf,
	})
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test")
	srv, err := serve.Open(ctx, topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: t.TempDir(), Replication: 1}, "127.0.0.1:0", serve.Options{})
	require.NoError(t, err)
	serve.Windows(srv, "sums", views.New(srv.Runtime(), table))
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); assert.NoError(t, <-done) }()

	produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "10s")), numberAt(t, "k", 2, at(t, "1m10s")), numberAt(t, "k", 4, at(t, "2m10s")))
	base := "http://" + srv.Addr().String() + "/sums/k"
	all := `{"key":"k","windows":[` +
		`{"start":"2026-12-01T12:00:00Z","end":"2026-12-01T12:01:00Z","value":1,"closed":true},` +
		`{"start":"2026-12-01T12:01:00Z","end":"2026-12-01T12:02:00Z","value":2,"closed":true},` +
		`{"start":"2026-12-01T12:02:00Z","end":"2026-12-01T12:03:00Z","value":4}]}`
	require.Equal(t, all, awaitBody(base, all))
	status, ctype, body := get(t, base+"/windows?from=2026-12-01T12:01:30Z&to=2026-12-01T12:02:00Z")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, `{"key":"k","windows":[`+
		`{"start":"2026-12-01T12:01:00Z","end":"2026-12-01T12:02:00Z","value":2,"closed":true}]}`, body, "the windows that overlap [from, to)")

	status, ctype, body = get(t, base+"/windows?from=yesterday")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "application/problem+json", ctype)
	assert.Contains(t, body, "from must be an RFC 3339 time")
}

func get(t *testing.T, url string) (status int, contentType, body string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestWindows_GivenAnEventReSentByItsProducer_ThenItIsAddedOnce(t *testing.T) {
	broker := startBroker(t)
	rt, _ := startOn(t, broker, windowGroup(processors.Tumbling(time.Minute), false), t.TempDir())
	first := numberAt(t, "k", 1, at(t, "10s"))
	produceAll(t, broker.Addrs(), first, numberAt(t, "k", 2, at(t, "20s")))
	produceAll(t, broker.Addrs(), &kgo.Record{Topic: first.Topic, Key: first.Key, Value: first.Value}, numberAt(t, "k", 4, at(t, "30s")))
	// 1+2+4: with the re-sent 1 added again the sum would go 1, 3, 4, 8.
	require.Eventually(t, func() bool { ws := windowsOf(t, rt, "k"); return len(ws) == 1 && ws[0].Value == 7 }, wait, time.Millisecond)
	assert.Equal(t, int64(1), rt.Stats()["windows"].Duplicates)
}

func TestWindows_GivenHoppingWindows_ThenARecordCountsInEachWindowThatHoldsIt(t *testing.T) {
	broker := startBroker(t)
	rt, _ := startOn(t, broker, windowGroup(processors.Hopping(2*time.Minute, time.Minute).Retain(time.Hour), false), t.TempDir())
	produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "1m30s")), numberAt(t, "k", 2, at(t, "2m30s")))
	type win struct {
		Start string
		Value int
	}
	var got []win
	require.Eventually(t, func() bool {
		got = nil
		for _, w := range windowsOf(t, rt, "k") {
			got = append(got, win{w.Start.UTC().Format("15:04"), w.Value})
		}
		return len(got) == 3 && got[1].Value == 3
	}, wait, time.Millisecond, "windows: %v", got)
	assert.Equal(t, []win{{"12:00", 1}, {"12:01", 3}, {"12:02", 2}}, got)
}

func TestWindows_GivenAnIdleKeyWhoseWindowsExpire_ThenTheyArePurgedFromTheStoreAndTheChangelog(t *testing.T) {
	broker := startBroker(t)
	rt, _ := startOn(t, broker, windowGroup(processors.Tumbling(time.Minute), false), t.TempDir())
	produceAll(t, broker.Addrs(), numberAt(t, "k", 1, at(t, "10s")))
	require.Eventually(t, func() bool { return len(windowsOf(t, rt, "k")) == 1 }, wait, time.Millisecond)

	// Stream time moves on by another key: k's window closes and, past its
	// retention (one window length), is purged by its timer.
	produceAll(t, broker.Addrs(), numberAt(t, samePartition("k", 2), 1, at(t, "5m")))
	require.Eventually(t, func() bool { return windowsOf(t, rt, "k") == nil }, wait, time.Millisecond, "purged from the store")
	recs := consumeUntil(t, broker.Addrs(), "windows-table", func(recs []*kgo.Record) bool {
		for _, r := range recs {
			if string(r.Key) == "k" && r.Value == nil {
				return true
			}
		}
		return false
	})
	var last *kgo.Record
	for _, r := range recs {
		if string(r.Key) == "k" {
			last = r
		}
	}
	assert.Nil(t, last.Value, "k's last changelog record is a tombstone")
}
