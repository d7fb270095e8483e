package tables

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkStoreFold makes the store calls a projection makes per event,
// after the restore: Get the key's snapshot, ask Seen for the event's id,
// Set the new snapshot. The table has an index on a JSON member (like the
// shop's customers by state) and applied ids, and the store holds 1,250
// keys (the customers fold's 10,000 over 8 partitions). cpu-µs/op is the
// process's CPU time per event, the figure that holds on a shared machine.
//
//	go test -run '^$' -bench BenchmarkStoreFold -benchtime 100000x ./tables/
func BenchmarkStoreFold(b *testing.B) {
	const keys = 1250 // 10,000 customers over 8 partitions
	type snapshot struct {
		Meta  struct{ IDs []string } `json:"_meta"`
		ID    string                 `json:"id"`
		Name  string                 `json:"name"`
		Email string                 `json:"email"`
		State string                 `json:"state"`
		Ver   int64                  `json:"version"`
		At    time.Time              `json:"updatedAt"`
	}
	state := Index{Name: "state", Terms: func(_ string, v []byte) []string {
		var c struct {
			State string `json:"state"`
		}
		if json.Unmarshal(v, &c) != nil || c.State == "" {
			return nil
		}
		return []string{c.State}
	}}
	seen := Seen{
		IDs: func(_ string, v []byte) ([]string, time.Time) {
			var s struct {
				Meta struct{ IDs []string } `json:"_meta"`
			}
			if json.Unmarshal(v, &s) != nil {
				return nil, time.Time{}
			}
			return s.Meta.IDs, time.Time{}
		},
		Horizon: 24 * time.Hour,
	}
	e, err := NewEngine(b.TempDir(), WithIndex("t", state), WithSeen("t", seen), WithMemory(128<<20, 16))
	require.NoError(b, err)
	defer e.Close()
	st, err := e.Builder()("t", 0)
	require.NoError(b, err)
	require.NoError(b, st.Open())
	s := st.(*Store)
	require.NoError(b, s.MarkRecovered())

	rnd := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := restoreBenchCPU()
	for i := range b.N {
		key := fmt.Sprintf("customer-%06d", rnd.IntN(keys))
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, rnd.Uint64()&0xffffffffffff)
		prev, err := s.Get(key)
		if err != nil {
			b.Fatal(err)
		}
		dup, err := s.Seen(key, id)
		if err != nil || dup {
			b.Fatal(err, dup)
		}
		var c snapshot
		if prev != nil {
			if err := json.Unmarshal(prev, &c); err != nil {
				b.Fatal(err)
			}
		}
		c.Meta.IDs = []string{id}
		c.ID, c.Name, c.Email, c.State, c.Ver, c.At = key, "Name "+key, key+"@example.com", "active", c.Ver+1, now
		if i%50 == 0 {
			c.State = "deleted"
		}
		v, _ := json.Marshal(c)
		if err := s.SetOffset(int64(i)); err != nil {
			b.Fatal(err)
		}
		if err := s.Set(key, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((restoreBenchCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}
