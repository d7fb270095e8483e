package outbox_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/internal/pgtest"
	"github.com/streamfold/streamfold/outbox"
)

// The crash child's environment: where to relay from and to.
const (
	pollCrashDSNEnv    = "STREAMFOLD_POLL_CRASH_DSN"
	pollCrashBrokerEnv = "STREAMFOLD_POLL_CRASH_BROKER"
)

// pollCrashBatch and pollCrashAfter: the child relays batches of
// pollCrashBatch rows and stops right after the broker acknowledged its
// pollCrashAfter-th batch, before deleting it.
const (
	pollCrashBatch = 10
	pollCrashAfter = 3
)

// TestPollingRelayCrashChild is the process
// TestPollingRelay_GivenACrashBetweenAckAndDelete... kills: a relay that,
// right after the broker acknowledged its third batch, says so on stdout
// and waits to be killed without deleting the rows.
func TestPollingRelayCrashChild(t *testing.T) {
	dsn := os.Getenv(pollCrashDSNEnv)
	if dsn == "" {
		t.Skip("run by TestPollingRelay_GivenACrashBetweenTheBrokersAckAndTheDelete_ThenEveryRowIsOnKafkaAndDuplicatesKeepTheirID")
	}
	db, err := outbox.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	r := &outbox.PollingRelay{DB: db, Kafka: outbox.Kafka{Brokers: []string{os.Getenv(pollCrashBrokerEnv)}},
		Batch: pollCrashBatch, Interval: 5 * time.Millisecond, Lease: time.Second, Instance: "crashing"}
	batches := 0
	outbox.PollSetHooks(r, nil, func(acked []outbox.Row) {
		batches++
		if batches == pollCrashAfter {
			fmt.Printf("acked %d\n", len(acked))
			select {} // until SIGKILL: the rows stay in the table
		}
	})
	_ = r.Run(context.Background())
}

func TestPollingRelay_GivenACrashBetweenTheBrokersAckAndTheDelete_ThenEveryRowIsOnKafkaAndDuplicatesKeepTheirID(t *testing.T) {
	pollDSNs(t, func(t *testing.T, dsn string) {
		db := openDB(t, dsn)
		addrs := pollBroker(t)
		var want []codecs.Event
		for i := range 10 {
			want = append(want, pollWrite(t, db, true, fmt.Sprintf("p%d", i%4), "p9", fmt.Sprintf("p%d", i%3), "p0", "p9")...)
		}

		line := killAt(t, "TestPollingRelayCrashChild", []string{pollCrashDSNEnv + "=" + dsn, pollCrashBrokerEnv + "=" + addrs[0]}, "acked", pollWait)
		// the child deleted two batches; the third is on Kafka and still here
		if n, want := count(t, db), len(want)-(pollCrashAfter-1)*pollCrashBatch; n != want {
			t.Fatalf("after the crash the outbox holds %d rows, want %d (the acknowledged batch not deleted)", n, want)
		}

		r := pollRelay(t, db, addrs, "after-crash")
		pollStart(t, r)
		pollDrained(t, db)
		recs := pollRead(t, addrs)
		dups := pollCheck(t, recs, want) // 0 lost, order kept, a duplicate is byte for byte its first copy
		t.Logf("%d rows, %d records on Kafka, %d duplicates after the crash (the child said %q)", len(want), len(recs), dups, line)
		if dups != pollCrashBatch {
			t.Errorf("%d duplicates, want the %d rows acknowledged but not deleted", dups, pollCrashBatch)
		}
	})
}

func TestPollingRelay_GivenItsDatabaseConnectionsAreTerminatedWhileRelaying_ThenItRecoversAndPublishesEverything(t *testing.T) {
	dsn := pgtest.Database(t)
	db := openDB(t, dsn)
	// the relay's own connections, told apart by their application name
	relayDB := openDB(t, dsn+"&application_name=pollrelay")
	addrs := pollBroker(t)
	var want []codecs.Event
	for i := range 20 {
		want = append(want, pollWrite(t, db, true, fmt.Sprintf("p%d", i%4), "p9", fmt.Sprintf("p%d", i%3), "p0", "p9")...)
	}

	// After the broker acknowledged batches 2, 5 and 8, and before the
	// relay deletes them, the relay's connections to the database are
	// terminated — as when the server restarts.
	r := pollRelay(t, relayDB, addrs, "")
	r.Batch = 5
	var mu sync.Mutex
	batches, kills := 0, 0
	outbox.PollSetHooks(r, nil, func([]outbox.Row) {
		mu.Lock()
		defer mu.Unlock()
		batches++
		if batches == 2 || batches == 5 || batches == 8 {
			pollTerminate(t, db)
			kills++
		}
	})
	pollStart(t, r)
	pollDrained(t, db)
	mu.Lock()
	if kills != 3 {
		t.Errorf("connections terminated %d times, want 3", kills)
	}
	mu.Unlock()

	recs := pollRead(t, addrs)
	dups := pollCheck(t, recs, want)
	s := r.Stats()
	t.Logf("%d rows, %d records, %d duplicates; %d failed rounds, last error: %v", len(want), len(recs), dups, s.Failures, s.LastError)
	if s.Failures < 3 {
		t.Errorf("%d failed rounds, want at least one per termination", s.Failures)
	}
}

// pollTerminate terminates the backends of the relay's connections
// (application name pollrelay) and waits until they are gone.
func pollTerminate(t *testing.T, admin *outbox.DB) {
	t.Helper()
	conn, err := admin.Conn(context.Background())
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	others := `FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pollrelay'`
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_terminate_backend(pid) `+others); err != nil {
		t.Error(err)
		return
	}
	deadline := time.Now().Add(pollWait)
	for {
		var n int
		if err := conn.QueryRowContext(context.Background(), `SELECT count(*) `+others).Scan(&n); err != nil {
			t.Error(err)
			return
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d backends still there after pg_terminate_backend", n)
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

func TestPollingRelay_GivenTwoRelaysOnSQLite_ThenOnlyTheLeaseHolderPublishesAndTheOtherTakesOver(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "test.db")
	addrs := pollBroker(t)
	db := openDB(t, dsn)

	a := pollRelay(t, db, addrs, "a")
	stopA := pollStart(t, a)
	pollEventually(t, "relay a holds the lease", func() bool { return a.Stats().LeaseHeld })
	b := pollRelay(t, openDB(t, dsn), addrs, "b")
	stopB := pollStart(t, b)
	want := pollWrite(t, db, true, "p1", "p2", "p1")
	for range 10 {
		want = append(want, pollWrite(t, db, true, "p3", "p1", "p2")...)
	}
	pollDrained(t, db)
	// a relay counts what it published once its delete committed: a moment
	// after the table is drained
	pollEventually(t, "relay a counted every row", func() bool { return a.Stats().Published == int64(len(want)) })
	if sa, sb := a.Stats(), b.Stats(); sa.Published != int64(len(want)) || sb.Published != 0 || sb.LeaseHeld {
		t.Errorf("a published %d, b %d (holding: %v); want all %d by a, none by b", sa.Published, sb.Published, sb.LeaseHeld, len(want))
	}

	// a stops cleanly and hands the lease over: b takes over at once
	stopA()
	pollEventually(t, "relay b holds the lease", func() bool { return b.Stats().LeaseHeld })
	more := pollWrite(t, db, true, "p1", "p2", "p3")
	pollDrained(t, db)
	pollEventually(t, "relay b counted the rows", func() bool { return b.Stats().Published >= int64(len(more)) })
	if sb := b.Stats(); sb.Published != int64(len(more)) {
		t.Errorf("b published %d, want %d", sb.Published, len(more))
	}
	want = append(want, more...)

	// a holder that died keeps the lease until it runs out: write the
	// lease a relay renewed just before it was killed
	stopB()
	expires := time.Now().Add(time.Second)
	if _, err := db.ExecContext(context.Background(), `UPDATE outbox_lease SET holder = 'killed', expires = $1`, expires.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	c := pollRelay(t, openDB(t, dsn), addrs, "c")
	pollStart(t, c)
	more = pollWrite(t, db, true, "p2", "p1")
	pollDrained(t, db)
	pollEventually(t, "relay c counted the rows", func() bool { return c.Stats().Published >= int64(len(more)) })
	if sc := c.Stats(); sc.Published != int64(len(more)) || sc.LeaseSince.UnixMilli() < expires.UnixMilli() {
		t.Errorf("c published %d rows holding the lease since %v; want %d, not before the dead holder's lease ran out at %v",
			sc.Published, sc.LeaseSince, len(more), expires)
	}
	want = append(want, more...)
	if dups := pollCheck(t, pollRead(t, addrs), want); dups != 0 {
		t.Errorf("%d duplicates without a crash", dups)
	}
}

func TestPollingRelay_GivenItsDatabaseGoesAwayForAWhileWhileRelaying_ThenRowsWaitAndItResumes(t *testing.T) {
	dsn := pgtest.Database(t)
	db := openDB(t, dsn)
	addrs := pollBroker(t)
	var want []codecs.Event
	for i := range 20 {
		want = append(want, pollWrite(t, db, true, fmt.Sprintf("p%d", i%4), "p9", fmt.Sprintf("p%d", i%3), "p0", "p9")...)
	}

	// The relay reaches the server through a proxy that the test takes
	// down — open connections cut, new ones refused, as while a server
	// restarts — right after the broker acknowledged the third batch.
	proxy := pollStartProxy(t, dsn)
	r := pollRelay(t, openDB(t, proxy.dsn), addrs, "")
	r.Batch = 5
	wentDown := make(chan struct{})
	batches := 0
	outbox.PollSetHooks(r, nil, func([]outbox.Row) {
		if batches++; batches == 3 {
			proxy.down()
			close(wentDown)
		}
	})
	pollStart(t, r)
	select {
	case <-wentDown:
	case <-time.After(pollWait):
		t.Fatal("the relay did not publish three batches")
	}
	pollEventually(t, "the relay failed a few times", func() bool { return r.Stats().Failures >= 3 })
	left := count(t, db)
	if left != len(want)-2*5 {
		t.Errorf("outbox holds %d rows while the database is away, want %d (the third batch not deleted)", left, len(want)-2*5)
	}
	s := r.Stats()
	t.Logf("database away: %d failed rounds, last error: %v", s.Failures, s.LastError)

	proxy.up(t)
	pollDrained(t, db)
	recs := pollRead(t, addrs)
	dups := pollCheck(t, recs, want)
	t.Logf("%d rows, %d records, %d duplicates (the batch acknowledged as the database went away)", len(want), len(recs), dups)
}

// pollProxy forwards TCP connections to a PostgreSQL server until down.
type pollProxy struct {
	dsn    string // the database's URL through the proxy
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func pollStartProxy(t *testing.T, dsn string) *pollProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := &pollProxy{addr: pollFreeAddr(t), target: u.Host}
	u.Host = p.addr
	p.dsn = u.String()
	p.up(t)
	t.Cleanup(p.down)
	return p
}

// up listens (again) on the proxy's address.
func (p *pollProxy) up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
		}
	}()
}

// down stops listening and cuts every connection.
func (p *pollProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
