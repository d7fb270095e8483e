package tables_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/streamfold/streamfold/tables"
)

// An engine with a secondary index, used the way goka uses it: goka builds
// a store per partition, restores it from the changelog, marks it
// recovered, then writes as it processes. Queries reach the open stores
// through the engine. In a service, pass the builder to goka with
// goka.WithViewStorageBuilder(engine.Builder()) or goka.WithStorageBuilder.
func ExampleEngine() {
	dir, err := os.MkdirTemp("", "tables-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	byCity := tables.Index{Name: "city", Terms: func(_ string, v []byte) []string {
		_, city, _ := strings.Cut(string(v), "city=")
		return []string{city}
	}}
	engine, err := tables.NewEngine(dir, tables.WithIndex("customers-table", byCity))
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	st, err := engine.Builder()("customers-table", 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Open(); err != nil {
		log.Fatal(err)
	}
	// The restore: records and their changelog offsets, in batches.
	for i, rec := range []string{"ann:city=Oslo", "bob:city=Lima", "cid:city=Oslo", "bob:city=Oslo"} {
		key, value, _ := strings.Cut(rec, ":")
		_ = st.Set(key, []byte(value))
		_ = st.SetOffset(int64(i))
	}
	_ = st.MarkRecovered()
	// Processing: a tombstone removes the key from data and indexes.
	_ = st.Delete("cid")

	store, _ := engine.Store("customers-table", 0)
	keys, _ := store.Lookup("city", "Oslo", "", 0)
	fmt.Println("Oslo:", keys)
	n, _ := store.Count("city", "Lima")
	fmt.Println("Lima:", n)
	p := store.Progress()
	fmt.Println("recovered:", p.Recovered, "offset:", p.Offset)
	// Output:
	// Oslo: [ann bob]
	// Lima: 0
	// recovered: true offset: 3
}
