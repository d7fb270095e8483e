package deadletters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/deadletters"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

type coord struct {
	P int32
	O int64
}

func coords(ds []deadletters.DeadLetter) []coord {
	out := make([]coord, 0, len(ds))
	for _, d := range ds {
		out = append(out, coord{d.Partition, d.Offset})
	}
	return out
}

func TestList_GivenDeadLettersOnSeveralPartitions_ThenPagesWalkThemInPartitionOffsetOrder(t *testing.T) {
	k := startKafka(t)
	k.deadLetters(
		dead{partition: 2, key: "c1", value: []byte(`{"a":1}`), origPart: 3, origOffset: 40, class: processors.ClassHandler, message: "boom"},
		dead{partition: 0, key: "a1", value: []byte("not json"), origPart: 1, origOffset: 7, class: processors.ClassDecode, message: "decode: not json", attempts: 3,
			origHeaders: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}},
		dead{partition: 2, key: "c2", value: nil, origPart: 0, origOffset: 41, class: processors.ClassHandler, message: "tombstone?"},
		dead{partition: 0, key: "a2", value: []byte{0xff, 0x00}, origPart: 1, origOffset: 8, class: processors.ClassDecode, message: "binary"},
		dead{partition: 2, key: "c3", value: []byte("x"), origPart: 2, origOffset: 42, class: processors.ClassPanic, message: "panic: x\nstack"},
	)
	c := k.client()
	ctx := ctxT(t)

	// When paging two at a time.
	var pages [][]coord
	var all []deadletters.DeadLetter
	cursor := ""
	for range 10 {
		page, err := c.List(ctx, group, cursor, 2)
		require.NoError(t, err)
		pages = append(pages, coords(page.Items))
		all = append(all, page.Items...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}

	// Then every dead letter comes once, partition by partition, and the last
	// page says there is no more.
	assert.Equal(t, [][]coord{{{0, 0}, {0, 1}}, {{2, 0}, {2, 1}}, {{2, 2}}}, pages)

	// And the diagnostic headers are decoded.
	a1 := all[0]
	assert.Equal(t, group, a1.Group)
	assert.Equal(t, dlqTopic, a1.Topic)
	assert.Equal(t, "a1", a1.Key)
	assert.Equal(t, []byte("not json"), a1.Value)
	assert.Equal(t, origTopic, a1.OriginalTopic)
	assert.Equal(t, int32(1), a1.OriginalPartition)
	assert.Equal(t, int64(7), a1.OriginalOffset)
	assert.Equal(t, time.Date(2025, 3, 1, 9, 59, 59, 250e6, time.UTC), a1.OriginalTimestamp)
	assert.Equal(t, processors.ClassDecode, a1.Class)
	assert.Equal(t, "decode: not json", a1.Message)
	assert.Equal(t, 3, a1.Attempts)
	assert.Equal(t, time.Date(2025, 3, 1, 10, 0, 0, 500e6, time.UTC), a1.FirstFailure)
	assert.False(t, a1.DeadLetteredAt.IsZero())
	assert.Equal(t, "t-1", a1.Headers["trace"])
	assert.Equal(t, "a1", a1.Headers[processors.HeaderOriginalKey])
	assert.Equal(t, "orders-dlq/0/0", a1.Coordinates())
	assert.Equal(t, "order-events/1/7", a1.Original())
	assert.Nil(t, all[3].Value, "a tombstone stays null")

	// And a page that takes exactly what is left has no next.
	page, err := c.List(ctx, group, "", 5)
	require.NoError(t, err)
	assert.Len(t, page.Items, 5)
	assert.Empty(t, page.Next)
}

func TestList_GivenNothingOrNonsense_ThenEmptyPagesAndErrors(t *testing.T) {
	k := startKafka(t)
	c := k.client()
	ctx := ctxT(t)

	// Given an empty dead-letter topic: an empty page, no next.
	page, err := c.List(ctx, group, "", 10)
	require.NoError(t, err)
	assert.Empty(t, page.Items)
	assert.NotNil(t, page.Items)
	assert.Empty(t, page.Next)

	// A cursor we never handed out, a page size below one.
	for _, cur := range []string{"nope!", "MQ" /* "1" */, "LTE6MA" /* "-1:0" */} {
		_, err = c.List(ctx, group, cur, 10)
		assert.ErrorIs(t, err, deadletters.ErrBadCursor, cur)
	}
	_, err = c.List(ctx, group, "", 0)
	assert.ErrorIs(t, err, deadletters.ErrBadLimit)

	// An unknown group: no topic, and looking did not create one.
	_, err = c.List(ctx, "ghost", "", 10)
	assert.ErrorIs(t, err, deadletters.ErrNoTopic)
	topics, err := k.admin.ListTopics()
	require.NoError(t, err)
	assert.NotContains(t, topics, "ghost-dlq")
}

func TestList_GivenDeadLettersArrivingDuringTheCall_ThenItStopsAtTheEndOffsetsTakenAtStart(t *testing.T) {
	k := startKafka(t)
	for p := range int32(dlqParts) {
		k.deadLetters(dead{partition: p, key: "k", value: []byte("v"), class: processors.ClassHandler, message: "m"})
	}
	c := k.client()

	// Given a producer that never stops adding dead letters.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := dead{partition: int32(i % dlqParts), key: "k", value: []byte("v"), class: processors.ClassHandler, message: "m"}.record()
			if err := k.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// When listing with a page size nothing will fill.
	page, err := c.List(ctxT(t), group, "", 100000)

	// Then the call returns what was there (and perhaps a little more), not
	// waiting for the rest of the stream.
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(page.Items), dlqParts)
	assert.Empty(t, page.Next)
}

func TestGet_GivenCoordinates_ThenTheDeadLetterOrNotFound(t *testing.T) {
	k := startKafka(t)
	k.deadLetters(
		dead{partition: 1, key: "a", value: []byte("one"), class: processors.ClassDecode, message: "m1"},
		dead{partition: 1, key: "b", value: []byte{0xc3, 0x28}, class: processors.ClassHandler, message: "m2", attempts: 2},
	)
	c := k.client()
	ctx := ctxT(t)

	d, err := c.Get(ctx, group, 1, 1)
	require.NoError(t, err)
	assert.Equal(t, "b", d.Key)
	assert.Equal(t, []byte{0xc3, 0x28}, d.Value)
	assert.Equal(t, 2, d.Attempts)
	assert.Equal(t, "m2", d.Message)

	for _, at := range []coord{{1, 2}, {1, -1}, {0, 0}, {9, 0}} {
		_, err := c.Get(ctx, group, at.P, at.O)
		assert.ErrorIs(t, err, deadletters.ErrNotFound, "%v", at)
	}
	_, err = c.Get(ctx, "ghost", 0, 0)
	assert.ErrorIs(t, err, deadletters.ErrNoTopic)
}

func TestRedrive_GivenOneDeadLetter_ThenItGoesBackToItsTopicByKeyWithItsHeadersAndTheDLQKeepsIt(t *testing.T) {
	k := startKafka(t)
	k.deadLetters(
		dead{partition: 0, key: "other", value: []byte("x"), class: processors.ClassHandler, message: "m"},
		dead{partition: 0, key: "cust-42", value: []byte(`{"id":"e1"}`), origPart: 3, origOffset: 9,
			class: processors.ClassHandler, message: "unknown customer", attempts: 1,
			origHeaders: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("CustomerUpdated")}, {Key: "trace", Value: []byte("t-9")}}},
	)
	c := k.client()

	// When the second dead letter is re-driven.
	res, err := c.Redrive(ctxT(t), group, deadletters.One(0, 1))
	require.NoError(t, err)

	// Then one record went to its original topic, on murmur2's partition for its key.
	require.Equal(t, 1, res.Count)
	require.Len(t, res.Redriven, 1)
	rd := res.Redriven[0]
	assert.Equal(t, deadletters.Position{Topic: dlqTopic, Partition: 0, Offset: 1}, rd.From)
	assert.Equal(t, origTopic, rd.To.Topic)
	assert.Equal(t, tables.PartitionFor("cust-42", origParts), rd.To.Partition)
	assert.Equal(t, "cust-42", rd.Key)
	assert.Equal(t, 2, rd.Attempts)
	assert.Empty(t, res.Skipped)

	// With its key, value and own headers, the diagnostic ones replaced by
	// the re-drive's.
	r := k.recordAt(rd.To.Topic, rd.To.Partition, rd.To.Offset)
	assert.Equal(t, "cust-42", string(r.Key))
	assert.Equal(t, `{"id":"e1"}`, string(r.Value))
	assert.Equal(t, map[string]string{
		"ce_type":                      "CustomerUpdated",
		"trace":                        "t-9",
		processors.HeaderAttempts:      "2",
		processors.HeaderFirstFailure:  firstFailed,
		deadletters.HeaderRedrivenFrom: "orders-dlq/0/1",
		processors.HeaderRedriveOf:     "order-events/3/9",
		processors.HeaderRedriveGroup:  group,
	}, headers(r))

	// And the dead letters are all still there.
	assert.Equal(t, int64(2), k.endOffset(dlqTopic, 0))
	d, err := c.Get(ctxT(t), group, 0, 1)
	require.NoError(t, err)
	assert.Equal(t, "cust-42", d.Key)
}

func TestRedrive_GivenARangeOrAll_ThenEachSelectedDeadLetterIsReDrivenOrSkippedWithAReason(t *testing.T) {
	k := startKafka(t)
	k.deadLetters(
		dead{partition: 1, key: "k0", value: []byte("v0"), origOffset: 10, class: processors.ClassDecode, message: "m"},
		dead{partition: 1, key: "k1", value: []byte("v1"), origOffset: 11, class: processors.ClassDecode, message: "m"},
		dead{partition: 1, key: "k2", value: nil, origOffset: 12, class: processors.ClassHandler, message: "m", attempts: 4},
		dead{partition: 1, key: "k3", value: []byte("v3"), origOffset: 13, class: processors.ClassDecode, message: "m"},
		dead{partition: 2, key: "k4", value: []byte("v4"), origOffset: 14, class: processors.ClassDecode, message: "m", origTopic: "-"},
		dead{partition: 2, key: "k5", value: []byte("v5"), origOffset: 15, class: processors.ClassDecode, message: "m", origTopic: "vanished-events"},
		dead{partition: 2, key: "", value: []byte("keyless"), origOffset: 16, class: processors.ClassMissingKey, message: "m"},
	)
	c := k.client()
	ctx := ctxT(t)

	// When offsets 1 through 2 of partition 1 are re-driven.
	res, err := c.Redrive(ctx, group, deadletters.Range(1, 1, 2))
	require.NoError(t, err)
	require.Equal(t, 2, res.Count)
	assert.Equal(t, []string{"k1", "k2"}, []string{res.Redriven[0].Key, res.Redriven[1].Key})
	assert.Equal(t, int64(1), res.Redriven[0].From.Offset)
	assert.Equal(t, 5, res.Redriven[1].Attempts)
	// Then a tombstone stays a tombstone.
	tomb := k.recordAt(origTopic, res.Redriven[1].To.Partition, res.Redriven[1].To.Offset)
	assert.Nil(t, tomb.Value)

	// When a range reaches past the end of the log, it takes what is there.
	res, err = c.Redrive(ctx, group, deadletters.Range(1, 3, 99))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Count)

	// When everything is re-driven.
	before := k.endOffset(dlqTopic, 1) + k.endOffset(dlqTopic, 2)
	res, err = c.Redrive(ctx, group, deadletters.All())
	require.NoError(t, err)

	// Then what names a live topic and was not re-driven yet went back; the
	// rest is skipped with a reason.
	assert.Equal(t, 2, res.Count)
	var from []coord
	for _, r := range res.Redriven {
		from = append(from, coord{r.From.Partition, r.From.Offset})
	}
	assert.Equal(t, []coord{{1, 0}, {2, 2}}, from)
	var skipped []coord
	for _, s := range res.Skipped {
		skipped = append(skipped, coord{s.From.Partition, s.From.Offset})
	}
	assert.Equal(t, []coord{{1, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}}, skipped)
	assert.Equal(t, processors.RedriveSent, res.Skipped[0].Status)
	assert.Contains(t, res.Skipped[0].Reason, "no outcome yet")
	assert.Contains(t, res.Skipped[3].Reason, processors.HeaderOriginalTopic)
	assert.Contains(t, res.Skipped[4].Reason, "vanished-events")
	// And nothing left the dead-letter topic.
	assert.Equal(t, before, k.endOffset(dlqTopic, 1)+k.endOffset(dlqTopic, 2))

	// A dead letter that cannot be re-driven is the error when selected alone.
	_, err = c.Redrive(ctx, group, deadletters.One(2, 0))
	assert.ErrorIs(t, err, deadletters.ErrNotRedrivable)
	// And so is one re-driven already, unless forced.
	_, err = c.Redrive(ctx, group, deadletters.One(1, 0))
	assert.ErrorIs(t, err, deadletters.ErrSkipped)
	res, err = c.Redrive(ctx, group, deadletters.One(1, 0).Forced())
	require.NoError(t, err)
	assert.Equal(t, 1, res.Count)
	assert.Equal(t, 3, res.Redriven[0].Attempts, "one more than the last re-drive's")
}

func TestRedrive_GivenBadSelections_ThenErrorsAndNothingProduced(t *testing.T) {
	k := startKafka(t)
	k.deadLetters(dead{partition: 0, key: "k", value: []byte("v"), class: processors.ClassDecode, message: "m"})
	c := k.client()
	ctx := ctxT(t)

	for name, sel := range map[string]deadletters.Selection{
		"zero":            {},
		"negative part":   deadletters.One(-1, 0),
		"negative offset": deadletters.One(0, -3),
		"backwards range": deadletters.Range(0, 5, 2),
	} {
		_, err := c.Redrive(ctx, group, sel)
		assert.ErrorIs(t, err, deadletters.ErrBadSelection, name)
	}
	for name, sel := range map[string]deadletters.Selection{
		"past the end":      deadletters.One(0, 1),
		"no such partition": deadletters.One(7, 0),
	} {
		_, err := c.Redrive(ctx, group, sel)
		assert.ErrorIs(t, err, deadletters.ErrNotFound, name)
	}
	_, err := c.Redrive(ctx, "ghost", deadletters.All())
	assert.ErrorIs(t, err, deadletters.ErrNoTopic)

	var total int64
	for p := range int32(origParts) {
		total += k.endOffset(origTopic, p)
	}
	assert.Zero(t, total)
}

func TestDeadLetterJSON_GivenTextBinaryAndTombstoneValues_ThenCamelCaseAndRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	base := deadletters.DeadLetter{
		Group: group, Topic: dlqTopic, Partition: 1, Offset: 2, Key: "k",
		Headers:       map[string]string{"trace": "t"},
		OriginalTopic: origTopic, OriginalPartition: 3, OriginalOffset: 4, OriginalTimestamp: at,
		Class: processors.ClassDecode, Message: "m", Attempts: 2, FirstFailure: at, DeadLetteredAt: at,
	}
	for name, tc := range map[string]struct {
		value  []byte
		json   string
		base64 bool
	}{
		"text":      {[]byte(`{"a":"é"}`), `"{\"a\":\"é\"}"`, false},
		"binary":    {[]byte{0xff, 0xfe, 0x00}, `"//4A"`, true},
		"tombstone": {nil, `null`, false},
	} {
		t.Run(name, func(t *testing.T) {
			d := base
			d.Value = tc.value
			b, err := json.Marshal(d)
			require.NoError(t, err)
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &m))
			assert.JSONEq(t, tc.json, string(m["value"]))
			if tc.base64 {
				assert.JSONEq(t, `true`, string(m["valueBase64"]))
			} else {
				assert.NotContains(t, m, "valueBase64")
			}
			for _, f := range []string{"group", "topic", "partition", "offset", "key", "headers", "originalTopic", "originalPartition",
				"originalOffset", "originalTimestamp", "class", "message", "attempts", "firstFailure", "deadLetteredAt"} {
				assert.Contains(t, m, f)
			}
			var back deadletters.DeadLetter
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, d, back)
		})
	}
}

func ExampleSelection() {
	fmt.Println(deadletters.One(2, 17))
	fmt.Println(deadletters.Range(0, 3, 9))
	fmt.Println(deadletters.All())
	fmt.Println(deadletters.Range(0, 9, 3).Validate())
	// Output:
	// partition 2 offset 17
	// partition 0 offsets 3..9
	// all
	// bad selection: from 9 is after to 3
}

// outcome writes the state the group would after handling a re-drive.
func (k *kafka) outcome(original string, s deadletters.RedriveState) {
	k.t.Helper()
	b, err := json.Marshal(s)
	require.NoError(k.t, err)
	k.produce(&kgo.Record{Topic: stateTopic, Partition: 0, Key: []byte(original), Value: b})
}

func TestRedrive_GivenStatesAndAKeyDeletedSince_ThenAllSkipsWhatIsDoneOrStaleAndNeverMultiplies(t *testing.T) {
	k := startKafka(t)
	// Given, on partition 1 of the original topic: gone's original, alive's,
	// a tombstone of gone, a newer write of alive.
	k.produce(
		&kgo.Record{Topic: origTopic, Partition: 1, Key: []byte("gone"), Value: []byte("g1")},
		&kgo.Record{Topic: origTopic, Partition: 1, Key: []byte("alive"), Value: []byte("a1")},
		&kgo.Record{Topic: origTopic, Partition: 1, Key: []byte("gone"), Value: nil},
		&kgo.Record{Topic: origTopic, Partition: 1, Key: []byte("alive"), Value: []byte("a2")},
	)
	// And the dead letters of the first two.
	k.deadLetters(
		dead{partition: 0, key: "gone", value: []byte("g1"), origPart: 1, origOffset: 0, class: processors.ClassHandler, message: "m"},
		dead{partition: 0, key: "alive", value: []byte("a1"), origPart: 1, origOffset: 1, class: processors.ClassHandler, message: "m"},
	)
	c := k.client()
	ctx := ctxT(t)
	sent := func() (n int64) {
		for p := range int32(origParts) {
			n += k.endOffset(origTopic, p)
		}
		return n
	}

	// When everything is re-driven.
	res, err := c.Redrive(ctx, group, deadletters.All())
	require.NoError(t, err)

	// Then the update of the deleted key is refused as stale, saying what
	// deleted it; the other goes (the group judges its newer write).
	require.Equal(t, 1, res.Count)
	assert.Equal(t, "alive", res.Redriven[0].Key)
	require.Len(t, res.Skipped, 1)
	assert.Equal(t, processors.RedriveStale, res.Skipped[0].Status)
	assert.Contains(t, res.Skipped[0].Reason, "deleted at order-events/1/2")
	assert.Equal(t, int64(5), sent())

	// And the listing shows both states.
	page, err := c.List(ctx, group, "", 10)
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
	gone, alive := page.Items[0].Redrive, page.Items[1].Redrive
	require.NotNil(t, gone)
	require.NotNil(t, alive)
	assert.Equal(t, processors.RedriveStale, gone.Status)
	require.NotNil(t, gone.AppliedOffset)
	assert.Equal(t, int64(2), *gone.AppliedOffset)
	assert.Equal(t, 1, gone.Attempts, "refused before it went out")
	assert.Equal(t, processors.RedriveSent, alive.Status)
	assert.Equal(t, 2, alive.Attempts)
	assert.Equal(t, "orders-dlq/0/1", alive.From)

	// When everything is re-driven again before the group answered.
	res, err = c.Redrive(ctx, group, deadletters.All())
	require.NoError(t, err)
	// Then nothing goes out.
	assert.Zero(t, res.Count)
	assert.Len(t, res.Skipped, 2)
	assert.Equal(t, int64(5), sent())

	// When the group says the re-drive failed again, the next --all retries
	// it, counting on.
	k.outcome("order-events/1/1", deadletters.RedriveState{Status: processors.RedriveFailedAgain, Attempts: 2, Reason: "still broken"})
	res, err = c.Redrive(ctx, group, deadletters.All())
	require.NoError(t, err)
	require.Equal(t, 1, res.Count)
	assert.Equal(t, 3, res.Redriven[0].Attempts)

	// When the deleted key's update is forced, it goes, marked forced.
	res, err = c.Redrive(ctx, group, deadletters.One(0, 0).Forced())
	require.NoError(t, err)
	require.Equal(t, 1, res.Count)
	r := k.recordAt(origTopic, res.Redriven[0].To.Partition, res.Redriven[0].To.Offset)
	assert.Equal(t, "true", headers(r)[processors.HeaderRedriveForce])
	assert.Equal(t, "order-events/1/0", headers(r)[processors.HeaderRedriveOf])

	// When the group applied one, not even force sends it again.
	k.outcome("order-events/1/1", deadletters.RedriveState{Status: processors.RedriveApplied, Attempts: 3})
	_, err = c.Redrive(ctx, group, deadletters.One(0, 1).Forced())
	assert.ErrorIs(t, err, deadletters.ErrSkipped)
}
