package outbox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
)

// tailCrashEnv carries "<url> <slot> <brokers,…>" to the child process the
// crash test kills.
const tailCrashEnv = "STREAMFOLD_TAIL_CRASH_CHILD"

// TestLogRelay_CrashChild is the process the crash test kills: a relay that,
// once it has 16 rows acknowledged, says how many the last acknowledgement
// covered and blocks before confirming them to PostgreSQL.
func TestLogRelay_CrashChild(t *testing.T) {
	args := strings.Fields(os.Getenv(tailCrashEnv))
	if len(args) != 3 {
		t.Skip("run by TestLogRelay_GivenAKillBetweenTheAcknowledgementAndTheConfirmation_ThenNothingIsLost")
	}
	r := tailRelay(t, args[0], args[1], strings.Split(args[2], ","))
	r.BatchSize = 8
	total := 0
	outbox.TailSetAfterAck(r, func(acked int) {
		total += acked
		if total >= 16 {
			fmt.Printf("acked %d\n", acked)
			select {} // until killed: the position is never confirmed
		}
	})
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLogRelay_GivenAKillBetweenTheAcknowledgementAndTheConfirmation_ThenNothingIsLost(t *testing.T) {
	dsn, db, slot := tailDB(t)
	brokers := tailBroker(t)
	r := tailRelay(t, dsn, slot, brokers)
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	var committed []codecs.Event
	for i := range 12 {
		es := make([]codecs.Event, 5)
		for j := range es {
			es[j] = tailEvent(t, fmt.Sprintf("o%d", (i+j)%4), i*5+j)
		}
		tailTx(t, db, outbox.Writer{Transient: i%2 == 0}, true, es...)
		committed = append(committed, es...)
	}

	line := killAt(t, "TestLogRelay_CrashChild", []string{tailCrashEnv + "=" + dsn + " " + slot + " " + strings.Join(brokers, ",")}, "acked ", tailWait)
	unconfirmed, err := strconv.Atoi(strings.TrimPrefix(line, "acked "))
	if err != nil || unconfirmed <= 0 {
		t.Fatalf("the child said %q: want acked <rows>", line)
	}

	after := tailRelay(t, dsn, slot, brokers)
	tailRun(t, after)
	tailEventually(t, "every event on the topic", func() bool {
		seen := map[string]bool{}
		for _, e := range tailEvents(t, tailRecords(t, brokers, "payments")) {
			seen[e.ID] = true
		}
		return len(seen) == len(committed)
	})
	tailEventually(t, "the new relay to confirm what it published", func() bool {
		return tailSlotLSN(t, db, slot).String() == after.Stats().ConfirmedLSN && after.Stats().Published > 0
	})
	recs := tailRecords(t, brokers, "payments")
	dups := tailCheck(t, recs, committed)
	t.Logf("killed with %d rows acknowledged and not confirmed: %d records for %d events, %d duplicates (same ids, same bytes), 0 lost",
		unconfirmed, len(recs), len(committed), dups)
	if dups < unconfirmed {
		t.Errorf("%d duplicates, want at least the %d rows acknowledged but not confirmed before the kill", dups, unconfirmed)
	}
}
