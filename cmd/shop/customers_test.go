package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
)

type page struct {
	Items []shop.Customer `json:"items"`
	Next  string          `json:"next"`
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Fields names the broken fields of a 422.
	Fields map[string]any `json:"fields,omitempty"`
}

func ids(cs []shop.Customer) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestCustomers_GivenHTTPCommands_ThenTableViewsAndStateIndexFollow(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, testConfig(dir))

	// When customers are registered, updated, soft-deleted and erased over HTTP.
	var acc accepted
	resp := s.do(http.MethodPost, "/customers", `{"id":"ada","name":"Ada","email":"ada@example.com"}`, &acc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "ada", acc.ID)
	assert.NotEmpty(t, acc.EventID)
	assert.Equal(t, "/customers/ada", resp.Header.Get("Location"))
	s.awaitVersion("ada", 1)

	resp = s.do(http.MethodPost, "/customers", `{"name":"Nameless","email":"n@example.org"}`, &acc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	generated := acc.ID
	require.NotEmpty(t, generated)
	s.awaitVersion(generated, 1)

	for _, id := range []string{"bob", "cy"} {
		require.Equal(t, http.StatusAccepted, s.do(http.MethodPost, "/customers", `{"id":"`+id+`","name":"`+id+`","email":"`+id+`@example.com"}`, nil).StatusCode)
		s.awaitVersion(id, 1)
	}
	require.Equal(t, http.StatusAccepted, s.do(http.MethodPatch, "/customers/ada", `{"name":"Ada Lovelace"}`, nil).StatusCode)
	ada := s.awaitVersion("ada", 2)
	assert.Equal(t, "Ada Lovelace", ada.Name)
	assert.Equal(t, "ada@example.com", ada.Email)
	assert.Equal(t, shop.StateActive, ada.State)

	require.Equal(t, http.StatusAccepted, s.do(http.MethodDelete, "/customers/bob", "", nil).StatusCode)
	bob := s.awaitVersion("bob", 2)
	assert.Equal(t, shop.StateDeleted, bob.State)

	require.Equal(t, http.StatusAccepted, s.do(http.MethodDelete, "/customers/cy?erase=true", "", nil).StatusCode)
	s.awaitVersion("cy", 0)

	// Then the state index answers "all deleted" and "all active" without the erased one.
	var deleted, active page
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/customers?state=deleted", "", &deleted).StatusCode)
	assert.Equal(t, []string{"bob"}, ids(deleted.Items))
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/customers?state=active", "", &active).StatusCode)
	assert.ElementsMatch(t, []string{"ada", generated}, ids(active.Items))

	// And paging walks every customer exactly once.
	var seen []string
	cursor := ""
	for range 10 {
		var p page
		require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/customers?limit=1&cursor="+cursor, "", &p).StatusCode)
		seen = append(seen, ids(p.Items)...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	assert.ElementsMatch(t, []string{"ada", "bob", generated}, seen)

	// And the erased customer left a tombstone in the changelog.
	cl := kafkaClient(t, s.brokers(), kgo.ConsumeTopics(shop.CustomersTable.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		found := false
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "cy" && r.Value == nil {
				found = true
			}
		})
		return found
	}, wait, 10*time.Millisecond, "no tombstone for cy in customers-table")

	// And the SQL read model in the shop's database (SQLite by default)
	// holds the same customers, the erased one gone.
	db, err := outbox.Open(context.Background(), filepath.Join(dir, "shop.db"))
	require.NoError(t, err)
	defer db.Close()
	want := []string{"ada Ada Lovelace active 2", "bob bob deleted 2", generated + " Nameless active 1"}
	var got []string
	require.Eventually(t, func() bool {
		rows, err := db.Query(`SELECT id, name, state, version FROM customers ORDER BY id`)
		if err != nil {
			return false
		}
		defer rows.Close()
		got = got[:0]
		for rows.Next() {
			var id, name, state string
			var version int64
			if rows.Scan(&id, &name, &state, &version) != nil {
				return false
			}
			got = append(got, fmt.Sprintf("%s %s %s %d", id, name, state, version))
		}
		return rows.Err() == nil && assert.ObjectsAreEqual(sorted(want), got)
	}, wait, 20*time.Millisecond, "customers in SQL: %q, want %q", got, want)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestCustomers_GivenBadRequests_ThenProblemsAndNothingWritten(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"malformed JSON", http.MethodPost, "/customers", `{"name":`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/customers", `{"name":"a","email":"a@example.com","age":3}`, http.StatusBadRequest},
		{"missing name", http.MethodPost, "/customers", `{"email":"a@example.com"}`, http.StatusUnprocessableEntity},
		{"implausible email", http.MethodPost, "/customers", `{"name":"a","email":"not-an-address"}`, http.StatusUnprocessableEntity},
		{"update of unknown customer", http.MethodPatch, "/customers/ghost", `{"name":"x"}`, http.StatusNotFound},
		{"empty update", http.MethodPatch, "/customers/ghost", `{}`, http.StatusUnprocessableEntity},
		{"delete of unknown customer", http.MethodDelete, "/customers/ghost", "", http.StatusNotFound},
		{"bad erase flag", http.MethodDelete, "/customers/ghost?erase=perhaps", "", http.StatusBadRequest},
		{"unknown state filter", http.MethodGet, "/customers?state=sleeping", "", http.StatusBadRequest},
		{"bad limit", http.MethodGet, "/customers?limit=zero", "", http.StatusBadRequest},
		{"absent customer", http.MethodGet, "/customers/ghost", "", http.StatusNotFound},
		{"NUL in body id", http.MethodPost, "/customers", `{"id":"a\u0000b","name":"a","email":"a@example.com"}`, http.StatusBadRequest},
		{"CR LF in body id", http.MethodPost, "/customers", `{"id":"a\r\nSet-Cookie: x","name":"a","email":"a@example.com"}`, http.StatusBadRequest},
		{"BEL in body id", http.MethodPost, "/customers", `{"id":"\u0007","name":"a","email":"a@example.com"}`, http.StatusBadRequest},
		{"overlong body id", http.MethodPost, "/customers", `{"id":"` + strings.Repeat("x", 257) + `","name":"a","email":"a@example.com"}`, http.StatusBadRequest},
		{"NUL in path id", http.MethodPatch, "/customers/a%00b", `{"name":"x"}`, http.StatusBadRequest},
		{"LF in path id", http.MethodDelete, "/customers/a%0Ab", "", http.StatusBadRequest},
		{"BEL in cart id", http.MethodPost, "/carts/c%07/commands", `{"type":"CheckOut"}`, http.StatusBadRequest},
		{"LF in command id", http.MethodPost, "/carts/c1/commands", `{"type":"CheckOut","commandId":"a\nb"}`, http.StatusBadRequest},
		{"NUL in product id", http.MethodPost, "/carts/c1/commands", `{"type":"AddItem","data":{"productId":"p\u0000","quantity":1}}`, http.StatusBadRequest},
		{"forged cursor", http.MethodGet, "/customers?state=active&cursor=Y3VzdG9tZXItOTk5", "", http.StatusBadRequest},
		{"forged cart cursor", http.MethodGet, "/carts?product=apple&cursor=YXBwbGU", "", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := s.expectProblem(t, tc.method, tc.path, tc.body, tc.status)
			assert.Equal(t, tc.status, p.Status)
		})
	}
	// And nothing reached the log.
	assert.Zero(t, endOffsets(t, s.brokers(), shop.CustomerEvents.Name))
	// The process keeps serving.
	assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "", nil).StatusCode)
}

func TestCustomers_GivenRecordsFromAnyKafkaProducer_ThenFoldedOrDeadLettered(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	cl := kafkaClient(t, s.brokers())

	// Given a structured CloudEvent produced by a plain Kafka client (murmur2 partitioner).
	reg, regEv := eventRecord(t, "kim", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Kim", Email: "kim@example.com"})
	produce(t, cl, reg)
	s.awaitVersion("kim", 1)

	// And a binary-mode CloudEvent (ce_* headers, data as the value).
	produce(t, cl, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("kim"), Value: []byte(`{"email":"kim@example.net"}`),
		Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("binary-1")},
			{Key: "ce_source", Value: []byte("urn:kcat")}, {Key: "ce_type", Value: []byte(shop.CustomerUpdatedType)},
			{Key: "ce_subject", Value: []byte("kim")}, {Key: "content-type", Value: []byte("application/json")},
		}})
	kim := s.awaitVersion("kim", 2)
	assert.Equal(t, "kim@example.net", kim.Email)

	// When the same event is re-sent (a producer retry: same CloudEvents id).
	dup, _ := eventRecord(t, "kim", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Kim", Email: "kim@example.com"})
	dup.Value, _ = shopEventBytes(t, regEv)
	// And poison: not JSON, a CloudEvent without id, an unknown type, a keyless record.
	produce(t, cl,
		dup,
		&kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("kim"), Value: []byte("not json at all")},
		&kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("kim"), Value: []byte(`{"specversion":"1.0","source":"x","type":"CustomerUpdated"}`)},
		&kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("kim"), Value: []byte(`{"specversion":"1.0","id":"u1","source":"x","type":"CustomerTeleported"}`)},
	)
	// And a record on the wrong partition for its key.
	wrong, _ := eventRecord(t, "lee", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Lee", Email: "lee@example.com"})
	right := tables.PartitionFor("lee", 4)
	wrong.Partition = (right + 1) % 4
	manual := kafkaClient(t, s.brokers(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(t, manual, wrong)
	// And then a valid update behind all of them on kim's partition.
	upd, _ := eventRecord(t, "kim", shop.CustomerUpdatedType, map[string]string{"name": "Kim K"})
	produce(t, cl, upd)

	// Then the partition kept flowing, the duplicate changed nothing.
	kim = s.awaitVersion("kim", 3)
	assert.Equal(t, "Kim K", kim.Name)
	// And the wrong-partition record is not stored where no lookup finds it.
	_, found := s.customer("lee")
	assert.False(t, found)

	// And four dead letters carry their coordinates and reasons.
	dlq := consumeAll(t, s.brokers(), "customers-dlq", 4)
	classes := map[string]int{}
	for _, r := range dlq {
		h := headerMap(r)
		classes[h[processors.HeaderExceptionClass]]++
		assert.Equal(t, shop.CustomerEvents.Name, h[processors.HeaderOriginalTopic])
		assert.Equal(t, "customers", h[processors.HeaderOriginalGroup])
		assert.NotEmpty(t, h[processors.HeaderExceptionMessage])
		_, err := strconv.ParseInt(h[processors.HeaderOriginalOffset], 10, 64)
		assert.NoError(t, err)
		_, err = strconv.Atoi(h[processors.HeaderOriginalPartition])
		assert.NoError(t, err)
		assert.Equal(t, string(r.Key), h[processors.HeaderOriginalKey])
	}
	assert.Equal(t, map[string]int{processors.ClassDecode: 2, processors.ClassHandler: 1, processors.ClassWrongPartition: 1}, classes)
	assert.Equal(t, int64(1), s.app.Runtime().Stats()["customers"].Duplicates)

	// When a Kafka tombstone arrives for kim.
	produce(t, cl, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("kim")})
	// Then kim is gone from the view and the index.
	s.awaitVersion("kim", 0)
	var active page
	s.do(http.MethodGet, "/customers?state=active", "", &active)
	assert.Empty(t, active.Items)
}
