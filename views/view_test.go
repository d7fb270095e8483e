package views_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/envelope"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

type item struct {
	ID    string `json:"id"`
	Color string `json:"color"`
}

var colorIndex = tables.Index{Name: "color", Terms: func(_ string, v []byte) []string {
	it, err := codecs.JSON[item]{}.Decode(v)
	if err != nil || it.Color == "" {
		return nil
	}
	return []string{it.Color}
}}

var itemsTable = tables.NewTable[item]("items-table", codecs.JSON[item]{}, colorIndex)

const partitions = 3

// stores is an engine whose tables have n partitions.
type stores struct {
	*tables.Engine
	n int
}

func (s stores) PartitionsOf(string) int { return s.n }

// open builds one store per partition, as goka would, writes the items into
// the partition their key hashes to, and marks the stores recovered unless told not to.
func open(t *testing.T, items []item, recovered bool) *tables.Engine {
	t.Helper()
	e, err := tables.NewEngine(t.TempDir(), tables.WithIndex(itemsTable.Name, colorIndex))
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	build := e.Builder()
	for p := range partitions {
		st, err := build(itemsTable.Name, int32(p))
		require.NoError(t, err)
		require.NoError(t, st.Open())
		for _, it := range items {
			if tables.PartitionFor(it.ID, partitions) == int32(p) {
				b, _ := codecs.JSON[item]{}.Encode(it)
				require.NoError(t, st.Set(it.ID, b))
			}
		}
		if recovered {
			require.NoError(t, st.MarkRecovered())
		}
	}
	return e
}

func TestView_GivenRestoredStores_ThenGetAndNotFound(t *testing.T) {
	v := views.New(stores{open(t, []item{{"a", "red"}}, true), partitions}, itemsTable)
	got, err := v.Get(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, item{"a", "red"}, got)

	_, err = v.Get(context.Background(), "nope")
	assert.ErrorIs(t, err, views.ErrNotFound)
	var nf interface{ NotFound() bool }
	require.True(t, errors.As(err, &nf))
}

func TestView_GivenStoresStillRestoring_ThenNotReadyWithProgressAndRetryAfter(t *testing.T) {
	v := views.New(stores{open(t, []item{{"a", "red"}}, false), partitions}, itemsTable)
	_, err := v.Get(context.Background(), "a")
	assert.ErrorIs(t, err, views.ErrNotReady)
	var nr *views.NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, time.Second, nr.RetryAfter())
	assert.Len(t, nr.Stores, partitions)
	ready, _ := v.Ready()
	assert.False(t, ready)
}

func TestView_GivenMissingPartition_ThenNotReady(t *testing.T) {
	e := open(t, nil, true)
	v := views.New(stores{e, partitions + 1}, itemsTable) // a partition nobody holds here
	_, err := v.List(context.Background(), "", "", "", 10)
	var nr *views.NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, []int32{partitions}, nr.Missing)
}

func TestView_GivenIndex_ThenListPagesAcrossPartitionsInKeyOrder(t *testing.T) {
	var items []item
	for i := range 25 {
		color := "red"
		if i%2 == 1 {
			color = "blue"
		}
		items = append(items, item{fmt.Sprintf("k%02d", i), color})
	}
	v := views.New(stores{open(t, items, true), partitions}, itemsTable)
	var got []string
	cursor := ""
	for range 10 {
		page, err := v.List(context.Background(), "color", "red", cursor, 4)
		require.NoError(t, err)
		for _, it := range page.Items {
			assert.Equal(t, "red", it.Value.Color)
			got = append(got, it.Key)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	var want []string
	for i := 0; i < 25; i += 2 {
		want = append(want, fmt.Sprintf("k%02d", i))
	}
	assert.Equal(t, want, got)

	_, err := v.List(context.Background(), "size", "x", "", 4)
	assert.Error(t, err, "unknown index")
	_, err = v.List(context.Background(), "", "", "%%%", 4)
	assert.ErrorIs(t, err, views.ErrBadCursor)
}

func TestView_GivenBookkeepingOnlySnapshot_ThenAbsent(t *testing.T) {
	e := open(t, nil, true)
	st, ok := e.Store(itemsTable.Name, tables.PartitionFor("parked", partitions))
	require.True(t, ok)
	// The JSON form earlier versions wrote, and the binary form.
	require.NoError(t, st.Set("parked", []byte(`{"_meta":{"parked":[{"topic":"x"}],"absent":true},"id":"","color":""}`)))
	framed, err := envelope.Join(envelope.Meta{Parked: []envelope.Parked{{Topic: "x"}}, Absent: true}, []byte(`{"id":"","color":""}`))
	require.NoError(t, err)
	st, ok = e.Store(itemsTable.Name, tables.PartitionFor("parked-too", partitions))
	require.True(t, ok)
	require.NoError(t, st.Set("parked-too", framed))
	v := views.New(stores{e, partitions}, itemsTable)
	for _, key := range []string{"parked", "parked-too"} {
		_, err := v.Get(context.Background(), key)
		assert.ErrorIs(t, err, views.ErrNotFound, key)
	}
	page, err := v.List(context.Background(), "", "", "", 10)
	require.NoError(t, err)
	assert.Empty(t, page.Items)
}

// openDamaged is open with recovered stores whose data, in partition p's
// table file, is damaged: the store finds out when it reads it.
func openDamaged(t *testing.T, items []item, p int32) *tables.Engine {
	t.Helper()
	dir := t.TempDir()
	e, err := tables.NewEngine(dir)
	require.NoError(t, err)
	for q := range partitions {
		st, err := e.Builder()(itemsTable.Name, int32(q))
		require.NoError(t, err)
		require.NoError(t, st.Open())
		for _, it := range items {
			if tables.PartitionFor(it.ID, partitions) == int32(q) {
				b, _ := codecs.JSON[item]{}.Encode(it)
				require.NoError(t, st.Set(it.ID, b))
			}
		}
		require.NoError(t, st.MarkRecovered())
	}
	require.NoError(t, e.Close())

	// Move the data into a table file and damage its first block.
	path := filepath.Join(dir, fmt.Sprintf("%s.%d", itemsTable.Name, p))
	db, err := leveldb.OpenFile(path, nil)
	require.NoError(t, err)
	require.NoError(t, db.CompactRange(util.Range{}))
	require.NoError(t, db.Close())
	files, err := filepath.Glob(filepath.Join(path, "*.ldb"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, table := range files {
		f, err := os.OpenFile(table, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte("damaged!damaged!"), 0)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	return open2(t, dir)
}

// open2 opens the stores left in dir, recovered.
func open2(t *testing.T, dir string) *tables.Engine {
	t.Helper()
	e, err := tables.NewEngine(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	for q := range partitions {
		st, err := e.Builder()(itemsTable.Name, int32(q))
		require.NoError(t, err)
		require.NoError(t, st.Open())
		require.NoError(t, st.MarkRecovered())
	}
	return e
}

func TestView_GivenStoreWithDamagedData_WhenAKeyIsRead_ThenNotReadyNeverAValueAndThePartitionStaysOutOfService(t *testing.T) {
	// Enough items for several table blocks: the first one is damaged, the
	// store's metadata (after the data) stays readable.
	var items []item
	for i := range 600 {
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		items = append(items, item{ID: fmt.Sprintf("k%03d-%x", i, sum), Color: "red"})
	}
	p := tables.PartitionFor(items[0].ID, partitions)
	e := openDamaged(t, items, p)
	v := views.New(stores{e, partitions}, itemsTable)

	// When the first key of the damaged partition is read
	_, err := v.Get(context.Background(), items[0].ID)

	// Then it is not ready (503 with Retry-After), the cause kept, not an
	// internal error
	require.ErrorIs(t, err, views.ErrNotReady)
	assert.ErrorIs(t, err, tables.ErrStoreBroken)
	var nr *views.NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, time.Second, nr.RetryAfter())
	// and the partition stays out of service for every key and listing,
	// even a key whose block is intact, and the view is not ready
	for _, it := range items {
		if tables.PartitionFor(it.ID, partitions) == p {
			_, err := v.Get(context.Background(), it.ID)
			require.ErrorIs(t, err, views.ErrNotReady, it.ID)
		}
	}
	_, err = v.List(context.Background(), "", "", "", 10)
	assert.ErrorIs(t, err, views.ErrNotReady)
	ctx, _ := views.WithStaleReads(context.Background())
	_, err = v.Get(ctx, items[0].ID)
	assert.ErrorIs(t, err, views.ErrNotReady, "not even as a stale read")
	ready, progress := v.Ready()
	assert.False(t, ready)
	assert.NotEmpty(t, progress[p].Fault)
}

func TestView_GivenSnapshotsWithBookkeeping_ThenGetJSONServesTheStateAsStored(t *testing.T) {
	e := open(t, nil, true)
	set := func(key string, value []byte) {
		s, ok := e.Store(itemsTable.Name, tables.PartitionFor(key, partitions))
		require.True(t, ok)
		require.NoError(t, s.Set(key, value))
	}
	// The state's members as the codec wrote them, in their order, with a
	// field the view's type does not know: served byte for byte.
	snapshot, err := envelope.Join(envelope.Meta{Offsets: map[string]int64{"items": 7}, IDs: []string{"e1"}}, []byte(`{"id":"a","color":"red","extra":1}`))
	require.NoError(t, err)
	set("a", snapshot)
	// A snapshot of the JSON form earlier versions wrote: its state's members.
	set("c", []byte(`{"_meta":{"offsets":{"items":3}},"id":"c","color":"blue"}`))
	// Bytes that are not JSON (another producer's) go through the codec,
	// whose error names the key.
	set("b", []byte("not json"))
	v := views.New(stores{e, partitions}, itemsTable)

	got, err := v.GetJSON(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, `{"id":"a","color":"red","extra":1}`, string(got))
	got, err = v.GetJSON(context.Background(), "c")
	require.NoError(t, err)
	assert.Equal(t, `{"id":"c","color":"blue"}`, string(got))

	// Get and List decode the state alone; an item's Raw is the state too.
	for key, want := range map[string]item{"a": {ID: "a", Color: "red"}, "c": {ID: "c", Color: "blue"}} {
		it, err := v.Get(context.Background(), key)
		require.NoError(t, err)
		assert.Equal(t, want, it)
	}
	page, err := v.List(context.Background(), "", "", "", 1)
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	assert.Equal(t, "a", page.Items[0].Key)
	assert.Equal(t, `{"id":"a","color":"red","extra":1}`, string(page.Items[0].Raw))

	_, err = v.GetJSON(context.Background(), "b")
	assert.ErrorContains(t, err, `decode "b"`)

	_, err = v.GetJSON(context.Background(), "nope")
	assert.ErrorIs(t, err, views.ErrNotFound)
}
