package streamfold_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	"github.com/streamfold/streamfold/tables"
)

// dbzCustomer is a row of the customers table of Debezium's tutorial.
type dbzCustomer struct {
	ID        int    `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
}

// Given the recorded change events of a PostgreSQL and a MySQL customers
// table (codecs/testdata/debezium) on their Debezium topics — creates,
// updates, snapshot reads, a delete followed by its tombstone, values with
// and without the schema wrapper —
// When a group per topic folds them with the DebeziumEvents codec and
// MirrorRows,
// Then each table holds the rows the database holds (the after image),
// without the deleted row, nothing is dead-lettered, and a change Debezium
// sends again is dropped, not applied again.
func TestDebezium_GivenChangeEventsOfTwoDatabases_WhenFolded_ThenTheTablesMirrorTheRows_AndAResentChangeIsDropped(t *testing.T) {
	pgTopic := tables.NewStream[codecs.Event]("dbserver1.inventory.customers", codecs.DebeziumEvents{TypePrefix: "customers"})
	myTopic := tables.NewStream[codecs.Event]("dbserver1.mysql.customers", codecs.DebeziumEvents{})
	pgGroup, myGroup := processors.NewGroup("pg-customers"), processors.NewGroup("mysql-customers")
	pgTable := processors.Project(pgGroup, pgTopic, processors.MirrorRows[dbzCustomer])
	myTable := processors.Project(myGroup, myTopic, processors.MirrorRows[dbzCustomer])

	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(pgGroup, myGroup).
		WrittenBy(pgTopic, "debezium").WrittenBy(myTopic, "debezium")
	rt := runTopology(t, broker, topo, nil)

	// The PostgreSQL topic's keys are plain ids, as the StringConverter
	// writes them after ExtractField$Key; the MySQL topic's are the JSON
	// converter's schema-wrapped keys (the tutorial's key of row 1004, and
	// the same key naming row 1001).
	pg := func(key, file string) *kgo.Record {
		return &kgo.Record{Topic: pgTopic.Name, Key: []byte(key), Value: dbzSample(t, file)}
	}
	key1004 := dbzSample(t, "mysql-key-schema.json")
	key1001 := bytes.Replace(key1004, []byte(`"id":1004`), []byte(`"id":1001`), 1)
	my := func(key []byte, file string) *kgo.Record {
		return &kgo.Record{Topic: myTopic.Name, Key: key, Value: dbzSample(t, file)}
	}
	pgCreate1 := pg("1", "pg-create-schema.json")
	pgRecords := []*kgo.Record{
		pgCreate1,                               // c 1 Anne, schema-wrapped
		pg("1", "pg-update.json"),               // u 1 Anne Marie
		pg("1001", "pg-read.json"),              // r 1001 Sally (snapshot)
		pg("1005", "pg-create.json"),            // c 1005 Bob
		pg("1", "pg-delete.json"),               // d 1
		{Topic: pgTopic.Name, Key: []byte("1")}, // its tombstone
	}
	myUpdate1004 := my(key1004, "mysql-update-tutorial.json")
	myRecords := []*kgo.Record{
		my(key1004, "mysql-read-schema.json"),     // r 1004 Anne, schema-wrapped
		myUpdate1004,                              // u 1004 Anne Marie
		my(key1001, "mysql-update-1001.json"),     // u 1001 Sally -> Sarah
		my(key1004, "mysql-delete-tutorial.json"), // d 1004
		{Topic: myTopic.Name, Key: key1004},       // its tombstone
	}
	produceAll(t, broker.Addrs(), append(pgRecords, myRecords...)...)

	processed := func(group string, n int64) func() bool {
		return func() bool { return rt.Stats()[group].Processed >= n }
	}
	require.Eventually(t, processed("pg-customers", int64(len(pgRecords))), wait, 10*time.Millisecond)
	require.Eventually(t, processed("mysql-customers", int64(len(myRecords))), wait, 10*time.Millisecond)

	assertRows := func() {
		t.Helper()
		got, ok := readRow(t, rt, pgTable, "1001")
		assert.True(t, ok)
		assert.Equal(t, dbzCustomer{1001, "Sally", "Thomas", "sally.thomas@acme.com"}, got)
		got, ok = readRow(t, rt, pgTable, "1005")
		assert.True(t, ok)
		assert.Equal(t, dbzCustomer{1005, "Bob", "Marley", "bob@marley.com"}, got)
		_, ok = readRow(t, rt, pgTable, "1")
		assert.False(t, ok, "PostgreSQL row 1 was deleted")

		got, ok = readRow(t, rt, myTable, string(key1001))
		assert.True(t, ok)
		assert.Equal(t, dbzCustomer{1001, "Sarah", "Thomas", "sally.thomas@acme.com"}, got)
		_, ok = readRow(t, rt, myTable, string(key1004))
		assert.False(t, ok, "MySQL row 1004 was deleted")

		for _, g := range []string{"pg-customers", "mysql-customers"} {
			assert.Empty(t, rt.Stats()[g].DeadLetters, g)
		}
	}
	assertRows()

	// When Debezium sends a create and an update again (as after a
	// connector restart), after the row's delete.
	resend := func(r *kgo.Record) *kgo.Record { return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value} }
	produceAll(t, broker.Addrs(), resend(pgCreate1), resend(myUpdate1004))

	// Then they are dropped as duplicates: the deleted rows stay deleted.
	duplicates := func(group string) func() bool {
		return func() bool { return rt.Stats()[group].Duplicates == 1 }
	}
	require.Eventually(t, duplicates("pg-customers"), wait, 10*time.Millisecond)
	require.Eventually(t, duplicates("mysql-customers"), wait, 10*time.Millisecond)
	assertRows()
}

func dbzSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("codecs", "testdata", "debezium", name))
	require.NoError(t, err)
	// A Kafka record holds the converter's compact JSON, not the
	// documentation's indentation.
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, b))
	return buf.Bytes()
}

// readRow reads key from a group table's local store.
func readRow[S any](t *testing.T, rt *streamfold.Runtime, table tables.Table[S], key string) (S, bool) {
	t.Helper()
	var zero S
	s, ok := rt.Store(table.Name, tables.PartitionFor(key, rt.PartitionsOf(table.Name)))
	if !ok {
		return zero, false
	}
	b, err := s.Get(key)
	require.NoError(t, err)
	if b == nil {
		return zero, false
	}
	_, state, err := envelope.Split(b)
	require.NoError(t, err)
	v, err := table.Codec.Decode(state)
	require.NoError(t, err)
	return v, true
}
