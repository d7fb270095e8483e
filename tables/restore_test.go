package tables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restoreTestRestorer wraps a Restorer: it hands the records on in chunks
// of chunk records, calls hook before each chunk (numbered from 1; an
// error stops the restore) and records every call.
type restoreTestRestorer struct {
	inner Restorer
	chunk int
	hook  func(ctx context.Context, partition int32, chunk int) error

	mu    sync.Mutex
	calls []restoreTestCall
}

type restoreTestCall struct {
	partition int32
	from, to  int64
	records   int
}

func (r *restoreTestRestorer) Restore(ctx context.Context, topic string, partition int32, from, to int64, apply func([]Record) error) error {
	r.mu.Lock()
	r.calls = append(r.calls, restoreTestCall{partition: partition, from: from, to: to})
	call := len(r.calls) - 1
	r.mu.Unlock()
	chunks := 0
	return r.inner.Restore(ctx, topic, partition, from, to, func(batch []Record) error {
		for len(batch) > 0 {
			n := len(batch)
			if r.chunk > 0 {
				n = min(n, r.chunk)
			}
			chunks++
			if r.hook != nil {
				if err := r.hook(ctx, partition, chunks); err != nil {
					return err
				}
			}
			if err := apply(batch[:n]); err != nil {
				return err
			}
			r.mu.Lock()
			r.calls[call].records += n
			r.mu.Unlock()
			batch = batch[n:]
		}
		return nil
	})
}

func (r *restoreTestRestorer) Calls() []restoreTestCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *restoreTestRestorer) records() int {
	n := 0
	for _, c := range r.Calls() {
		n += c.records
	}
	return n
}

// restoreTestChangelog writes engineTestRounds, then one empty value, and
// returns the table they leave.
func restoreTestChangelog(t *testing.T, k *engineTestKafka, rounds int) map[string]string {
	t.Helper()
	want := engineTestRounds(t, k, rounds)
	k.produce(t, map[string][]byte{"cust-005": {}})
	want["cust-005"] = ""
	return want
}

func restoreTestHwm(t *testing.T, k *engineTestKafka, p int32) int64 {
	t.Helper()
	hwm, err := k.client.GetOffset(engineTestTopic, p, sarama.OffsetNewest)
	require.NoError(t, err)
	return hwm
}

// restoreTestRead reads a partition of the changelog, copying the records.
func restoreTestRead(t *testing.T, k *engineTestKafka, p int32) []Record {
	t.Helper()
	var out []Record
	err := NewKafkaRestorer(k.addrs, "t-read").Restore(context.Background(), engineTestTopic, p, 0, restoreTestHwm(t, k, p), func(b []Record) error {
		for _, r := range b {
			out = append(out, Record{Key: slices.Clone(r.Key), Value: slices.Clone(r.Value), Offset: r.Offset})
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// restoreTestFold is the table that the records up to offset upTo leave.
func restoreTestFold(recs []Record, upTo int64) map[string]string {
	out := map[string]string{}
	for _, r := range recs {
		if r.Offset > upTo {
			break
		}
		if r.Value == nil {
			delete(out, string(r.Key))
		} else {
			out[string(r.Key)] = string(r.Value)
		}
	}
	return out
}

// restoreTestCommitted reads what a store has committed to LevelDB: its
// data and offset. Nothing may be committing meanwhile.
func restoreTestCommitted(t *testing.T, s *Store) (map[string]string, int64) {
	t.Helper()
	db := s.db.Load()
	off, err := db.Get(storeMetaOffset, nil)
	require.NoError(t, err)
	require.Len(t, off, 8)
	kvs, err := s.Scan("", 0)
	require.NoError(t, err)
	data := map[string]string{}
	for _, kv := range kvs {
		data[kv.Key] = string(kv.Value)
	}
	return data, int64(uint64(off[0])<<56 | uint64(off[1])<<48 | uint64(off[2])<<40 | uint64(off[3])<<32 |
		uint64(off[4])<<24 | uint64(off[5])<<16 | uint64(off[6])<<8 | uint64(off[7]))
}

// restoreTestOpenAsync opens a store of the engine on its own goroutine.
func restoreTestOpenAsync(t *testing.T, e *Engine, p int32) (*Store, chan error) {
	t.Helper()
	st, err := e.Builder()(engineTestTopic, p)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- st.Open() }()
	return st.(*Store), done
}

func TestRestorer_GivenChangelogWithOverwritesAndTombstones_WhenStoresOpen_ThenTheyHoldWhatGokaRestoresWithOffsetAtHwm(t *testing.T) {
	k := engineTestCluster(t)
	want := restoreTestChangelog(t, k, 4)

	// goka's own recovery, for reference.
	byGoka := storeTestEngine(t, t.TempDir(), WithIndex(engineTestTopic, storeTestColor),
		WithWatermarks(SaramaWatermarks(k.client)), WithBatchSize(7))
	_, stop := k.runView(t, byGoka)
	gokaData, gokaColors := engineTestState(t, byGoka)
	stop()
	require.Equal(t, want, gokaData)

	// When every store opens on an engine with a restorer.
	var logs storeTestLog
	r := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore"), chunk: 5}
	e := storeTestEngine(t, t.TempDir(), WithIndex(engineTestTopic, storeTestColor),
		WithWatermarks(SaramaWatermarks(k.client)), WithBatchSize(7), WithRestorer(r), WithLogger(logs.logger()))
	total := int64(0)
	for p := range int32(4) {
		hwm := restoreTestHwm(t, k, p)
		require.Greater(t, hwm, int64(21), "partition %d spans several batches", p)
		total += hwm
		s := storeTestOpen(t, e, engineTestTopic, p)

		// Then Open restored the partition up to the high watermark and
		// committed it with the offset hwm-1.
		prog := s.Progress()
		assert.Equal(t, Progress{Topic: engineTestTopic, Partition: p, StartOffset: 0, Offset: hwm - 1,
			HighWatermark: hwm, Records: hwm, RatePerSec: prog.RatePerSec}, prog)
		data, off := restoreTestCommitted(t, s)
		assert.Equal(t, hwm-1, off)
		assert.Equal(t, restoreTestFold(restoreTestRead(t, k, p), hwm-1), data)
		got, err := s.GetOffset(-1)
		require.NoError(t, err)
		assert.Equal(t, hwm-1, got)
		require.NoError(t, s.MarkRecovered(), "goka finds nothing left and marks it recovered")
	}

	// And the stores hold exactly what goka's recovery gives, indexes too.
	data, colors := engineTestState(t, e)
	assert.Equal(t, gokaData, data)
	assert.Equal(t, gokaColors, colors)
	assert.Equal(t, "", data["cust-005"], "an empty value is a value, not a tombstone")
	assert.Len(t, r.Calls(), 4)
	for _, c := range r.Calls() {
		assert.Equal(t, int64(0), c.from)
		assert.Equal(t, restoreTestHwm(t, k, c.partition), c.to)
	}
	assert.Equal(t, int(total), r.records())
	out := logs.String()
	assert.Equal(t, 4, strings.Count(out, `msg="restoring table from changelog"`))
	assert.Equal(t, 4, strings.Count(out, `msg="changelog restored"`))
	assert.NotContains(t, out, "level=WARN")
}

func TestRestorer_GivenRestoreInProgress_ThenProgressIsReportedAndLogged(t *testing.T) {
	k := engineTestCluster(t)
	restoreTestChangelog(t, k, 3)
	hwm := restoreTestHwm(t, k, 0)

	paused, release := make(chan struct{}), make(chan struct{})
	r := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore"), chunk: 5,
		hook: func(_ context.Context, _ int32, chunk int) error {
			if chunk == 4 {
				close(paused)
				<-release
			}
			return nil
		}}
	var logs storeTestLog
	e := storeTestEngine(t, t.TempDir(), WithWatermarks(SaramaWatermarks(k.client)), WithRestorer(r),
		WithBatchSize(7), WithLogger(logs.logger()), WithProgressInterval(time.Millisecond))
	_, opened := restoreTestOpenAsync(t, e, 0)
	<-paused

	// While restoring, the store is visible, not recovered, and reports how far it got.
	s, ok := e.Store(engineTestTopic, 0)
	require.True(t, ok)
	p := s.Progress()
	assert.False(t, p.Recovered)
	assert.Equal(t, int64(0), p.StartOffset)
	assert.Equal(t, int64(14), p.Offset, "three chunks of five records applied")
	assert.Equal(t, hwm, p.HighWatermark)
	assert.Equal(t, int64(15), p.Records)
	storeTestEventually(t, func() bool { return strings.Contains(logs.String(), "done=15") }, "progress log line")
	line := logs.String()
	for _, want := range []string{`msg="restoring table"`, "topic=t-table", "partition=0", fmt.Sprintf("total=%d", hwm), "eta="} {
		assert.Contains(t, line, want)
	}

	close(release)
	require.NoError(t, <-opened)
	p = s.Progress()
	assert.Equal(t, hwm-1, p.Offset)
	assert.Equal(t, hwm, p.Records)
	require.NoError(t, s.MarkRecovered())
	assert.True(t, s.Progress().Recovered)
	assert.Contains(t, logs.String(), fmt.Sprintf(`msg="table restored" topic=t-table partition=0 records=%d`, hwm))
}

func TestRestorer_GivenRestoreInterrupted_WhenReopened_ThenResumesFromLastCommittedBatch(t *testing.T) {
	// The restore stops after four chunks of five records (offsets 0-19)
	// with batches of seven records: batches up to offset 13 are committed,
	// 14-19 staged.
	const stopAt = 5
	cases := map[string]struct {
		// interrupt stops the restore paused before chunk stopAt; it
		// returns the error the restore ends with.
		interrupt func(t *testing.T, s *Store, release chan<- struct{}) error
		openErr   error
		resumeAt  int64
	}{
		"closed": {
			interrupt: func(t *testing.T, s *Store, _ chan<- struct{}) error {
				require.NoError(t, s.Close())
				return nil
			},
			openErr:  ErrStoreClosed,
			resumeAt: 20, // Close commits the staged records
		},
		"killed": {
			interrupt: func(t *testing.T, s *Store, release chan<- struct{}) error {
				storeTestCrash(t, s)
				close(release)
				return nil
			},
			openErr:  ErrStoreClosed,
			resumeAt: 14,
		},
		"failed": {
			interrupt: func(t *testing.T, s *Store, release chan<- struct{}) error {
				close(release)
				return nil
			},
			resumeAt: 14, // Open succeeds, then the process is killed
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			k := engineTestCluster(t)
			restoreTestChangelog(t, k, 3)
			hwm := restoreTestHwm(t, k, 0)
			recs := restoreTestRead(t, k, 0)
			dir := t.TempDir()
			var logs storeTestLog

			paused, release := make(chan struct{}), make(chan struct{})
			errFailed := errors.New("fetch failed")
			r := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore"), chunk: 5,
				hook: func(ctx context.Context, _ int32, chunk int) error {
					if chunk != stopAt {
						return nil
					}
					close(paused)
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-release:
						return errFailed
					}
				}}
			e := storeTestEngine(t, dir, WithIndex(engineTestTopic, storeTestColor), WithWatermarks(SaramaWatermarks(k.client)),
				WithRestorer(r), WithBatchSize(7), WithLogger(logs.logger()))
			s, opened := restoreTestOpenAsync(t, e, 0)
			<-paused

			// Every committed batch carries the offset of its last record.
			storeTestSettle(t, s)
			data, off := restoreTestCommitted(t, s)
			assert.Equal(t, int64(13), off)
			assert.Equal(t, restoreTestFold(recs, off), data)
			storeTestCheckIndexes(t, s)

			require.NoError(t, tc.interrupt(t, s, release))
			err := <-opened
			if tc.openErr != nil {
				require.ErrorIs(t, err, tc.openErr)
			} else {
				// A failed restore leaves the rest to goka's recovery.
				require.NoError(t, err)
				assert.Contains(t, logs.String(), "restore from changelog failed")
				assert.Contains(t, logs.String(), errFailed.Error())
				assert.Equal(t, int64(19), s.Progress().Offset)
				assert.False(t, s.Recovered())
				storeTestCrash(t, s)
			}

			// When reopened, the store restores the rest and no more.
			healthy := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore")}
			e2 := storeTestEngine(t, dir, WithIndex(engineTestTopic, storeTestColor), WithWatermarks(SaramaWatermarks(k.client)),
				WithRestorer(healthy), WithBatchSize(7))
			s2 := storeTestOpen(t, e2, engineTestTopic, 0)
			assert.Equal(t, []restoreTestCall{{partition: 0, from: tc.resumeAt, to: hwm, records: int(hwm - tc.resumeAt)}}, healthy.Calls())
			p := s2.Progress()
			assert.Equal(t, tc.resumeAt, p.StartOffset)
			assert.Equal(t, hwm-1, p.Offset)
			assert.Equal(t, hwm-tc.resumeAt, p.Records)
			require.NoError(t, s2.MarkRecovered())
			data, off = restoreTestCommitted(t, s2)
			assert.Equal(t, hwm-1, off)
			assert.Equal(t, restoreTestFold(recs, hwm-1), data)
			storeTestCheckIndexes(t, s2)
		})
	}
}

func TestRestorer_GivenGokaView_WhenItRestoresFollowsAndRestarts_ThenTheRestorerDidTheRestore(t *testing.T) {
	k := engineTestCluster(t)
	want := restoreTestChangelog(t, k, 3)
	k.cluster.Compact()
	var logs storeTestLog
	r := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore")}
	e := storeTestEngine(t, t.TempDir(),
		WithIndex(engineTestTopic, storeTestColor),
		WithWatermarks(SaramaWatermarks(k.client)),
		WithRestorer(r),
		WithBatchSize(7),
		WithLogger(logs.logger()))

	// When a goka view restores the table into the engine.
	view, stop := k.runView(t, e)

	// Then the restorer read it in Open and goka's recovery had nothing left.
	data, byColor := engineTestState(t, e)
	assert.Equal(t, want, data)
	assert.Equal(t, engineTestExpectedColors(want), byColor)
	var restored int64
	for _, s := range e.Stores(engineTestTopic) {
		p := s.Progress()
		restored += p.Records
		assert.Equal(t, p.HighWatermark-1, p.Offset)
	}
	assert.Equal(t, int64(r.records()), restored, "every record came through the restorer")
	assert.Len(t, r.Calls(), 4)
	v, err := view.Get("cust-001")
	require.NoError(t, err)
	assert.Equal(t, []byte(want["cust-001"]), v)
	v, err = view.Get("cust-010")
	require.NoError(t, err)
	assert.Nil(t, v, "tombstoned")

	// When the table changes while the view runs, goka's path follows.
	k.produce(t, map[string][]byte{"cust-001": []byte("color=blue;round=9"), "cust-002": nil})
	want["cust-001"] = "color=blue;round=9"
	delete(want, "cust-002")
	storeTestEventually(t, func() bool {
		v1, err1 := view.Get("cust-001")
		ok2, err2 := view.Has("cust-002")
		b, _ := v1.([]byte)
		return err1 == nil && err2 == nil && string(b) == want["cust-001"] && !ok2
	}, "view catches up")
	stop()

	// When the view restarts after one more change, the restorer reads
	// only that change.
	k.produce(t, map[string][]byte{"cust-003": []byte("color=red;round=10")})
	want["cust-003"] = "color=red;round=10"
	before := len(r.Calls())
	_, stop = k.runView(t, e)
	data, byColor = engineTestState(t, e)
	assert.Equal(t, want, data)
	assert.Equal(t, engineTestExpectedColors(want), byColor)
	calls := r.Calls()[before:]
	require.Len(t, calls, 1, "only the changed partition had anything to restore")
	assert.Equal(t, 1, calls[0].records)
	stop()
	assert.NotContains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), `msg="table restored"`)
}

func TestRestorer_GivenFailingRestorer_WhenGokaViewRestores_ThenGokaRecoveryCompletesTheTable(t *testing.T) {
	k := engineTestCluster(t)
	want := restoreTestChangelog(t, k, 3)
	var logs storeTestLog
	r := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore"), chunk: 5,
		hook: func(_ context.Context, _ int32, chunk int) error {
			if chunk == 3 {
				return errors.New("broker went away")
			}
			return nil
		}}
	e := storeTestEngine(t, t.TempDir(), WithIndex(engineTestTopic, storeTestColor),
		WithWatermarks(SaramaWatermarks(k.client)), WithRestorer(r), WithBatchSize(7), WithLogger(logs.logger()))
	_, stop := k.runView(t, e)
	defer stop()
	data, byColor := engineTestState(t, e)
	assert.Equal(t, want, data)
	assert.Equal(t, engineTestExpectedColors(want), byColor)
	for _, s := range e.Stores(engineTestTopic) {
		p := s.Progress()
		assert.Equal(t, p.HighWatermark-1, p.Offset)
		assert.Equal(t, p.HighWatermark, p.Records, "ten records restored by the restorer, the rest by goka")
	}
	assert.Equal(t, 4, strings.Count(logs.String(), "restore from changelog failed"))
}

// The processor's group table is "t-table", the topic the cluster seeds.
func TestRestorer_GivenGokaProcessorOnAnEmptyDisk_WhenItStarts_ThenTheRestorerRestoresItsTableAndItCountsOn(t *testing.T) {
	k := engineTestCluster(t)
	const input = "t-input"
	require.NoError(t, k.admin.CreateTopic(input, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false))

	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("cart-%02d", i)
	}
	send := func() {
		kvs := map[string][]byte{}
		for _, key := range keys {
			kvs[key] = []byte("add")
		}
		k.produceTo(t, input, kvs)
	}
	counts := func(e *Engine) map[string]int64 {
		out := map[string]int64{}
		for _, s := range e.Stores(engineTestTopic) {
			kvs, err := s.Scan("", 0)
			require.NoError(t, err)
			for _, kv := range kvs {
				v, err := new(codec.Int64).Decode(kv.Value)
				require.NoError(t, err)
				out[kv.Key] = v.(int64)
			}
		}
		return out
	}
	allAt := func(e *Engine, n int64) func() bool {
		return func() bool {
			c := counts(e)
			if len(c) != len(keys) {
				return false
			}
			for _, v := range c {
				if v != n {
					return false
				}
			}
			return true
		}
	}
	run := func(e *Engine) func() { return runCountingProcessor(t, k, input, e) }
	newEngine := func(r Restorer) *Engine {
		return storeTestEngine(t, t.TempDir(), WithWatermarks(SaramaWatermarks(k.client)), WithRestorer(r))
	}

	first := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore")}
	e := newEngine(first)
	send()
	stop := run(e)
	send()
	storeTestEventually(t, allAt(e, 2), "processor applied both rounds")
	stop()
	assert.Zero(t, first.records(), "a new table has nothing to restore")

	// When the processor restarts on an empty disk, the restorer rebuilds
	// the table in Open, and the processor counts on from it.
	second := &restoreTestRestorer{inner: NewKafkaRestorer(k.addrs, "t-restore")}
	e2 := newEngine(second)
	stop = run(e2)
	assert.Equal(t, allOf(keys, 2), counts(e2), "restored before the processor is ready")
	var restored int64
	for _, s := range e2.Stores(engineTestTopic) {
		restored += s.Progress().Records
	}
	assert.Equal(t, int64(second.records()), restored, "goka's recovery had nothing left")
	assert.Equal(t, int64(80), restored, "two writes per key")
	send()
	storeTestEventually(t, allAt(e2, 3), "processor applied the third round once")
	stop()
}

func allOf(keys []string, n int64) map[string]int64 {
	out := make(map[string]int64, len(keys))
	for _, k := range keys {
		out[k] = n
	}
	return out
}

func TestKafkaRestorer_GivenTransactionalChangelog_ThenItReadsCommittedRecordsToTheEndWithoutMarkers(t *testing.T) {
	k := engineTestCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.TransactionalID("t-txn"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(engineTestTopic))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	txn := func(commit kgo.TransactionEndTry, kvs ...string) {
		require.NoError(t, cl.BeginTransaction())
		for i := 0; i < len(kvs); i += 2 {
			rec := &kgo.Record{Key: []byte(kvs[i]), Partition: 1}
			if kvs[i+1] != "-" {
				rec.Value = []byte(kvs[i+1])
			}
			require.NoError(t, cl.ProduceSync(ctx, rec).FirstErr())
		}
		require.NoError(t, cl.EndTransaction(ctx, commit))
	}
	txn(kgo.TryCommit, "a", "1", "b", "2")
	txn(kgo.TryAbort, "c", "3")
	txn(kgo.TryCommit, "a", "-")
	hwm := restoreTestHwm(t, k, 1)
	require.Equal(t, int64(7), hwm, "four records and three markers")

	var got []string
	err = NewKafkaRestorer(k.addrs, "t-restore").Restore(ctx, engineTestTopic, 1, 0, hwm, func(b []Record) error {
		for _, r := range b {
			v := "-"
			if r.Value != nil {
				v = string(r.Value)
			}
			got = append(got, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, v))
		}
		return nil
	})
	require.NoError(t, err)
	// Like every consumer of the framework (read committed), the aborted
	// record is not read.
	assert.Equal(t, []string{"0:a=1", "1:b=2", "5:a=-"}, got)

	got = got[:0]
	err = NewKafkaRestorer(k.addrs, "t-restore").Restore(ctx, engineTestTopic, 1, 3, 5, func(b []Record) error {
		for _, r := range b {
			got = append(got, string(r.Key))
		}
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, got, "a range of an aborted record ending on its marker ends, empty")
}

func TestKafkaRestorer_GivenCancelledContextOrNoBrokers_ThenRestoreFails(t *testing.T) {
	k := engineTestCluster(t)
	k.produce(t, map[string][]byte{"a": []byte("1")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewKafkaRestorer(k.addrs, "t").Restore(ctx, engineTestTopic, 0, 0, 100, func([]Record) error { return nil })
	assert.ErrorIs(t, err, context.Canceled)
	err = NewKafkaRestorer(nil, "t").Restore(context.Background(), engineTestTopic, 0, 0, 1, func([]Record) error { return nil })
	assert.Error(t, err)
	assert.NoError(t, NewKafkaRestorer(nil, "t").Restore(context.Background(), engineTestTopic, 0, 5, 5, nil), "an empty range reads nothing")
}

func TestRestorer_GivenRecordsOutOfOrder_ThenRestoreStopsAndGokaRecoveryTakesOver(t *testing.T) {
	var logs storeTestLog
	r := RestorerFunc(func(_ context.Context, _ string, _ int32, from, to int64, apply func([]Record) error) error {
		if err := apply([]Record{{Key: []byte("a"), Value: []byte("1"), Offset: 3}, {Key: []byte("b"), Value: []byte("2"), Offset: 4}}); err != nil {
			return err
		}
		return apply([]Record{{Key: []byte("c"), Value: []byte("3"), Offset: 4}})
	})
	e := storeTestEngine(t, t.TempDir(), WithWatermarks(storeTestWatermarks{oldest: 3, hwm: 10}), WithRestorer(r), WithLogger(logs.logger()))
	s := storeTestOpen(t, e, "t", 0)
	assert.Contains(t, logs.String(), "records out of order")
	p := s.Progress()
	assert.Equal(t, int64(3), p.StartOffset)
	assert.Equal(t, int64(4), p.Offset)
	assert.Equal(t, int64(2), p.Records)
	for key, want := range map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": nil} {
		v, err := s.Get(key)
		require.NoError(t, err)
		assert.Equal(t, want, v, key)
	}
}

func TestRestorer_GivenNoWatermarks_ThenNewEngineFails(t *testing.T) {
	r := RestorerFunc(func(context.Context, string, int32, int64, int64, func([]Record) error) error { return nil })
	_, err := NewEngine(t.TempDir(), WithRestorer(r))
	assert.ErrorContains(t, err, "watermarks")
}

func TestRestorer_GivenUpToDateStore_ThenOpenDoesNotCallIt(t *testing.T) {
	dir := t.TempDir()
	storeTestWithOffset(t, dir, 9)
	r := &restoreTestRestorer{inner: RestorerFunc(func(context.Context, string, int32, int64, int64, func([]Record) error) error {
		return errors.New("not expected")
	})}
	e := storeTestEngine(t, dir, WithWatermarks(storeTestWatermarks{oldest: 0, hwm: 10}), WithRestorer(r))
	s := storeTestOpen(t, e, "t", 0)
	assert.Empty(t, r.Calls())
	assert.Equal(t, []string{"a"}, storeTestKeys(t, s))
}

func TestRestorer_GivenCommitFails_ThenOpenFailsAndTheStoreIsClosed(t *testing.T) {
	var (
		e  *Engine
		db *leveldb.DB
	)
	r := RestorerFunc(func(_ context.Context, _ string, _ int32, from, to int64, apply func([]Record) error) error {
		s, ok := e.Store("t", 0)
		if !ok {
			return errors.New("store not visible while restoring")
		}
		db = s.db.Load()
		for off := from; off < to; off++ {
			if off == 5 {
				// The disk goes away under the store.
				if err := db.Close(); err != nil {
					return err
				}
			}
			if err := apply([]Record{{Key: fmt.Appendf(nil, "k%d", off), Value: []byte("v"), Offset: off}}); err != nil {
				return err
			}
		}
		return nil
	})
	e = storeTestEngine(t, t.TempDir(), WithWatermarks(storeTestWatermarks{oldest: 0, hwm: 30}), WithRestorer(r), WithBatchSize(4))
	st, err := e.Builder()("t", 0)
	require.NoError(t, err)
	err = st.Open()
	require.ErrorIs(t, err, leveldb.ErrClosed)
	_, ok := e.Store("t", 0)
	assert.False(t, ok, "Open closed the store it could not restore")
	assert.NoError(t, st.Close(), "goka's Close after a failed Open is harmless")
}

func TestRestorer_GivenFewKeysRewrittenPastTheArena_WhenRestored_ThenEachKeyHoldsItsLastWriteAndTheArenasStayBounded(t *testing.T) {
	// Given a changelog that writes "stable" once (after the first
	// values, so that moving values around overwrites its first place)
	// and otherwise rewrites two keys with 4 KiB values, 12 MiB in all (three times a batch's arena),
	// read by a restorer that reuses its key and value buffers after every
	// apply, with a batch size that keeps it all in one batch.
	const records = 3000
	last := map[string][]byte{}
	var problems []string
	var e *Engine
	r := RestorerFunc(func(_ context.Context, _ string, _ int32, from, to int64, apply func([]Record) error) error {
		key, val := make([]byte, 0, 8), make([]byte, 0, 8<<10)
		batch := make([]Record, 1)
		for off := from; off < to; off++ {
			key = fmt.Appendf(key[:0], "k%d", off%2)
			if off == 5 {
				key = append(key[:0], "stable"...)
			}
			val = fmt.Appendf(val[:0], "%08d%s", off, strings.Repeat("v", 4<<10))
			batch[0] = Record{Key: key, Value: val, Offset: off}
			if off%7 == 0 && off > 0 {
				batch[0].Value = nil // a tombstone
			}
			if err := apply(batch); err != nil {
				return err
			}
			if batch[0].Value == nil {
				delete(last, string(key))
			} else {
				last[string(key)] = append([]byte(nil), val...)
			}
			clear(val) // the restorer reuses its buffers
			clear(key)
			if off%250 != 249 {
				continue
			}
			s, _ := e.Store("t", 0)
			for _, k := range []string{"stable", "k0", "k1"} {
				got, err := s.Get(k)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, last[k]) {
					problems = append(problems, fmt.Sprintf("offset %d: %s holds %.8q, want %.8q", off, k, got, last[k]))
				}
			}
			s.mu.Lock()
			used := s.staging.used
			s.mu.Unlock()
			if used > 2*storeArenaSize {
				problems = append(problems, fmt.Sprintf("offset %d: %d value bytes in the arenas for 3 keys", off, used))
			}
		}
		return nil
	})
	e = storeTestEngine(t, t.TempDir(), WithWatermarks(storeTestWatermarks{oldest: 0, hwm: records}), WithRestorer(r), WithBatchSize(records))

	// When the store restores.
	s := storeTestOpen(t, e, "t", 0)

	// Then a reader saw each key's last write all along, the arenas held
	// at most twice their size, and the store holds the last writes.
	assert.Empty(t, problems)
	data, off := restoreTestCommitted(t, s)
	assert.Equal(t, int64(records-1), off)
	want := map[string]string{}
	for k, v := range last {
		want[k] = string(v)
	}
	assert.Equal(t, want, data)
}

func TestStore_GivenRestoreBatchCommitting_WhenRead_ThenReadersSeeItsWrites(t *testing.T) {
	// Given a store staging goka's recovery in batches of two, whose
	// commit of the first batch is held in flight by its index.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	idx := Index{Name: "x", Terms: func(key string, _ []byte) []string {
		if key == "b" {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
		return nil
	}}
	e := storeTestEngine(t, t.TempDir(), WithIndex("t", idx), WithBatchSize(2))
	s := storeTestOpen(t, e, "t", 0)
	require.NoError(t, s.Set("b", []byte("2")))
	require.NoError(t, s.Set("a", []byte("1")))
	require.NoError(t, s.Set("c", []byte("3"))) // hands {a, b} off
	<-entered

	// When readers read while that batch is committing.
	// Then they see its writes, and the staged one.
	for k, want := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		v, err := s.Get(k)
		require.NoError(t, err)
		assert.Equal(t, want, string(v), k)
		ok, err := s.Has(k)
		require.NoError(t, err)
		assert.True(t, ok, k)
	}
	ok, err := s.Has("d")
	require.NoError(t, err)
	assert.False(t, ok)
	close(release)
	require.NoError(t, s.MarkRecovered())
	assert.Equal(t, []string{"a", "b", "c"}, storeTestKeys(t, s))
}
