package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/deadletters"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/tables"
)

// runCLI runs the shop's command line in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out, errb bytes.Buffer
	code = shopMain(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// dlqPage GETs a page of a group's dead letters.
func (r *shopRun) dlqPage(group, query string) deadletters.Page {
	r.t.Helper()
	var page deadletters.Page
	resp := r.do(http.MethodGet, "/dlq/"+group+query, "", &page)
	require.Equal(r.t, http.StatusOK, resp.StatusCode)
	return page
}

func byKey(ds []deadletters.DeadLetter, key string) []deadletters.DeadLetter {
	var out []deadletters.DeadLetter
	for _, d := range ds {
		if d.Key == key {
			out = append(out, d)
		}
	}
	return out
}

// awaitRedrive waits for the one dead letter of key in group to show a
// re-drive state with status after attempts.
func (r *shopRun) awaitRedrive(group, key, status string, attempts int) deadletters.DeadLetter {
	r.t.Helper()
	var last []deadletters.DeadLetter
	require.Eventually(r.t, func() bool {
		last = byKey(r.dlqPage(group, "").Items, key)
		return len(last) == 1 && last[0].Redrive != nil && last[0].Redrive.Status == status && last[0].Redrive.Attempts == attempts
	}, wait, 20*time.Millisecond, "dead letter of %q never showed %s after %d attempts: %+v", key, status, attempts, last)
	return last[0]
}

func TestDLQ_GivenAPoisonRecordAndAnUpdateOfAnUnknownCustomer_ThenListedShownAndReDrivenWithHistoryKept(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	brokers := strings.Join(s.brokers(), ",")
	cl := kafkaClient(t, s.brokers())

	// Given a poison record and an update for a customer nobody registered.
	update, _ := eventRecord(t, "una", shop.CustomerUpdatedType, map[string]string{"name": "Una Updated"})
	produce(t, cl,
		&kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("zed"), Value: []byte("not json at all"),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-zed")}}},
		update,
	)
	consumeAll(t, s.brokers(), "customers-dlq", 2)

	// When the dead letters are listed over HTTP.
	page := s.dlqPage("customers", "")
	require.Len(t, page.Items, 2)
	assert.Empty(t, page.Next)
	poison, unknown := byKey(page.Items, "zed"), byKey(page.Items, "una")
	require.Len(t, poison, 1)
	require.Len(t, unknown, 1)

	// Then each names where it came from and why.
	for _, d := range page.Items {
		assert.Equal(t, "customers", d.Group)
		assert.Equal(t, "customers-dlq", d.Topic)
		assert.Equal(t, shop.CustomerEvents.Name, d.OriginalTopic)
		assert.Equal(t, tables.PartitionFor(d.Key, 4), d.OriginalPartition)
		assert.Equal(t, 1, d.Attempts)
		assert.NotEmpty(t, d.Message)
		assert.False(t, d.FirstFailure.IsZero())
		assert.False(t, d.DeadLetteredAt.IsZero())
	}
	assert.Equal(t, processors.ClassDecode, poison[0].Class)
	assert.Equal(t, []byte("not json at all"), poison[0].Value)
	assert.Equal(t, "t-zed", poison[0].Headers["trace"])
	assert.Equal(t, processors.ClassHandler, unknown[0].Class)
	assert.Contains(t, unknown[0].Message, "unknown customer")

	// And paging one at a time walks the same dead letters.
	var paged []deadletters.DeadLetter
	cursor := ""
	for range 5 {
		p := s.dlqPage("customers", "?limit=1&cursor="+cursor)
		paged = append(paged, p.Items...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	assert.Equal(t, page.Items, paged)

	// And one is served on its own.
	var one deadletters.DeadLetter
	resp := s.do(http.MethodGet, fmt.Sprintf("/dlq/customers/%d/%d", poison[0].Partition, poison[0].Offset), "", &one)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, poison[0], one)

	// When they are listed and shown with the CLI.
	code, out, errOut := runCLI(t, "dlq", "list", "--brokers", brokers, "--group", "customers")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	for _, d := range page.Items {
		line := lines[0]
		if !strings.HasPrefix(line, fmt.Sprintf("%d/%d ", d.Partition, d.Offset)) {
			line = lines[1]
		}
		assert.Contains(t, line, fmt.Sprintf("%d/%d ", d.Partition, d.Offset))
		assert.Contains(t, line, d.Original())
		assert.Contains(t, line, fmt.Sprintf("key=%q", d.Key))
		assert.Contains(t, line, "class="+d.Class)
		assert.Contains(t, line, "attempts=1")
	}
	code, out, errOut = runCLI(t, "dlq", "list", "--brokers", brokers, "--group", "customers", "--format", "json")
	require.Equal(t, 0, code, errOut)
	var cliPage deadletters.Page
	require.NoError(t, json.Unmarshal([]byte(out), &cliPage))
	assert.Equal(t, page.Items, cliPage.Items)

	code, out, errOut = runCLI(t, "dlq", "show", "--brokers", brokers, "--group", "customers",
		"--partition", fmt.Sprint(poison[0].Partition), "--offset", fmt.Sprint(poison[0].Offset))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "not json at all")
	assert.Contains(t, out, processors.HeaderExceptionClass+": decode")
	assert.Contains(t, out, "trace: t-zed")

	// When the missing customer is registered and its update re-driven over HTTP.
	reg, _ := eventRecord(t, "una", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Una", Email: "una@example.com"})
	produce(t, cl, reg)
	s.awaitVersion("una", 1)
	oneUna := fmt.Sprintf(`{"partition":%d,"offset":%d}`, unknown[0].Partition, unknown[0].Offset)
	var res deadletters.Result
	resp = s.do(http.MethodPost, "/dlq/customers/redrive", oneUna, &res)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, res.Count)
	assert.Equal(t, deadletters.Position{Topic: "customers-dlq", Partition: unknown[0].Partition, Offset: unknown[0].Offset}, res.Redriven[0].From)
	assert.Equal(t, shop.CustomerEvents.Name, res.Redriven[0].To.Topic)
	assert.Equal(t, tables.PartitionFor("una", 4), res.Redriven[0].To.Partition)
	assert.Equal(t, 2, res.Redriven[0].Attempts)

	// Then the group refuses it: the registration came after it, so applying
	// it would go back in time. The dead letter says so, the customer is as
	// registered.
	stale := s.awaitRedrive("customers", "una", processors.RedriveStale, 2)
	assert.Contains(t, stale.Redrive.Reason, "after the original offset")
	assert.Equal(t, res.Redriven[0].To.String(), stale.Redrive.To)
	c, _ := s.customer("una")
	assert.Equal(t, int64(1), c.Version)

	// And re-driving it again is refused at once, unless forced.
	s.expectProblem(t, http.MethodPost, "/dlq/customers/redrive", oneUna, http.StatusConflict)
	resp = s.do(http.MethodPost, "/dlq/customers/redrive", strings.TrimSuffix(oneUna, "}")+`,"force":true}`, &res)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, res.Count)
	assert.Equal(t, 3, res.Redriven[0].Attempts)

	// Then the forced update is applied.
	una := s.awaitVersion("una", 2)
	assert.Equal(t, "Una Updated", una.Name)
	applied := s.awaitRedrive("customers", "una", processors.RedriveApplied, 3)
	assert.True(t, applied.Redrive.Forced)

	// When the poison record is re-driven with the CLI.
	code, out, errOut = runCLI(t, "dlq", "redrive", "--brokers", brokers, "--group", "customers",
		"--partition", fmt.Sprint(poison[0].Partition), "--offset", fmt.Sprint(poison[0].Offset), "--format", "json")
	require.Equal(t, 0, code, errOut)
	var poisonRes deadletters.Result
	require.NoError(t, json.Unmarshal([]byte(out), &poisonRes))
	require.Equal(t, 1, poisonRes.Count)

	// Then it fails again: no second dead letter, the first one's state
	// counts the attempt and says why.
	zed := s.awaitRedrive("customers", "zed", processors.RedriveFailedAgain, 2)
	assert.Equal(t, processors.ClassDecode, zed.Redrive.Class)
	assert.Equal(t, poison[0].Coordinates(), zed.Redrive.From)
	assert.Equal(t, poisonRes.Redriven[0].To.String(), zed.Redrive.To)
	assert.Equal(t, int64(2), endOffsets(t, s.brokers(), "customers-dlq"))

	// When everything is re-driven with the CLI, twice.
	for i, attempts := range []int{3, 4} {
		code, out, errOut = runCLI(t, "dlq", "redrive", "--brokers", brokers, "--group", "customers", "--all")
		require.Equal(t, 0, code, errOut)
		// Then the applied update is skipped, the failing poison re-sent once.
		assert.Contains(t, out, "re-drove 1 dead letter(s)", i)
		assert.Contains(t, out, "already re-driven and applied", i)
		s.awaitRedrive("customers", "zed", processors.RedriveFailedAgain, attempts)
	}

	// And the dead letters are still the two, unchanged, their states shown.
	after := s.dlqPage("customers", "")
	require.Len(t, after.Items, 2)
	assert.Equal(t, int64(2), endOffsets(t, s.brokers(), "customers-dlq"))
	for i, d := range after.Items {
		require.NotNil(t, d.Redrive, d.Key)
		d.Redrive = nil
		after.Items[i] = d
	}
	assert.ElementsMatch(t, []deadletters.DeadLetter{poison[0], unknown[0]}, after.Items)
	code, out, errOut = runCLI(t, "dlq", "list", "--brokers", brokers, "--group", "customers")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "redrive=failed-again")
	assert.Contains(t, out, "redrive=applied")
	assert.Contains(t, out, "attempts=4")
}

func TestDLQ_GivenBadRequests_ThenProblemsAndUsageErrors(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	brokers := strings.Join(s.brokers(), ",")
	cl := kafkaClient(t, s.brokers())
	produce(t, cl, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("zed"), Value: []byte("poison")})
	consumeAll(t, s.brokers(), "customers-dlq", 1)

	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"unknown group", http.MethodGet, "/dlq/ghosts", "", http.StatusNotFound},
		{"unknown group redrive", http.MethodPost, "/dlq/ghosts/redrive", `{"all":true}`, http.StatusNotFound},
		{"bad limit", http.MethodGet, "/dlq/customers?limit=0", "", http.StatusBadRequest},
		{"bad cursor", http.MethodGet, "/dlq/customers?cursor=nonsense", "", http.StatusBadRequest},
		{"unknown parameter", http.MethodGet, "/dlq/customers?class=decode", "", http.StatusBadRequest},
		{"absent dead letter", http.MethodGet, "/dlq/customers/0/99", "", http.StatusNotFound},
		{"empty selection", http.MethodPost, "/dlq/customers/redrive", `{}`, http.StatusBadRequest},
		{"no body", http.MethodPost, "/dlq/customers/redrive", "", http.StatusBadRequest},
		{"partition only", http.MethodPost, "/dlq/customers/redrive", `{"partition":0}`, http.StatusBadRequest},
		{"offset and range", http.MethodPost, "/dlq/customers/redrive", `{"partition":0,"offset":0,"from":0,"to":1}`, http.StatusBadRequest},
		{"all and more", http.MethodPost, "/dlq/customers/redrive", `{"all":true,"partition":0}`, http.StatusBadRequest},
		{"all false", http.MethodPost, "/dlq/customers/redrive", `{"all":false}`, http.StatusBadRequest},
		{"backwards range", http.MethodPost, "/dlq/customers/redrive", `{"partition":0,"from":5,"to":2}`, http.StatusBadRequest},
		{"negative offset", http.MethodPost, "/dlq/customers/redrive", `{"partition":0,"offset":-1}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/dlq/customers/redrive", `{"everything":true}`, http.StatusBadRequest},
		{"absent offset", http.MethodPost, "/dlq/customers/redrive", `{"partition":0,"offset":99}`, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.expectProblem(t, tc.method, tc.path, tc.body, tc.status)
		})
	}
	// Nothing was re-driven: the event topic holds the one poison record.
	assert.Equal(t, int64(1), endOffsets(t, s.brokers(), shop.CustomerEvents.Name))

	usage := [][]string{
		{"dlq"},
		{"dlq", "purge", "--group", "customers"},
		{"dlq", "list", "--brokers", brokers},
		{"dlq", "list", "--brokers", brokers, "--group", "customers", "--format", "yaml"},
		{"dlq", "show", "--brokers", brokers, "--group", "customers", "--partition", "0"},
		{"dlq", "redrive", "--brokers", brokers, "--group", "customers"},
		{"dlq", "redrive", "--brokers", brokers, "--group", "customers", "--partition", "0", "--from", "1"},
		{"dlq", "redrive", "--brokers", brokers, "--group", "customers", "--all", "--offset", "0"},
		{"dlq", "list", "--no-such-flag"},
	}
	for _, args := range usage {
		code, _, errOut := runCLI(t, args...)
		assert.Equal(t, 2, code, "%v", args)
		assert.NotEmpty(t, errOut, "%v", args)
	}
	code, out, _ := runCLI(t, "dlq", "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "redrive")

	code, _, errOut := runCLI(t, "dlq", "list", "--brokers", brokers, "--group", "ghosts")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "ghosts-dlq")
	code, _, errOut = runCLI(t, "dlq", "show", "--brokers", brokers, "--group", "customers", "--partition", "0", "--offset", "99")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no such dead letter")
}

func TestDLQ_GivenATombstoneDeadLetteredBeforeTheCustomerRegisteredAgain_ThenNoReDriveErasesIt(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))
	brokers := strings.Join(s.brokers(), ",")
	manual := kafkaClient(t, s.brokers(), kgo.RecordPartitioner(kgo.ManualPartitioner()))

	// Given a tombstone for tom, dead-lettered (it came on the wrong partition).
	wrong := (tables.PartitionFor("tom", 4) + 1) % 4
	produce(t, manual, &kgo.Record{Topic: shop.CustomerEvents.Name, Partition: wrong, Key: []byte("tom"), Value: nil})
	consumeAll(t, s.brokers(), "customers-dlq", 1)
	tomb := byKey(s.dlqPage("customers", "").Items, "tom")
	require.Len(t, tomb, 1)
	assert.Equal(t, processors.ClassWrongPartition, tomb[0].Class)

	// And tom registered since.
	reg, _ := eventRecord(t, "tom", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "Tom", Email: "tom@example.com"})
	produce(t, kafkaClient(t, s.brokers()), reg)
	s.awaitVersion("tom", 1)

	// When the tombstone is re-driven, forced, with the CLI.
	code, out, errOut := runCLI(t, "dlq", "redrive", "--brokers", brokers, "--group", "customers",
		"--partition", fmt.Sprint(tomb[0].Partition), "--offset", fmt.Sprint(tomb[0].Offset), "--force")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "re-drove 1 dead letter(s)")

	// Then the group refuses it, and tom is still there.
	stale := s.awaitRedrive("customers", "tom", processors.RedriveStale, 2)
	assert.Contains(t, stale.Redrive.Reason, "a tombstone is never re-driven over a newer write")
	assert.True(t, stale.Redrive.Forced)
	c, ok := s.customer("tom")
	require.True(t, ok, "the re-driven tombstone erased tom")
	assert.Equal(t, int64(1), c.Version)

	// And show says so.
	code, out, errOut = runCLI(t, "dlq", "show", "--brokers", brokers, "--group", "customers",
		"--partition", fmt.Sprint(tomb[0].Partition), "--offset", fmt.Sprint(tomb[0].Offset))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "stale (forced)")
	assert.Contains(t, out, "never re-driven over a newer write")
}
