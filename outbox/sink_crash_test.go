package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
)

// sinkCrashEnv makes TestSinkCrashChild the child a crash test kills; it
// holds a sinkCrashPlan as JSON.
const sinkCrashEnv = "STREAMFOLD_SINK_CRASH"

// sinkCrashPlan tells the child where to sink from and to, and after which
// commit to stop.
type sinkCrashPlan struct {
	Brokers []string `json:"brokers"`
	DSN     string   `json:"dsn"`
	Group   string   `json:"group"` // the group whose table is read
	After   int      `json:"after"` // block after this many commits
}

// sinkDatabasesWithDSN is databases for tests that hand the database to a
// child process: f also gets the DSN.
func sinkDatabasesWithDSN(t *testing.T, f func(t *testing.T, dsn string, db *outbox.DB)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "test.db")
			if name == "postgres" {
				dsn = pgtest.Database(t)
			}
			f(t, dsn, openDB(t, dsn))
		})
	}
}

// TestSinkCrashChild is the process the crash test kills: it sinks the
// plan's table and, right after the SQL commit of its After-th batch —
// the rows and the offsets are in the database, nothing else has happened —
// says "committed" and blocks until it is killed.
func TestSinkCrashChild(t *testing.T) {
	raw := os.Getenv(sinkCrashEnv)
	if raw == "" {
		t.Skip("run by TestSink_GivenASinkKilledRightAfterItsSQLCommit_WhenRestarted_ThenEveryRecordIsAppliedExactlyOnce")
	}
	var plan sinkCrashPlan
	if err := json.Unmarshal([]byte(raw), &plan); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := outbox.Open(ctx, plan.DSN)
	if err != nil {
		t.Fatal(err)
	}
	commits := 0
	sink := &outbox.Sink[sinkCustomer]{
		Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: plan.Brokers},
		Source: outbox.TableSource(processors.GroupTable[sinkCustomer](plan.Group)),
		Apply:  sinkAudited("customers"), Batch: 16,
		OnCommit: func(outbox.SinkCommit) {
			commits++
			if commits == plan.After {
				fmt.Println("committed")
				select {} // until SIGKILL: no Kafka-side anything, no close
			}
		},
	}
	t.Fatalf("sink stopped before its crash point: %v", sink.Run(ctx))
}

// sinkCrashAt runs the child until its after-th commit and kills it with
// SIGKILL there.
func sinkCrashAt(t *testing.T, plan sinkCrashPlan) {
	t.Helper()
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	killAt(t, "TestSinkCrashChild", []string{sinkCrashEnv + "=" + string(b)}, "committed", sinkWait)
}

func TestSink_GivenASinkKilledRightAfterItsSQLCommit_WhenRestarted_ThenEveryRecordIsAppliedExactlyOnce(t *testing.T) {
	brokers := startBroker(t)
	sinkDatabasesWithDSN(t, func(t *testing.T, dsn string, db *outbox.DB) {
		group := "crash-" + string(db.Dialect)
		tbl := sinkTable(t, brokers, group)
		records, fold := sinkHistory(40, 10)
		end := sinkProduce(t, brokers, tbl.Name, records)
		sinkSchema(t, db, "customers")

		applied := 0
		for _, after := range []int{3, 5} {
			sinkCrashAt(t, sinkCrashPlan{Brokers: brokers, DSN: dsn, Group: group, After: after})
			total, doubled := sinkAuditCounts(t, db, "customers")
			t.Logf("killed after commit %d: %d of %d records applied, %d of them twice", after, total, len(records), doubled)
			if total <= applied || total >= len(records) {
				t.Fatalf("after the kill %d records are applied, want more than the %d before and fewer than all %d: the crash is not mid-way", total, applied, len(records))
			}
			applied = total
		}

		sink := &outbox.Sink[sinkCustomer]{
			Name: "customers-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(tbl), Apply: sinkAudited("customers"), Batch: 16,
		}
		stop := sinkRunning(t, sink)
		sinkEventually(t, "the restarted sink reached the end", func() bool { return sinkCaughtUp(t, db, sink.Name, end) })
		stop() // Stats are final once Run returned

		total, doubled := sinkAuditCounts(t, db, "customers")
		t.Logf("after two SIGKILLs and a restart: %d records applied, %d twice (want %d and 0)", total, doubled, len(records))
		if doubled != 0 {
			t.Errorf("%d records were applied twice", doubled)
		}
		if total-doubled != len(records) {
			t.Errorf("%d distinct records applied, want all %d (none lost)", total-doubled, len(records))
		}
		if got := sink.Stats().Applied; got != int64(len(records)-applied) {
			t.Errorf("the restarted sink applied %d records, want the %d the killed ones had not", got, len(records)-applied)
		}
		sameContent(t, sinkContent(t, db, "customers"), fold)
	})
}
